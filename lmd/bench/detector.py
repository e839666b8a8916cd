"""OWL-ViT, the open-vocabulary detector of the stage-2 benchmark: text queries in, boxes out.

`load_detector("google/owlvit-base-patch32")` takes a hub id or a local folder written by
`save_pretrained`; `random:tiny` is a toy OWL-ViT with random weights built from config (for
tests and examples: its detections mean nothing, its code path is the real one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lmd.bench.stage2 import Detection

DEFAULT_DETECTOR = "google/owlvit-base-patch32"
RANDOM_TINY = "random:tiny"


@dataclass
class Detector:
    """An `OwlViTForObjectDetection` and its processor on one device."""

    model: Any
    processor: Any
    device: torch.device
    name: str = DEFAULT_DETECTOR

    def detect(self, images: Sequence, queries: Sequence[Sequence[str]]) -> list[list[Detection]]:
        """Every box the model proposes for each image, labelled with its best query.

        Nothing is thresholded here (the benchmark keeps scores >= its threshold, while
        transformers' post-processing keeps scores strictly above the one it is given). Images
        with as many queries go through the model together: none is padded with blank queries,
        which transformers does not mask and which could take boxes from the real ones.
        """
        if len(images) != len(queries):
            raise ValueError(f"{len(images)} images but {len(queries)} query lists")
        out: list[list[Detection]] = [[] for _ in images]
        groups: dict[int, list[int]] = {}
        for i, q in enumerate(queries):
            groups.setdefault(len(q), []).append(i)
        for members in groups.values():
            found = self._detect([images[i] for i in members], [list(queries[i]) for i in members])
            for i, detections in zip(members, found, strict=True):
                out[i] = detections
        return out

    @torch.no_grad()
    def _detect(self, images: list, texts: list[list[str]]) -> list[list[Detection]]:
        inputs = self.processor(text=texts, images=images, return_tensors="pt", truncation=True)
        outputs = self.model(**inputs.to(self.device))
        sizes = [(image.height, image.width) for image in images]
        results = self.processor.image_processor.post_process_object_detection(
            outputs=outputs, threshold=0.0, target_sizes=sizes
        )
        return [
            [
                Detection(names[label], score, tuple(box))
                for label, score, box in zip(
                    r["labels"].tolist(),
                    r["scores"].tolist(),
                    r["boxes"].cpu().tolist(),
                    strict=True,
                )
            ]
            for names, r in zip(texts, results, strict=True)
        ]


def load_detector(name: str | None = None, *, device: str | None = None) -> Detector:
    """OWL-ViT by hub id or local folder (default `google/owlvit-base-patch32`), in fp32."""
    from lmd.models import from_pretrained, resolve_device

    name = name or DEFAULT_DETECTOR
    torch_device = resolve_device(device)
    if name == RANDOM_TINY:
        model, processor = build_random_detector()
    elif name.startswith("random:"):
        from lmd.models import ModelLoadError

        raise ModelLoadError(f"unknown random detector {name!r}; the one there is is random:tiny")
    else:
        from transformers import OwlViTForObjectDetection, OwlViTProcessor

        def load(path: str, **kw):
            return OwlViTProcessor.from_pretrained(path), OwlViTForObjectDetection.from_pretrained(
                path, **kw
            )

        processor, model = from_pretrained(
            load, name, what="detector", kind="transformers", argument="detector",
            required_file="config.json",
        )  # fmt: skip
    model = model.to(torch_device, dtype=torch.float32).eval()
    return Detector(model, processor, torch_device, name)


def build_random_detector(seed: int = 0):
    """A toy OWL-ViT (one layer, width 32, 32-pixel images) with random weights, and its
    processor (the random pipelines' CLIP tokenizer)."""
    from transformers import OwlViTConfig, OwlViTForObjectDetection, OwlViTProcessor

    from lmd.random_pipeline import build_tokenizer

    try:
        from transformers import OwlViTImageProcessorPil as ImageProcessor
    except ImportError:  # transformers < 5 has only the PIL one, under the plain name
        from transformers import OwlViTImageProcessor as ImageProcessor

    tokenizer = build_tokenizer()
    small = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2)
    config = OwlViTConfig(
        text_config=dict(
            small,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),  # fmt: skip
        vision_config=dict(small, image_size=32, patch_size=8),
        projection_dim=32,
    )
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = OwlViTForObjectDetection(config)
    finally:
        torch.random.set_rng_state(state)
    size = {"height": 32, "width": 32}
    processor = OwlViTProcessor(
        image_processor=ImageProcessor(size=size, crop_size=size), tokenizer=tokenizer
    )
    return model, processor
