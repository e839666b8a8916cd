"""Where lmd keeps its own files: one cache folder for LLM replies, chat history and SAM
checkpoints (every room may use it, so it lives in the lowest)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """`$LMD_CACHE_DIR`, else `~/.cache/lmd`."""
    return Path(os.environ.get("LMD_CACHE_DIR") or Path.home() / ".cache" / "lmd")
