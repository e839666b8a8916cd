"""The method registry: `lmd`, `lmd+`, `sd`, `attnmod`, `migc`, `migc++` and those other
packages add.

    method = get_method("lmd+")                       # the registered instance
    method = get_method("lmd+").with_settings(blend_ratio=0.2)

Adding a method: a module with a `Method` subclass, and one `register(...)` line below, a
`register` call from your own code, or, from a separate package, an entry point in the group
`lmd.methods` naming the `Method` subclass (or instance):

    [project.entry-points."lmd.methods"]
    foo = "lmd_foo:Foo"          # then: lmd render layout.json --method foo
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points

from lmd.controller.methods.attnmod import AttnMod
from lmd.controller.methods.base import BoxMethod, BoxSettings, Method
from lmd.controller.methods.lmd import LMD
from lmd.controller.methods.lmd_plus import LMDPlus, PlusSettings
from lmd.controller.methods.migc.method import MIGCMethod, MIGCPlus
from lmd.controller.methods.sd import PlainSD

ENTRY_POINTS = "lmd.methods"
_REGISTRY: dict[str, Method] = {}
_plugins_loaded = False


def register(method: Method) -> Method:
    """Make `method` available by its name (replacing one of the same name)."""
    if not method.name:
        raise ValueError("a method needs a `name`")
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def _load_plugins() -> None:
    """Register the methods other installed packages declare (entry points `lmd.methods`),
    once; one that fails to load is skipped with a warning naming it."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for point in entry_points(group=ENTRY_POINTS):
        try:
            found = point.load()
            method = found() if isinstance(found, type) else found
            if not isinstance(method, Method):
                raise TypeError(f"{point.value} is not an lmd Method")
        except Exception as exc:  # a broken plugin must not break lmd
            warnings.warn(
                f"method {point.name!r} from {point.value} could not be loaded: {exc}",
                stacklevel=3,
            )
            continue
        if method.name not in _REGISTRY:
            register(method)


def method_names() -> tuple[str, ...]:
    _load_plugins()
    return tuple(_REGISTRY)


def get_method(method: str | Method) -> Method:
    """The registered method of that name (a `Method` passes through); the one place a
    method name is validated."""
    if isinstance(method, Method):
        return method
    if method not in _REGISTRY:
        _load_plugins()
    if method not in _REGISTRY:
        raise ValueError(f"`method` must be one of {', '.join(_REGISTRY)} but is {method!r}")
    return _REGISTRY[method]


register(LMD())
register(LMDPlus())
register(PlainSD())
register(AttnMod())
register(MIGCMethod())
register(MIGCPlus())

__all__ = [
    "LMD", "BoxMethod", "BoxSettings", "LMDPlus", "Method", "PlainSD", "PlusSettings",
    "get_method", "method_names", "register", "unregister",
]  # fmt: skip
