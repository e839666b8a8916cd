"""Stage 1: the in-context template and the LLM planner (litellm)."""
