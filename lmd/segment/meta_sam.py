"""The segment-anything backend: Meta's `segment_anything` package and its `.pth` checkpoints.

An optional extra (`pip install "lmd[segment-anything]"`, which brings torchvision): the package
imports torchvision at import time, so everything here imports it lazily; where it cannot
import, loading raises a `ModelLoadError` that says how to install it or use transformers.
Checkpoints download once into `sam_cache_dir()` (atomically, with a progress bar).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmd.layouts.errors import one_line
from lmd.layouts.paths import default_cache_dir
from lmd.models import ModelLoadError
from lmd.segment.interface import (
    SAM_MODEL_TYPES,
    Boxes,
    Images,
    Masks,
    ModelSegmenter,
    Points,
    Size,
)

SAM_CHECKPOINT_URLS = {
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
}
DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 20


@lru_cache(maxsize=1)
def segment_anything_import_error() -> str | None:
    """Why `import segment_anything` fails here (one line), or `None` when it imports."""
    try:
        import segment_anything  # noqa: F401
    except Exception as exc:  # ImportError, or torchvision failing to load its operators
        return one_line(exc, limit=120)
    return None


def sam_cache_dir() -> Path:
    """Where checkpoints go: `$LMD_CACHE_DIR/sam`, else `~/.cache/lmd/sam`."""
    return default_cache_dir().expanduser() / "sam"


def checkpoint_path(model_type: str) -> Path:
    """The cache path of a model type's official checkpoint (whether or not it exists)."""
    return sam_cache_dir() / SAM_CHECKPOINT_URLS[model_type].rsplit("/", 1)[-1]


def cached_checkpoint(model_type: str) -> Path | None:
    """The cached official checkpoint for `model_type`, or `None` when not downloaded yet."""
    path = checkpoint_path(model_type)
    return path if path.is_file() else None


def download_checkpoint(url: str, dest: Path, *, progress: bool = True) -> Path:
    """Download `url` to `dest` atomically (a partial file never appears at `dest`).

    Not `torch.hub.download_url_to_file`: it has no timeout (a stalled server would hang the
    render), and its `hash_prefix` check needs the files' sha256, which Meta does not publish
    next to the checkpoints (the names' suffixes could not be confirmed as sha256 offline).
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    try:
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
            open(part, "wb") as out,
        ):
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if total is not None and part.stat().st_size != total:
            raise OSError(f"got {part.stat().st_size} of {total} bytes")
        os.replace(part, dest)
    except (OSError, urllib.error.URLError) as exc:
        raise ModelLoadError(
            f"could not download the SAM checkpoint {url} ({one_line(exc, limit=100)}); download "
            "it by hand and pass the .pth file as `sam_model`"
        ) from exc
    finally:
        part.unlink(missing_ok=True)
    return dest


class SegmentAnythingSegmenter(ModelSegmenter):
    """`Segmenter` on a `segment_anything.Sam`; one batched call through its image encoder."""

    backend = "segment-anything"

    def __init__(self, model: Any):
        from segment_anything.utils.transforms import ResizeLongestSide

        super().__init__(model)
        self.transform = ResizeLongestSide(model.image_encoder.img_size)

    def _segment(self, images: Images, points: Points, boxes: Boxes, size: Size) -> Masks:
        dtype = self.model.pixel_mean.dtype
        batched = []
        for i, image in enumerate(images):
            resized = self.transform.apply_image(np.asarray(image.convert("RGB")))
            pixels = torch.as_tensor(resized, device=self.device).permute(2, 0, 1)
            record: dict[str, Any] = {"image": pixels.to(dtype), "original_size": size}
            if points is not None:
                coords = self.transform.apply_coords(np.array([[points[i]]], dtype=float), size)
                record["point_coords"] = torch.as_tensor(coords, device=self.device, dtype=dtype)
                record["point_labels"] = torch.ones(1, 1, device=self.device, dtype=torch.int)
            else:
                xyxy = self.transform.apply_boxes(np.array([boxes[i]], dtype=float), size)
                record["boxes"] = torch.as_tensor(xyxy, device=self.device, dtype=dtype)
            batched.append(record)
        outputs = self.model(batched, multimask_output=True)
        masks = torch.cat([out["masks"] for out in outputs]).bool()
        scores = torch.cat([out["iou_predictions"] for out in outputs]).float()
        return masks, scores


def load_segment_anything(
    model_type: str,
    checkpoint: Path | None = None,
    *,
    device: torch.device,
    progress: bool = True,
) -> SegmentAnythingSegmenter:
    """A `SegmentAnythingSegmenter` for `vit_b|vit_l|vit_h` from `checkpoint` or the cache.

    The model runs in fp32: segment-anything's prompt encoder computes its positional
    encoding in fp32 and does not run in half precision.
    """
    if model_type not in SAM_MODEL_TYPES:
        raise ModelLoadError(
            f"SAM model type {model_type!r} is not one of {', '.join(SAM_MODEL_TYPES)}"
        )
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise ModelLoadError(
            f"SAM checkpoint '{checkpoint}' does not exist; pass the path of a sam_vit_*.pth "
            "file as `sam_model`"
        )
    reason = segment_anything_import_error()
    if reason is not None:
        raise ModelLoadError(
            f"the segment-anything backend cannot be used: importing it failed ({reason}); "
            'install it with pip install "lmd[segment-anything]" and a torchvision built for '
            "your torch, or use the transformers backend (`sam_backend='transformers'`, a hub "
            "id such as facebook/sam-vit-base), which needs no torchvision"
        )
    path = Path(checkpoint) if checkpoint is not None else cached_checkpoint(model_type)
    if path is None:
        path = download_checkpoint(
            SAM_CHECKPOINT_URLS[model_type], checkpoint_path(model_type), progress=progress
        )
    from segment_anything import sam_model_registry

    try:
        model = sam_model_registry[model_type](checkpoint=str(path))
    except Exception as exc:
        raise ModelLoadError(
            f"SAM checkpoint '{path}' could not be loaded as {model_type} ({one_line(exc, 100)}); "
            "check the file and the model type (vit_b, vit_l, vit_h)"
        ) from exc
    return SegmentAnythingSegmenter(model.to(device=device))
