"""Multi-turn layout editing: the conversation manager, session store and chat REPL.

Rendering is handed in as a `RenderFn`; this package never imports torch.
"""

from conversation.identity import MatchConfig, assign, derive_seed, match_boxes
from conversation.manager import MANUAL_REQUEST, Conversation, is_manual
from conversation.render import (
    Progress,
    RenderFn,
    RenderOutput,
    RenderRequest,
    SketchRenderer,
)
from conversation.repl import run_repl
from conversation.session import Session, SessionError, Turn

__all__ = [
    "MANUAL_REQUEST",
    "Conversation",
    "MatchConfig",
    "Progress",
    "RenderFn",
    "RenderOutput",
    "RenderRequest",
    "Session",
    "SessionError",
    "SketchRenderer",
    "Turn",
    "assign",
    "derive_seed",
    "is_manual",
    "match_boxes",
    "run_repl",
]
