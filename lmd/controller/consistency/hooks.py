"""`Consistency`: ConsiStory's shared attention as a hook source (`Run.extra`), combined with the
base method's hooks in every phase that draws the images ("image" of the one-pass flow,
"overall" of LMD's). Formulas, defaults and sources: `settings.py`.

In a phase of N rows (the images), the decoder's self-attention layers get `SharedAttention`:
each image's queries also attend to its sources' subject patches (anchors: the other anchors;
every other image: the anchors), in the unconditional and conditional halves of the batch
separately. Steps that blend queries or inject features run a vanilla pass first (no sharing:
it records each layer's queries and input features), then the shared pass. With attention
masks, the backbone's mask layer gets `SubjectAttention`, which records the subject tokens'
cross-attention each step (it runs before the decoder, so a step's mask includes the step).
Only denoiser calls holding both halves of all N images are changed: energy-guidance forwards
see each image alone.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import torch

from lmd.controller.attention import attention_probs, with_query_and_key
from lmd.controller.consistency.attention import drop_exact, inject, shared_keys
from lmd.controller.consistency.masks import (
    layout_mask,
    otsu_masks,
    resize_bool,
    subject_tokens,
)
from lmd.controller.consistency.settings import ConsistencySettings
from lmd.controller.phase import Hooks, Phase, PhaseObject
from lmd.layouts.seeds import sub_seed

DRAWING_PHASES = ("image", "overall")


class Consistency:
    """Shared attention for images drawn together: `subjects[k]` are the layout box indices of
    image k's subject(s), `anchors` the images the others attend to, `seed` seeds the dropout.
    A hook source: `Run.extra.append(consistency)`."""

    def __init__(
        self,
        settings: ConsistencySettings,
        subjects: list[tuple[int, ...]],
        anchors: list[int],
        seed: int = 0,
    ):
        self.settings = settings
        self.subjects = [tuple(s) for s in subjects]
        self.anchors = list(anchors)
        self.seed = seed
        self.last: ConsistencyHooks | None = None  # the hooks of the last phase (for tests)

    def __call__(self, run, phase: Phase) -> ConsistencyHooks | None:
        if phase.name not in DRAWING_PHASES or not self.settings.share or len(phase.rows) < 2:
            return None
        if len(phase.rows) != len(self.subjects):
            raise ValueError(
                f"shared attention was set up for {len(self.subjects)} images but the phase "
                f"draws {len(phase.rows)}"
            )
        objects = [
            [o for o in row.objects if o.index in wanted]
            for row, wanted in zip(phase.rows, self.subjects, strict=True)
        ]
        anchors = [a for a in self.anchors if objects[a]]
        if not anchors or sum(1 for o in objects if o) < 2:
            return None
        source = self.settings.mask_source
        if source == "auto":
            source = "layout" if run.method.grounded else "attention"
        self.last = ConsistencyHooks(run, phase, self.settings, objects, anchors, self.seed, source)
        return self.last


class ConsistencyHooks(Hooks):
    """One phase's shared attention (see the module docstring)."""

    def __init__(
        self,
        run,
        phase: Phase,
        settings: ConsistencySettings,
        objects: list[list[PhaseObject]],
        anchors: list[int],
        seed: int,
        mask_source: str,
    ):
        self.run, self.phase, self.settings, self.seed = run, phase, settings, seed
        self.n = len(phase.rows)
        self.anchors = anchors
        self.mask_source = mask_source
        self.layers = list(run.backbone.decoder_attention("self"))
        self.sources = [self._sources(k, objects) for k in range(self.n)]
        self.latent_masks = torch.stack([layout_mask(o, run.latent_hw) for o in objects])
        self.tokens = [subject_tokens(o) for o in objects]
        self.index = 0
        self.mode: str | None = None  # "vanilla", "shared", or None outside a prediction
        self.blend = 0.0
        self.injecting = False
        self.queries: dict[str, torch.Tensor] = {}  # the vanilla pass's, per layer
        self.features: dict[str, torch.Tensor] = {}  # the vanilla pass's layer inputs
        self.maps: list[torch.Tensor] = []  # the subject tokens' attention of earlier steps
        self.current: torch.Tensor | None = None  # this step's
        self.mask_hw: tuple[int, int] | None = None
        self._masks: dict[tuple[int, int], torch.Tensor] = {}
        self.passes: list[str] = []  # every pass run, in order (observability)

    def _sources(self, k: int, objects) -> list[int]:
        """The images image k attends to besides itself: anchors with a subject (not itself)."""
        if not objects[k]:
            return []
        return [a for a in self.anchors if a != k]

    # --- Hooks ---------------------------------------------------------------------------

    def processors(self) -> dict[str, Callable[[Any], Any]]:
        out: dict[str, Callable[[Any], Any]] = {
            name: (lambda inner, name=name: SharedAttention(self, name, inner))
            for name in self.layers
        }
        if self.mask_source == "attention":
            out[self.run.backbone.layers.mask] = lambda inner: SubjectAttention(self, inner)
        return out

    def step(self, index: int, t) -> None:
        self.index = index
        if self.current is not None:
            self.maps.append(self.current)
            self.current = None
        self._masks = {}

    def predict(self, index: int, call):
        steps = self.phase.steps
        self.blend = self.settings.blend_weight(index, steps)
        self.injecting = self.settings.injects(index, steps)
        try:
            if self.blend > 0 or self.injecting:
                self.mode = "vanilla"
                self.passes.append("vanilla")
                call()
            self.mode = "shared"
            self.passes.append("shared")
            return call()
        finally:
            self.mode = None
            self.queries, self.features = {}, {}

    # --- what the processors ask -----------------------------------------------------------

    def halves(self, rows: int) -> list[list[int]] | None:
        """The batch rows of each image in the unconditional and conditional halves of the
        call under way, or None when it does not hold both halves of every image."""
        every = torch.arange(rows)
        cond = every[self.run.cond_rows].tolist()
        uncond = sorted(set(every.tolist()) - set(cond))
        if len(cond) != self.n or len(uncond) != self.n:
            return None
        return [uncond, cond]

    def masks_at(self, pixels: int) -> torch.Tensor:
        """Each image's subject mask [N, pixels] (bool) on a layer of `pixels` positions."""
        hw = self.run.backbone.attention_hw(pixels, self.run.latent_hw)
        if hw not in self._masks:
            if self.mask_source == "layout":
                masks = resize_bool(self.latent_masks, hw)
            else:
                masks = resize_bool(self.attention_masks(), hw)
            self._masks[hw] = masks.flatten(1).to(self.run.device)
        return self._masks[hw]

    def attention_masks(self) -> torch.Tensor:
        """Otsu masks of the subject tokens' attention averaged over the recent steps (this
        one included), on the mask layer's grid; empty before any is recorded."""
        recent = [*self.maps, *([self.current] if self.current is not None else [])]
        if self.settings.mask_window is not None:
            recent = recent[-self.settings.mask_window :]
        if not recent or self.mask_hw is None:
            return torch.zeros(self.n, *self.run.latent_hw, dtype=torch.bool)
        mean = torch.stack(recent).mean(0).reshape(self.n, *self.mask_hw)
        masks = otsu_masks(mean.cpu())
        has_tokens = torch.tensor([bool(t) for t in self.tokens])
        return masks & has_tokens[:, None, None]

    def dropped(self, layer: str, masks: torch.Tensor) -> list[torch.Tensor | None]:
        """Each image's dropped shared entries at this step and layer (seeded)."""
        rate = self.settings.dropout
        out: list[torch.Tensor | None] = []
        for k, sources in enumerate(self.sources):
            if not sources or rate == 0:
                out.append(None)
                continue
            shared = torch.cat([masks[a] for a in sources])[None]
            number = self.layers.index(layer)
            generator = torch.Generator().manual_seed(
                sub_seed(self.seed, self.index, number, k)
            )  # fmt: skip
            out.append(drop_exact(shared, rate, generator)[0])
        return out


