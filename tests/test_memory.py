"""Box chunking: the per-box batch size rule, and `random:sdxl`'s arithmetic on the meta device
(full SDXL shapes, no weights allocated)."""

from __future__ import annotations

import json
from importlib import resources

import pytest
import torch

from lmd.controller import Controller, LMDConfig
from lmd.controller.backbones.unet import SD1, SDXL
from lmd.controller.backbones.unet_memory import DEFAULT_BOXES, boxes_per_batch, guided_row_bytes
from lmd.controller.trace import TraceRecorder
from tests.test_families import CAT_DOG

GIB = 2**30


def meta_unet(name: str):
    from diffusers import UNet2DConditionModel

    cfg = json.loads(resources.files("lmd.configs").joinpath(f"{name}.json").read_text())
    with torch.device("meta"):
        return UNet2DConditionModel(**cfg["unet"])


@pytest.fixture(scope="module")
def sdxl_unet():
    return meta_unet("sdxl")


def test_random_sdxl_has_sdxl_base_shapes(sdxl_unet):
    params = sum(p.numel() for p in sdxl_unet.parameters())
    assert 2.56e9 < params < 2.58e9  # SDXL base's UNet: 2.567 B parameters


def test_three_sdxl_boxes_at_1024_fit_24_gb_in_fp16(sdxl_unet):
    layers = SDXL.hooked_layers(sdxl_unet)
    row = guided_row_bytes(sdxl_unet, layers.guidance, (128, 128), torch.float16)
    weights = 6.46 * GIB  # UNet 4.78 + text encoders 1.52 + VAE 0.16 GiB in fp16
    assert weights + 3 * row < 22 * GIB  # headroom for the CFG batch and the allocator
    # Guiding every stack of the first up block would keep about 40% more per row.
    every = SD1.hooked_layers(sdxl_unet).guidance
    assert guided_row_bytes(sdxl_unet, every, (128, 128), torch.float16) > 1.3 * row
    # The estimate grows with the image: 4x the pixels, about 4x the memory.
    small = guided_row_bytes(sdxl_unet, layers.guidance, (64, 64), torch.float16)
    assert 3.5 < row / small < 4.5


def test_without_cuda_the_batch_is_the_fixed_default(sdxl_tiny_pipe):
    layers = Controller(sdxl_tiny_pipe).layers.guidance
    cpu = torch.device("cpu")
    assert boxes_per_batch(sdxl_tiny_pipe.unet, layers, (16, 16), torch.float32, cpu) == 8
    assert DEFAULT_BOXES == 8


def test_chunked_boxes_give_the_numbers_of_one_batch(sdxl_tiny_pipe):
    traces = []
    for size in (None, 1):
        trace = TraceRecorder()
        config = LMDConfig(steps=3, loss_threshold=0.0)
        Controller(sdxl_tiny_pipe, config, box_batch_size=size).render(CAT_DOG, seed=2, trace=trace)
        traces.append(trace)
    one, chunked = traces
    for name in ("box0.latents", "box1.latents", "final_latents"):
        assert torch.allclose(one.stacked(name), chunked.stacked(name), atol=1e-4), name
