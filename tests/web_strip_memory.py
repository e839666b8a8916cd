"""Peak memory and time of the web page's strip of turns for an opened session, as `lmd web`
draws it now (thumbnails) and as it once did (every turn at its full canvas).

    python3 -m tests.web_strip_memory TURNS CANVAS [--full-canvas]

The session's turns have no pictures (as a session opened from a file): each is sketched.
"""

from __future__ import annotations

import argparse
import resource
import time

from lmd.conversation import Session
from lmd.layouts import draw

from lmd.web import views


def session_of(turns: int, canvas: int) -> Session:
    box = {"name": "a cat", "x": 10, "y": 10, "w": 100, "h": 100}
    turn = {
        "request": "a cat", "reply": "x", "background_seed": 1, "object_ids": ["obj1"],
        "object_seeds": [2],
        "layout": {"boxes": [box], "background": "a park", "width": canvas, "height": canvas},
    }  # fmt: skip
    return Session.model_validate({"seed": 1, "turns": [turn] * turns, "cursor": turns - 1})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("turns", type=int)
    parser.add_argument("canvas", type=int)
    parser.add_argument("--full-canvas", action="store_true", help="draw as lmd web once did")
    args = parser.parse_args()
    session = session_of(args.turns, args.canvas)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if args.full_canvas:
        items = [(draw(t.layout), "") for t in session.turns]
    else:
        items = views.thumbnails(session)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    how = "full canvas" if args.full_canvas else "thumbnails"
    print(
        f"{args.turns} turns at {args.canvas} x {args.canvas}, {how} {items[0][0].size}: "
        f"+{grown:.0f} MB peak, {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
