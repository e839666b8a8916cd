"""How many boxes one per-box batch can hold: an estimate of a guided row's activation memory.

The per-box phase runs every box of a chunk as one batch: a CFG forward without gradients
(2 rows per box, transient, small) and a guidance forward with gradients (1 row per box) that
stops after the last guidance layer. The guidance forward dominates: autograd keeps about 25
values per token and channel for every transformer block run before the stop (norms, q/k/v
and outputs of both attentions, the GEGLU feed-forward's 8C-wide input and 4C-wide output),
about 8 per resnet, and the captured attention probabilities of the guidance layers in fp32.
On CUDA the chunk is what fits in 80% of the free memory; elsewhere `DEFAULT_BOXES`.
"""

from __future__ import annotations

import torch

DEFAULT_BOXES = 8  # without a way to ask the device (CPU, MPS): the old fixed batch
PER_TRANSFORMER = 25  # saved values per token x channel in one transformer block
PER_RESNET = 8
TOKENS = 77
FREE_SHARE = 0.8


def guided_row_bytes(unet, guidance: list[str], latent_hw: tuple[int, int], dtype) -> int:
    """Activation bytes one guided row keeps for its backward pass (an estimate)."""
    item = torch.empty(0, dtype=dtype).element_size()
    stop = guidance[-1].rsplit(".attn2", 1)[0]  # the transformer block of the last layer
    guided = guidance_blocks(guidance)
    levels = len(unet.down_blocks)
    total = 0

    def pixels(level: int) -> int:
        h, w = latent_hw
        for _ in range(level):
            h, w = (h + 1) // 2, (w + 1) // 2
        return h * w

    def block_parts(prefix: str, block):
        resnets = list(getattr(block, "resnets", []))
        attentions = list(getattr(block, "attentions", None) or [])
        if prefix == "mid_block":  # resnet, then (attention, resnet) pairs
            yield f"{prefix}.resnets.0", resnets[0]
            for k, attention in enumerate(attentions):
                yield f"{prefix}.attentions.{k}", attention
                yield f"{prefix}.resnets.{k + 1}", resnets[k + 1]
            return
        for k, resnet in enumerate(resnets):
            yield f"{prefix}.resnets.{k}", resnet
            if k < len(attentions):
                yield f"{prefix}.attentions.{k}", attentions[k]

    order = [(f"down_blocks.{i}", b, i) for i, b in enumerate(unet.down_blocks)]
    order.append(("mid_block", unet.mid_block, levels - 1))
    order += [(f"up_blocks.{j}", b, levels - 1 - j) for j, b in enumerate(unet.up_blocks)]
    for prefix, block, level in order:
        if block is None:
            continue
        tokens = pixels(level)
        for name, part in block_parts(prefix, block):
            if name.split(".")[-2] == "resnets":
                total += PER_RESNET * tokens * part.out_channels * item
                continue
            for j, layer in enumerate(part.transformer_blocks):
                channels = layer.norm1.normalized_shape[0]
                total += PER_TRANSFORMER * tokens * channels * item
                here = f"{name}.transformer_blocks.{j}"
                if here in guided:
                    heads = layer.attn2.heads
                    total += 2 * heads * tokens * TOKENS * 4  # probabilities and scores, fp32
                if here == stop:
                    return total
    return total


def guidance_blocks(guidance: list[str]) -> set[str]:
    return {name.rsplit(".attn2", 1)[0] for name in guidance}


def boxes_per_batch(
    unet, guidance: list[str], latent_hw: tuple[int, int], dtype, device: torch.device
) -> int:
    """Boxes per per-box batch: what fits in `FREE_SHARE` of the free CUDA memory."""
    if device.type != "cuda":
        return DEFAULT_BOXES
    free, _ = torch.cuda.mem_get_info(device)
    per_box = guided_row_bytes(unet, guidance, latent_hw, dtype)
    return max(1, int(free * FREE_SHARE // per_box))
