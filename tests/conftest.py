"""Shared test setup. Fixtures live in plugin modules so each area owns its own file."""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = ["tests.fixtures_llm", "tests.fixtures_models", "tests.fixtures_parity"]


def _check_checkout() -> None:
    """`lmd.layouts`, `lmd.prompts` and `lmd.conversation` live in top-level folders that the
    editable install maps under `lmd`: an install made from another checkout would test that
    checkout's code. Say so instead."""
    from pathlib import Path

    import lmd.layouts

    here = Path(__file__).resolve().parents[1]
    found = Path(lmd.layouts.__file__).resolve().parents[1]
    if found != here:
        raise RuntimeError(
            f"lmd.layouts is imported from {found}, not from this checkout ({here}); "
            f"run `pip install -e .` here"
        )


_check_checkout()
