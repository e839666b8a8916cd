"""Model loading: random models, local folders, hub ids offline, device and dtype resolution."""

from __future__ import annotations

import json

import pytest
import torch

from lmd.controller.backbones.unet import is_gated
from lmd.models import (
    GLIGEN_MODEL,
    SD15_MODEL,
    ModelLoadError,
    default_diffusion_model,
    load_pipeline,
    resolve_device,
    resolve_dtype,
)


def _assert_readable(exc: ModelLoadError, model: str) -> None:
    text = str(exc)
    assert repr(model) in text
    assert "\n" not in text
    assert "Traceback" not in text and "Error(" not in text
    assert len(text) < 300


def test_default_model_per_method():
    assert default_diffusion_model("lmd") == SD15_MODEL
    assert default_diffusion_model("sd") == SD15_MODEL
    assert default_diffusion_model("lmd+") == GLIGEN_MODEL
    with pytest.raises(ValueError, match="'lmdx'"):
        default_diffusion_model("lmdx")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    auto = resolve_device(None)
    assert auto == resolve_device("auto")
    if not torch.cuda.is_available():
        assert auto.type in {"cpu", "mps"}
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="'gpu0'"):
        resolve_device("gpu0")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("fp16", torch.float16),
        ("float16", torch.float16),
        ("bf16", torch.bfloat16),
        ("bfloat16", torch.bfloat16),
        ("fp32", torch.float32),
        ("float32", torch.float32),
        ("torch.float16", torch.float16),
        (torch.bfloat16, torch.bfloat16),
    ],
)
def test_resolve_dtype_by_name(name, expected):
    assert resolve_dtype(name, "cpu") is expected


def test_resolve_dtype_auto_follows_device():
    assert resolve_dtype(None, "cpu") is torch.float32
    assert resolve_dtype("auto", torch.device("cpu")) is torch.float32
    if torch.cuda.is_available():
        assert resolve_dtype(None, "cuda") is torch.float16
    with pytest.raises(ValueError, match="'int8'"):
        resolve_dtype("int8", "cpu")
    with pytest.raises(ValueError, match="floating"):
        resolve_dtype(torch.int64, "cpu")


def test_tiny_pipe_is_sd_with_ddim(tiny_pipe):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    assert isinstance(tiny_pipe, StableDiffusionPipeline)
    assert isinstance(tiny_pipe.scheduler, DDIMScheduler)
    assert not is_gated(tiny_pipe.unet)
    assert tiny_pipe.unet.dtype == torch.float32 and tiny_pipe.device.type == "cpu"


def test_random_tiny_lmd_plus_is_gated(tiny_gligen_pipe):
    # A Stable Diffusion pipeline holding a gated UNet; not diffusers' deprecated GLIGEN class.
    from diffusers import StableDiffusionPipeline

    assert type(tiny_gligen_pipe) is StableDiffusionPipeline
    assert is_gated(tiny_gligen_pipe.unet)
    assert tiny_gligen_pipe.unet.config.attention_type == "gated"


