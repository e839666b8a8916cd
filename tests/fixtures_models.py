"""Fixtures for tiny randomly initialised models built from config (CPU, fp32, no downloads)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_pipe():
    """`random:tiny` as a `StableDiffusionPipeline` with a DDIM scheduler (CPU, fp32)."""
    from lmd.models import load_pipeline

    return load_pipeline("random:tiny", method="lmd", device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def tiny_gligen_pipe():
    """`random:tiny` with a GLIGEN gated UNet (a `StableDiffusionPipeline` holding it)."""
    from lmd.models import load_pipeline

    return load_pipeline("random:tiny", method="lmd+", device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def sd2_tiny_pipe():
    """`random:sd2-tiny`: SD 2.x shapes (linear projections, gelu text encoder, v-prediction)."""
    from lmd.models import load_pipeline

    return load_pipeline("random:sd2-tiny", device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def sdxl_tiny_pipe():
    """`random:sdxl-tiny`: a `StableDiffusionXLPipeline` (two text encoders, size ids)."""
    from lmd.models import load_pipeline

    return load_pipeline("random:sdxl-tiny", device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def sd3_tiny_pipe():
    """`random:sd3-tiny`: a `StableDiffusion3Pipeline` (MM-DiT, CLIP x2 + T5, flow matching)."""
    from lmd.models import load_pipeline

    return load_pipeline("random:sd3-tiny", device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def flux_tiny_pipe():
    """`random:flux-tiny`: a `FluxPipeline` (double/single-stream blocks, packed latents)."""
    from lmd.models import load_pipeline

    return load_pipeline("random:flux-tiny", device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory, tiny_pipe):
    """`tiny_pipe` written with `save_pretrained`: a local diffusers folder to load by path."""
    path = tmp_path_factory.mktemp("models") / "tiny-sd"
    tiny_pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_gligen_dir(tmp_path_factory, tiny_gligen_pipe):
    """`tiny_gligen_pipe` written with `save_pretrained` (a local GLIGEN folder)."""
    path = tmp_path_factory.mktemp("models") / "tiny-gligen"
    tiny_gligen_pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_sam():
    """`random:tiny` SAM: a transformers `SamModel` with toy widths behind `Segmenter`."""
    from lmd.segment import load_segmenter

    return load_segmenter("random:tiny", device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def tiny_refiner_dir(tmp_path_factory):
    """An SDXL-refiner-shaped img2img pipeline (one text encoder, aesthetic score), toy widths."""
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from lmd.random_pipeline import build_tokenizer

    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    text_config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        projection_dim=32,
        eos_token_id=tokenizer.eos_token_id,
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=2,
        norm_num_groups=8,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=32 + 5 * 8,  # pooled text + 5 time ids
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4,
    )
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=vae,
        text_encoder=None,
        text_encoder_2=CLIPTextModelWithProjection(text_config),
        tokenizer=None,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(beta_schedule="scaled_linear", steps_offset=1),
        requires_aesthetics_score=True,
    )
    path = tmp_path_factory.mktemp("models") / "tiny-refiner"
    pipe.save_pretrained(path)
    return path
