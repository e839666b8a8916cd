"""lmd's MIGC layer against the authors' own, recorded on tiny random weights (tests/data/migc).

Each recording holds one cross-attention layer's weights (the frozen `attn2` and, in the
published checkpoint's key layout, the MIGC parameters), its inputs (hidden states of the
[uncond, cond] rows, the negative / global / instance prompt embeddings, pooled embeddings,
boxes, and the slot order the authors' SAC drew) and the authors' `MIGCProcessor` output. lmd
loads the MIGC parameters through the same key map as a published checkpoint and must give the
same output to 1e-5 (relative).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from safetensors.torch import load_file

from lmd.controller.methods.migc import MIGCProcessor, MIGCState, RowInstances, box_masks
from lmd.controller.methods.migc.checkpoint import MIGC, MIGC_PLUS, build_shader, group

DATA = Path(__file__).parent / "data" / "migc"
IMAGE_HW = (128, 128)
LATENT_HW = (16, 16)


def recording(kind: str) -> dict[str, torch.Tensor]:
    return load_file(str(DATA / f"{kind}_layer.safetensors"))


def frozen_attention(rec) -> Attention:
    """The recorded `attn2`: 32 channels, 16-wide text, 4 heads of 8."""
    attn = Attention(query_dim=32, cross_attention_dim=16, heads=4, dim_head=8)
    attn.load_state_dict({k[6:]: v for k, v in rec.items() if k.startswith("attn2.")})
    return attn.eval()


def shader_of(rec, variant: str):
    state = {k[len("checkpoint.") :]: v for k, v in rec.items() if k.startswith("checkpoint.")}
    weights = group(state, "recording")
    assert weights.variant == variant
    (params,) = weights.layers.values()
    return build_shader(params, 32, 16, weights.variant, "recording")


def run_layer(rec, shader, *, shade: bool, fuse: bool = False) -> torch.Tensor:
    boxes = rec["input.boxes"]
    masks, background = box_masks(boxes.tolist(), IMAGE_HW, LATENT_HW)
    embeds = rec["input.encoder_hidden_states"]
    row = RowInstances(embeds[2:], rec["input.pooled"][1:], boxes, masks, background)
    state = MIGCState(rows=(row,), cond=slice(1, None), shade=shade, fuse=fuse,
                      order=rec.get("input.slot_order"))  # fmt: skip
    processor = MIGCProcessor(AttnProcessor2_0(), shader, state)
    with torch.no_grad():
        return processor(frozen_attention(rec), rec["input.hidden_states"], embeds[:2])


def assert_same(out: torch.Tensor, ref: torch.Tensor) -> None:
    rel = ((out - ref).norm() / ref.norm()).item()
    assert rel < 1e-5, f"relative error {rel:.2e}"
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


def test_masks_are_built_as_the_authors_build_them():
    rec = recording("migc")
    masks, background = box_masks(rec["input.boxes"].tolist(), IMAGE_HW, LATENT_HW)
    torch.testing.assert_close(masks, rec["input.masks"], rtol=0, atol=1e-7)
    torch.testing.assert_close(background, rec["input.background"], rtol=0, atol=1e-7)
    assert 0 < masks[0][masks[0] < 1].max() < 1  # border cells are fractions (bilinear)


def test_migc_layer_equals_the_authors():
    rec = recording("migc")
    out = run_layer(rec, shader_of(rec, MIGC), shade=True)
    assert_same(out, rec["output.hidden_states"])


def test_migc_plus_layer_equals_the_authors():
    rec = recording("plus")
    out = run_layer(rec, shader_of(rec, MIGC_PLUS), shade=True)
    assert_same(out, rec["output.hidden_states"])


def test_naive_fuser_equals_the_authors():
    rec = recording("fuser")
    out = run_layer(rec, None, shade=False, fuse=True)
    assert_same(out, rec["output.hidden_states"])


@pytest.mark.parametrize("kind", ["migc", "plus"])
def test_the_slot_order_matters(kind):
    """The recorded order is what makes the match: another order gives another output."""
    rec = recording(kind)
    rec["input.slot_order"] = rec["input.slot_order"].flip(0)
    out = run_layer(rec, shader_of(rec, MIGC if kind == "migc" else MIGC_PLUS), shade=True)
    assert not torch.allclose(out, rec["output.hidden_states"], rtol=1e-4, atol=1e-6)


def test_unconditional_row_keeps_the_layers_own_attention():
    rec = recording("migc")
    out = run_layer(rec, shader_of(rec, MIGC), shade=True)
    with torch.no_grad():
        plain = AttnProcessor2_0()(
            frozen_attention(rec), rec["input.hidden_states"],
            rec["input.encoder_hidden_states"][:2],
        )  # fmt: skip
    torch.testing.assert_close(out[0], plain[0], rtol=0, atol=0)
    assert not torch.allclose(out[1], plain[1], atol=1e-4)