def test_random_models_are_seeded():
    a = load_pipeline("random:tiny", device="cpu", dtype="fp32", seed=1)
    b = load_pipeline("random:tiny", device="cpu", dtype="fp32", seed=1)
    c = load_pipeline("random:tiny", device="cpu", dtype="fp32", seed=2)
    wa, wb, wc = (p.unet.conv_in.weight for p in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_random_model_dtype():
    pipe = load_pipeline("random:tiny", device="cpu", dtype="bf16")
    assert pipe.unet.dtype == torch.bfloat16 and pipe.text_encoder.dtype == torch.bfloat16


def test_unknown_random_model():
    with pytest.raises(ModelLoadError, match="random:tiny, random:sd15|random:sd15, random:tiny"):
        load_pipeline("random:huge", device="cpu")


def test_local_folder_round_trips(tiny_pipe, tiny_sd_dir):
    from diffusers import DDIMScheduler

    pipe = load_pipeline(str(tiny_sd_dir), device="cpu", dtype="fp32")
    assert isinstance(pipe.scheduler, DDIMScheduler)
    original = tiny_pipe.unet.state_dict()
    loaded = pipe.unet.state_dict()
    assert original.keys() == loaded.keys()
    assert all(torch.equal(original[k], loaded[k]) for k in original)
    ids = pipe.tokenizer("a cat and a dog").input_ids
    assert ids == tiny_pipe.tokenizer("a cat and a dog").input_ids


def test_local_folder_with_dtype(tiny_sd_dir):
    pipe = load_pipeline(tiny_sd_dir, device="cpu", dtype="bf16")
    assert pipe.unet.dtype == torch.bfloat16


def test_local_gligen_folder_for_lmd_plus(tiny_gligen_dir):
    pipe = load_pipeline(str(tiny_gligen_dir), method="lmd+", device="cpu", dtype="fp32")
    assert is_gated(pipe.unet)


def test_lmd_plus_needs_a_gated_unet(tiny_sd_dir):
    with pytest.raises(ModelLoadError, match="gated") as info:
        load_pipeline(str(tiny_sd_dir), method="lmd+", device="cpu")
    _assert_readable(info.value, str(tiny_sd_dir))


@pytest.mark.parametrize(
    "blocks",
    [
        {"down": ["DownBlock2D"] * 3, "up": ["UpBlock2D"] * 3, "mid": "UNetMidBlock2D"},
        # cross-attention up blocks, but a mid block with self-attention only
        {"mid": "UNetMidBlock2D"},
    ],
    ids=["no-cross-attention", "self-attention-mid-block"],
)
def test_unet_without_cross_attention(tiny_pipe, tmp_path, blocks):
    folder = tmp_path / "no-xattn"
    tiny_pipe.save_pretrained(folder)
    config_path = folder / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["down_block_types"] = blocks.get("down", config["down_block_types"])
    config["up_block_types"] = blocks.get("up", config["up_block_types"])
    config["mid_block_type"] = blocks["mid"]
    config_path.write_text(json.dumps(config))
    for weights in (folder / "unet").glob("*.safetensors"):
        weights.unlink()
    from diffusers import UNet2DConditionModel

    UNet2DConditionModel.from_config(config).save_pretrained(folder / "unet")
    with pytest.raises(ModelLoadError, match="cross-attention") as info:
        load_pipeline(str(folder), device="cpu")
    _assert_readable(info.value, str(folder))
    assert load_pipeline(str(folder), method="sd", device="cpu").unet is not None


def test_unknown_hub_id_offline():
    with pytest.raises(ModelLoadError, match="not in the local cache") as info:
        load_pipeline("nobody-here/no-such-model", device="cpu")
    _assert_readable(info.value, "nobody-here/no-such-model")
    assert str(info.value).endswith("pass a local diffusers folder as `model`")  # Python names


def test_invalid_hub_id():
    with pytest.raises(ModelLoadError) as info:
        load_pipeline("not a valid id!!", device="cpu")
    _assert_readable(info.value, "not a valid id!!")


def test_missing_folder(tmp_path):
    missing = str(tmp_path / "nope" / "model")
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        load_pipeline(missing, device="cpu")
    _assert_readable(info.value, missing)


def test_folder_that_is_not_a_pipeline(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match="model_index.json") as info:
        load_pipeline(str(tmp_path), device="cpu")
    _assert_readable(info.value, str(tmp_path))


def test_file_instead_of_folder(tmp_path):
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"\0" * 8)
    with pytest.raises(ModelLoadError, match="not a diffusers folder") as info:
        load_pipeline(str(ckpt), device="cpu")
    _assert_readable(info.value, str(ckpt))


def test_broken_pipeline_folder(tiny_pipe, tmp_path):
    folder = tmp_path / "broken"
    tiny_pipe.save_pretrained(folder)
    for weights in (folder / "unet").glob("*"):
        if weights.name != "config.json":
            weights.unlink()
    with pytest.raises(ModelLoadError, match="could not load model folder") as info:
        load_pipeline(str(folder), device="cpu")
    _assert_readable(info.value, str(folder))


def test_bad_method():
    with pytest.raises(ValueError, match="'gligen'"):
        load_pipeline("random:tiny", method="gligen")
