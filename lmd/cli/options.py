"""Options several commands share, made from one declaration each.

`@render_options()` gives a command one flag per `RenderSettings` field (`lmd.settings`) and
hands it `settings: RenderSettings`; `@llm_options` gives it the LLM flags (`LlmOptions`) and
hands it `llm_options: LlmOptions`. A value that breaks its rule is a usage error (the usage, then
`Error: --steps must be ...`, exit 2) found while the command line is read, before anything
loads; `settings.check()` then looks the models up.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from lmd.cli.app import LAZY_HELP, click_module
from lmd.layouts.seeds import is_seed, seed_problem
from lmd.settings import PANEL, RenderSettings, Setting, more_than, setting, whole_number

LLM_PANEL = "LLM (stage 1)"

Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace image.png, layout.json and layout.png in the folder (default: keep them "
        "and number the new files image-001.png, layout-001.json, ...).",
    ),
]


@dataclass(frozen=True)
class LlmOptions:
    """The LLM flags: which model, where, and how patiently it is asked."""

    llm: str | None = setting(
        None, "--llm", "litellm model string, e.g. gpt-4.1-mini, anthropic/..., ollama/llama3 "
        "(env LMD_LLM).", metavar="MODEL",
    )  # fmt: skip
    llm_base_url: str | None = setting(
        None, "--llm-base-url", "OpenAI-compatible server, e.g. http://localhost:8000/v1 (env "
        "LMD_LLM_BASE_URL).", metavar="URL",
    )  # fmt: skip
    cache: bool = setting(
        True, "--no-cache", "Ask the LLM even if a cached reply exists.", negated=True
    )
    llm_retries: int = setting(
        4, "--llm-retries", "Retries of a failed request (timeouts, 429, 5xx, connection "
        "errors).", metavar="N", rule=whole_number(0, 1000),
    )  # fmt: skip
    llm_timeout: float = setting(
        120.0, "--llm-timeout", "Seconds one LLM request may take in all, retries and their "
        "waits included.", metavar="SECONDS", rule=more_than(0),
    )  # fmt: skip

    def planner(self, llm: str | None = None, llm_base_url: str | None = None):
        """The planner these options ask for (`llm`, `llm_base_url`: others than the flags');
        each request and retry is announced on stderr."""
        from lmd.cli.progress import say_asking
        from lmd.prompts import Planner

        return Planner(
            model=llm or self.llm, llm_base_url=llm_base_url or self.llm_base_url,
            cache=self.cache, max_retries=self.llm_retries, llm_timeout=self.llm_timeout,
            on_retry=retry_to_stderr, on_ask=say_asking,
        )  # fmt: skip


def retry_to_stderr(notice) -> None:
    """One `note:` line per LLM retry: what failed and how long until the next try."""
    print(f"note: {notice}", file=sys.stderr, flush=True)


def render_options(
    only: Iterable[str] | None = None, **defaults: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A command decorator: flags for the `RenderSettings` fields (all, or `only` those), handed
    to the command as `settings`; `defaults` replaces a field's default for this command."""
    return _options(RenderSettings, "settings", PANEL, only, defaults)


def options_of(
    kind: type, argument: str, panel: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A command decorator: flags for the fields of `kind`, a frozen dataclass whose fields are
    declared with `lmd.settings.setting`, handed to the command as `argument` (a `kind`)."""
    return _options(kind, argument, panel, None, {})


def llm_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """A command decorator: the LLM flags, handed to the command as `llm_options`."""
    return _options(LlmOptions, "llm_options", LLM_PANEL, None, {})(command)


def given(*names: str) -> set[str]:
    """Which of these settings the command line of the running command set (not defaults)."""
    click = click_module()
    ctx = click.globals.get_current_context()
    typed = click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT
    fields = {f.name: f for f in dataclasses.fields(RenderSettings)}
    return {n for n in names if ctx.get_parameter_source(_param_name(fields[n])) in typed}


def check_seed_option(ctx: typer.Context, value: int | None) -> int | None:
    """A `--seed` option's callback: the seed rule, as a usage error."""
    if value is not None and not is_seed(value):
        _usage_error(ctx, f"--seed {seed_problem(value)}")
    return value


SEED_HELP = "Random seed, 0 to 2**63 - 1."


def seed_option(default: int | None, help: str = SEED_HELP) -> Any:
    """A `--seed` option with the seed rule."""
    return typer.Option(default, "--seed", metavar="SEED", help=help, callback=check_seed_option)


def _options(kind, argument: str, panel: str, only, defaults: dict[str, Any]):
    fields = [f for f in dataclasses.fields(kind) if only is None or f.name in set(only)]
    hints = typing.get_type_hints(kind)
    unknown = set(defaults) - {f.name for f in fields}
    if unknown:
        raise TypeError(f"no such {kind.__name__} field: {', '.join(sorted(unknown))}")

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        kept = [p for p in signature.parameters.values() if p.name != argument]
        added = [
            _parameter(f, f.metadata["setting"], hints[f.name], panel, defaults) for f in fields
        ]

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            values = {f.name: _value(f, kwargs.pop(_param_name(f))) for f in fields}
            return command(*args, **kwargs, **{argument: kind(**values)})

        run.__signature__ = signature.replace(parameters=[*kept, *added])
        run.__annotations__ = {p.name: p.annotation for p in (*kept, *added)}
        return run

    return decorate


def _param_name(f: dataclasses.Field) -> str:
    """The command's parameter for a field: `no_sam` for `sam`, whose flag turns it off."""
    return f"no_{f.name}" if f.metadata["setting"].negated else f.name


def _value(f: dataclasses.Field, value: Any) -> Any:
    return not value if f.metadata["setting"].negated else value


def _parameter(f: dataclasses.Field, declared: Setting, hint: Any, panel: str, defaults):
    default = defaults.get(f.name, f.default)
    name = _param_name(f)
    if declared.negated:
        hint, default = bool, not default
    help_text = declared.help if isinstance(declared.help, str) else ""
    if callable(declared.help):
        LAZY_HELP[name] = declared.help
    option = typer.Option(
        declared.flag, help=help_text, metavar=declared.metavar or None, rich_help_panel=panel,
        callback=_checker(declared, default), show_default=_shown(default),
    )  # fmt: skip
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[hint, option]
    )


def _shown(default: Any) -> bool:
    return default is not None and not isinstance(default, bool)


def _checker(declared: Setting, default: Any) -> Callable[[typer.Context, Any], Any]:
    def check(ctx: typer.Context, value: Any) -> Any:
        if value != default and (problem := declared.problem(value)) is not None:
            _usage_error(ctx, f"{declared.flag} {problem}")
        return value

    return check


def _usage_error(ctx: typer.Context, message: str) -> None:
    raise click_module().exceptions.UsageError(message, ctx)
