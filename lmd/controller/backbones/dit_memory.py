"""How many boxes one per-box batch can hold on a joint-attention transformer (SD3, FLUX): an
estimate of a guided row's activation memory.

As on the UNet (`unet_memory.py`), the guidance forward with gradients dominates: it runs the
blocks up to the last guided one and stops. Every block it runs sees every token, image and
text; autograd keeps about 30 values per token and channel in one MM-DiT block (AdaLN
modulations, q/k/v with their norms and rotary embedding, the attention's inputs and output,
the 4x-wide MLP's input and activation, the gated residuals). The captured maps are
[heads, image tokens, a few columns] in fp32 (small); the capture's transient query chunk
adds `CHUNK_BYTES`. On CUDA the chunk of boxes is what fits in 80% of the free memory;
elsewhere `DEFAULT_BOXES`.
"""

from __future__ import annotations

import torch

from lmd.controller.backbones.unet_memory import DEFAULT_BOXES, FREE_SHARE

PER_BLOCK = 30  # saved values per token x channel in one MM-DiT block
CHUNK_BYTES = 2**27
"""The capture takes image queries in chunks whose scores fit this (128 MiB), so the full
attention matrix is never held; under gradients each chunk is recomputed in the backward."""


def guided_row_bytes(
    transformer, blocks_run: int, image_tokens: int, text_tokens: int, dtype
) -> int:
    """Activation bytes one guided row keeps for its backward pass (an estimate) when the
    guidance forward runs `blocks_run` blocks over `image_tokens` + `text_tokens` tokens."""
    item = torch.empty(0, dtype=dtype).element_size()
    width = transformer.inner_dim
    return blocks_run * PER_BLOCK * (image_tokens + text_tokens) * width * item + CHUNK_BYTES


def boxes_per_batch(
    transformer, blocks_run: int, image_tokens: int, text_tokens: int, dtype, device
) -> int:
    """Boxes per per-box batch: what fits in `FREE_SHARE` of the free CUDA memory."""
    if device.type != "cuda":
        return DEFAULT_BOXES
    free, _ = torch.cuda.mem_get_info(device)
    per_box = guided_row_bytes(transformer, blocks_run, image_tokens, text_tokens, dtype)
    return max(1, int(free * FREE_SHARE // per_box))
