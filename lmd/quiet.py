"""Keep third-party notices (deprecations, fallbacks, dtype advice) out of a user's terminal.

A library does not print: while lmd loads models, the loggers of transformers, diffusers and
huggingface_hub are held at ERROR and their deprecation and user warnings are ignored.
Real failures still raise. `LMD_DEBUG=1` leaves everything as the libraries set it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

LIBRARIES = ("transformers", "diffusers", "huggingface_hub")
LIBRARY_MODULES = r"(transformers|diffusers|huggingface_hub|segment_anything|torch)(\.|$)"


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence the libraries' info and warning logs and their warnings inside the block."""
    if os.environ.get("LMD_DEBUG"):
        yield
        return
    for name in LIBRARIES:  # each sets its own logger's level when first imported
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    loggers = [logging.getLogger(name) for name in LIBRARIES]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            ignore_library_warnings()
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def ignore_library_warnings() -> None:
    """Filter out the libraries' future, deprecation and user warnings (not ours)."""
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=LIBRARY_MODULES)
