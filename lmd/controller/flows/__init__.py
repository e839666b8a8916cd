"""Flows: how a method turns a layout into final latents (see `base.py`).

`FLOWS` maps the names a method gives as its `flow` to the built-in flows; a method may also
give its own flow object (anything with `draw(drawing) -> Drawn`).
"""

from __future__ import annotations

from lmd.controller.flows.base import Drawing, Drawn
from lmd.controller.flows.boxes import BOXES
from lmd.controller.flows.one_pass import ONE_PASS

FLOWS = {"one-pass": ONE_PASS, "boxes": BOXES}


def flow_of(method):
    """The flow object `method` runs."""
    flow = method.flow
    if isinstance(flow, str):
        if flow not in FLOWS:
            raise ValueError(
                f"method {method.name!r} names flow {flow!r}; the flows are {', '.join(FLOWS)}"
            )
        return FLOWS[flow]
    return flow


__all__ = ["BOXES", "FLOWS", "ONE_PASS", "Drawing", "Drawn", "flow_of"]
