"""Attention modulation (Wu et al. 2024, "Towards Better Text-to-Image Generation Alignment via
Attention Modulation", arXiv 2404.13899): one training-free pass that changes the denoiser's
attention, driven here by the layout's boxes.

The paper's three mechanisms, as lmd implements them:

1. Self-attention temperature (paper Sec. 3, Fig. 2): in the early phase every self-attention
   layer computes softmax(Q K^T / (tau sqrt(d))) V with tau < 1, so each patch attends to
   the patches most like it (sharper contours, less entity fusion). Applied for step index <
   `ceil(temperature_steps * steps)`, on both halves of the CFG batch.
2. Object-focused cross-attention masking: each patch attends only to the tokens of its own
   entity group plus the prompt's shared tokens. The paper assigns patches to entity groups
   from a syntactic parse; lmd takes the groups from the layout: a patch inside an object's
   box (at the layer's grid) may attend to that object's phrase ("a red car": every token of
   it), a patch inside several boxes to each of theirs, a patch outside every box to none.
   Every patch keeps the shared tokens: the background caption's words and the separators
   ("with", commas; the paper's "global information": layout, actions), and the start,
   end and padding tokens (the softmax's sinks and the pooled prompt, never masked). A
   masked token gets probability exactly 0 (logit -inf). Applied to the conditional rows
   for step index < `ceil(mask_steps * steps)`, on every cross-attention layer.
3. Phase-wise dynamic re-weighting: the shared (global) tokens' weight falls and the
   instances' weight rises over the steps, linearly in the step's progress p = i / (n - 1)
   from `global_weight[0]` to `global_weight[1]` and from `instance_weight[0]` to
   `instance_weight[1]`. A weight w multiplies a token's attention before the softmax
   renormalises (a logit bias of log w), so the weights move attention between the groups
   and each patch's attention still sums to 1.

The paper gives no numeric constants (its code was not released; only its abstract, its
figures' descriptions and a summary were available): tau, the phases' lengths and the
curves' end points below are lmd's choices, each a setting. tau 0.8 is a moderate sharpening
("the control must be precise and moderate", Sec. 3.1); the early phase is the first quarter
of the steps, where the layout forms; the curves swap emphasis from 1.2 : 0.8 (global :
instance) to 0.8 : 1.2. With tau 1, masking off and flat weights the method computes plain
SD's attention (to float rounding; tested). Its cost is that of plain SD plus one bias per
cross-attention layer and step: lmd's fast mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from lmd.controller.masks import cells_mask_at
from lmd.controller.methods.base import Method
from lmd.controller.phase import Hooks, Phase, Wrap


@dataclass(frozen=True)
class AttnModSettings:
    """Attention modulation's constants (lmd's choices where the paper gives none)."""

    PAPER: ClassVar[dict[str, Any]] = {}

    temperature: float = 0.8  # tau: self-attention logits / (tau sqrt d); < 1 sharpens
    temperature_steps: float = 0.25  # the early phase: this fraction of the steps
    masking: bool = True  # object-focused cross-attention masking
    mask_steps: float = 1.0  # masking for this fraction of the steps
    global_weight: tuple[float, float] = (1.2, 0.8)  # shared tokens: first step -> last
    instance_weight: tuple[float, float] = (0.8, 1.2)  # object tokens: first step -> last

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"`temperature` must be above 0 but is {self.temperature!r}")
        for name in ("temperature_steps", "mask_steps"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"`{name}` is out of range: {getattr(self, name)!r}")
        for name in ("global_weight", "instance_weight"):
            value = tuple(getattr(self, name))
            if len(value) != 2 or min(value) <= 0:
                raise ValueError(f"`{name}` must be two weights above 0 but is {value!r}")
            object.__setattr__(self, name, value)

    def phase_steps(self, fraction: float, steps: int) -> int:
        """Steps (from the first) a phase of `fraction` of `steps` covers."""
        return math.ceil(fraction * steps)

    def weights(self, index: int, steps: int) -> tuple[float, float]:
        """(global, instance) weight at step `index` of `steps`: linear in i / (n - 1)."""
        p = index / (steps - 1) if steps > 1 else 0.0
        (g0, g1), (i0, i1) = self.global_weight, self.instance_weight
        return g0 + (g1 - g0) * p, i0 + (i1 - i0) * p

    @classmethod
    def neutral(cls) -> AttnModSettings:
        """Every mechanism off: tau 1, no masking, flat weights (plain SD's attention)."""
        return cls(temperature=1.0, masking=False, global_weight=(1, 1), instance_weight=(1, 1))


@dataclass(frozen=True)
class AttnMod(Method):
    name = "attnmod"
    summary = "attnmod (attention modulation: one pass, the fast mode)"
    flow = "one-pass"
    settings: AttnModSettings = field(default_factory=AttnModSettings)

    def check(self, pipe, backbone) -> None:
        try:
            cross = backbone.attention_modules("cross")
            ok = bool(cross) and (backbone.joint or bool(backbone.attention_modules("self")))
        except (KeyError, NotImplementedError):
            ok = False
        if not ok:
            raise ValueError(
                f"`method` 'attnmod' needs self- and cross-attention layers (or joint attention),"
                f" which {backbone.label} does not have; use method 'lmd' or 'sd'"
            )

    def hooks(self, run, phase: Phase) -> AttnModHooks:
        return AttnModHooks(run, phase, self.settings)


class AttnModHooks(Hooks):
    """The processors of one phase and the step they are at."""

    def __init__(self, run, phase: Phase, settings: AttnModSettings):
        self.run, self.phase, self.settings = run, phase, settings
        self.index = 0
        self._groups = [_token_groups(run.backbone.token_space, row) for row in phase.rows]
        self._bias: dict[int, torch.Tensor] = {}  # per grid size, at the current step
        self._call_bias: dict[tuple, torch.Tensor] = {}  # per call shape, at the current step

    def processors(self) -> dict[str, Wrap]:
        backbone = self.run.backbone
        wraps: dict[str, Wrap] = {}
        for name in backbone.attention_modules("self"):
            wraps[name] = lambda inner: TemperedSelfAttention(self, inner)
        for name in backbone.attention_modules("cross"):
            if backbone.joint:  # text and image in one softmax: both changes in one call
                wraps[name] = lambda inner: ModulatedJointAttention(self, inner, backbone.order)
            else:
                wraps[name] = lambda inner: FocusedCrossAttention(self, inner)
        return wraps

    def step(self, index: int, t) -> None:
        self.index = index
        self._bias.clear()
        self._call_bias.clear()

    @property
    def tau(self) -> float:
        """The self-attention temperature at this step (1 after the early phase)."""
        s = self.settings
        early = self.index < s.phase_steps(s.temperature_steps, self.phase.steps)
        return s.temperature if early else 1.0

    def bias(self, pixels: int, device, dtype) -> torch.Tensor:
        """The logit bias [rows, 1, pixels, tokens] of the conditional rows at this step:
        log-weights of the token groups, -inf where a patch may not look."""
        if pixels not in self._bias:
            self._bias[pixels] = self._build(pixels).to(device, dtype)
        return self._bias[pixels]

    def call_bias(self, batch: int, pixels: int, tokens: int, device, dtype) -> torch.Tensor:
        """The logit bias [batch, 1, pixels, tokens] of the denoiser call under way: `bias` on
        its conditional rows, 0 on the others. Built once a step for every layer of a shape."""
        cond = self.run.cond_rows
        key = (batch, pixels, tokens, cond.start, cond.stop, cond.step)
        if key not in self._call_bias:
            bias = torch.zeros(batch, 1, pixels, tokens, device=device, dtype=dtype)
            bias[cond] = self.bias(pixels, device, dtype)[..., :tokens]
            self._call_bias[key] = bias
        return self._call_bias[key]

    def _build(self, pixels: int) -> torch.Tensor:
        s, phase = self.settings, self.phase
        grid = self.run.backbone.attention_hw(pixels, phase.latent_hw)
        masking = s.masking and self.index < s.phase_steps(s.mask_steps, phase.steps)
        w_global, w_instance = self.weights
        space = self.run.backbone.token_space
        tokens = space.offset + space.max_tokens  # the conditioning sequence's length
        rows = []
        for row, groups in zip(phase.rows, self._groups, strict=True):
            logw = torch.zeros(tokens)
            logw[groups.shared] = math.log(w_global)
            objects = [torch.tensor(g, dtype=torch.long) for g in groups.objects]
            for g in objects:
                logw[g] = math.log(w_instance)
            bias = logw.expand(pixels, tokens).clone()
            if masking:
                allowed = torch.ones(pixels, tokens, dtype=torch.bool)
                for g in objects:
                    allowed[:, g] = False
                for obj, g in zip(row.objects, objects, strict=True):
                    inside = cells_mask_at(obj.cells, phase.latent_hw, grid).flatten()
                    allowed[inside[:, None] & _columns(g, tokens)] = True
                bias = bias.masked_fill(~allowed, float("-inf"))
            rows.append(bias)
        return torch.stack(rows)[:, None]

    @property
    def weights(self) -> tuple[float, float]:
        return self.settings.weights(self.index, self.phase.steps)


@dataclass(frozen=True)
class _Groups:
    objects: list[list[int]]  # each object's phrase tokens
    shared: list[int]  # the prompt's other words (background, "with", commas)


def _token_groups(space, row) -> _Groups:
    """A row's token groups: each object's tokens, and the shared words of the prompt (the
    start token, where the tokenizer has one, and the end token are in no group). Positions
    are in the conditioning sequence (`space`: T5's tokens after SD3's 77 CLIP ones)."""
    objects = [list(o.tokens.guided) if o.tokens is not None else [] for o in row.objects]
    tokenizer = space.tokenizer
    ids = tokenizer(row.prompt, truncation=True, max_length=space.max_tokens)["input_ids"]
    start = 1 if tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id else 0
    taken = {t for g in objects for t in g}
    words = range(space.offset + start, space.offset + len(ids) - 1)  # the last is the end
    return _Groups(objects, [t for t in words if t not in taken])


def _columns(group: torch.Tensor, tokens: int) -> torch.Tensor:
    cols = torch.zeros(tokens, dtype=torch.bool)
    cols[group] = True
    return cols[None, :]


def attend(attn, hidden_states, context, bias=None, scale: float | None = None):
    """What diffusers' SDPA processor computes for a transformer block's attention layer
    (3-d hidden states), with an optional logit `bias` [batch or 1, 1, queries, keys] and
    softmax `scale`."""
    batch = hidden_states.shape[0]
    query = attn.to_q(hidden_states)
    if context is None:
        context = hidden_states
    elif attn.norm_cross:
        context = attn.norm_encoder_hidden_states(context)
    key, value = attn.to_k(context), attn.to_v(context)
    heads = attn.heads
    head_dim = key.shape[-1] // heads
    query, key, value = (
        x.view(batch, -1, heads, head_dim).transpose(1, 2) for x in (query, key, value)
    )
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, scale=scale)
    out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
    out = attn.to_out[1](attn.to_out[0](out))
    if attn.residual_connection:
        out = out + hidden_states
    return out / attn.rescale_output_factor


