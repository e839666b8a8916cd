"""Attention capture in joint attention (SD3, FLUX): the image-query x text-key block of the
attention a layer computes, as SD-style per-token maps (see `text_maps`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from lmd.controller.attention import StopForward, with_query_and_key
from lmd.controller.backbones.dit_memory import CHUNK_BYTES


@dataclass(frozen=True)
class JointOrder:
    """How a model lays out its joint sequence: text before the image tokens (FLUX) or after
    them (SD3), and the text's length (splits a single-stream layer's one sequence)."""

    text_first: bool
    text_tokens: int


def text_maps(
    query: torch.Tensor,
    text_keys: torch.Tensor,
    image_keys: torch.Tensor | None,
    columns: torch.Tensor,
    *,
    renormalise: bool = True,
    chunk_bytes: int = CHUNK_BYTES,
) -> torch.Tensor:
    """Image-query x text-key attention [rows, heads, P, C] at text `columns` [rows, C].

    `query` [rows, heads, P, D] (the image queries), `text_keys` [rows, heads, T, D] and
    `image_keys` [rows, heads, P, D], in fp32, positions already applied.

    Without `renormalise` this is the text block of the layer's own softmax, over every key,
    text and image. `renormalise` divides each query's text block by its sum, giving SD-style
    per-token maps whose text columns sum to 1. The image keys' share then cancels:
    exp(s_j - Z) / sum_k exp(s_k - Z) = softmax over the text logits s alone, whatever the
    image logits put into Z. So no image keys are needed (None): at FLUX's 1024 px that skips
    4096 of the 4608 keys of every guided layer. Queries are processed in chunks; under
    gradients each chunk is recomputed in the backward pass.
    """
    if image_keys is None and not renormalise:
        raise ValueError("the layer's own attention (`renormalise=False`) needs the image keys")
    rows, heads, pixels, dim = query.shape
    keys = text_keys.shape[2] + (0 if renormalise else pixels)
    size = max(1, chunk_bytes // (rows * heads * keys * 4))
    scale = dim**-0.5
    index = columns.to(query.device)[:, None, None, :]
    grad = torch.is_grad_enabled() and query.requires_grad

    def block(q: torch.Tensor) -> torch.Tensor:
        text = (q @ text_keys.transpose(-1, -2)) * scale
        if renormalise:  # the text block over its own sum: sum 1 per image query
            log_p = text.log_softmax(-1)
        else:  # the image-query x text-key block of the layer's softmax
            image = (q @ image_keys.transpose(-1, -2)) * scale
            log_p = text - torch.cat([text, image], dim=-1).logsumexp(-1, keepdim=True)
        return log_p.gather(-1, index.expand(*q.shape[:3], -1)).exp()

    parts = []
    for start in range(0, pixels, size):
        q = query[:, :, start : start + size]
        parts.append(checkpoint(block, q, use_reentrant=False) if grad else block(q))
    return torch.cat(parts, dim=2)


class JointCapture:
    """Runs a joint attention layer's own processor; when the store asks, also stores the
    image-query x text-key attention at the requested text columns (see `text_maps`).

    The queries and keys are the layer's own projections (read with forward hooks on `to_q`,
    `to_k` and, where the text has its own stream, `add_k_proj`), with its q/k norms and its
    rotary embedding, so whatever processor the layer had still computes its output.
    """

    def __init__(self, store, name: str, inner, order: JointOrder, renormalise: bool = True):
        self.store, self.name, self.inner = store, name, inner
        self.order, self.renormalise = order, renormalise

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb=None,
        **kwargs,
    ):
        store = self.store
        extra = (image_rotary_emb,) if image_rotary_emb is not None else ()
        args = (attn, hidden_states, encoder_hidden_states, attention_mask, *extra)
        if self.name not in store.capture or store.columns is None:
            out = self.inner(*args, **kwargs)
        else:
            more = {"text_k": attn.add_k_proj} if encoder_hidden_states is not None else {}
            out, seen = with_query_and_key(self.inner, args, kwargs, more)
            if len(seen) < 2 + len(more):
                raise RuntimeError(
                    f"attention capture needs {self.name}'s own q/k projections; unfuse "
                    "fused QKV projections before rendering"
                )
            with torch.set_grad_enabled(store.grad and torch.is_grad_enabled()):
                q, text_k, image_k = self._split(attn, seen, store.cond, image_rotary_emb)
                store.maps[self.name] = text_maps(
                    q, text_k, image_k, store.columns, renormalise=self.renormalise
                )
        if store.stop_after == self.name:
            raise StopForward
        return out

    def _split(self, attn, seen, cond, rotary):
        """(image queries, text keys, image keys or None when renormalising), each
        [rows, heads, n, D] in fp32, with the layer's q/k norms and rotary positions."""
        heads = attn.heads

        def heads_of(x: torch.Tensor, norm) -> torch.Tensor:
            x = x[cond].unflatten(-1, (heads, -1))  # [rows, n, heads, D]
            return norm(x) if norm is not None else x

        q = heads_of(seen["q"], attn.norm_q)
        k = heads_of(seen["k"], attn.norm_k)
        text_first, t = self.order.text_first, self.order.text_tokens
        if "text_k" in seen:  # two streams: the image is hidden_states, the text its own
            text_k, image_k = heads_of(seen["text_k"], getattr(attn, "norm_added_k", None)), k
            p = q.shape[1]
        else:  # one stream: text and image in one sequence
            p = k.shape[1] - t
        # Where text and image sit in the joint sequence of t + p tokens.
        text_at = slice(0, t) if text_first else slice(p, p + t)
        image_at = slice(t, t + p) if text_first else slice(0, p)
        if "text_k" not in seen:
            q, text_k, image_k = q[:, image_at], k[:, text_at], k[:, image_at]
        if self.renormalise:
            image_k = None  # not needed (see `text_maps`)
        if rotary is not None:
            from diffusers.models.embeddings import apply_rotary_emb

            def placed(x: torch.Tensor | None, at: slice) -> torch.Tensor | None:
                cos, sin = rotary
                if x is None:
                    return None
                return apply_rotary_emb(x, (cos[at], sin[at]), sequence_dim=1)

            q, image_k = placed(q, image_at), placed(image_k, image_at)
            text_k = placed(text_k, text_at)

        def out(x: torch.Tensor | None) -> torch.Tensor | None:
            return x.transpose(1, 2).float() if x is not None else None

        return out(q), out(text_k), out(image_k)
