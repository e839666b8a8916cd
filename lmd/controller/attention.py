"""Cross-attention capture as diffusers attention processors.

Hooked layers are chosen by position in the UNet, so any SD-shaped UNet works:
- guidance layers: every cross-attention layer of the mid block and of the first up block
  that has cross-attention (SD 1.x at 512 px: 8x8 and 16x16);
- the mask layer: the last cross-attention layer of the last down block that has
  cross-attention (SD 1.x at 512 px: `down_blocks.2.attentions.1`, 16x16).

A hooked layer computes attention probabilities explicitly only when the `AttentionStore`
asks for it on this forward, keeps only the conditional rows and the requested token
columns, and can end the forward early (`StopForward`) once the last guidance layer has
run: the energy needs nothing later, so its gradient is unchanged and the two
highest-resolution up blocks are skipped. Every other layer runs `AttnProcessor2_0` (SDPA).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


class StopForward(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """Raised by the last guidance layer when the rest of the UNet is not needed."""


@dataclass
class HookedLayers:
    guidance: list[str]  # attention module names, in execution order
    mask: str


def find_hooked_layers(unet) -> HookedLayers:
    """Pick the guidance and mask layers of an SD-shaped UNet by position."""

    def cross_attn(prefix: str, block) -> list[str]:
        names = []
        for i, transformer in enumerate(getattr(block, "attentions", None) or []):
            for j, _ in enumerate(getattr(transformer, "transformer_blocks", [])):
                names.append(f"{prefix}.attentions.{i}.transformer_blocks.{j}.attn2")
        return names

    mid = cross_attn("mid_block", unet.mid_block) if unet.mid_block is not None else []
    ups = [cross_attn(f"up_blocks.{i}", b) for i, b in enumerate(unet.up_blocks)]
    first_up = next((names for names in ups if names), [])
    downs = [cross_attn(f"down_blocks.{i}", b) for i, b in enumerate(unet.down_blocks)]
    last_down = next((names for names in reversed(downs) if names), [])
    if not (mid or first_up) or not last_down:
        raise ValueError(
            "`unet` is not SD-shaped: it needs cross-attention in the mid or an up block "
            "and in a down block"
        )
    return HookedLayers(guidance=mid + first_up, mask=last_down[-1])


@dataclass
class AttentionStore:
    """What the hooked layers capture on the next forward, and what they captured.

    `columns` [rows, C] are the token columns kept for each conditional row; `cond` selects
    the conditional rows of the batch (the second half under CFG, whose order is
    [uncond, cond]; all rows in a guidance forward). `maps[layer]` is then
    [rows, heads, pixels, C] (float32).
    """

    layers: HookedLayers
    capture: frozenset[str] = frozenset()
    columns: torch.Tensor | None = None
    cond: slice = field(default_factory=lambda: slice(None))
    grad: bool = False
    stop_after: str | None = None
    maps: dict[str, torch.Tensor] = field(default_factory=dict)

    def set(
        self,
        capture: set[str] | frozenset[str] | list[str] = (),
        columns: torch.Tensor | None = None,
        *,
        cfg: bool = False,
        grad: bool = False,
        stop_early: bool = False,
    ) -> None:
        """Arm the store for one forward; `cfg` means the batch is [uncond, cond]."""
        self.capture = frozenset(capture)
        self.columns = columns
        self.cond = slice(columns.shape[0], None) if cfg and columns is not None else slice(None)
        self.grad = grad
        self.stop_after = self.layers.guidance[-1] if stop_early else None
        self.maps = {}

    def clear(self) -> None:
        self.set()


class CaptureProcessor:
    """SDPA attention that, when armed, also stores the chosen columns of the probabilities."""

    def __init__(self, store: AttentionStore, name: str):
        self.store = store
        self.name = name

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        store = self.store
        if self.name not in store.capture or store.columns is None:
            out = _attend(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        else:
            out = _attend(
                attn, hidden_states, encoder_hidden_states, attention_mask, temb, store, self.name
            )
        if store.stop_after == self.name:
            raise StopForward
        return out


def _attend(attn, hidden_states, encoder_hidden_states, attention_mask, temb, store=None, name=""):
    """`AttnProcessor2_0`'s computation, plus the capture when `store` is given."""
    residual = hidden_states
    if attn.spatial_norm is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb)
    input_ndim = hidden_states.ndim
    if input_ndim == 4:
        batch, channel, height, width = hidden_states.shape
        hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
    batch = hidden_states.shape[0]
    seq = (hidden_states if encoder_hidden_states is None else encoder_hidden_states).shape[1]
    if attention_mask is not None:
        attention_mask = attn.prepare_attention_mask(attention_mask, seq, batch)
        attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    query = attn.to_q(hidden_states)
    if encoder_hidden_states is None:
        encoder_hidden_states = hidden_states
    elif attn.norm_cross:
        encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
    key = attn.to_k(encoder_hidden_states)
    value = attn.to_v(encoder_hidden_states)
    head_dim = key.shape[-1] // attn.heads
    query, key, value = (
        x.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for x in (query, key, value)
    )
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)

    if store is not None and store.grad:
        # Guidance forward: the probabilities carry the gradient, so the output uses them too.
        probs = _probs(query, key, attn.scale, attention_mask)
        store.maps[name] = _columns(probs[store.cond], store.columns)
        hidden_states = probs.to(value.dtype) @ value
    else:
        hidden_states = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        if store is not None:
            with torch.no_grad():
                mask = None if attention_mask is None else attention_mask[store.cond]
                probs = _probs(query[store.cond], key[store.cond], attn.scale, mask)
                store.maps[name] = _columns(probs, store.columns)

    hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
    hidden_states = attn.to_out[1](attn.to_out[0](hidden_states.to(query.dtype)))
    if input_ndim == 4:
        hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
    if attn.residual_connection:
        hidden_states = hidden_states + residual
    return hidden_states / attn.rescale_output_factor


def _probs(query, key, scale, mask) -> torch.Tensor:
    scores = (query.float() @ key.float().transpose(-1, -2)) * scale
    if mask is not None:
        scores = scores + mask.float()
    return scores.softmax(dim=-1)


def _columns(probs: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """probs [rows, heads, pixels, tokens] -> [rows, heads, pixels, C] at `columns` [rows, C]."""
    rows, heads, pixels, _ = probs.shape
    index = columns.to(probs.device)[:, None, None, :].expand(rows, heads, pixels, -1)
    return probs.gather(-1, index)


@contextlib.contextmanager
def installed(unet, store: AttentionStore) -> Iterator[AttentionStore]:
    """Install capture processors on the hooked layers (SDPA elsewhere); restore on exit."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    original = unet.attn_processors
    hooked = {*store.layers.guidance, store.layers.mask}
    processors = {}
    for key in original:
        name = key.removesuffix(".processor")
        processors[key] = CaptureProcessor(store, name) if name in hooked else AttnProcessor2_0()
    unet.set_attn_processor(processors)
    try:
        yield store
    finally:
        store.clear()
        unet.set_attn_processor(original)


def layer_resolution(pixels: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """Height and width of a layer's attention map with `pixels` positions."""
    h, w = latent_hw
    if pixels < 1:
        raise ValueError(f"an attention map needs at least one position, got {pixels}")
    while h * w > pixels and (h, w) != (1, 1):
        h, w = (h + 1) // 2, (w + 1) // 2
    if h * w != pixels:
        raise ValueError(f"cannot place {pixels} attention positions on a {latent_hw} latent")
    return h, w
