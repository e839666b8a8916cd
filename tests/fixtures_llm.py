"""Fixtures for talking to an LLM: an OpenAI-compatible server on 127.0.0.1 (see prompts tests)."""
