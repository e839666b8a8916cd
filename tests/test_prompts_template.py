"""The template files: coverage of the examples, message building, user-added examples, hash."""

import re
import shutil

import pytest
from lmd.layouts import Box, Layout
from lmd.prompts import DEFAULT_TEMPLATE_DIR, TemplateError, load_template


@pytest.fixture
def template_copy(tmp_path):
    dst = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATE_DIR, dst)
    return dst


def test_shipped_examples_cover_counts_negation_and_languages():
    t = load_template()
    assert len(t.plan_examples) >= 7
    names = [[b.name for b in ex.layout.boxes] for ex in t.plan_examples]
    assert any(len(n) != len(set(n)) for n in names), "an example with repeated objects"
    assert sum(bool(ex.layout.negative) for ex in t.plan_examples) >= 2, "negation examples"
    non_english = [ex for ex in t.plan_examples if re.search(r"[^\x00-\x7f]", ex.text)]
    assert len(non_english) >= 3
    for ex in t.plan_examples + t.edit_examples:  # layouts always English
        for text in [*(b.name for b in ex.layout.boxes), ex.layout.background, ex.layout.negative]:
            assert text.isascii(), (ex.source, text)
    assert len(t.edit_examples) >= 3
    assert any(not ex.text.isascii() for ex in t.edit_examples)


def test_instructions_state_canvas_box_format_and_english():
    t = load_template()
    for text in (t.plan_instructions, t.edit_instructions):
        assert "512x512" in text
        assert "top-left x, top-left y, box width, box height" in text
        assert "English" in text
    assert "EXACTLY" in t.edit_instructions


def test_plan_messages_are_system_then_example_pairs_then_query():
    t = load_template()
    messages = t.plan_messages("三只猫在沙发上")
    assert messages[0]["role"] == "system"
    roles = [m["role"] for m in messages[1:-1]]
    assert roles == ["user", "assistant"] * len(t.plan_examples)
    assert messages[-1] == {"role": "user", "content": "Caption: 三只猫在沙发上"}
    assert messages[2]["content"].startswith("Objects: [(")


def test_edit_messages_carry_the_history_in_template_format():
    t = load_template()
    first = Layout(boxes=[Box(name="a cat", x=10, y=20, w=100, h=120)], background="A lawn")
    second = Layout(boxes=[Box(name="a cat", x=300, y=20, w=100, h=120)], background="A lawn")
    messages = t.edit_messages(
        [("a cat on a lawn", first), ("move it right", second)], "make it black"
    )
    query = messages[-1]["content"]
    assert "Caption: a cat on a lawn\n" + first.to_llm_text() in query
    assert "Request: move it right\n" + second.to_llm_text() in query
    assert query.index(first.to_llm_text()) < query.index(second.to_llm_text())
    assert "New request: make it black" in query
    big = first.scaled(1024, 1024)  # history on another canvas is shown on the template's
    assert t.edit_messages([("a cat", big)], "x")[-1]["content"].count("[10, 20, 100, 120]") == 1
    with pytest.raises(ValueError, match="earlier turn"):
        t.edit_messages([], "make it black")


def test_a_user_adds_an_example_file_without_code(template_copy):
    before = load_template(template_copy)
    (template_copy / "plan" / "examples" / "99-german.txt").write_text(
        "Caption: Ein Hund ohne Katzen\n"
        "Objects: [('a dog', [100, 100, 200, 200])]\n"
        "Background prompt: A realistic scene\n"
        "Negative prompt: cats\n",
        encoding="utf-8",
    )
    after = load_template(template_copy)
    assert len(after.plan_examples) == len(before.plan_examples) + 1
    assert after.plan_examples[-1].text == "Ein Hund ohne Katzen"
    assert after.hash != before.hash
    assert load_template(template_copy).hash == after.hash


def test_malformed_example_names_its_file(template_copy):
    (template_copy / "plan" / "examples" / "50-bad.txt").write_text("Caption: x\nObjects: [(")
    with pytest.raises(TemplateError, match="50-bad.txt"):
        load_template(template_copy)


def test_off_canvas_example_is_rejected(template_copy):
    (template_copy / "plan" / "examples" / "50-big.txt").write_text(
        "Caption: x\nObjects: [('a dog', [400, 0, 200, 100])]\nBackground prompt: y\n"
    )
    with pytest.raises(TemplateError, match="50-big.txt"):
        load_template(template_copy)


def test_missing_folder_is_a_template_error(tmp_path):
    with pytest.raises(TemplateError, match="does not exist"):
        load_template(tmp_path / "nope")
