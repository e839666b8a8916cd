"""What a person reads when the LLM cannot be asked: how the connection failed, what a server
sent that was no answer, and the LLM named as the user named it (a URL, or a model)."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest
from lmd.prompts import LLMUnavailableError, Planner
from lmd.prompts.failures import where
from lmd.prompts.transport import RetryNotice

from tests.fixtures_llm import TEST_API_KEY, TEST_MODEL
from tests.test_planner_hostile import GOOD


@pytest.fixture(autouse=True)
def _warm(warm_litellm):
    """litellm's first-call imports must not count in these tests' time."""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.fixture
def web_page_server():
    """A server that answers every request 200 with an HTML page (a proxy, a wrong URL)."""
    seen = []

    class Page(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.path)
            body = b"<html><body>Welcome to nginx!</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def planner(url: str, notices: list, retries: int = 1) -> Planner:
    return Planner(
        model=TEST_MODEL, api_base=url, api_key=TEST_API_KEY, cache=False, retry_wait=0.001,
        max_retries=retries, on_retry=notices.append,
    )  # fmt: skip


def test_a_refused_connection_says_so_not_http_500():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    notices: list[RetryNotice] = []
    with pytest.raises(LLMUnavailableError) as caught:
        planner(url, notices).plan("a cat")
    assert str(caught.value) == (
        f"could not reach the LLM at {url} (2 tries): "
        "connection refused: nothing is listening at that address"
    )
    assert str(notices[0]) == (
        f"the LLM at {url} failed (connection refused: nothing is listening at that address); "
        "retry 1 of 1 in 0.0 s"
    )


def test_an_answer_that_is_not_json_says_what_came_and_is_not_retried(web_page_server):
    url, seen = web_page_server
    notices: list[RetryNotice] = []
    with pytest.raises(LLMUnavailableError) as caught:
        planner(url, notices, retries=3).plan("a cat")
    assert str(caught.value) == (
        f"the LLM at {url} answered, but not with JSON (it sent '<html><body>Welcome to "
        "nginx!</body></html>'); check the base URL (an OpenAI-compatible server's usually "
        "ends in /v1)"
    )
    assert "HTTP 500" not in str(caught.value)
    assert seen == ["/chat/completions"] and notices == []  # asking again would not help


def test_an_llm_without_a_base_url_is_named_by_its_model(monkeypatch):
    monkeypatch.delenv("LMD_LLM_BASE_URL", raising=False)
    assert where("gpt-4.1-mini", None) == "gpt-4.1-mini"
    assert where("openai/x", "http://gpu:8000/v1") == "at http://gpu:8000/v1"
    notice = RetryNotice(where("gpt-4.1-mini", None), 1, 4, 1.0, "HTTP 503: busy")
    assert str(notice) == "the LLM gpt-4.1-mini failed (HTTP 503: busy); retry 1 of 4 in 1.0 s"
    port = closed_port()
    monkeypatch.setenv("OLLAMA_API_BASE", f"http://127.0.0.1:{port}")  # litellm's own variable
    with pytest.raises(LLMUnavailableError) as caught:
        Planner(model="ollama/llama3.1", cache=False, max_retries=0).plan("a cat")
    assert str(caught.value) == (
        "could not reach the LLM ollama/llama3.1 (1 try): "
        "connection refused: nothing is listening at that address"
    )


def test_a_layout_over_the_box_cap_is_sent_back_to_the_llm(llm_server, make_planner):
    crowd = "Objects: [" + ", ".join(f"('a bird', [{i}, 10, 20, 20])" for i in range(40)) + "]"
    llm_server.enqueue(crowd + "\nBackground prompt: a sky", GOOD)
    result = make_planner(max_boxes=30).complete(make_planner().plan_messages("many birds"))
    assert result.attempts == 2 and result.layout.names == ["a cat", "a dog"]
    correction = llm_server.messages[1][-1]["content"]
    assert "the layout has 40 objects, more than the 30 a picture may have" in correction