class SharedAttention:
    """A decoder self-attention layer under shared attention (see the module docstring); calls
    the layer's own processor `inner` with the extended keys and their mask."""

    def __init__(self, hooks: ConsistencyHooks, name: str, inner):
        self.hooks, self.name, self.inner = hooks, name, inner

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        h = self.hooks
        plain = h.mode is None or hidden_states.ndim != 3  # outside a prediction: guidance
        halves = None if plain else h.halves(hidden_states.shape[0])
        if halves is None or encoder_hidden_states is not None or attention_mask is not None:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb,
                              **kwargs)  # fmt: skip
        if h.mode == "vanilla":
            if h.injecting:
                h.features[self.name] = hidden_states.detach()
            with _queries(attn, lambda q: h.queries.__setitem__(self.name, q.detach())):
                return self.inner(attn, hidden_states, None, None, temb, **kwargs)
        masks = h.masks_at(hidden_states.shape[1])
        dropped = h.dropped(self.name, masks)
        keys, bias = shared_keys(hidden_states, halves, h.sources, masks, dropped)
        vanilla = h.queries.get(self.name) if h.blend > 0 else None
        blend = None if vanilla is None else (lambda q: h.blend * vanilla + (1 - h.blend) * q)
        with _queries(attn, None, blend):
            if keys.shape[1] == hidden_states.shape[1]:  # no image shares anything
                out = self.inner(attn, hidden_states, None, None, temb, **kwargs)
            else:
                out = self.inner(attn, hidden_states, keys, bias, temb, **kwargs)
        if h.injecting and self.name in h.features:
            out = self._inject(out, h.features[self.name], halves, masks)
        return out

    def _inject(self, out, features, halves, masks) -> torch.Tensor:
        h, s = self.hooks, self.hooks.settings
        out = out.clone()
        for half in halves:
            for k, sources in enumerate(h.sources):
                if k in h.anchors or not sources:
                    continue
                row = half[k]
                anchor_rows = [half[a] for a in sources]
                anchor_masks = [masks[a] for a in sources]
                anchor_out = torch.cat([out[r][m] for r, m in zip(anchor_rows, anchor_masks,
                                                                  strict=True)])  # fmt: skip
                anchor_features = torch.cat(
                    [features[r][m] for r, m in zip(anchor_rows, anchor_masks, strict=True)]
                )
                out[row], _ = inject(
                    out[row], features[row], masks[k], anchor_out, anchor_features,
                    s.injection_weight, s.injection_max_distance,
                )  # fmt: skip
        return out


