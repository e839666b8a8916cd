"""`Turn` and `Session`: what a conversation saves as JSON after every turn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from lmd.conversation.identity import Tracked
from lmd.layouts.errors import LmdError
from lmd.layouts.io import atomic_write_text
from lmd.layouts.model import Layout
from lmd.layouts.seeds import SEED_LIMIT
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

SESSION_VERSION = 1
MAX_SESSION_BYTES = 64 * 2**20
"""A session file larger than this is refused unread (a thousand turns take a few MB)."""
MAX_NESTING = 64
"""JSON in a session nests a handful of levels; far deeper is not a session."""
_MAX_INT_DIGITS = 30

Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT)]


class SessionError(LmdError):
    """A session file could not be read, or a session operation is not possible."""


class Turn(BaseModel):
    """One request and what came of it: the LLM's reply, the layout, its seeds and picture.

    `reply` is None for turns that did not ask the LLM (a re-roll with a new background seed).
    `object_ids` and `object_seeds` run parallel to `layout.boxes`. A conversation keeps a
    turn's picture in memory only when it has no file (`image_path`); `image` reads the file.
    """

    model_config = ConfigDict(frozen=True)

    request: str
    reply: str | None
    layout: Layout
    background_seed: Seed
    object_ids: list[str]
    object_seeds: list[Seed]
    image_path: str | None = None
    generated: int = Field(default=0, ge=0)
    reused: int = Field(default=0, ge=0)
    summary: str = ""
    anchors: dict[str, int] = Field(default_factory=dict)
    """Object id -> the index of the earlier turn whose look it was drawn to keep."""

    _image: Image.Image | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _parallel(self) -> Turn:
        n = len(self.layout.boxes)
        if len(self.object_ids) != n or len(self.object_seeds) != n:
            raise ValueError(
                f"a turn needs one object id and one seed per box: {n} boxes, "
                f"{len(self.object_ids)} ids, {len(self.object_seeds)} seeds"
            )
        if len(set(self.object_ids)) != n:
            raise ValueError(f"object ids repeat within a turn: {self.object_ids}")
        strangers = sorted(set(self.anchors) - set(self.object_ids))
        if strangers:
            raise ValueError(f"anchors name objects the turn does not have: {strangers}")
        return self

    def __eq__(self, other: object) -> bool:
        """Turns are equal when their recorded fields are; the in-memory picture is ignored."""
        if not isinstance(other, Turn):
            return NotImplemented
        return self.__dict__ == other.__dict__

    @property
    def image(self) -> Image.Image | None:
        """The picture attached with `with_image`, else read from `image_path` (not kept)."""
        if self._image is None and self.image_path and Path(self.image_path).is_file():
            with Image.open(self.image_path) as im:
                return im.copy()
        return self._image

    def objects(self) -> list[Tracked]:
        """This turn's objects (identity, box, seed), for matching the next layout against."""
        boxes = self.layout.boxes
        return [
            Tracked(i, b, s)
            for i, b, s in zip(self.object_ids, boxes, self.object_seeds, strict=True)
        ]

    def with_image(self, image: Image.Image | None) -> Turn:
        """Keep `image` in memory as this turn's picture (not saved in the session JSON)."""
        self._image = image
        return self


class Session(BaseModel):
    """Every turn of a conversation (including ones undone), the undo cursor and counters."""

    model_config = ConfigDict(frozen=True)

    version: int = SESSION_VERSION
    seed: Seed
    """The session seed every object and background seed is derived from."""
    turns: list[Turn] = Field(default_factory=list)
    cursor: int = -1
    """Index of the current turn; turns after it can be redone. -1 when there are none."""
    issued: int = Field(default=0, ge=0)
    """Object identities handed out so far; the next new object is `obj{issued + 1}`."""
    renders: int = Field(default=0, ge=0)
    """Pictures rendered so far; numbers the image files and re-roll seeds."""
    meta: dict[str, Any] = Field(default_factory=dict)
    """Free-form settings a caller wants to keep with the session (model, method, ...)."""

    @model_validator(mode="after")
    def _check(self) -> Session:
        if self.version != SESSION_VERSION:
            raise ValueError(f"session format version {self.version}; this lmd reads version 1")
        valid = 0 <= self.cursor < len(self.turns) if self.turns else self.cursor == -1
        if not valid:
            raise ValueError(f"cursor {self.cursor} is outside the {len(self.turns)} saved turns")
        for index, turn in enumerate(self.turns):
            later = {k: v for k, v in turn.anchors.items() if not 0 <= v < index}
            if later:
                raise ValueError(
                    f"turn {index + 1} is anchored to a turn that is not earlier: {later}"
                )
        return self

    @property
    def consistent(self) -> bool:
        """Whether recurring objects keep their look across turns (`meta["consistent"]`)."""
        return self.meta.get("consistent", True) is not False

    @property
    def history(self) -> list[Turn]:
        """The turns up to and including the cursor."""
        return self.turns[: self.cursor + 1]

    @property
    def current(self) -> Turn | None:
        return self.turns[self.cursor] if self.turns else None

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write the session atomically: a crash leaves the previous file intact."""
        return atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Session:
        """Read a session file; anything wrong with it raises one `SessionError` naming the
        file and the problem. The file is only read."""
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > MAX_SESSION_BYTES:
                raise SessionError(
                    f"session file {path} is {size / 2**20:.0f} MB, more than the "
                    f"{MAX_SESSION_BYTES // 2**20} MB a session may take"
                )
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SessionError(f"no session file at {path}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise SessionError(f"cannot read session file {path}: {_clip(e)}") from None
        try:
            data = json.loads(text, parse_int=_int)
        except RecursionError:
            raise SessionError(f"session file {path} nests too deeply to be a session") from None
        except _AbsurdNumber as e:
            raise SessionError(f"session file {path} is not a session: {e}") from None
        except ValueError as e:  # JSONDecodeError
            raise SessionError(f"session file {path} is not valid JSON: {_clip(e)}") from None
        depth, surrogate = _walk(data)
        if depth > MAX_NESTING:
            raise SessionError(
                f"session file {path} nests more than {MAX_NESTING} levels deep; "
                "it is not a session"
            )
        if surrogate is not None:
            raise SessionError(
                f"session file {path} holds a lone surrogate, which is not text "
                f"(in {_clip(ascii(surrogate), 60)})"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "top level"
            more = e.error_count() - 1
            raise SessionError(
                f"session file {path} is not a valid session ({_clip(where, 80)}: "
                f"{_clip(first['msg'])}{f'; {more} more problems' if more else ''})"
            ) from None


class _AbsurdNumber(ValueError):
    pass


def _int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _AbsurdNumber(f"a number with {len(text)} digits ({text[:10]}...)")
    return int(text)


def _walk(data: object) -> tuple[int, str | None]:
    """How deeply lists and mappings nest in `data`, and a string in it holding a lone
    surrogate (which could never be written back), if any. Iterative: no recursion limit."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= c <= "\udfff" for c in item):
                return deepest, item
        elif isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > MAX_NESTING:
                return deepest, None
            children = [*item, *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest, None


def _clip(value: object, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
