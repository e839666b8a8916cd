"""Shared pieces for the conversation tests (no tests here): a scripted planner and layouts.

`ScriptedPlanner` speaks the stage-1 planner's interface (`plan_messages`, `edit_messages`,
`complete`); a test enqueues the LLM's replies as template text, which goes through the real
`lmd.layouts.parse`, or as an `LmdError` to raise. The renderer is `tests.sketch_renderer`'s.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from lmd.layouts import Layout, LmdError, parse


class ScriptedPlannerError(LmdError):
    """Stands in for `lmd.prompts.PlannerError`: an LLM that failed for good."""


@dataclass
class PlanResult:
    layout: Layout
    reply: str
    attempts: int = 1
    cached: bool = False


class ScriptedPlanner:
    """Answers each `complete` call with the next enqueued reply; records the messages."""

    def __init__(self, *replies: str | LmdError) -> None:
        self.replies: deque[str | LmdError] = deque(replies)
        self.calls: list[list[dict[str, str]]] = []

    def enqueue(self, *replies: str | LmdError) -> None:
        self.replies.extend(replies)

    def plan_messages(self, caption: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": "plan"}, {"role": "user", "content": caption}]

    def edit_messages(
        self, history: Sequence[tuple[str, Layout]], request: str
    ) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": "edit"}]
        for text, layout in history:
            messages.append({"role": "user", "content": text})
            messages.append({"role": "assistant", "content": layout.to_llm_text()})
        messages.append({"role": "user", "content": request})
        return messages

    def complete(self, messages: list[dict[str, str]]) -> PlanResult:
        self.calls.append(messages)
        if not self.replies:
            raise AssertionError("the test did not enqueue a reply for this call")
        reply = self.replies.popleft()
        if isinstance(reply, LmdError):
            raise reply
        return PlanResult(layout=parse(reply), reply=reply)


def reply(objects: str, background: str = "a park", negative: str = "") -> str:
    """An LLM answer in the template's format."""
    return f"Objects: [{objects}]\nBackground prompt: {background}\nNegative prompt: {negative}"


CAT_DOG = reply("('a cat', [40, 200, 160, 160]), ('a dog', [300, 190, 170, 180])")
DOG_LEFT = reply("('a cat', [40, 200, 160, 160]), ('a dog', [220, 190, 170, 180])")
BLACK_CAT = reply("('a black cat', [40, 200, 160, 160]), ('a dog', [300, 190, 170, 180])")
WITH_HAT = reply(
    "('a cat', [40, 200, 160, 160]), ('a dog', [300, 190, 170, 180]), ('a hat', [70, 150, 80, 60])"
)
ONLY_CAT = reply("('a cat', [40, 200, 160, 160])")
BEACH = reply("('a cat', [40, 200, 160, 160]), ('a dog', [300, 190, 170, 180])", "a beach")