def _plain(attn, hidden_states, attention_mask, kwargs) -> bool:
    """Whether this call is a transformer block's plain attention (what `attend` computes);
    anything else goes to the layer's own processor."""
    return (
        hidden_states.ndim == 3
        and attention_mask is None
        and not kwargs
        and attn.group_norm is None
        and attn.spatial_norm is None
    )


class TemperedSelfAttention:
    """Self-attention at temperature `tau` in the early phase (the layer's own processor
    otherwise, and for anything but plain attention)."""

    def __init__(self, hooks: AttnModHooks, inner):
        self.hooks, self.inner = hooks, inner

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, **kwargs):  # fmt: skip
        if (
            encoder_hidden_states is not None
            or temb is not None
            or not _plain(attn, hidden_states, attention_mask, kwargs)
        ):
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb,
                              **kwargs)  # fmt: skip
        return attend(attn, hidden_states, None, scale=attn.scale / self.hooks.tau)


class ModulatedJointAttention:
    """A joint attention layer (SD3, FLUX) with both changes in its one softmax: the image
    queries' text block masked and weighted as SD's cross-attention, their image block at
    temperature `tau` as SD's self-attention (`joint_attend`); the text queries unchanged.
    On SD3 the two CLIP encoders' 77 tokens stay unmasked, as the start and end tokens: the
    objects are located in T5's tokens, which the masks and weights act on."""

    def __init__(self, hooks: AttnModHooks, inner, order):
        self.hooks, self.inner, self.order = hooks, inner, order

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 image_rotary_emb=None, **kwargs):  # fmt: skip
        from lmd.controller.backbones.joint_attend import joint_attend

        if attention_mask is not None or kwargs:
            extra = (image_rotary_emb,) if image_rotary_emb is not None else ()
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, *extra,
                              **kwargs)  # fmt: skip
        hooks = self.hooks
        batch, n = hidden_states.shape[:2]
        text = encoder_hidden_states.shape[1] if encoder_hidden_states is not None else None
        pixels = n if text is not None else n - self.order.text_tokens
        text = text if text is not None else self.order.text_tokens
        bias = hooks.call_bias(batch, pixels, text, hidden_states.device, hidden_states.dtype)
        return joint_attend(
            attn, hidden_states, encoder_hidden_states, image_rotary_emb, self.order,
            text_bias=bias, image_scale=1 / hooks.tau,
        )  # fmt: skip


class FocusedCrossAttention:
    """Cross-attention with each conditional row's object masks and group weights."""

    def __init__(self, hooks: AttnModHooks, inner):
        self.hooks, self.inner = hooks, inner

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, **kwargs):  # fmt: skip
        hooks = self.hooks
        if (
            encoder_hidden_states is None
            or temb is not None
            or not _plain(attn, hidden_states, attention_mask, kwargs)
        ):
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb,
                              **kwargs)  # fmt: skip
        (batch, pixels, _), tokens = hidden_states.shape, encoder_hidden_states.shape[1]
        bias = hooks.call_bias(batch, pixels, tokens, hidden_states.device, hidden_states.dtype)
        return attend(attn, hidden_states, encoder_hidden_states, bias)
