"""`load_segmenter`: one SAM spec (hub id, folder, .pth, vit_b/l/h or random:tiny) -> a backend.

Two backends implement `lmd.segment.interface.Segmenter`:
- `transformers` (the default): `SamModel`; hub ids, folders written by `save_pretrained`,
  `random:tiny`. Needs nothing beyond lmd's own dependencies.
- `segment-anything` (optional extra `lmd[segment-anything]`, with torchvision): Meta's
  package and its `.pth` checkpoints, downloaded once into the cache for vit_b/l/h.

`auto` reads the spec: a `.pth` file goes to segment-anything, everything else to transformers.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lmd.models import ModelLoadError, resolve_device, resolve_dtype
from lmd.random_pipeline import RANDOM_PREFIX
from lmd.segment.interface import SAM_MODEL_TYPES, BoxPrompt, PointPrompt, Segmenter, check_prompts
from lmd.segment.transformers_sam import (
    DEFAULT_SAM_HUB_ID,
    SAM_HUB_IDS,
    TransformersSegmenter,
    build_tiny_segmenter,
    load_transformers_segmenter,
    tiny_sam_config,
)

SAM_BACKENDS = ("auto", "transformers", "segment-anything")
RANDOM_SAM_MODELS = ("tiny",)


def sam_choice(sam_model: str | None, sam_backend: str = "auto") -> tuple[str, str]:
    """`(backend, source)` for a SAM spec, checked without loading anything.

    `source` is what the backend loads: a hub id or folder (transformers), a `.pth` path or
    a model type `vit_b`/`vit_l`/`vit_h` (segment-anything), or `random:tiny`.
    """
    if sam_backend not in SAM_BACKENDS:
        raise ValueError(
            f"`sam_backend` must be one of {', '.join(SAM_BACKENDS)} but is {sam_backend!r}"
        )
    spec = None if sam_model is None else str(sam_model)
    if spec is not None and spec.startswith(RANDOM_PREFIX):
        if spec.removeprefix(RANDOM_PREFIX) not in RANDOM_SAM_MODELS:
            raise ModelLoadError(f"unknown random SAM model {spec!r}; choose random:tiny")
        if sam_backend == "segment-anything":
            raise ModelLoadError(
                f"SAM model {spec!r} is a transformers model; use `sam_backend='transformers'`"
            )
        return "transformers", spec
    path = Path(spec).expanduser() if spec is not None else None
    is_pth = path is not None and path.suffix == ".pth"
    if is_pth:
        if not path.is_file():
            raise ModelLoadError(f"SAM checkpoint '{spec}' does not exist")
        if sam_backend == "transformers":
            raise ModelLoadError(
                f"SAM checkpoint '{spec}' is a segment-anything .pth file, which the transformers "
                "backend cannot read; use `sam_backend='segment-anything'` or a transformers "
                "hub id or folder"
            )
        return "segment-anything", str(path)
    if sam_backend == "segment-anything":
        model_type = _model_type(spec)
        if model_type is None:
            raise ModelLoadError(
                f"the segment-anything backend reads .pth files and vit_b, vit_l, vit_h (official "
                f"checkpoints), not {spec!r}; use `sam_backend='transformers'` for hub ids "
                "and folders"
            )
        return "segment-anything", model_type
    if path is not None and path.is_file():
        raise ModelLoadError(
            f"SAM model '{spec}' is a file but not a .pth checkpoint; give a hub id, a "
            "transformers SAM folder or a segment-anything .pth file"
        )
    return "transformers", SAM_HUB_IDS.get(spec or "vit_b", spec or DEFAULT_SAM_HUB_ID)


def load_segmenter(
    sam_model: str | Path | None = None,
    *,
    sam_backend: str = "auto",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Segmenter:
    """A `Segmenter` for `sam_model` (default `facebook/sam-vit-base` with transformers).

    `sam_model` is a hub id, a transformers SAM folder, a segment-anything `.pth` file,
    `vit_b`/`vit_l`/`vit_h` (that size with the chosen backend) or `random:tiny`.
    `sam_backend` is `auto`, `transformers` or `segment-anything` (see the module docstring).
    `seed` only matters for `random:tiny`; `progress` shows a bar while a checkpoint downloads.
    """
    backend, source = sam_choice(None if sam_model is None else str(sam_model), sam_backend)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    if backend == "segment-anything":
        from lmd.segment.meta_sam import load_segment_anything

        if source in SAM_MODEL_TYPES:
            return load_segment_anything(source, None, device=torch_device, progress=progress)
        model_type = _checkpoint_type(Path(source).name)
        return load_segment_anything(
            model_type, Path(source), device=torch_device, progress=progress
        )
    if source.startswith(RANDOM_PREFIX):
        return build_tiny_segmenter(seed=seed, device=torch_device, dtype=torch_dtype)
    return load_transformers_segmenter(source, device=torch_device, dtype=torch_dtype)


def _model_type(spec: str | None) -> str | None:
    """`vit_b`/`vit_l`/`vit_h` named exactly by the spec or by its official hub id."""
    if spec is None:
        return "vit_b"
    if spec in SAM_MODEL_TYPES:
        return spec
    return {hub_id: model_type for model_type, hub_id in SAM_HUB_IDS.items()}.get(spec)


def _checkpoint_type(file_name: str) -> str:
    """The model type in a checkpoint's file name (`sam_vit_h_4b8939.pth`), else vit_b."""
    return next((t for t in SAM_MODEL_TYPES if t in file_name), "vit_b")


__all__ = [
    "SAM_BACKENDS",
    "SAM_HUB_IDS",
    "SAM_MODEL_TYPES",
    "BoxPrompt",
    "PointPrompt",
    "Segmenter",
    "TransformersSegmenter",
    "build_tiny_segmenter",
    "check_prompts",
    "load_segmenter",
    "sam_choice",
    "tiny_sam_config",
]
