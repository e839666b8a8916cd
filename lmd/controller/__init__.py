"""Stage 2: the layout-grounded Stable Diffusion controller (LMD and LMD+).

`Controller(pipe).render(layout)` draws a layout; `LMDConfig` holds every hyperparameter with
the published defaults (`LMDConfig.paper()`: the paper's code exactly); `BoxCache` keeps per-box
results between renders for editing; `render(..., trace=TraceRecorder())` reports intermediates;
`render_story(layouts, consistency=ConsistencySettings())` draws several layouts together with
their recurring subjects kept alike.
"""

from lmd.controller.cache import BoxCache, BoxKey, BoxResult
from lmd.controller.config import LMDConfig
from lmd.controller.consistency import ConsistencySettings
from lmd.controller.controller import Controller, RenderResult
from lmd.controller.methods import Method, get_method, method_names, register
from lmd.controller.trace import Trace, TraceRecorder

__all__ = [
    "BoxCache", "BoxKey", "BoxResult", "ConsistencySettings", "Controller", "LMDConfig",
    "Method", "RenderResult",
    "Trace", "TraceRecorder", "get_method", "method_names", "register",
]  # fmt: skip
