"""The planner against hostile servers and replies: a total deadline, Retry-After, retry
notices, a reply size cap, bounded correction requests, and what is (not) cached."""

import time
import warnings

import pytest
from lmd.prompts import EXCERPT_CHARS, LanguageWarning, LLMUnavailableError, PlannerError

from tests.fixtures_llm import SILENT, ScriptedLLMServer, Status, Trickle

GOOD = (
    "Objects: [('a cat', [40, 200, 180, 200]), ('a dog', [290, 190, 190, 220])]\n"
    "Background prompt: A realistic photo of a lawn\nNegative prompt: birds"
)
SLACK = 3.0  # seconds a loaded CI machine may add to a deadline


@pytest.fixture(autouse=True)
def _warm(warm_litellm):
    """Deadlines here are short: litellm's first-call imports must not count."""


def _fails_within(planner, seconds: float) -> tuple[str, float]:
    start = time.monotonic()
    with pytest.raises(LLMUnavailableError) as info:
        planner.plan("a cat")
    took = time.monotonic() - start
    message = str(info.value)
    assert "\n" not in message and len(message) < 600  # one line
    assert took < seconds + SLACK, (took, message)
    return message, took


def test_a_silent_server_fails_within_the_deadline(llm_server, make_planner):
    llm_server.default = SILENT
    message, took = _fails_within(make_planner(attempt_timeout=30, llm_timeout=1.5), 1.5)
    assert took >= 1.4
    assert "within the 1.5 s deadline" in message and "1 try" in message


def test_a_trickling_server_fails_within_the_deadline(llm_server, make_planner):
    llm_server.default = Trickle(GOOD, interval=0.2)  # ~600 bytes: two minutes to send
    message, took = _fails_within(make_planner(attempt_timeout=30, llm_timeout=1.5), 1.5)
    assert took >= 1.4 and "within the 1.5 s deadline" in message


def test_server_errors_stop_at_the_deadline_not_after_every_retry(llm_server, make_planner):
    llm_server.default = 500
    planner = make_planner(max_retries=50, retry_wait=0.2, llm_timeout=2.0)
    message, _ = _fails_within(planner, 2.0)
    assert "within the 2 s deadline" in message and "HTTP 500" in message
    assert 2 <= len(llm_server.requests) < 10


def test_retry_after_is_honoured_and_each_retry_is_announced(llm_server, make_planner):
    llm_server.enqueue(Status(429, {"Retry-After": "1"}), 503, GOOD)
    notices = []
    planner = make_planner(retry_wait=0.01, on_retry=notices.append)
    start = time.monotonic()
    assert planner.plan("a cat").names == ["a cat", "a dog"]
    assert time.monotonic() - start >= 1.0
    assert [(n.attempt, n.retries) for n in notices] == [(1, 4), (2, 4)]
    assert notices[0].wait == 1.0 and notices[1].wait < 0.1
    assert "HTTP 429" in notices[0].error and "HTTP 503" in notices[1].error
    line = str(notices[0])
    assert line.startswith(f"the LLM at {llm_server.url} failed (scripted HTTP 429")
    assert line.endswith("retry 1 of 4 in 1.0 s") and "\n" not in line


def test_a_retry_after_past_the_deadline_ends_the_request_at_once(llm_server, make_planner):
    llm_server.default = Status(429, {"Retry-After": "30"})
    message, took = _fails_within(make_planner(llm_timeout=5), 0.0)
    assert "within the 5 s deadline" in message and "HTTP 429" in message
    assert len(llm_server.requests) == 1


def test_an_oversized_reply_is_refused_and_only_an_excerpt_is_sent_back(
    llm_server, make_planner, llm_cache_dir
):
    junk = "Objects: [" + "x" * 5_000_000
    llm_server.enqueue(junk, GOOD)
    planner = make_planner()
    result = planner.complete(planner.plan_messages("a cat"))
    assert result.attempts == 2 and result.layout.names == ["a cat", "a dog"]
    correction = llm_server.messages[1]
    assert len(correction[-2]["content"]) <= EXCERPT_CHARS
    assert "5,000,010 characters long, more than the 100,000" in correction[-1]["content"]
    assert llm_server.sizes[1] < llm_server.sizes[0] + 2 * EXCERPT_CHARS + 1000  # not 5 MB
    [entry] = list(llm_cache_dir.rglob("*.json"))
    assert "xxxx" not in entry.read_text()


