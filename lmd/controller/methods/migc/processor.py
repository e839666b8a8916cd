"""MIGC as a diffusers attention processor: wraps a cross-attention layer's own processor and,
while MIGC is on, replaces that layer's output on the conditional rows by the instance shading.

A method installs one `MIGCProcessor` per layer for a phase (`processors(...)` gives the
`wrap(inner)` functions `Hooks.processors()` returns) and removes it after; every row and step
it does not act on is the wrapped processor's own output, untouched. What it acts on is read
from one shared, mutable `MIGCState` at each call:

- `rows`: the instances of each conditional row of the denoiser's batch (`RowInstances`:
  their prompts' text embeddings, pooled embeddings, boxes, masks on the latent grid); one
  entry serves every conditional row;
- `cond`: which rows of the call are conditional (a slice, or a function giving it, such as
  `lambda: run.cond_rows`); the others (classifier-free guidance's unconditional rows) keep
  the layer's own attention, as the authors' pipeline does (migc_pipeline.py:143, 189);
- `shade`: the MIGC layers shade. The authors shade while the step index `ith` is not above
  `MIGCsteps` (migc_pipeline.py:125: `ith > MIGCsteps` turns it off), so MIGCsteps = 25 of 50
  shades the 26 steps 0..25;
- `fuse`: layers without an MIGC module (and MIGC layers while not shading) give the naive
  fuser's mask-weighted mean of the global and instance outputs (`shader.fuse`) instead of
  plain attention: the authors' `NaiveFuserSteps` (InferenceV2, on for steps <= 25) and
  MIGC++'s `RefinedSteps` (on for every step in `migc_plus_inference_single_image.py`);
- `generator`: the slot order of the SAC's second gate. The authors draw `torch.randperm` from
  the global generator on every call (migc_arch.py:95); lmd draws from this generator (seed it
  per render for reproducible pictures) or, when None, keeps the slots unshuffled; `order`
  fixes one order for every call (to replay a recorded run).

Each instance's cross-attention output ("shading stage 1") is the layer's own attention of the
row's hidden states against the instance prompt's embeddings, computed with the layer's
projections (`to_q`, `to_k`, `to_v`, `to_out`); the global output is the wrapped processor's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lmd.controller.backbones.unet import grid_at
from lmd.controller.methods.migc.masks import box_masks, resize
from lmd.controller.methods.migc.shader import InstanceShader, fuse


@dataclass(frozen=True)
class RowInstances:
    """The instances of one conditional row: `embeds` [N, T, D] (each instance prompt's text
    conditioning, the cross-attention's keys and values), `pooled` [N, D], `boxes` [N, 4]
    (x0, y0, x1, y1 fractions of the image), `masks` [N, h, w] and `background` [1, h, w] on
    the latent grid (`masks.box_masks`)."""

    embeds: torch.Tensor
    pooled: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor
    background: torch.Tensor

    def __post_init__(self) -> None:
        n = self.embeds.shape[0]
        sizes = (self.pooled.shape[0], self.boxes.shape[0], self.masks.shape[0])
        if any(s != n for s in sizes):
            raise ValueError(f"instance tensors disagree on the number of instances: {n}, {sizes}")

    def __len__(self) -> int:
        return self.embeds.shape[0]


@dataclass
class MIGCState:
    """What the MIGC processors act on at their next calls (see the module docstring)."""

    rows: tuple[RowInstances, ...] = ()
    cond: slice | Callable[[], slice] = field(default_factory=lambda: slice(None))
    shade: bool = False
    fuse: bool = False
    generator: torch.Generator | None = None
    order: torch.Tensor | None = None  # a fixed slot order (a recorded run's), before `generator`

    def cond_slice(self) -> slice:
        return self.cond() if callable(self.cond) else self.cond

    def slot_order(self, count: int) -> torch.Tensor | None:
        """The order of the SAC's `count` instance slots for the next shading call."""
        if self.order is not None:
            return self.order
        if self.generator is not None:
            return torch.randperm(count, generator=self.generator)
        return None


class MIGCProcessor:
    """The wrapped processor's output, with MIGC's instance shading (or the naive fuser) on the
    conditional rows while `state` says so. `shader` is None on a layer without MIGC weights."""

    def __init__(self, inner, shader: InstanceShader | None, state: MIGCState):
        self.inner = inner
        self.shader = shader
        self.state = state

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        out = self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        state = self.state
        shade = state.shade and self.shader is not None
        if encoder_hidden_states is None or not state.rows or not (shade or state.fuse):
            return out
        indices = range(hidden_states.shape[0])[state.cond_slice()]
        if len(state.rows) not in (1, len(indices)):
            raise ValueError(
                f"MIGC has instances for {len(state.rows)} rows but the call has "
                f"{len(indices)} conditional rows"
            )
        replaced = {}
        for k, r in enumerate(indices):
            row = state.rows[k if len(state.rows) > 1 else 0]
            if len(row):
                replaced[r] = self._row(attn, hidden_states[r], out[r], row, shade)
        if not replaced:
            return out
        out = out.clone()
        for r, value in replaced.items():
            out[r] = value
        return out

    def _row(self, attn, hidden: torch.Tensor, own: torch.Tensor, row: RowInstances, shade: bool):
        """One conditional row's output [HW, C] from its hidden states [HW, C]."""
        dtype, device = hidden.dtype, hidden.device
        n = len(row)
        latent_hw = tuple(row.masks.shape[-2:])
        grid = grid_at(hidden.shape[0], latent_hw)
        masks = resize(row.masks.to(device, torch.float32), grid).to(dtype)
        instances = cross_attention(
            attn, hidden[None].expand(n, -1, -1), row.embeds.to(device, dtype)
        )
        if not shade:
            return fuse(own[None], instances[None], masks[None])[0]
        background = resize(row.background.to(device, torch.float32), grid).to(dtype)
        order = self.state.slot_order(self.shader.aggregate.slots - (1 if self.shader.plus else 2))
        order = order.to(device) if order is not None else None
        out = self.shader(
            own[None], instances[None], hidden[None], masks[None], background[None],
            row.boxes.to(device, dtype)[None], row.pooled.to(device, dtype)[None], order,
        )  # fmt: skip
        return out[0]


def row_instances(
    backbone,
    names: list[str],
    boxes: list[tuple[float, float, float, float]],
    image_hw: tuple[int, int],
    latent_hw: tuple[int, int],
) -> RowInstances:
    """The instances of one row: each prompt's ("a red car") text conditioning and pooled
    embedding from `backbone` (the authors encode each instance description on its own,
    migc_pipeline.py:326-386), its box (x0, y0, x1, y1 fractions) and masks (`box_masks`)."""
    masks, background = box_masks(boxes, image_hw, latent_hw)
    device, dtype = backbone.device, backbone.dtype
    if names:
        embeds = backbone.encode(list(names), image_hw).embeds
        pooled = backbone.pooled(list(names))
    else:
        embeds = torch.zeros(0, 1, 1, device=device, dtype=dtype)
        pooled = torch.zeros(0, 1, device=device, dtype=dtype)
    box = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return RowInstances(embeds, pooled, box, masks.to(device), background.to(device))


def cross_attention(attn, hidden: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """The layer's own cross-attention of `hidden` [B, L, C] against `context` [B, T, D]
    (diffusers' `Attention`: its projections, heads, optional q/k norms, output projection,
    residual and rescale), without any mask."""
    if attn.norm_cross:
        context = attn.norm_encoder_hidden_states(context)
    b, heads = hidden.shape[0], attn.heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(b, -1, heads, t.shape[-1] // heads).transpose(1, 2)

    q, k, v = split(attn.to_q(hidden)), split(attn.to_k(context)), split(attn.to_v(context))
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
    out = attn.to_out[1](attn.to_out[0](out.transpose(1, 2).reshape(b, hidden.shape[1], -1)))
    if attn.residual_connection:
        out = out + hidden
    return out / attn.rescale_output_factor


def processors(shaders: dict[str, InstanceShader | None], state: MIGCState) -> dict:
    """{layer name: wrap(inner) -> MIGCProcessor} for `Hooks.processors()`: every layer named
    in `shaders` (None: a layer that only fuses) wraps the processor it has with one sharing
    `state`."""
    return {
        name: (lambda inner, s=shader: MIGCProcessor(inner, s, state))
        for name, shader in shaders.items()
    }
