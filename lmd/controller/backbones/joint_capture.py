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
    image_keys: torch.Tensor,
    columns: torch.Tensor,
    *,
    renormalise: bool = True,
    chunk_bytes: int = CHUNK_BYTES,
) -> torch.Tensor:
    """Image-query x text-key attention [rows, heads, P, C] at text `columns` [rows, C].

    `query` [rows, heads, P, D] (the image queries), `text_keys` [rows, heads, T, D] and
    `image_keys` [rows, heads, P, D], in fp32, positions already applied. The softmax runs over
    every key, text and image, as the layer's own; `renormalise` then divides each query's text
    block by its sum, giving SD-style per-token maps whose text columns sum to 1 (which no
    longer depend on the image keys: they get no gradient then). Queries are processed in
    chunks; under gradients each chunk is recomputed in the backward pass.
    """
    rows, heads, pixels, dim = query.shape
    per_query = rows * heads * (text_keys.shape[2] + pixels) * 4
    size = max(1, chunk_bytes // per_query)
    scale = dim**-0.5
    index = columns.to(query.device)[:, None, None, :]
    grad = torch.is_grad_enabled() and query.requires_grad

    def block(q: torch.Tensor) -> torch.Tensor:
        text = (q @ text_keys.transpose(-1, -2)) * scale
        with torch.set_grad_enabled(grad and not renormalise):
            image = (q @ image_keys.transpose(-1, -2)) * scale
            total = torch.cat([text, image], dim=-1).logsumexp(-1, keepdim=True)
        log_p = text - total  # the image-query x text-key block of the layer's softmax
        if renormalise:  # over the text columns: sum 1 per image query
            log_p = log_p - log_p.logsumexp(-1, keepdim=True)
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
        """(image queries, text keys, image keys), each [rows, heads, n, D] in fp32."""
        heads = attn.heads

        def heads_of(x: torch.Tensor, norm) -> torch.Tensor:
            x = x[cond].unflatten(-1, (heads, -1))  # [rows, n, heads, D]
            return norm(x) if norm is not None else x

        q = heads_of(seen["q"], attn.norm_q)
        k = heads_of(seen["k"], attn.norm_k)
        text_first, t = self.order.text_first, self.order.text_tokens
        if "text_k" in seen:  # two streams: the image is hidden_states, the text its own
            text_k = heads_of(seen["text_k"], getattr(attn, "norm_added_k", None))
            joint = torch.cat([text_k, k] if text_first else [k, text_k], dim=1)
            p = q.shape[1]
            q_at = slice(t, t + p) if text_first else slice(0, p)
        else:  # one stream: text and image in one sequence
            joint = k
            p = k.shape[1] - t
            q_at = slice(t, None) if text_first else slice(0, p)
            q = q[:, q_at]
        if rotary is not None:
            from diffusers.models.embeddings import apply_rotary_emb

            cos, sin = rotary
            q = apply_rotary_emb(q, (cos[q_at], sin[q_at]), sequence_dim=1)
            joint = apply_rotary_emb(joint, rotary, sequence_dim=1)
        text_at = slice(0, t) if text_first else slice(joint.shape[1] - t, None)
        image_at = slice(t, None) if text_first else slice(0, joint.shape[1] - t)

        def out(x: torch.Tensor) -> torch.Tensor:
            return x.transpose(1, 2).float()

        return out(q), out(joint[:, text_at]), out(joint[:, image_at])
