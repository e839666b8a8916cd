"""Stage 1: the in-context template (files) and the LLM planner (litellm)."""

from prompts.cache import ReplyCache, default_cache_dir
from prompts.errors import LLMUnavailableError, PlannerError, TemplateError
from prompts.planner import DEFAULT_LLM, Planner, PlanResult, default_model
from prompts.template import DEFAULT_TEMPLATE_DIR, Example, Template, load_template

__all__ = [
    "DEFAULT_LLM",
    "DEFAULT_TEMPLATE_DIR",
    "Example",
    "LLMUnavailableError",
    "PlanResult",
    "Planner",
    "PlannerError",
    "ReplyCache",
    "Template",
    "TemplateError",
    "default_cache_dir",
    "default_model",
    "load_template",
]
