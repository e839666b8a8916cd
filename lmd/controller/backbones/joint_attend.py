"""Joint attention (SD3, FLUX) computed by lmd, with a method's changes to it.

A joint layer attends over one sequence of text and image tokens in the model's order
(`JointOrder`): two streams (SD3's joint blocks, FLUX's double-stream blocks: the image is
`hidden_states`, the text `encoder_hidden_states`, each with its own projections) or one
(FLUX's single-stream blocks: both in `hidden_states`). `joint_attend` computes what the
models' own processors (`JointAttnProcessor2_0`, `FluxAttnProcessor`) compute, so a method
that needs to change the attention (attention modulation) has one place to do it:

- `text_bias` [rows, 1, image tokens, text tokens]: a logit bias on the image-query x
  text-key block (SD's cross-attention: masks and token weights);
- `image_scale`: a factor on the image-query x image-key logits (SD's self-attention
  temperature, 1 / tau).

The text queries' attention is left as it is. With no bias and a scale of 1 the result is the
layer's own (to float rounding; tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmd.controller.backbones.joint_capture import JointOrder


def _heads(attn, x: torch.Tensor, norm) -> torch.Tensor:
    """[rows, n, heads * D] -> [rows, n, heads, D], with the layer's q/k norm."""
    x = x.unflatten(-1, (attn.heads, -1))
    return norm(x) if norm is not None else x


def joint_attend(
    attn,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor | None,
    image_rotary_emb,
    order: JointOrder,
    *,
    text_bias: torch.Tensor | None = None,
    image_scale: float = 1.0,
):
    """One joint attention layer's output (as its processor returns it) with the changes in
    the module docstring. A layer without text (SD3.5's image-only `attn2`) is plain
    self-attention: `order.text_tokens` 0."""
    q = _heads(attn, attn.to_q(hidden_states), attn.norm_q)
    k = _heads(attn, attn.to_k(hidden_states), attn.norm_k)
    v = _heads(attn, attn.to_v(hidden_states), None)
    two_streams = encoder_hidden_states is not None
    if two_streams:
        e = encoder_hidden_states
        eq = _heads(attn, attn.add_q_proj(e), getattr(attn, "norm_added_q", None))
        ek = _heads(attn, attn.add_k_proj(e), getattr(attn, "norm_added_k", None))
        ev = _heads(attn, attn.add_v_proj(e), None)
        pairs = ((eq, q), (ek, k), (ev, v))
        q, k, v = (torch.cat([a, b] if order.text_first else [b, a], dim=1) for a, b in pairs)
        t = e.shape[1]
    else:
        t = order.text_tokens
    if image_rotary_emb is not None:
        from diffusers.models.embeddings import apply_rotary_emb

        q = apply_rotary_emb(q, image_rotary_emb, sequence_dim=1)
        k = apply_rotary_emb(k, image_rotary_emb, sequence_dim=1)
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # [rows, heads, N, D]
    n = q.shape[2]
    text = slice(0, t) if order.text_first else slice(n - t, n)
    image = slice(t, n) if order.text_first else slice(0, n - t)
    if t == 0:  # image-only self-attention
        out = F.scaled_dot_product_attention(q, k, v, scale=q.shape[-1] ** -0.5 * image_scale)
    elif text_bias is None and image_scale == 1.0:
        out = F.scaled_dot_product_attention(q, k, v)
    else:
        out = torch.empty_like(q)
        keys = torch.cat([k[:, :, text], k[:, :, image] * image_scale], dim=2)
        values = torch.cat([v[:, :, text], v[:, :, image]], dim=2)
        bias = None
        if text_bias is not None:
            rows, _, pixels, _ = text_bias.shape
            bias = torch.cat([text_bias, text_bias.new_zeros(rows, 1, pixels, n - t)], dim=-1)
        out[:, :, image] = F.scaled_dot_product_attention(q[:, :, image], keys, values, bias)
        out[:, :, text] = F.scaled_dot_product_attention(q[:, :, text], k, v)
    out = out.transpose(1, 2).flatten(2).to(q.dtype)
    if not two_streams:
        to_out = getattr(attn, "to_out", None)
        return attn.to_out[1](attn.to_out[0](out)) if to_out is not None else out
    text_out, image_out = out[:, text], out[:, image]
    image_out = attn.to_out[1](attn.to_out[0](image_out.contiguous()))
    if not getattr(attn, "context_pre_only", False):
        text_out = attn.to_add_out(text_out.contiguous())
    return image_out, text_out
