"""Shared test setup. Fixtures live in plugin modules so each area owns its own file."""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = ["tests.fixtures_llm", "tests.fixtures_models", "tests.fixtures_parity"]
