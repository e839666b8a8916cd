"""lmd: LLM-grounded Diffusion (LMD / LMD+).

Stage 2 (the layout-grounded diffusion controller), the public API and the CLI. Heavy modules
(torch, diffusers) are imported on first use, so `lmd plan` starts fast.

    from lmd import generate
    result = generate("a cat to the left of a dog")
    result.image.save("cat_dog.png")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "generate": "lmd.api",
    "generate_story": "lmd.story",
    "GenerateResult": "lmd.api",
    "Renderer": "lmd.api",
    "RenderSettings": "lmd.settings",
    "RenderError": "lmd.api",
    "Conversation": "lmd.conversation",
    "Layout": "lmd.layouts",
    "Box": "lmd.layouts",
    "Planner": "lmd.prompts",
}

if TYPE_CHECKING:
    from lmd.api import GenerateResult, Renderer, RenderError, generate
    from lmd.conversation import Conversation
    from lmd.layouts import Box, Layout
    from lmd.prompts import Planner
    from lmd.settings import RenderSettings
    from lmd.story import generate_story

__all__ = [
    "Box",
    "Conversation",
    "GenerateResult",
    "Layout",
    "Planner",
    "RenderError",
    "RenderSettings",
    "Renderer",
    "__version__",
    "generate",
    "generate_story",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lmd' has no attribute {name!r}")
