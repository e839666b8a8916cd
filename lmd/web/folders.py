"""Folders that say which conversation they hold: when it began and its first words.

`2025-12-04_051233_a-cat-and-a-dog/` rather than a random id: a person looking through
`lmd web -o DIR` finds a conversation by what it asked for, and `ls` lists them in order.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from pathlib import Path

WORDS = 6
"""At most this many words of the request name the folder."""
LETTERS = 40
"""And at most this many characters of them (cut at a word's end where there is one)."""
UNTITLED = "conversation"
"""The name's words when the request has no letter or digit."""
TRIES = 1000


def _kept(char: str) -> bool:
    """Letters, digits and their combining marks, in any script (a Hindi vowel sign stays)."""
    return unicodedata.category(char)[0] in "LNM"


def words_of(request: str) -> str:
    """The first words of `request`, lower case, joined by `-`, safe in any file name."""
    text = unicodedata.normalize("NFC", request).lower()
    words = "".join(c if _kept(c) else " " for c in text).split()[:WORDS]
    name = ""
    for word in words:
        longer = f"{name}-{word}" if name else word
        if len(longer) > LETTERS:
            name = name or word[:LETTERS]
            break
        name = longer
    return name or UNTITLED


def folder_name(request: str, when: datetime) -> str:
    """`<date>_<time>_<words>`: when the conversation began and what it first asked."""
    return f"{when:%Y-%m-%d_%H%M%S}_{words_of(request)}"


def new_folder(root: Path, request: str, when: datetime | None = None) -> Path:
    """Make a new folder under `root` for a conversation that begins with `request`.

    A name already taken (two conversations begun in the same second with the same words)
    gets `-2`, `-3`, ... added; the folder is made here, so no two callers get the same one.
    """
    name = folder_name(request, when or datetime.now())
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, TRIES + 1):
        folder = root / (name if n == 1 else f"{name}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"{root / name}: {TRIES} folders of that name exist already")
