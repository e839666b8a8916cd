"""The energy the guidance loop descends: Eq. 2 of Lian et al. (2024) on the hooked layers'
attention, for rows of latents that each hold one or more objects, plus attention transfer.

Per-box generation: one row per object. Overall generation: one row holding every object,
with attention transfer to each box's own attention. Everything the energy needs per call
(the timestep, the step index) is an argument; masks are built once per layer resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmd.controller.backbones import map_tensors
from lmd.controller.conditioning import Conditioning
from lmd.controller.config import Guidance
from lmd.controller.energy import box_energy, total_energy, transfer_loss
from lmd.controller.engine import Run
from lmd.controller.masks import cells_mask_at
from lmd.controller.noise import Cells
from lmd.controller.phase import Hooks


@dataclass(frozen=True)
class Target:
    """One object of a row: the token positions its energy averages over, and its boxes."""

    tokens: tuple[int, ...]
    cells: tuple[Cells, ...]


class AttentionEnergy:
    """`energy(z, rows, t, step)`: the energies of rows `rows` of model input `z`.

    `targets[r]` are the objects of row r (the same number in every row); `names[r]` is the
    row's trace name (`box0`, `overall`). `extra[r]` are token positions captured besides the
    objects' (attention transfer's word tokens), placed after them. The guidance forward gets
    the phase's `hooks`' guidance inputs; `guidance` defaults to the run's config.
    """

    def __init__(
        self,
        run: Run,
        text: Conditioning,
        targets: list[list[Target]],
        names: list[str],
        *,
        hooks: Hooks | None = None,
        guidance: Guidance | None = None,
        extra: list[list[int]] | None = None,
        transfer: Transfer | None = None,
    ):
        self.run, self.text, self.names = run, text, names
        self.hooks, self.transfer = hooks, transfer
        self.guidance = guidance or run.config.group(Guidance)
        self.targets = targets
        widths = {len(row) for row in targets}
        if len(widths) != 1:
            raise ValueError("every row of an energy needs the same number of objects")
        extra = extra or [[] for _ in targets]
        captured = [
            [t for o in row for t in o.tokens] + x for row, x in zip(targets, extra, strict=True)
        ]
        width = max(len(c) for c in captured)
        self.columns = torch.tensor([c + [c[-1]] * (width - len(c)) for c in captured])
        longest = max(len(o.tokens) for row in targets for o in row)
        cols, weights = [], []
        for row in targets:
            start, row_cols, row_weights = 0, [], []
            for o in row:
                n = len(o.tokens)
                idx = list(range(start, start + n))
                row_cols.append(idx + [idx[-1]] * (longest - n))
                row_weights.append([1 / n] * n + [0.0] * (longest - n))
                start += n
            cols.append(row_cols)
            weights.append(row_weights)
        self.cols = torch.tensor(cols, device=run.device)  # [rows, O, T] into the columns
        self.weights = torch.tensor(weights, device=run.device)  # [rows, O, T]
        self._masks: dict[int, torch.Tensor] = {}

    def masks_at(self, pixels: int) -> torch.Tensor:
        """Each object's boxes as one mask [rows, O, P] at a layer with `pixels` positions."""
        if pixels not in self._masks:
            self._masks[pixels] = torch.stack(
                [union_masks(self.run, [o.cells for o in row], pixels) for row in self.targets]
            )
        return self._masks[pixels]

    def __call__(self, z: torch.Tensor, rows: torch.Tensor, t, step: int) -> torch.Tensor:
        run, cfg, store = self.run, self.guidance, self.run.store
        cpu_rows = rows.cpu()
        store.set(store.layers.guidance, self.columns[cpu_rows], grad=True, stop_early=True)
        inputs = self.hooks.inputs(step) if self.hooks is not None else None
        kwargs = map_tensors(inputs.guidance, lambda v: v[rows]) if inputs is not None else {}
        run.call(z, t, self.text.rows(rows), kwargs, rows=len(rows))
        per_layer, transfer = [], 0
        for layer in store.layers.guidance:
            a = store.maps[layer]
            per_layer.append(
                box_energy(
                    a, self.masks_at(a.shape[2])[rows], self.cols[rows], self.weights[rows],
                    fg_weight=cfg.fg_weight, bg_weight=cfg.bg_weight, topk_ratio=cfg.topk_ratio,
                )
            )  # fmt: skip
            if self.transfer is not None:
                transfer = transfer + self.transfer(layer, a, step)
        store.clear()
        energies = total_energy(per_layer, transfer)
        if run.trace is not None:
            for r, e in zip(cpu_rows.tolist(), energies, strict=True):
                run.emit(f"{self.names[r]}.energy", e, step)
        return energies


class Transfer:
    """Attention transfer of LMD (Sec. 3.3) for a one-row overall energy: per object, L1
    between its word token's box-masked attention and each of its boxes' own attention at
    the same step, weighted by `transfer_weight` and averaged over the object's boxes.

    `objects[o]` lists the box indices of object o, `word_column[b]` the captured column of
    box b's word token, `cells[b]` its box and `refs[b]` its own attention {layer: [G, heads,
    P]} (G guided steps; an empty or missing layer means nothing to transfer).
    """

    def __init__(self, run: Run, objects, word_column, cells, refs):
        self.run, self.objects, self.word_column, self.cells = run, objects, word_column, cells
        self.refs = [{k: v.to(run.device) for k, v in r.items()} for r in refs]
        self._masks: dict[int, torch.Tensor] = {}

    def masks_at(self, pixels: int) -> torch.Tensor:
        """Each box's mask [B, P] at a layer with `pixels` positions."""
        if pixels not in self._masks:
            self._masks[pixels] = union_masks(self.run, [(c,) for c in self.cells], pixels)
        return self._masks[pixels]

    def __call__(self, layer: str, a: torch.Tensor, step: int):
        cfg = self.run.config
        if cfg.transfer_weight == 0:
            return 0
        per_box = self.masks_at(a.shape[2])
        loss = 0
        for boxes in self.objects:
            refs = [self.refs[b].get(layer) for b in boxes]
            usable = [
                (b, r)
                for b, r in zip(boxes, refs, strict=True)
                if r is not None and len(r) > step and b in self.word_column
            ]
            if not usable:
                continue
            attn = torch.stack([a[0, :, :, self.word_column[b]] for b, _ in usable])
            ref = torch.stack([r[step] for _, r in usable])
            masks = torch.stack([per_box[b] for b, _ in usable])
            l1 = transfer_loss(attn, ref, masks, cfg.transfer_eps)
            loss = loss + cfg.transfer_weight * l1.sum() / len(boxes)
        return loss


def union_masks(run: Run, groups: list[tuple[Cells, ...]], pixels: int) -> torch.Tensor:
    """[len(groups), P]: each group's boxes as one flat mask at a layer with `pixels` positions."""
    res = run.backbone.attention_hw(pixels, run.latent_hw)
    return torch.stack(
        [
            torch.stack([cells_mask_at(c, run.latent_hw, res, run.device) for c in cells])
            .any(0)
            .flatten()
            for cells in groups
        ]
    )
