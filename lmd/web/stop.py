"""Stop: a visitor ends their own render between two denoising steps.

The controller reports progress after every step; the page's progress callback checks the
session's stop flag there and raises `RenderStopped`, which unwinds the render cleanly (the
attention processors are put back, the renderer goes back to the pool) and changes nothing in
the conversation. A render still waiting for a renderer stops the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from lmd.layouts import LmdError

STOPPED = "Stopped before the picture was finished; nothing changed."


class RenderStopped(LmdError):
    """The visitor pressed Stop."""

    def __init__(self) -> None:
        super().__init__(STOPPED)


class Stops:
    """The stop flag of each browser session's render in progress (by Gradio's session hash)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flags: dict[str, threading.Event] = {}

    @contextmanager
    def watch(self, session: str) -> Iterator[threading.Event]:
        """A fresh flag for `session`'s render while the block runs."""
        flag = threading.Event()
        with self._lock:
            self._flags[session] = flag
        try:
            yield flag
        finally:
            with self._lock:
                if self._flags.get(session) is flag:
                    del self._flags[session]

    def stop(self, session: str) -> bool:
        """Ask `session`'s render to stop; False when it has none running."""
        with self._lock:
            flag = self._flags.get(session)
        if flag is None:
            return False
        flag.set()
        return True
