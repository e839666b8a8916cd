"""The in-context template, read from files: instructions and examples for planning and editing.

Layout of a template folder (the shipped one is `prompts/templates/`):

    plan/instructions.txt      system message for planning a layout from a caption
    plan/examples/*.txt        one example per file, read in sorted order
    edit/instructions.txt      system message for editing a layout over turns
    edit/examples/*.txt        one conversation per file, read in sorted order
    story/instructions.txt     added to the planning instructions for a picture of a series
                               whose earlier pictures' objects recur (optional: the shipped
                               one is used when a folder has none)

An example file is a sequence of turns. A turn starts with a `Caption: ...` line (the first
turn) or a `Request: ...` line (a later turn) and is followed by its layout in the template
format. A plan example has one turn; in an edit example the last turn is the answer.
Adding an example is adding a file; no code changes.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lmd.layouts import Layout, LayoutParseError, LayoutWarning, parse
from lmd.prompts.errors import TemplateError

DEFAULT_TEMPLATE_DIR = Path(__file__).parent / "templates"
CANVAS = (512, 512)  # the canvas every template layout is written on (width, height)

_TURN = re.compile(r"^(Caption|Request)\s*:\s*(.*)$", re.M)

HistoryEntry = tuple[str, Layout]
"""One earlier turn of a conversation, as the LLM sees it: (the user's text, its layout)."""


@dataclass(frozen=True)
class Example:
    """One in-context example: earlier turns, then the text and layout the LLM should answer."""

    history: tuple[HistoryEntry, ...]
    text: str
    layout: Layout
    source: str  # file name, for error messages


@dataclass(frozen=True)
class Template:
    """Instructions and examples for planning and editing, plus a hash of the files' contents."""

    plan_instructions: str
    plan_examples: tuple[Example, ...]
    edit_instructions: str
    edit_examples: tuple[Example, ...]
    hash: str
    """Of the plan and edit files; the story note reaches a reply's cache key in its messages."""
    story_instructions: str = ""

    def plan_messages(self, caption: str) -> list[dict]:
        """Chat messages asking for the layout of `caption`."""
        messages = [{"role": "system", "content": self.plan_instructions}]
        for ex in self.plan_examples:
            messages.append({"role": "user", "content": plan_query(ex.text)})
            messages.append({"role": "assistant", "content": ex.layout.to_llm_text()})
        messages.append({"role": "user", "content": plan_query(caption)})
        return messages

    def story_messages(self, caption: str, cast: Sequence[str]) -> list[dict]:
        """Chat messages asking for the layout of `caption`, one picture of a series whose
        earlier pictures drew the objects `cast` (their names are to be kept as they are)."""
        messages = self.plan_messages(caption)
        if cast:
            messages[0] = {
                "role": "system",
                "content": f"{self.plan_instructions}\n\n{self.story_instructions}".strip(),
            }
            messages[-1] = {"role": "user", "content": story_query(caption, cast)}
        return messages

    def edit_messages(self, history: Sequence[HistoryEntry], request: str) -> list[dict]:
        """Chat messages asking for the complete layout after `request`, given `history`."""
        messages = [{"role": "system", "content": self.edit_instructions}]
        for ex in self.edit_examples:
            messages.append({"role": "user", "content": edit_query(ex.history, ex.text)})
            messages.append({"role": "assistant", "content": ex.layout.to_llm_text()})
        messages.append({"role": "user", "content": edit_query(history, request)})
        return messages


def plan_query(caption: str) -> str:
    return f"Caption: {_one_line(caption)}"


def story_query(caption: str, cast: Sequence[str]) -> str:
    names = ", ".join(repr(_one_line(name)) for name in cast)
    return f"{plan_query(caption)}\nObjects of the earlier pictures: {names}"


def edit_query(history: Sequence[HistoryEntry], request: str) -> str:
    """The conversation so far in template format, then the new request."""
    if not history:
        raise ValueError("an edit needs at least one earlier turn (the caption and its layout)")
    turns = []
    for i, (text, layout) in enumerate(history):
        if (layout.width, layout.height) != CANVAS:
            layout = layout.scaled(*CANVAS)  # the LLM reasons on the template's canvas
        label = "Caption" if i == 0 else "Request"
        turns.append(f"{label}: {_one_line(text)}\n{layout.to_llm_text()}")
    history_text = "\n\n".join(turns)
    return (
        f"The conversation so far:\n\n{history_text}\n\n"
        f"New request: {_one_line(request)}\n"
        "Answer with the complete new layout."
    )


def load_template(template_dir: str | Path | None = None) -> Template:
    """Read a template folder (default: the shipped one); raises `TemplateError` if malformed."""
    root = Path(template_dir) if template_dir is not None else DEFAULT_TEMPLATE_DIR
    if not root.is_dir():
        raise TemplateError(f"template folder {str(root)!r} does not exist")
    files = {
        "plan/instructions.txt": _read(root / "plan" / "instructions.txt"),
        "edit/instructions.txt": _read(root / "edit" / "instructions.txt"),
    }
    plan_examples, edit_examples = [], []
    for kind, examples in (("plan", plan_examples), ("edit", edit_examples)):
        for path in sorted((root / kind / "examples").glob("*.txt")):
            text = _read(path)
            files[f"{kind}/examples/{path.name}"] = text
            examples.append(_example(text, f"{kind}/examples/{path.name}", plan=kind == "plan"))
    if not plan_examples:
        raise TemplateError(f"no plan examples in {str(root / 'plan' / 'examples')!r}")
    story = root / "story" / "instructions.txt"
    if not story.is_file():
        story = DEFAULT_TEMPLATE_DIR / "story" / "instructions.txt"
    return Template(
        plan_instructions=files["plan/instructions.txt"].strip(),
        plan_examples=tuple(plan_examples),
        edit_instructions=files["edit/instructions.txt"].strip(),
        edit_examples=tuple(edit_examples),
        hash=_hash(files),
        story_instructions=_read(story).strip(),
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise TemplateError(f"cannot read template file {str(path)!r}: {e.strerror}") from None


def _example(text: str, source: str, plan: bool) -> Example:
    marks = list(_TURN.finditer(text))
    if not marks or text[: marks[0].start()].strip():
        raise TemplateError(f"{source}: an example starts with a 'Caption: ...' line")
    turns = []
    for mark, nxt in zip(marks, [*marks[1:], None], strict=True):
        body = text[mark.end() : nxt.start() if nxt else len(text)]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", LayoutWarning)  # examples must be exact
                layout = parse(body, *CANVAS)
        except (LayoutParseError, LayoutWarning) as e:
            problem = f"{source}: the layout of {mark.group(2)!r} is wrong: {e}"
            raise TemplateError(problem) from None
        turns.append((mark.group(2).strip(), layout))
    if plan and len(turns) != 1:
        raise TemplateError(f"{source}: a plan example has exactly one 'Caption:' turn")
    if not plan and len(turns) < 2:
        raise TemplateError(f"{source}: an edit example needs a caption and at least one request")
    *history, (last_text, last_layout) = turns
    return Example(tuple(history), last_text, last_layout, source)


def _hash(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return h.hexdigest()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
