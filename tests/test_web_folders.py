"""`lmd web` output folders say which conversation they hold: when it began and its first words
(`lmd.web.folders`), and each page's conversations get one each. No gradio needed."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

import pytest
from lmd.layouts import Layout

from lmd.api import RenderSettings
from lmd.web.folders import folder_name, new_folder, words_of
from lmd.web.pool import RenderPool
from lmd.web.state import TurnSettings, WebSession
from tests.scripted_planner import CAT_DOG, ScriptedPlanner, ScriptedPlannerError
from tests.test_web_pool import Painter

LMD = RenderSettings(model="random:tiny", method="lmd")
WHEN = datetime(2025, 12, 4, 5, 12, 33)


@pytest.mark.parametrize(
    ("request_text", "words"),
    [
        ("A cat and a dog, on a beach!", "a-cat-and-a-dog-on"),
        ("  move   the dog\tup ", "move-the-dog-up"),
        ("../../etc/passwd", "etc-passwd"),
        ("C:\\Windows\\system32 <x> | y? *z*", "c-windows-system32-x-y-z"),
        ("un gato a la izquierda de un perro", "un-gato-a-la-izquierda-de"),
        ("一只猫在狗的左边", "一只猫在狗的左边"),
        ("बिल्ली और कुत्ता", "बिल्ली-और-कुत्ता"),  # the vowel signs stay with their letters
        ("قطة وكلب", "قطة-وكلب"),
        ("!!! ... ???", "conversation"),
        ("", "conversation"),
        ("a" * 100, "a" * 40),
        ("supercalifragilistic expialidocious wonderfully", "supercalifragilistic-expialidocious"),
    ],
)  # fmt: skip
def test_the_first_words_are_kept_and_nothing_unsafe_in_a_file_name(request_text, words):
    assert words_of(request_text) == words
    # Letters, digits and marks of any script, joined by single dashes: no / \\ . : * ? < > |
    assert all(unicodedata.category(c)[0] in "LNM" for c in words.replace("-", ""))
    assert "--" not in words and not words.startswith("-") and not words.endswith("-")


def test_the_name_begins_with_when_the_conversation_began():
    assert folder_name("a cat and a dog", WHEN) == "2025-12-04_051233_a-cat-and-a-dog"


def test_two_conversations_begun_at_once_get_folders_of_their_own(tmp_path):
    made = [new_folder(tmp_path / "out", "a cat", WHEN) for _ in range(3)]
    assert [f.name for f in made] == [
        "2025-12-04_051233_a-cat", "2025-12-04_051233_a-cat-2", "2025-12-04_051233_a-cat-3",
    ]  # fmt: skip
    assert all(f.is_dir() and f.parent == tmp_path / "out" for f in made)


def settings(*replies) -> TurnSettings:
    return TurnSettings(render=LMD, planner=ScriptedPlanner(*replies), seed=3)


def test_a_pages_conversations_are_named_for_their_first_request(tmp_path):
    page = WebSession(tmp_path, RenderPool(1, load=Painter))
    page.send("A cat and a dog, please", settings(CAT_DOG))
    first = page.folder
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d{6}_a-cat-and-a-dog-please", first.name)
    assert first.parent == tmp_path and (first / "session.json").exists()
    assert (first / "turn-001.png").exists()
    page.send("move the dog left", settings(CAT_DOG))
    assert page.folder == first  # a later request stays in the conversation's folder
    page.start_over()
    layout = Layout.model_validate(
        {"boxes": [{"name": "a red ball", "x": 0, "y": 0, "w": 50, "h": 50}],
         "background": "a gym"}
    )  # fmt: skip
    page.edit(layout, settings())  # a new conversation begun by hand: named by its objects
    assert page.folder.name.endswith("_a-red-ball") and page.folder != first
    assert page.owns(first / "turn-001.png") and page.owns(page.folder / "turn-001.png")


def test_a_first_request_that_fails_leaves_no_folder_behind(tmp_path):
    page = WebSession(tmp_path, RenderPool(1, load=Painter))
    with pytest.raises(ScriptedPlannerError):
        page.send("gibberish", settings(ScriptedPlannerError("no layout")))
    page.send("a cat and a dog", settings(CAT_DOG))
    assert [f.name.split("_", 2)[2] for f in tmp_path.iterdir()] == ["a-cat-and-a-dog"]


def test_an_opened_session_is_named_for_its_first_request(tmp_path):
    pool = RenderPool(1, load=Painter)
    theirs = WebSession(tmp_path / "theirs", pool)
    theirs.send("a cat and a dog", settings(CAT_DOG))
    mine = WebSession(tmp_path / "mine", pool)
    mine.open(theirs.session_file, settings())
    assert mine.folder.parent == tmp_path / "mine"
    assert mine.folder.name.endswith("_a-cat-and-a-dog")
    assert (mine.folder / "session.json").exists()
