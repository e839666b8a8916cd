"""Gradio's file cache in a private folder of the server's own (mode 0700).

Gradio copies every picture, thumbnail, upload and download it serves into its cache, by
default a world-readable folder under the system's temporary folder, kept forever. `lmd web`
points Gradio at `CACHE_FOLDER` inside its output folder instead (Gradio reads
`GRADIO_TEMP_DIR` when its blocks are built and as it serves), has Gradio delete the copies as
they age (`build_app`) and removes the folder when the server stops.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_FOLDER = ".gradio-cache"


def use_private_cache(root: str | Path) -> Path:
    """Make `root/CACHE_FOLDER` (0700) and point Gradio's cache there; returns the folder."""
    folder = Path(root) / CACHE_FOLDER
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)  # an existing folder too: the copies hold every visitor's pictures
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder
