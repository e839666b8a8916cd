"""Multi-turn layout editing: the conversation manager, session store and chat REPL.

Rendering is handed in as a `RenderFn`; this package never imports torch.
"""

from lmd.conversation.identity import MatchConfig, assign, match_boxes
from lmd.conversation.manager import MANUAL_REQUEST, Conversation, is_manual
from lmd.conversation.render import (
    Anchor,
    Progress,
    RenderFn,
    RenderOutput,
    RenderRequest,
)
from lmd.conversation.repl import run_repl
from lmd.conversation.session import Session, SessionError, Turn
from lmd.layouts.seeds import derive_seed

__all__ = [
    "MANUAL_REQUEST",
    "Anchor",
    "Conversation",
    "MatchConfig",
    "Progress",
    "RenderFn",
    "RenderOutput",
    "RenderRequest",
    "Session",
    "SessionError",
    "Turn",
    "assign",
    "derive_seed",
    "is_manual",
    "match_boxes",
    "run_repl",
]
