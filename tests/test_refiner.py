"""The SDXL refiner loader: a tiny random refiner saved to a folder stands in for the weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lmd.models import ModelLoadError
from lmd.random_pipeline import build_tokenizer
from lmd.refiner import Refiner, load_refiner


@pytest.fixture(scope="module")
def tiny_refiner_dir(tmp_path_factory):
    """An SDXL-refiner-shaped img2img pipeline (one text encoder, aesthetic score), toy widths."""
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

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


def test_refiner_from_local_folder(tiny_refiner_dir):
    refiner = load_refiner(str(tiny_refiner_dir), device="cpu", dtype="fp32")
    assert isinstance(refiner, Refiner) and refiner.strength == 0.3
    refiner.num_inference_steps = 4
    image = Image.new("RGB", (64, 48), (120, 60, 30))
    first = refiner(image, "a cat", seed=1)
    assert first.size == image.size and first.mode == "RGB"
    assert np.array_equal(np.asarray(first), np.asarray(refiner(image, "a cat", seed=1)))
    with pytest.raises(ValueError, match="`strength`"):
        refiner(image, strength=0.0)


def test_refiner_not_cached_offline():
    with pytest.raises(ModelLoadError) as info:
        load_refiner(device="cpu")
    text = str(info.value)
    assert "'stabilityai/stable-diffusion-xl-refiner-1.0'" in text and "local cache" in text
    assert "\n" not in text


def test_refiner_bad_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="model_index.json"):
        load_refiner(str(tmp_path), device="cpu")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_refiner(str(tmp_path / "missing"), device="cpu")


def test_lmd_render_takes_the_refiner_by_flag(tiny_refiner_dir, tmp_path, capsys):
    from lmd.cli import run

    layout = tmp_path / "layout.json"
    layout.write_text('{"boxes": [], "background": "a park"}')
    args = ["render", str(layout), "--model", "random:tiny", "--steps", "2", "--device", "cpu"]
    assert run([*args, "-o", str(tmp_path / "plain")]) == 0
    assert run([*args, "-o", str(tmp_path / "refined"), "--refiner", str(tiny_refiner_dir)]) == 0
    plain = Image.open(tmp_path / "plain" / "image.png")
    refined = Image.open(tmp_path / "refined" / "image.png")
    assert refined.size == plain.size and refined.tobytes() != plain.tobytes()
    assert run([*args, "-o", str(tmp_path / "x"), "--refiner", str(tmp_path / "none")]) == 1
    assert "pass a local diffusers folder as --refiner" in capsys.readouterr().err
