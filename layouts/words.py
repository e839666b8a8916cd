"""English plurals, for prompts ("two pandas") and for messages ("3 turns")."""

from __future__ import annotations

import re

IRREGULAR_PLURALS = {
    "person": "people", "man": "men", "woman": "women", "child": "children",
    "mouse": "mice", "goose": "geese", "foot": "feet", "tooth": "teeth", "sheep": "sheep",
    "fish": "fish", "deer": "deer", "knife": "knives", "leaf": "leaves", "wolf": "wolves",
    "shelf": "shelves", "loaf": "loaves", "calf": "calves", "bus": "buses", "ox": "oxen",
}  # fmt: skip


def plural(noun: str) -> str:
    """The plural of an English noun: `cat` -> `cats`, `box` -> `boxes`, `person` -> `people`."""
    low = noun.lower()
    if low in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[low]
    if re.search(r"(s|x|z|ch|sh)$", low):
        return noun + "es"
    if re.search(r"[^aeiou]y$", low):
        return noun[:-1] + "ies"
    return noun + "s"


def counted(n: int, noun: str) -> str:
    """`n` and the noun, plural unless there is one: `1 turn`, `0 turns`, `3 boxes`."""
    return f"{n} {noun if n == 1 else plural(noun)}"
