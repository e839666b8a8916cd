"""Where a picture's files go: `image.png`, `layout.json`, `layout.png`, and numbered after.

A folder that already holds a picture keeps it: the next one is `image-001.png` with
`layout-001.json` and `layout-001.png`, then `-002`, ... (one more than the highest number
there, as diffusion front ends number their outputs), unless told to overwrite. A number is
claimed by creating its image file exclusively, so two runs into one folder never share one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

FILES = {
    "image": ("image", ".png"),
    "layout": ("layout", ".json"),
    "layout_image": ("layout", ".png"),
}
"""Each output's (stem, suffix); the numbered ones are `{stem}-NNN{suffix}`."""
_NUMBERED = re.compile(r"(?:image|layout)-(\d+)\.(?:png|json)")


def output_paths(out_dir: str | Path, overwrite: bool = False) -> dict[str, Path]:
    """The paths of a new picture's files in `out_dir` (created): the plain names when they are
    free or `overwrite`, else the next free number's, whose image file is claimed (created
    empty) here."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plain = _named(out, "")
    if overwrite or not any(path.exists() for path in plain.values()):
        return plain
    number = 1 + max((int(m.group(1)) for p in out.iterdir() if (m := _NUMBERED.fullmatch(p.name))),
                     default=0)  # fmt: skip
    while True:
        paths = _named(out, f"-{number:03d}")
        if not any(p.exists() for p in paths.values()):
            try:  # claim the number: a second run gets FileExistsError and takes the next
                os.close(os.open(paths["image"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                pass
            else:
                return paths
        number += 1


def _named(out: Path, suffix: str) -> dict[str, Path]:
    return {key: out / f"{stem}{suffix}{ext}" for key, (stem, ext) in FILES.items()}
