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
    """`random:tiny` with a GLIGEN gated UNet, as a `StableDiffusionGLIGENPipeline`."""
    from lmd.models import load_pipeline

    return load_pipeline("random:tiny", method="lmd+", device="cpu", dtype=torch.float32)


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
    from lmd.sam import load_segmenter

    return load_segmenter("random:tiny", device="cpu", dtype=torch.float32)
