"""SAM behind one small interface: a batch of images and one prompt each -> 3 masks and scores.

Two backends: transformers' `SamModel` (no torchvision needed; hub ids, local folders and the
`random:tiny` test model) and Meta's `segment_anything` (`lmd.sam_meta`, `.pth` checkpoints).
`load_segmenter` picks one automatically: segment-anything when it imports and a checkpoint is
given or cached, transformers otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image

from lmd.models import ModelLoadError, from_pretrained, resolve_device, resolve_dtype
from lmd.random_pipeline import RANDOM_PREFIX

Point = tuple[float, float]
Box = tuple[float, float, float, float]

BACKENDS = ("auto", "transformers", "segment-anything")
SAM_MODEL_TYPES = ("vit_b", "vit_l", "vit_h")
DEFAULT_SAM = "vit_b"
SAM_HUB_IDS = {
    "vit_b": "facebook/sam-vit-base",
    "vit_l": "facebook/sam-vit-large",
    "vit_h": "facebook/sam-vit-huge",
}
RANDOM_SAM_MODELS = ("tiny",)
TINY_SAM = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "image_size": 256, "patch": 16}


class Segmenter(Protocol):
    """Segment each image from one point or one box (pixel coordinates, boxes xyxy).

    Returns `(masks, scores)`: masks bool `[B, 3, H, W]` at the images' size and SAM's
    predicted IoU as float32 `[B, 3]`, on the segmenter's device. Exactly one of `points`
    and `boxes` is given, one per image; all images go through the image encoder as one batch.
    """

    def segment(
        self,
        images: Sequence[Image.Image],
        *,
        points: Sequence[Point] | None = None,
        boxes: Sequence[Box] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


def check_prompts(
    images: Sequence[Image.Image], points: Sequence[Point] | None, boxes: Sequence[Box] | None
) -> tuple[int, int]:
    """Validate a `segment` call; return the images' common `(height, width)`."""
    if not images:
        raise ValueError("`images` must hold at least one image but is empty")
    if (points is None) == (boxes is None):
        raise ValueError("pass exactly one of `points` and `boxes` (one prompt per image)")
    prompts = points if points is not None else boxes
    name, width = ("points", 2) if points is not None else ("boxes", 4)
    if len(prompts) != len(images):
        raise ValueError(
            f"`{name}` must hold one prompt per image: {len(prompts)} for {len(images)} images"
        )
    if any(len(p) != width for p in prompts):
        raise ValueError(f"each of `{name}` must have {width} numbers but got {list(prompts)}")
    sizes = {image.size for image in images}
    if len(sizes) != 1:
        raise ValueError(f"all `images` must have the same size but have {sorted(sizes)}")
    width_px, height_px = sizes.pop()
    return height_px, width_px


