"""The planner through the real litellm client against the loopback OpenAI-compatible server."""

import json
import shutil

import pytest
from lmd.layouts import Box, Layout, LayoutWarning
from lmd.prompts import DEFAULT_TEMPLATE_DIR, LLMUnavailableError, Planner, PlannerError

GOOD = (
    "Objects: [('a cat', [40, 200, 180, 200]), ('a dog', [290, 190, 190, 220])]\n"
    "Background prompt: A realistic photo of a lawn\n"
    "Negative prompt: birds"
)
CAT_AND_DOG = Layout(
    boxes=[
        Box(name="a cat", x=40, y=200, w=180, h=200),
        Box(name="a dog", x=290, y=190, w=190, h=220),
    ],
    background="A realistic photo of a lawn",
    negative="birds",
)


def test_good_reply_is_a_layout_and_the_request_is_the_template(llm_server, make_planner):
    llm_server.enqueue(GOOD)
    planner = make_planner()
    result = planner.complete(planner.plan_messages("a cat and a dog on a lawn without birds"))
    assert result.layout == CAT_AND_DOG
    assert (result.attempts, result.cached, result.reply) == (1, False, GOOD)
    [request] = llm_server.requests
    assert request["model"] == "test-model"
    assert request["temperature"] == 0.25 and request["max_tokens"] == 900
    assert request["messages"] == planner.plan_messages("a cat and a dog on a lawn without birds")
    assert llm_server.headers[0]["authorization"] == "Bearer sk-test-key"


def test_chatter_and_markdown_fences_around_the_answer(llm_server, make_planner):
    llm_server.enqueue(
        f"Sure! Here is the layout:\n```\n{GOOD}\n```\nLet me know if you need more."
    )
    assert make_planner().plan("a cat and a dog") == CAT_AND_DOG


def test_server_errors_and_rate_limits_are_retried(llm_server, make_planner):
    llm_server.enqueue(500, 429, 503, GOOD)
    result = make_planner().complete(make_planner().plan_messages("a cat and a dog"))
    assert result.layout == CAT_AND_DOG and result.attempts == 1
    assert len(llm_server.requests) == 4


def test_timeouts_are_retried(llm_server, make_planner):
    llm_server.enqueue(GOOD, delay=1.5)
    llm_server.enqueue(GOOD)
    assert make_planner(attempt_timeout=0.3).plan("a cat and a dog") == CAT_AND_DOG
    assert len(llm_server.requests) == 2


def test_persistent_server_errors_give_up_after_max_retries(llm_server, make_planner):
    llm_server.default = 502
    with pytest.raises(LLMUnavailableError, match=r"kept failing \(3 tries\)"):
        make_planner(max_retries=2).plan("a cat")
    assert len(llm_server.requests) == 3


def test_garbage_then_a_repaired_reply(llm_server, make_planner):
    llm_server.enqueue("I would put the cat on the left.", GOOD)
    planner = make_planner()
    result = planner.complete(planner.plan_messages("a cat and a dog"))
    assert result.layout == CAT_AND_DOG and result.attempts == 2
    second = llm_server.messages[1]
    assert second[:-2] == planner.plan_messages("a cat and a dog")
    assert second[-2] == {"role": "assistant", "content": "I would put the cat on the left."}
    assert second[-1]["role"] == "user"
    assert "no 'Background prompt:' line" in second[-1]["content"]  # the LayoutParseError text


def test_garbage_forever_raises_planner_error_with_the_attempt_count(llm_server, make_planner):
    llm_server.default = "Objects: [('a cat', [1, 2, 3])]\nBackground prompt: a lawn"
    with pytest.raises(PlannerError, match="answered 3 times") as info:
        make_planner().plan("a cat")
    assert info.value.attempts == 3
    assert "needs a box of 4 numbers" in str(info.value)
    assert not isinstance(info.value, LLMUnavailableError)
    assert len(llm_server.requests) == 3
    with pytest.raises(PlannerError, match="answered once"):
        make_planner(max_repairs=0).plan("a dog")


def test_a_failure_says_what_went_wrong_in_words_for_people(llm_server, make_planner):
    """What is written for the LLM (how to answer) goes to the LLM, never into the error."""
    llm_server.default = "I'm sorry, I can't draw that."
    with pytest.raises(PlannerError) as info:
        make_planner(max_repairs=1).plan("a cat")
    message = str(info.value)
    correction = llm_server.messages[1][-1]["content"]
    assert "end the answer with a 'Background prompt: ...' line" in correction  # for the LLM
    assert "end the answer" not in message and "Answer again" not in message
    assert "no 'Background prompt:' line" in message  # what was wrong
    assert "it began \"I'm sorry, I can't draw that.\"" in message  # what the LLM said
    assert message.endswith("try again, say it differently, or use another LLM")


def test_cache_replays_without_the_server(llm_server, make_planner):
    llm_server.enqueue(GOOD)
    make_planner().plan("a cat and a dog")
    llm_server.stop()
    planner = make_planner()
    result = planner.complete(planner.plan_messages("a cat and a dog"))
    assert result.cached and result.attempts == 0 and result.layout == CAT_AND_DOG
    assert len(llm_server.requests) == 1
    with pytest.raises(LLMUnavailableError, match="could not reach"):
        make_planner(max_retries=0).plan("a different caption")


def test_cache_false_bypasses_and_other_settings_miss(llm_server, make_planner, tmp_path):
    llm_server.default = GOOD
    make_planner().plan("a cat")
    make_planner(cache=False).plan("a cat")
    make_planner(temperature=0.7).plan("a cat")
    make_planner(model="openai/other-model").plan("a cat")
    templates = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATE_DIR, templates)
    (templates / "plan" / "instructions.txt").write_text("Draw boxes. 512x512.", encoding="utf-8")
    make_planner(template_dir=templates).plan("a cat")
    assert len(llm_server.requests) == 5
    make_planner().plan("a cat")
    assert len(llm_server.requests) == 5


