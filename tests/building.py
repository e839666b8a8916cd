"""Building the project or a test package with pip, here and on a fresh machine."""

from __future__ import annotations


def isolation_flags() -> list[str]:
    """`--no-build-isolation` where this environment's setuptools can build (no download),
    else nothing: pip then fetches setuptools into an isolated build environment."""
    try:
        import setuptools
        from packaging.version import Version
    except ImportError:
        return []
    return ["--no-build-isolation"] if Version(setuptools.__version__) >= Version("68") else []