class SubjectAttention:
    """The mask layer's processor under attention masks: runs `inner`, and records the subject
    tokens' attention of each image's conditional row, averaged over heads and tokens."""

    def __init__(self, hooks: ConsistencyHooks, inner):
        self.hooks, self.inner = hooks, inner

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        h = self.hooks
        args = (attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        shared = h.mode == "shared" and hidden_states.ndim == 3
        halves = h.halves(hidden_states.shape[0]) if shared else None
        if halves is None or encoder_hidden_states is None:
            return self.inner(*args, **kwargs)
        out, seen = with_query_and_key(self.inner, args, kwargs)
        cond = halves[1]
        with torch.no_grad():  # [N, P, T], averaged over the heads
            probs = attention_probs(attn, seen["q"][cond], seen["k"][cond]).mean(1)
        pixels = probs.shape[1]
        maps = torch.zeros(h.n, pixels, device=probs.device)
        for i, tokens in enumerate(h.tokens):
            if tokens:
                maps[i] = probs[i][:, tokens].mean(-1)
        h.current = maps
        h.mask_hw = h.run.backbone.attention_hw(pixels, h.run.latent_hw)
        h._masks = {}
        return out


@contextmanager
def _queries(attn, record=None, replace=None):
    """While the layer's own processor runs: `record(q)` sees its queries, `replace(q)` gives
    the queries it goes on with."""
    if record is None and replace is None:
        yield
        return

    def hook(module, inputs, output):
        if record is not None:
            record(output)
        return replace(output) if replace is not None else None

    handle = attn.to_q.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