def test_corrupt_cache_file_is_ignored_and_rewritten(llm_server, make_planner, llm_cache_dir):
    llm_server.enqueue(GOOD, GOOD, GOOD)
    planner = make_planner()
    planner.plan("a cat and a dog")
    [entry] = list(llm_cache_dir.rglob("*.json"))
    assert json.loads(entry.read_text())["reply"] == GOOD
    entry.write_text('{"reply": "Objects: [(')
    assert planner.plan("a cat and a dog") == CAT_AND_DOG
    entry.write_text("not json")
    assert planner.complete(planner.plan_messages("a cat and a dog")).cached is False
    assert planner.complete(planner.plan_messages("a cat and a dog")).cached is True
    assert len(llm_server.requests) == 3


def test_edit_sends_the_history_in_template_format(llm_server, make_planner):
    moved = GOOD.replace("[290, 190, 190, 220]", "[290, 10, 190, 220]")
    llm_server.enqueue(moved)
    planner = make_planner()
    history = [("a cat and a dog on a lawn", CAT_AND_DOG)]
    layout = planner.edit(history, "move the dog up")
    assert layout.boxes[1].y == 10 and layout.boxes[0] == CAT_AND_DOG.boxes[0]
    sent = llm_server.messages[0]
    assert sent == planner.edit_messages(history, "move the dog up")
    assert sent[0]["content"] == planner.template.edit_instructions
    assert "Caption: a cat and a dog on a lawn\n" + CAT_AND_DOG.to_llm_text() in sent[-1]["content"]
    assert sent[-1]["content"].rstrip().endswith("Answer with the complete new layout.")


def test_non_english_caption_flows_through(llm_server, make_planner):
    llm_server.enqueue(GOOD)
    assert make_planner().plan("草地上的一只猫和一只狗，没有鸟") == CAT_AND_DOG
    assert llm_server.messages[0][-1]["content"] == "Caption: 草地上的一只猫和一只狗，没有鸟"


def test_clipped_boxes_are_reported_as_warnings(llm_server, make_planner):
    llm_server.enqueue("Objects: [('a cat', [400, 0, 200, 100])]\nBackground prompt: a lawn")
    planner = make_planner()
    with pytest.warns(LayoutWarning, match="clipped box 'a cat'"):
        result = planner.complete(planner.plan_messages("a cat"))
    assert result.layout.boxes[0].w == 112 and "clipped" in result.warnings[0]


def test_missing_api_key_is_one_sentence_without_network(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("LMD_LLM_BASE_URL", raising=False)
    planner = Planner(model="gpt-4.1-mini", cache=tmp_path)
    with pytest.raises(LLMUnavailableError, match="no API key for openai: set OPENAI_API_KEY"):
        planner.plan("a cat")
    assert capsys.readouterr() == ("", "")  # a library prints nothing


def test_rejected_key_is_not_retried(llm_server, make_planner, capsys):
    llm_server.default = 401
    with pytest.raises(LLMUnavailableError, match="rejected the API key"):
        make_planner().plan("a cat")
    assert len(llm_server.requests) == 1
    assert capsys.readouterr() == ("", "")


def test_bad_base_url_is_refused_up_front():
    with pytest.raises(ValueError, match="http\\(s\\) URL"):
        Planner(model="openai/x", llm_base_url="localhost:8000", cache=False)


def test_environment_defaults(monkeypatch, llm_server, tmp_path):
    monkeypatch.setenv("LMD_LLM", "local-model")  # no provider prefix: served by llm_base_url
    monkeypatch.setenv("LMD_LLM_BASE_URL", llm_server.url)
    monkeypatch.setenv("LMD_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm_server.enqueue(GOOD)
    planner = Planner(retry_wait=0.001)
    assert (planner.model, planner.llm_base_url) == ("local-model", llm_server.url)
    assert planner.plan("a cat and a dog") == CAT_AND_DOG
    assert llm_server.requests[0]["model"] == "local-model"
    assert list((tmp_path / "c" / "llm").rglob("*.json"))


def test_unwritable_cache_warns_but_returns_the_layout(llm_server, make_planner, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    llm_server.enqueue(GOOD)
    with pytest.warns(RuntimeWarning, match="could not cache"):
        assert make_planner(cache=blocker).plan("a cat and a dog") == CAT_AND_DOG


def test_one_name_per_thing_old_keywords_warn_for_one_release(llm_server, monkeypatch):
    """`llm_base_url` and `llm_timeout` as in `generate()` and the CLI; `attempt_timeout` for
    each attempt. `api_base=` and `timeout=` still work, with a DeprecationWarning."""
    import inspect

    from lmd.prompts import Planner

    from lmd import generate

    shared = {"llm_base_url", "llm_timeout"}
    assert shared <= set(inspect.signature(Planner).parameters)
    assert shared <= set(inspect.signature(generate).parameters)
    with pytest.warns(DeprecationWarning, match=r"Planner\(llm_base_url=\.\.\.\)"):
        old = Planner(model="openai/x", api_base=llm_server.url, cache=False)
    with pytest.warns(DeprecationWarning, match=r"Planner\(attempt_timeout=\.\.\.\)"):
        slow = Planner(model="openai/x", timeout=7.0, cache=False)
    assert old.llm_base_url == llm_server.url and slow.attempt_timeout == 7.0
    with pytest.warns(DeprecationWarning):
        assert old.api_base == llm_server.url
    with pytest.raises(TypeError, match="'api_bse'"):
        Planner(model="openai/x", api_bse="http://x", cache=False)
