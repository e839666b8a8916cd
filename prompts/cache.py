"""A disk cache of accepted LLM replies, so runs replay offline and reproducibly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lmd.layouts.io import atomic_write_text


def cache_key(**parts: object) -> str:
    """sha256 of the parts (model, template hash, messages, sampling settings) as JSON."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ReplyCache:
    """One JSON file per key under `root`; unreadable files count as misses."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            data = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        reply = data.get("reply") if isinstance(data, dict) else None
        return reply if isinstance(reply, str) else None

    def put(self, key: str, reply: str, **meta: object) -> Path:
        record = {"reply": reply, **meta}
        return atomic_write_text(self.path(key), json.dumps(record, ensure_ascii=False, indent=1))
