"""The segment-anything backend: checkpoint cache and download everywhere; the model itself
only where `import segment_anything` works (it needs torchvision, which has no CPU build that
works with the CPU torch these machines run)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from lmd.models import ModelLoadError
from lmd.segment.meta_sam import (
    SAM_CHECKPOINT_URLS,
    cached_checkpoint,
    checkpoint_path,
    download_checkpoint,
    sam_cache_dir,
    segment_anything_import_error,
)

REASON = segment_anything_import_error()
needs_segment_anything = pytest.mark.skipif(
    REASON is not None,
    reason=f"segment-anything does not import here (it needs torchvision): {REASON}",
)


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LMD_CACHE_DIR", str(tmp_path))
    assert sam_cache_dir() == tmp_path / "sam"
    assert checkpoint_path("vit_b") == tmp_path / "sam" / "sam_vit_b_01ec64.pth"
    assert cached_checkpoint("vit_b") is None
    checkpoint_path("vit_b").parent.mkdir(parents=True)
    checkpoint_path("vit_b").write_bytes(b"weights")
    assert cached_checkpoint("vit_b") == checkpoint_path("vit_b")
    monkeypatch.delenv("LMD_CACHE_DIR")
    assert sam_cache_dir().parts[-3:] == (".cache", "lmd", "sam")


def test_official_urls():
    assert set(SAM_CHECKPOINT_URLS) == {"vit_b", "vit_l", "vit_h"}
    assert all(
        u.startswith("https://dl.fbaipublicfiles.com/") for u in SAM_CHECKPOINT_URLS.values()
    )


def test_download_is_atomic(tmp_path):
    source = tmp_path / "source.pth"
    source.write_bytes(bytes(range(256)) * 5000)
    dest = tmp_path / "cache" / "sam" / "sam_vit_b_01ec64.pth"
    assert download_checkpoint(source.as_uri(), dest, progress=False) == dest
    assert dest.read_bytes() == source.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == [dest.name], "no partial file left behind"


def test_failed_download_leaves_nothing(tmp_path):
    dest = tmp_path / "sam" / "sam_vit_b_01ec64.pth"
    with pytest.raises(ModelLoadError) as info:
        download_checkpoint((tmp_path / "missing.pth").as_uri(), dest, progress=False)
    text = str(info.value)
    assert "`sam_model`" in text and "\n" not in text
    assert not dest.exists() and list(dest.parent.iterdir()) == []


@needs_segment_anything
def test_segment_anything_batch():
    from segment_anything import sam_model_registry

    from lmd.segment.meta_sam import SegmentAnythingSegmenter

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    segmenter = SegmentAnythingSegmenter(sam_model_registry["vit_b"]().to(device))
    calls = []
    handle = segmenter.model.image_encoder.register_forward_hook(
        lambda module, args, output: calls.append(args[0].shape[0])
    )
    images = [Image.new("RGB", (96, 64), (40 * i, 100, 200)) for i in range(3)]
    try:
        for kwargs in ({"points": [(10, 20), (48, 32), (90, 60)]}, {"boxes": [(0, 0, 40, 30)] * 3}):
            masks, scores = segmenter.segment(images, **kwargs)
            assert masks.shape == (3, 3, 64, 96) and masks.dtype == torch.bool
            assert scores.shape == (3, 3) and scores.dtype == torch.float32
    finally:
        handle.remove()
    assert calls == [3, 3]


@needs_segment_anything
def test_segment_anything_bad_checkpoint(tmp_path):
    from lmd.segment import load_segmenter

    ckpt = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save({"not": torch.zeros(1)}, ckpt)
    with pytest.raises(ModelLoadError, match="could not be loaded as vit_b"):
        load_segmenter(ckpt, device="cpu")
