"""Pictures handed to the page as files: each written once, named by its pixels, atomically.

Handed a PIL image, gradio re-encodes it into its cache on every update, in place at one path
per content; a page still fetching that file meanwhile gets it cut short (a broken picture;
under the box editor, nothing to drag boxes on). A file is copied into gradio's cache once, by
a rename, and never rewritten. The files live in a folder of this process in the temporary
folder (which gradio serves from), removed when the process ends.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from PIL import Image

from lmd.layouts.io import atomic_save_image


def image_file(image: Image.Image) -> str:
    """`image` as a PNG file named by its mode, size and pixels (written the first time)."""
    digest = hashlib.sha256(repr((image.mode, image.size)).encode() + image.tobytes())
    path = _folder() / f"{digest.hexdigest()[:32]}.png"
    if not path.exists():
        atomic_save_image(image, path)
    return str(path)


def captioned_files(items: list[tuple[Image.Image, str]]) -> list[tuple[str, str]]:
    """A gallery's (picture, caption) items with each picture as a file."""
    return [(image_file(image), caption) for image, caption in items]


@lru_cache(maxsize=1)
def _folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="lmd-web-pictures-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