def test_a_reply_over_the_cap_forever_is_a_planner_error_and_never_cached(
    llm_server, make_planner, llm_cache_dir
):
    llm_server.default = GOOD + " " * 200
    with pytest.raises(PlannerError, match="characters long, more than the 100 a layout"):
        make_planner(max_reply_chars=100).plan("a cat")
    assert not list(llm_cache_dir.rglob("*.json"))


def test_the_parse_error_sent_back_is_bounded_too(llm_server, make_planner):
    llm_server.enqueue("Objects: [('" + "y" * 50_000 + "', [1, 2])]\nBackground prompt: b", GOOD)
    make_planner().plan("a cat")
    assert len(llm_server.messages[1][-1]["content"]) < 1000


def test_a_layout_that_lost_every_box_is_returned_but_not_cached(llm_server, make_planner):
    off = "Objects: [('a cat', [600, 600, 50, 50])]\nBackground prompt: a lawn"
    llm_server.default = off
    planner = make_planner()
    with pytest.warns(match="dropped box"):
        assert planner.plan("a cat").boxes == []
    with pytest.warns(match="dropped box"):
        planner.plan("a cat")
    assert len(llm_server.requests) == 2  # asked again: nothing was cached
    llm_server.default = GOOD
    planner.plan("a dog")
    planner.plan("a dog")
    assert len(llm_server.requests) == 3  # a good layout is cached


def test_the_cache_key_includes_the_server(llm_server, make_planner):
    other = ScriptedLLMServer()
    try:
        llm_server.default = GOOD
        other.default = GOOD.replace("a dog", "a fox")
        assert make_planner().plan("a cat").names == ["a cat", "a dog"]
        assert make_planner(llm_base_url=other.url).plan("a cat").names == ["a cat", "a fox"]
        assert make_planner(llm_base_url=other.url + "/").plan("a cat").names == ["a cat", "a fox"]
        assert len(other.requests) == 1 and len(llm_server.requests) == 1
    finally:
        other.stop()


def test_a_lone_surrogate_is_a_bad_reply_repaired_not_a_transport_error(llm_server, make_planner):
    llm_server.enqueue("Objects: [('a \ud800cat', [1, 2, 30, 40])]\nBackground prompt: a", GOOD)
    planner = make_planner()
    result = planner.complete(planner.plan_messages("a cat"))
    assert result.attempts == 2 and len(llm_server.requests) == 2  # one repair, no retries
    correction = llm_server.messages[1]
    assert correction[-2]["content"].startswith("Objects: [('a \ufffdcat'")
    assert "lone surrogate (U+D800)" in correction[-1]["content"]


def test_text_with_a_lone_surrogate_is_refused_before_asking(llm_server, make_planner):
    with pytest.raises(ValueError, match="lone surrogate"):
        make_planner().plan("a cat \udcff")  # what a bad byte in argv decodes to
    assert llm_server.requests == []


def test_non_english_names_are_warned_about_once_per_planner(llm_server, make_planner):
    chinese = GOOD.replace("a cat", "一只猫").replace("a dog", "一只狗")
    llm_server.default = chinese
    planner = make_planner(cache=False)
    with pytest.warns(LanguageWarning, match="'一只猫', '一只狗'.*English best") as caught:
        first = planner.complete(planner.plan_messages("一只猫和一只狗"))
    assert len([w for w in caught if w.category is LanguageWarning]) == 1
    assert first.language is not None
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        again_result = planner.complete(planner.plan_messages("一只猫"))
    assert not [w for w in again if w.category is LanguageWarning]
    assert again_result.language is None
    llm_server.default = GOOD.replace("a cat", "a piñata").replace("lawn", "café")
    with warnings.catch_warnings(record=True) as latin:
        warnings.simplefilter("always")
        make_planner(cache=False).plan("x")
    assert not [w for w in latin if w.category is LanguageWarning]  # Latin script is fine
