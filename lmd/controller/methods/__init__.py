"""The method registry: `lmd`, `lmd+` and `sd`, each a module with its own settings.

    method = get_method("lmd+")                       # the registered instance
    method = get_method("lmd+").with_settings(blend_ratio=0.2)

Adding a method: a module with a `Method` subclass, and one `register(...)` line below (or a
`register` call from your own code).
"""

from __future__ import annotations

from lmd.controller.methods.base import BoxSettings, Method
from lmd.controller.methods.lmd import LMD
from lmd.controller.methods.lmd_plus import LMDPlus, PlusSettings
from lmd.controller.methods.sd import PlainSD

_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Make `method` available by its name (replacing one of the same name)."""
    if not method.name:
        raise ValueError("a method needs a `name`")
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def method_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_method(method: str | Method) -> Method:
    """The registered method of that name (a `Method` passes through); the one place a
    method name is validated."""
    if isinstance(method, Method):
        return method
    if method not in _REGISTRY:
        raise ValueError(f"`method` must be one of {', '.join(_REGISTRY)} but is {method!r}")
    return _REGISTRY[method]


register(LMD())
register(LMDPlus())
register(PlainSD())

__all__ = [
    "LMD", "BoxSettings", "LMDPlus", "Method", "PlainSD", "PlusSettings", "get_method",
    "method_names", "register", "unregister",
]  # fmt: skip
