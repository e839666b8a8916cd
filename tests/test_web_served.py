"""`lmd.web.served`: the pictures the page shows are handed to gradio as files, each written
once (gradio re-encodes a PIL image in place on every update, under a page that may be
fetching it)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from lmd.web.served import captioned_files, image_file


def test_the_page_gets_each_picture_as_a_file_written_once():
    """The same pixels give the same file, never written again (gradio would re-encode a PIL
    image in place while a page may be fetching it); other pixels give another file."""
    red = Image.new("RGB", (40, 30), (200, 10, 10))
    first = image_file(red)
    with Image.open(first) as saved:
        assert saved.size == (40, 30) and saved.getpixel((5, 5)) == (200, 10, 10)
    before = Path(first).stat()
    assert image_file(red.copy()) == first
    after = Path(first).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    other = red.copy()
    other.putpixel((0, 0), (0, 0, 0))
    assert image_file(other) != first


def test_a_gallerys_pictures_become_files_with_their_captions():
    items = [(Image.new("RGB", (8, 8), (i, i, i)), f"turn {i}") for i in (1, 2)]
    files = captioned_files(items)
    assert [caption for _, caption in files] == ["turn 1", "turn 2"]
    for (path, _), (image, _) in zip(files, items, strict=True):
        with Image.open(path) as saved:
            assert saved.tobytes() == image.tobytes()
