"""`random:flux` and `random:sd3` on the meta device (full shapes, no weights allocated): their
sizes, the guided blocks' choice and the memory arithmetic the README quotes."""

from __future__ import annotations

import json
from importlib import resources

import pytest
import torch

from lmd.controller.backbones.dit_memory import DEFAULT_BOXES, boxes_per_batch, guided_row_bytes
from lmd.controller.backbones.flux import FLUX
from lmd.controller.backbones.sd3 import SD3

GIB = 2**30


def meta_transformer(name: str):
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    cfg = json.loads(resources.files("lmd.configs").joinpath(f"{name}.json").read_text())
    kind = FluxTransformer2DModel if name == "flux" else SD3Transformer2DModel
    with torch.device("meta"):
        return kind(**cfg["transformer"])


def params(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e9


@pytest.fixture(scope="module")
def flux():
    return meta_transformer("flux")


@pytest.fixture(scope="module")
def sd3():
    return meta_transformer("sd3")


def test_the_full_size_configs_have_the_published_shapes(flux, sd3):
    assert 11.85 < params(flux) < 11.95  # FLUX.1 [dev]: 11.9 B
    assert (len(flux.transformer_blocks), len(flux.single_transformer_blocks)) == (19, 38)
    assert flux.config.guidance_embeds
    # SD3.5 Medium: 2.24 B parameters (2.47 B with its 384x384 positional table)
    assert 2.2 < params(sd3) < 2.3 and len(sd3.transformer_blocks) == 24


def test_flux_guides_the_last_double_stream_blocks_and_keeps_a_third(flux):
    guided = FLUX.guided_blocks(len(flux.transformer_blocks))
    assert list(guided) == [15, 16, 17, 18]
    every = len(flux.transformer_blocks) + len(flux.single_transformer_blocks)
    row = guided_row_bytes(flux, guided[-1] + 1, 4096, 512, torch.bfloat16)  # 1024 px
    assert 14.5 * GIB < row < 16 * GIB  # the README's and the docstring's 15 GiB
    whole = guided_row_bytes(flux, every, 4096, 512, torch.bfloat16)
    assert 2.9 < whole / row < 3.1
    weights = (11.90 + 4.76 + 0.12 + 0.08) * 1e9 * 2  # transformer, T5, CLIP, VAE in bf16
    assert 31 * GIB < weights < 32 * GIB
    assert weights + 3 * row > 76 * GIB  # three boxes at once need more than an 80 GB card


def test_sd3_guides_the_second_quarter_and_keeps_half(sd3):
    guided = SD3.guided_blocks(len(sd3.transformer_blocks))
    assert list(guided) == [6, 7, 8, 9, 10, 11]
    row = guided_row_bytes(sd3, guided[-1] + 1, 4096, 77 + 256, torch.float16)
    assert 4.5 * GIB < row < 5 * GIB
    whole = guided_row_bytes(sd3, len(sd3.transformer_blocks), 4096, 333, torch.float16)
    assert 1.9 < whole / row < 2.1
    # The rule scales with depth (SD3.5 Large: 38 blocks) and never guides nothing.
    assert list(SD3.guided_blocks(38)) == list(range(9, 19))
    assert list(SD3.guided_blocks(1)) == [0] and list(FLUX.guided_blocks(1)) == [0]


def test_the_estimate_grows_with_the_image(flux):
    big = guided_row_bytes(flux, 19, 4096, 512, torch.bfloat16)
    small = guided_row_bytes(flux, 19, 1024, 512, torch.bfloat16)
    assert 2.9 < big / small < 3.3  # 4x the image tokens, the 512 text tokens stay


def test_without_cuda_the_batch_is_the_fixed_default(flux):
    cpu = torch.device("cpu")
    assert boxes_per_batch(flux, 19, 4096, 512, torch.bfloat16, cpu) == DEFAULT_BOXES


@pytest.mark.slow
def test_random_full_size_pipelines_build_on_the_meta_device():
    from lmd.random_pipeline import build_random_pipeline

    flux = build_random_pipeline("flux", device="meta", dtype=torch.bfloat16)
    assert params(flux.text_encoder_2) == pytest.approx(4.76, abs=0.01)  # T5-v1.1-XXL encoder
    assert next(flux.transformer.parameters()).dtype == torch.bfloat16
    sd3 = build_random_pipeline("sd3", device="meta", dtype=torch.bfloat16)
    assert params(sd3.text_encoder_2) == pytest.approx(0.69, abs=0.01)  # CLIP-bigG
    assert sd3.tokenizer_3.model_max_length == 512
