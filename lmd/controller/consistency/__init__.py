"""Consistent subjects: ConsiStory's shared attention (Tewel et al. 2024) as a hook source that
composes with any method (`lmd`, `lmd+`, `sd`, attention modulation, ...).

    settings = ConsistencySettings(anchors=2)                # the paper's constants
    story = controller.render_story(layouts, consistency=settings)

Formulas, defaults and their sources: `settings.py`; the hooks: `hooks.py`.
"""

from lmd.controller.consistency.hooks import Consistency, ConsistencyHooks
from lmd.controller.consistency.settings import ConsistencySettings

__all__ = ["Consistency", "ConsistencyHooks", "ConsistencySettings"]
