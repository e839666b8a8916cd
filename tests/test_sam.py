"""SAM: the tiny transformers backend end to end, batching, backend choice and error paths."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from lmd.models import ModelLoadError
from lmd.segment import TransformersSegmenter, build_tiny_segmenter, load_segmenter, sam_choice
from lmd.segment.meta_sam import segment_anything_import_error

SIZE = (96, 64)  # PIL (width, height): not square, so height and width cannot be swapped
POINTS = [(10.0, 20.0), (48.0, 32.0), (90.0, 60.0)]
BOXES = [(0.0, 0.0, 40.0, 30.0), (20.0, 10.0, 90.0, 60.0), (50.0, 5.0, 95.0, 63.0)]


@pytest.fixture(scope="module")
def images():
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    out = []
    for i, colour in enumerate(colours):
        image = Image.new("RGB", SIZE, (240, 240, 240))
        image.paste(colour, (10 + 20 * i, 10, 50 + 20 * i, 50))
        out.append(image)
    return out


def _count_encoder_calls(segmenter):
    calls = []
    handle = segmenter.model.vision_encoder.register_forward_hook(
        lambda module, args, output: calls.append(args[0].shape[0])
    )
    return calls, handle


@pytest.mark.parametrize("prompt", ["points", "boxes"])
def test_tiny_sam_batch(tiny_sam, images, prompt):
    calls, handle = _count_encoder_calls(tiny_sam)
    try:
        kwargs = {"points": POINTS} if prompt == "points" else {"boxes": BOXES}
        masks, scores = tiny_sam.segment(images, **kwargs)
    finally:
        handle.remove()
    assert masks.shape == (3, 3, SIZE[1], SIZE[0]) and masks.dtype == torch.bool
    assert scores.shape == (3, 3) and scores.dtype == torch.float32
    assert torch.isfinite(scores).all()
    assert calls == [3], "all images go through the image encoder as one batch"


@pytest.mark.parametrize("prompt", ["points", "boxes"])
def test_batch_equals_one_by_one(tiny_sam, images, prompt):
    prompts = POINTS if prompt == "points" else BOXES
    masks, scores = tiny_sam.segment(images, **{prompt: prompts})
    for i, (image, p) in enumerate(zip(images, prompts, strict=True)):
        one_mask, one_score = tiny_sam.segment([image], **{prompt: [p]})
        torch.testing.assert_close(one_score[0], scores[i], rtol=1e-4, atol=1e-5)
        disagree = (one_mask[0] != masks[i]).float().mean().item()
        assert disagree < 1e-3, f"image {i}: batched and single masks differ on {disagree:.2%}"


def test_prompt_changes_the_result(tiny_sam, images):
    a, _ = tiny_sam.segment(images[:1], boxes=[BOXES[0]])
    b, _ = tiny_sam.segment(images[:1], boxes=[BOXES[2]])
    assert not torch.equal(a, b)


def test_tiny_sam_is_seeded(images):
    a = build_tiny_segmenter(seed=3).segment(images, points=POINTS)
    b = build_tiny_segmenter(seed=3).segment(images, points=POINTS)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_tiny_sam_bf16(images):
    segmenter = load_segmenter("random:tiny", device="cpu", dtype="bf16")
    masks, scores = segmenter.segment(images, boxes=BOXES)
    assert segmenter.model.dtype == torch.bfloat16
    assert masks.shape == (3, 3, SIZE[1], SIZE[0]) and scores.dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one"),
        ({"points": POINTS, "boxes": BOXES}, "exactly one"),
        ({"points": POINTS[:2]}, "one prompt per image: 2 for 3"),
        ({"boxes": [(1.0, 2.0)] * 3}, "4 numbers"),
    ],
)
def test_bad_prompts(tiny_sam, images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_sam.segment(images, **kwargs)


def test_images_of_different_sizes(tiny_sam, images):
    with pytest.raises(ValueError, match="same size"):
        tiny_sam.segment([images[0], Image.new("RGB", (64, 64))], points=POINTS[:2])
    with pytest.raises(ValueError, match="at least one image"):
        tiny_sam.segment([], points=[])


def test_local_folder_round_trips(tiny_sam, images, tmp_path):
    tiny_sam.model.save_pretrained(tmp_path / "sam")
    tiny_sam.processor.save_pretrained(tmp_path / "sam")
    loaded = load_segmenter(str(tmp_path / "sam"), device="cpu", dtype="fp32")
    assert isinstance(loaded, TransformersSegmenter)
    expected, got = tiny_sam.segment(images, points=POINTS), loaded.segment(images, points=POINTS)
    assert torch.equal(expected[0], got[0])
    torch.testing.assert_close(expected[1], got[1])


def test_local_folder_without_processor_config(tiny_sam, images, tmp_path):
    tiny_sam.model.save_pretrained(tmp_path / "sam")
    loaded = load_segmenter(tmp_path / "sam", device="cpu", dtype="fp32")
    masks, _ = loaded.segment(images, boxes=BOXES)
    assert torch.equal(masks, tiny_sam.segment(images, boxes=BOXES)[0])


def _assert_readable(exc: Exception, *needles: str) -> None:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text and len(text) < 400
    for needle in needles:
        assert needle in text


def test_hub_id_offline_not_cached():
    with pytest.raises(ModelLoadError) as info:
        load_segmenter("facebook/sam-vit-base", sam_backend="transformers", device="cpu")
    _assert_readable(info.value, "'facebook/sam-vit-base'", "local cache", "`sam_model`")


@pytest.mark.parametrize(
    ("spec", "backend", "source"),
    [
        (None, "auto", "facebook/sam-vit-base"),  # the default: transformers, no torchvision
        ("vit_h", "auto", "facebook/sam-vit-huge"),
        ("vit_l", "transformers", "facebook/sam-vit-large"),
        ("someone/my-sam", "auto", "someone/my-sam"),
        ("random:tiny", "auto", "random:tiny"),
    ],
)
def test_specs_choose_the_transformers_backend(spec, backend, source):
    assert sam_choice(spec, backend) == ("transformers", source)


def test_a_pth_file_chooses_segment_anything(tmp_path):
    ckpt = tmp_path / "sam_vit_l_0b3195.pth"
    ckpt.write_bytes(b"weights")
    assert sam_choice(str(ckpt)) == ("segment-anything", str(ckpt))
    assert sam_choice("vit_l", "segment-anything") == ("segment-anything", "vit_l")
    assert sam_choice(None, "segment-anything") == ("segment-anything", "vit_b")
    assert sam_choice("facebook/sam-vit-huge", "segment-anything") == ("segment-anything", "vit_h")


def test_segment_anything_does_not_read_a_size_into_a_folder_name(tmp_path):
    """A fine-tuned transformers folder named like a size is not the official checkpoint."""
    folder = tmp_path / "sam_vit_h_finetuned"
    folder.mkdir()
    with pytest.raises(ModelLoadError, match="reads .pth files and vit_b"):
        sam_choice(str(folder), "segment-anything")
    assert sam_choice(str(folder)) == ("transformers", str(folder))


def test_auto_without_a_file_uses_transformers(monkeypatch, tmp_path):
    monkeypatch.setenv("LMD_CACHE_DIR", str(tmp_path))
    with pytest.raises(ModelLoadError) as info:
        load_segmenter("vit_h", device="cpu")
    _assert_readable(info.value, "'facebook/sam-vit-huge'")


def test_missing_checkpoint_file(tmp_path):
    missing = tmp_path / "sam_vit_b_01ec64.pth"
    with pytest.raises(ModelLoadError) as info:
        load_segmenter(missing, device="cpu")
    _assert_readable(info.value, str(missing), "does not exist")


def test_random_sam_errors():
    with pytest.raises(ModelLoadError, match="random:tiny"):
        load_segmenter("random:huge", device="cpu")
    with pytest.raises(ModelLoadError, match="transformers model"):
        load_segmenter("random:tiny", sam_backend="segment-anything", device="cpu")
    with pytest.raises(ValueError, match="`sam_backend`.*'meta'"):
        load_segmenter("random:tiny", sam_backend="meta", device="cpu")


def test_wrong_backend_for_the_spec(tmp_path):
    ckpt = tmp_path / "sam_vit_b_01ec64.pth"
    ckpt.write_bytes(b"not really")
    with pytest.raises(ModelLoadError) as info:
        load_segmenter(ckpt, sam_backend="transformers", device="cpu")
    _assert_readable(info.value, str(ckpt), "transformers backend", "`sam_backend=")
    with pytest.raises(ModelLoadError) as info:
        load_segmenter("someone/my-sam", sam_backend="segment-anything", device="cpu")
    _assert_readable(info.value, "'someone/my-sam'", ".pth")
    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="not a .pth checkpoint"):
        load_segmenter(other, device="cpu")


@pytest.mark.skipif(
    segment_anything_import_error() is None, reason="segment-anything imports on this machine"
)
def test_segment_anything_unavailable_says_how_to_get_it(tmp_path):
    ckpt = tmp_path / "sam_vit_b_01ec64.pth"
    ckpt.write_bytes(b"x")
    for kwargs in ({"sam_backend": "segment-anything"}, {"sam_model": ckpt}):
        with pytest.raises(ModelLoadError) as info:
            load_segmenter(device="cpu", **kwargs)
        _assert_readable(info.value, "lmd[segment-anything]", "torchvision", "transformers")


def test_the_sam_modules_import_one_way():
    """segment -> transformers_sam, meta_sam -> interface; no backend imports the dispatcher."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "lmd" / "segment"
    imported = {}
    for name in ("__init__", "meta_sam", "transformers_sam", "interface"):
        tree = ast.parse((root / f"{name}.py").read_text())
        imported[name] = {
            node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lmd.segment")
        }  # fmt: skip
    assert imported["interface"] == set()
    assert imported["meta_sam"] == {"lmd.segment.interface"}
    assert imported["transformers_sam"] == {"lmd.segment.interface"}
    assert imported["__init__"] >= {
        "lmd.segment.meta_sam", "lmd.segment.transformers_sam", "lmd.segment.interface"
    }  # fmt: skip