class TransformersSegmenter:
    """`Segmenter` on transformers' `SamModel` + `SamProcessor`."""

    backend = "transformers"

    def __init__(self, model: Any, processor: Any):
        self.model = model.eval()
        self.processor = processor

    @property
    def device(self) -> torch.device:
        return self.model.device

    @torch.no_grad()
    def segment(
        self,
        images: Sequence[Image.Image],
        *,
        points: Sequence[Point] | None = None,
        boxes: Sequence[Box] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = check_prompts(images, points, boxes)
        rgb = [image.convert("RGB") for image in images]
        if points is not None:
            prompt = {
                "input_points": [[[float(x), float(y)]] for x, y in points],
                "input_labels": [[1] for _ in points],
            }
        else:
            prompt = {"input_boxes": [[[float(v) for v in box]] for box in boxes]}
        inputs = self.processor(images=rgb, return_tensors="pt", **prompt)
        dtype = self.model.dtype
        model_inputs = {
            key: value.to(self.device, dtype if value.is_floating_point() else value.dtype)
            for key, value in inputs.items()
            if key not in ("original_sizes", "reshaped_input_sizes")
        }
        out = self.model(**model_inputs, multimask_output=True)
        # pred_masks: [B, prompts per image (1), 3, h, w]; iou_scores: [B, 1, 3]
        low_res = out.pred_masks[:, 0].float()
        masks = self.processor.post_process_masks(
            list(low_res.unsqueeze(1)), inputs["original_sizes"], inputs["reshaped_input_sizes"]
        )
        masks = torch.cat(masks).bool()
        if masks.shape[-2:] != (height, width):
            raise RuntimeError(f"SAM masks are {tuple(masks.shape)}, not at {height}x{width}")
        return masks, out.iou_scores[:, 0].float()


def tiny_sam_config() -> Any:
    """A `SamConfig` with toy sizes (hidden 32, one layer, 256 px), for tests and CI."""
    from transformers import SamConfig

    h, size, patch = TINY_SAM["hidden_size"], TINY_SAM["image_size"], TINY_SAM["patch"]
    heads, layers = TINY_SAM["num_heads"], TINY_SAM["num_layers"]
    return SamConfig(
        vision_config={
            "hidden_size": h,
            "output_channels": h,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "image_size": size,
            "patch_size": patch,
            "global_attn_indexes": list(range(layers)),
            "window_size": 0,
            "num_pos_feats": h // 2,
            "mlp_dim": 2 * h,
        },
        prompt_encoder_config={"hidden_size": h, "image_size": size, "patch_size": patch},
        mask_decoder_config={
            "hidden_size": h,
            "mlp_dim": 2 * h,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "iou_head_hidden_dim": h,
        },
    )


def processor_for(config: Any) -> Any:
    """A `SamProcessor` matching a `SamConfig`'s image size, built without downloads."""
    from transformers import SamProcessor

    size = config.vision_config.image_size
    mask = config.prompt_encoder_config.image_size // config.prompt_encoder_config.patch_size * 4
    image_processor = _image_processor_class()(
        size={"longest_edge": size},
        pad_size={"height": size, "width": size},
        mask_size={"longest_edge": mask},
        mask_pad_size={"height": mask, "width": mask},
    )
    return SamProcessor(image_processor=image_processor)


def build_tiny_segmenter(
    *, seed: int = 0, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> TransformersSegmenter:
    """`random:tiny`: a seeded random `SamModel` of toy size, so SAM runs without weights."""
    from transformers import SamModel

    config = tiny_sam_config()
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = SamModel(config)
    finally:
        torch.random.set_rng_state(state)
    return TransformersSegmenter(model.to(device=device, dtype=dtype), processor_for(config))


def load_transformers_segmenter(
    source: str, *, device: torch.device, dtype: torch.dtype
) -> TransformersSegmenter:
    """A `TransformersSegmenter` from a hub id (`facebook/sam-vit-base`) or a local folder."""
    from transformers import SamModel, SamProcessor

    sam_kwargs = {"what": "SAM model", "kind": "transformers SAM", "flag": "--sam-checkpoint"}
    model = from_pretrained(
        SamModel.from_pretrained, source, required_file="config.json", **sam_kwargs
    )
    local = Path(source).expanduser()
    if local.is_dir() and not (local / "preprocessor_config.json").is_file():
        processor = processor_for(model.config)
    else:
        image_processor = from_pretrained(
            _image_processor_class().from_pretrained,
            source,
            required_file="preprocessor_config.json",
            **sam_kwargs,
        )
        processor = SamProcessor(image_processor=image_processor)
    try:
        model = model.to(device=device, dtype=dtype)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"SAM model {source!r} could not be moved to {device} as {dtype}; try --device cpu"
        ) from exc
    return TransformersSegmenter(model, processor)


def load_segmenter(
    spec: str | None = None,
    *,
    backend: str = "auto",
    checkpoint: str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Segmenter:
    """A `Segmenter` for `spec`: `vit_b`/`vit_l`/`vit_h`, a SAM hub id, a folder or `random:tiny`.

    `checkpoint` is a segment-anything `.pth` file (or a transformers SAM folder). `backend`
    is `auto`, `transformers` or `segment-anything`; `auto` takes segment-anything when it
    imports and a checkpoint is given or already cached, transformers otherwise. `progress`
    shows a bar while a checkpoint downloads.
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {', '.join(BACKENDS)} but is {backend!r}")
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    spec = None if spec is None else str(spec)
    checkpoint = None if checkpoint is None else Path(checkpoint).expanduser()

    if spec is not None and spec.startswith(RANDOM_PREFIX):
        name = spec.removeprefix(RANDOM_PREFIX)
        if name not in RANDOM_SAM_MODELS:
            raise ModelLoadError(f"unknown random SAM model {spec!r}; choose random:tiny")
        if backend == "segment-anything":
            raise ModelLoadError(
                f"SAM model {spec!r} is a transformers model; use backend 'auto' or 'transformers'"
            )
        return build_tiny_segmenter(seed=seed, device=torch_device, dtype=torch_dtype)

    if checkpoint is not None and checkpoint.is_dir():
        if backend == "segment-anything":
            raise ModelLoadError(
                f"SAM checkpoint '{checkpoint}' is a folder; segment-anything needs a .pth file"
            )
        return load_transformers_segmenter(str(checkpoint), device=torch_device, dtype=torch_dtype)

    model_type = _model_type(spec, checkpoint)
    if backend == "auto":
        backend = _auto_backend(model_type, checkpoint)
    if backend == "segment-anything":
        if model_type is None:
            raise ModelLoadError(
                f"SAM model {spec!r} is not one of {', '.join(SAM_MODEL_TYPES)}, which the "
                "segment-anything backend needs; use backend 'transformers' for hub ids"
            )
        from lmd.sam_meta import load_segment_anything

        return load_segment_anything(model_type, checkpoint, device=torch_device, progress=progress)
    if checkpoint is not None:
        raise ModelLoadError(
            f"SAM checkpoint '{checkpoint}' is a segment-anything file, which the transformers "
            "backend cannot read; pass a transformers SAM folder or hub id instead"
        )
    source = SAM_HUB_IDS.get(spec or DEFAULT_SAM, spec or "")
    return load_transformers_segmenter(source, device=torch_device, dtype=torch_dtype)


def _model_type(spec: str | None, checkpoint: Path | None) -> str | None:
    """`vit_b`/`vit_l`/`vit_h` named by the spec, its hub id or the checkpoint's file name."""
    if spec is None:
        if checkpoint is not None:
            for model_type in SAM_MODEL_TYPES:
                if model_type in checkpoint.name:
                    return model_type
        return DEFAULT_SAM
    if spec in SAM_MODEL_TYPES:
        return spec
    by_hub_id = {hub_id: model_type for model_type, hub_id in SAM_HUB_IDS.items()}
    return by_hub_id.get(spec)


def _auto_backend(model_type: str | None, checkpoint: Path | None) -> str:
    from lmd.sam_meta import cached_checkpoint, segment_anything_import_error

    if checkpoint is not None:
        return "segment-anything"  # a .pth file: only segment-anything reads it
    if model_type is None or segment_anything_import_error() is not None:
        return "transformers"
    return "segment-anything" if cached_checkpoint(model_type) else "transformers"


def _image_processor_class() -> Any:
    """SAM's image processor; the PIL one when torchvision is missing (transformers >= 5)."""
    import transformers

    pil = getattr(transformers, "SamImageProcessorPil", None)
    if pil is not None:
        try:
            import torchvision  # noqa: F401
        except Exception:
            return pil
    return transformers.SamImageProcessor


__all__ = [
    "SAM_HUB_IDS",
    "Segmenter",
    "TransformersSegmenter",
    "build_tiny_segmenter",
    "load_segmenter",
]
