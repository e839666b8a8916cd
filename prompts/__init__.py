"""Stage 1: the in-context template (files) and the LLM planner (litellm)."""

from lmd.layouts.paths import default_cache_dir
from lmd.prompts.cache import ReplyCache
from lmd.prompts.errors import LLMUnavailableError, PlannerError, TemplateError
from lmd.prompts.language import LanguageWarning
from lmd.prompts.planner import (
    DEFAULT_LLM,
    EXCERPT_CHARS,
    MAX_REPLY_CHARS,
    AskNotice,
    Planner,
    PlanResult,
    default_llm,
)
from lmd.prompts.story import plan_story
from lmd.prompts.template import DEFAULT_TEMPLATE_DIR, Example, Template, load_template
from lmd.prompts.transport import RetryNotice

__all__ = [
    "AskNotice",
    "DEFAULT_LLM",
    "DEFAULT_TEMPLATE_DIR",
    "EXCERPT_CHARS",
    "Example",
    "LLMUnavailableError",
    "LanguageWarning",
    "MAX_REPLY_CHARS",
    "PlanResult",
    "Planner",
    "PlannerError",
    "ReplyCache",
    "RetryNotice",
    "Template",
    "TemplateError",
    "default_cache_dir",
    "default_llm",
    "load_template",
    "plan_story",
]
