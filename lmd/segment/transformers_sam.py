"""The transformers SAM backend: `SamModel` + `SamProcessor` (no torchvision needed).

Loads hub ids (`facebook/sam-vit-base`), local folders written by `save_pretrained`, and the
toy `random:tiny` model that tests and CI use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lmd.models import ModelLoadError, from_pretrained
from lmd.segment.interface import Boxes, Images, Masks, ModelSegmenter, Points, Size

SAM_HUB_IDS = {
    "vit_b": "facebook/sam-vit-base",
    "vit_l": "facebook/sam-vit-large",
    "vit_h": "facebook/sam-vit-huge",
}
DEFAULT_SAM_HUB_ID = SAM_HUB_IDS["vit_b"]
TINY_SAM = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "image_size": 256, "patch": 16}


class TransformersSegmenter(ModelSegmenter):
    """`Segmenter` on transformers' `SamModel` + `SamProcessor`."""

    backend = "transformers"

    def __init__(self, model: Any, processor: Any):
        super().__init__(model)
        self.processor = processor

    def _segment(self, images: Images, points: Points, boxes: Boxes, size: Size) -> Masks:
        height, width = size
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
    with torch.random.fork_rng(devices=[]):  # the caller's CPU RNG is left as it was
        torch.manual_seed(seed)
        model = SamModel(config)
    return TransformersSegmenter(model.to(device=device, dtype=dtype), processor_for(config))


def load_transformers_segmenter(
    source: str, *, device: torch.device, dtype: torch.dtype
) -> TransformersSegmenter:
    """A `TransformersSegmenter` from a hub id (`facebook/sam-vit-base`) or a local folder."""
    from transformers import SamModel, SamProcessor

    sam_kwargs = {"what": "SAM model", "kind": "transformers SAM", "argument": "sam_model"}
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
            f"SAM model {source!r} could not be moved to {device} as {dtype}; try `device='cpu'`"
        ) from exc
    return TransformersSegmenter(model, processor)


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
