"""`Turn` and `Session`: what a conversation saves as JSON after every turn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from conversation.identity import Tracked
from layouts.errors import LmdError
from layouts.io import atomic_write_text
from layouts.model import Layout

SESSION_VERSION = 1


class SessionError(LmdError):
    """A session file could not be read, or a session operation is not possible."""


class Turn(BaseModel):
    """One request and what came of it: the LLM's reply, the layout, its seeds and picture.

    `reply` is None for turns that did not ask the LLM (a re-roll with a new background seed).
    `object_ids` and `object_seeds` run parallel to `layout.boxes`.
    """

    model_config = ConfigDict(frozen=True)

    request: str
    reply: str | None
    layout: Layout
    background_seed: int = Field(ge=0)
    object_ids: list[str]
    object_seeds: list[int]
    image_path: str | None = None
    generated: int = Field(default=0, ge=0)
    reused: int = Field(default=0, ge=0)
    summary: str = ""

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
        return self

    def __eq__(self, other: object) -> bool:
        """Turns are equal when their recorded fields are; the in-memory picture is ignored."""
        if not isinstance(other, Turn):
            return NotImplemented
        return self.__dict__ == other.__dict__

    @property
    def image(self) -> Image.Image | None:
        """The picture: kept from rendering in this process, else read from `image_path`."""
        if self._image is None and self.image_path and Path(self.image_path).is_file():
            with Image.open(self.image_path) as im:
                self._image = im.copy()
        return self._image

    def objects(self) -> list[Tracked]:
        """This turn's objects (identity, box, seed), for matching the next layout against."""
        boxes = self.layout.boxes
        return [
            Tracked(i, b, s)
            for i, b, s in zip(self.object_ids, boxes, self.object_seeds, strict=True)
        ]

    def with_image(self, image: Image.Image | None) -> Turn:
        """Attach the rendered picture (not saved in the session JSON)."""
        self._image = image
        return self


class Session(BaseModel):
    """Every turn of a conversation (including ones undone), the undo cursor and counters."""

    model_config = ConfigDict(frozen=True)

    version: int = SESSION_VERSION
    seed: int = Field(ge=0)
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
        return self

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
        """Read a session file; anything wrong with it raises one `SessionError`."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SessionError(f"no session file at {path}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise SessionError(f"cannot read session file {path}: {e}") from None
        try:
            return cls.model_validate(json.loads(text))
        except json.JSONDecodeError as e:
            raise SessionError(f"session file {path} is not valid JSON: {e}") from None
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "top level"
            raise SessionError(
                f"session file {path} is not a valid session ({where}: {first['msg']}"
                f"{f'; {e.error_count() - 1} more problems' if e.error_count() > 1 else ''})"
            ) from None
