"""Cross-attention capture as diffusers attention processors (the energy's and the masks' maps).

Which layers are hooked is the backbone's choice (`Backbone.layers`). A hooked layer computes
attention probabilities explicitly only when the `AttentionStore` asks for it on this forward,
keeps only the conditional rows and the requested token columns, and can end the forward early
(`StopForward`) once the last guidance layer has run: the energy needs nothing later, so its
gradient is unchanged and the rest of the denoiser is skipped. Only the hooked layers are
touched: each keeps its own processor for its output, and every other layer keeps whatever
processor it had.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class HookedLayers:
    """The cross-attention layers the energy reads (execution order) and the mask layer."""

    guidance: list[str]
    mask: str


class StopForward(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """Raised by the last guidance layer when the rest of the denoiser is not needed."""


@dataclass
class AttentionStore:
    """What the hooked layers capture on the next forward, and what they captured.

    `columns` [rows, C] are the token columns kept for each conditional row; `cond` selects
    the conditional rows of the denoiser's batch (the backbone sets it for each call: under
    classifier-free guidance its batch holds other rows too; all rows in a guidance forward).
    `maps[layer]` is then [rows, heads, pixels, C] (float32).
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
        cond: slice = slice(None),
        grad: bool = False,
        stop_early: bool = False,
    ) -> None:
        """Arm the store for one forward; `cond` selects the conditional rows of its batch."""
        self.capture = frozenset(capture)
        self.columns = columns
        self.cond = cond
        self.grad = grad
        self.stop_after = self.layers.guidance[-1] if stop_early else None
        self.maps = {}

    def clear(self) -> None:
        self.set()


class CaptureProcessor:
    """Runs the layer's own processor; when armed, also stores the chosen probability columns.

    The probabilities are computed from the layer's own query and key projections (read with
    forward hooks on `to_q`/`to_k` while the wrapped processor runs), so whatever processor the
    layer had (SDPA, xformers, IP-Adapter, a LoRA'd projection) still computes its output.
    """

    def __init__(self, store: AttentionStore, name: str, inner):
        self.store = store
        self.name = name
        self.inner = inner

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
        args = (attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if self.name not in store.capture or store.columns is None:
            out = self.inner(*args, **kwargs)
        else:
            out, seen = with_query_and_key(self.inner, args, kwargs)
            if len(seen) < 2:
                raise RuntimeError(
                    f"attention capture needs {self.name}'s own to_q and to_k projections; "
                    "unfuse fused QKV projections before rendering"
                )
            with torch.set_grad_enabled(store.grad and torch.is_grad_enabled()):
                probs = attention_probs(
                    attn, seen["q"][store.cond], seen["k"][store.cond], attention_mask
                )
                store.maps[self.name] = _columns(probs, store.columns)
        if store.stop_after == self.name:
            raise StopForward
        return out


def with_query_and_key(
    inner, args: tuple, kwargs: dict, more: dict[str, torch.nn.Module] | None = None
) -> tuple[torch.Tensor, dict]:
    """Run an attention layer's processor `inner(attn, ...)` and return its output and the
    projected queries and keys it computed (`{"q": ..., "k": ...}`, and each of `more`'s
    projections by its name; a layer with fused QKV projections leaves q and k out)."""
    attn = args[0]
    modules = {"q": attn.to_q, "k": attn.to_k, **(more or {})}
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        module.register_forward_hook(lambda _m, _i, out, key=key: seen.setdefault(key, out))
        for key, module in modules.items()
    ]
    try:
        out = inner(*args, **kwargs)
    finally:
        for hook in hooks:
            hook.remove()
    return out, seen


def attention_probs(attn, query, key, attention_mask=None) -> torch.Tensor:
    """Attention probabilities [rows, heads, pixels, tokens] (float32) from projected q, k."""
    rows, heads = query.shape[0], attn.heads
    query = query.view(rows, -1, heads, query.shape[-1] // heads).transpose(1, 2)
    key = key.view(rows, -1, heads, key.shape[-1] // heads).transpose(1, 2)
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    scores = (query.float() @ key.float().transpose(-1, -2)) * attn.scale
    if attention_mask is not None:
        mask = attn.prepare_attention_mask(attention_mask, key.shape[2], rows)
        scores = scores + mask.view(rows, heads, -1, mask.shape[-1]).float()
    return scores.softmax(dim=-1)


def _columns(probs: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """probs [rows, heads, pixels, tokens] -> [rows, heads, pixels, C] at `columns` [rows, C]."""
    rows, heads, pixels, _ = probs.shape
    index = columns.to(probs.device)[:, None, None, :].expand(rows, heads, pixels, -1)
    return probs.gather(-1, index)


@contextlib.contextmanager
def installed(model, store: AttentionStore, make=None) -> Iterator[AttentionStore]:
    """Wrap the hooked layers' processors in capture processors (`make(store, name, inner)`,
    by default `CaptureProcessor`); every other layer keeps the processor it has. The hooked
    layers get theirs back on exit."""
    make = make or CaptureProcessor
    hooked = dict.fromkeys([*store.layers.guidance, store.layers.mask])
    with wrapped(model, {name: lambda inner, n=name: make(store, n, inner) for name in hooked}):
        try:
            yield store
        finally:
            store.clear()


@contextlib.contextmanager
def wrapped(model, wrappers: dict) -> Iterator[None]:
    """Give each named attention layer of `model` the processor `wrappers[name](inner)`, where
    `inner` is the processor it has now; every layer gets its own processor back on exit."""
    modules = {name: model.get_submodule(name) for name in wrappers}
    original = {name: module.processor for name, module in modules.items()}
    try:
        for name, module in modules.items():
            module.set_processor(wrappers[name](original[name]))
        yield
    finally:
        for name, module in modules.items():
            module.set_processor(original[name])
