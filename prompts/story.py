"""`plan_story`: one layout per caption of a series, the objects that recur kept under one name.

Each caption after the first is planned with the names of every object the earlier plans drew
(`Template.story_messages`): the LLM is asked to give a recurring object exactly its earlier
name, so the renderer can tell it is the same subject. The first caption is planned as
`Planner.plan` plans it (its reply is shared with `lmd plan`'s cache).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lmd.prompts.planner import Planner, PlanResult

MAX_CAST = 40
"""At most this many earlier names are listed (the first ones drawn)."""


def plan_story(
    planner: Planner,
    captions: Sequence[str],
    on_plan: Callable[[int, PlanResult], None] | None = None,
) -> list[PlanResult]:
    """One plan per caption, in order; `on_plan(index, plan)` hears of each as it comes."""
    cast: list[str] = []
    plans = []
    for index, caption in enumerate(captions):
        plan = planner.complete(planner.story_messages(caption, cast))
        known = {name.casefold() for name in cast}
        for name in plan.layout.names:
            if name.casefold() not in known and len(cast) < MAX_CAST:
                cast.append(name)
                known.add(name.casefold())
        plans.append(plan)
        if on_plan is not None:
            on_plan(index, plan)
    return plans
