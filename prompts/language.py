"""Is a planned layout written in English? Stable Diffusion's text encoder reads English best.

The check is by script, not by language: a letter outside the Latin script (Chinese, Cyrillic,
Arabic, Devanagari, ...) in an object name or the background means the LLM did not translate.
Latin-script languages (Spanish, French, ...) are not detected: telling "un gato" from an
English name needs a language model, and a false alarm on "a piñata" or "a café" would teach
people to ignore the warning.
"""

from __future__ import annotations

import unicodedata

from lmd.layouts import Layout, LayoutWarning


class LanguageWarning(LayoutWarning):
    """The LLM wrote object names or the background in a language other than English."""


def foreign_texts(layout: Layout) -> list[str]:
    """The layout's names and background that hold letters of a non-Latin script."""
    texts = [*dict.fromkeys(layout.names), layout.background]
    return [t for t in texts if any(_foreign(c) for c in t)]


def language_note(layout: Layout) -> str | None:
    """One sentence for people when the layout is not in English, else None."""
    found = foreign_texts(layout)
    if not found:
        return None
    shown = ", ".join(repr(t[:40]) for t in found[:3])
    return (
        f"the LLM wrote the layout partly in another language ({shown}); Stable Diffusion "
        "understands English best, so the picture may miss these objects (this is said once)"
    )


def _foreign(c: str) -> bool:
    if not c.isalpha():
        return False
    return not unicodedata.name(c, "LATIN").startswith("LATIN")
