"""Direct dispatch (app/dispatch.py), served over real HTTP (uvicorn on loopback): the same
requests to an app that sends connectors' requests straight to their routes and to one
built with it off (every request through the framework) get the same status, headers in
order, body and log line: successes, refusals, routing misses, the 405s, an unexpected
error's 500, percent-encoded paths, HEAD, the OpenAI routes beside the simple chat, the
MCP endpoint, CORS, sample-data mode; and the requests it must leave to the framework do
not go direct."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.dispatch import Dispatch
from app.hot import HotPath
from tests.conftest import SECRET, LogCapture, make_settings
from tests.fake_openai import FakeOpenAI, json_answer
from tests.keys_support import sqlite_url
from tests.live import InThreadServer
from tests.stub_upstream import Reply, Seen, StubUpstream, default_reply

AUTH = {"Authorization": f"Bearer {SECRET}"}
ORIGIN = "https://app.example"
OPENAI_KEY = "sk-dispatch-upstream-key-000000"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def _layer(server: InThreadServer, kind: type[Any]) -> Any:
    layer: Any = server.server.config.app.middleware_stack
    while layer is not None and not isinstance(layer, kind):
        layer = getattr(layer, "app", None)
    return layer


@dataclass
class Pair:
    """The same app twice: `direct` with the mechanism on, `framework` with it off."""

    direct: InThreadServer
    framework: InThreadServer
    logs: LogCapture
    count: int = 0
    sent: list[bool] = field(default_factory=list)

    @property
    def dispatch(self) -> Dispatch:
        found = _layer(self.direct, Dispatch)
        assert found is not None
        return found

    def same(self, method: str, target: str, **request: Any) -> httpx.Response:
        """Send the request to both; assert the answers and log lines are the same; return
        the direct one. Notes in `sent` whether it went direct."""
        self.count += 1
        before = self.dispatch.sent
        answers, lines = [], []
        for side, server in (("d", self.direct), ("f", self.framework)):
            headers = {
                **request.get("headers", {}),
                "X-Request-Id": f"{side}-request-{self.count:04d}",
            }
            logged = len(self.logs.records)
            answer = httpx.request(
                method, server.origin + target, **{**request, "headers": headers}
            )
            answers.append(answer)
            # The gateway answers with the upstream's request id when it has one.
            lines.append(
                self._line(answer.headers.get("x-request-id", headers["X-Request-Id"]), logged)
            )
        self.sent.append(self.dispatch.sent > before)
        direct, framework = answers
        assert direct.status_code == framework.status_code, target
        assert _comparable(direct) == _comparable(framework), target
        assert direct.content == framework.content, target
        assert lines[0] == lines[1], target
        assert _layer(self.framework, Dispatch) is None
        return direct

    def _line(self, request_id: str, logged: int) -> dict[str, Any]:
        """The request's log line, among those written since `logged` lines."""
        deadline = time.monotonic() + 5  # the line is written as the answer's last byte goes
        while True:
            found = [
                fields
                for record in self.logs.records[logged:]
                if isinstance(fields := getattr(record, "fields", None), dict)
                and fields.get("event") == "request"
                and fields["request_id"] == request_id
            ]
            if found or time.monotonic() > deadline:
                assert len(found) == 1, request_id
                skip = ("latency_ms", "request_id")
                return {k: v for k, v in found[0].items() if k not in skip}
            time.sleep(0.01)


_VARYING = (  # the cache's ttl may be a second apart; the ports differ
    (re.compile(r"\bttl=\d+"), "ttl=N"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
)
_DIGITS = re.compile(r"\d+")


def _comparable(answer: httpx.Response) -> list[tuple[str, str]]:
    fields = []
    for name, value in answer.headers.raw:
        text = value.decode()
        if name.lower() == b"date":
            continue
        if name.lower() == b"x-request-id" and text[:2] in ("d-", "f-"):
            text = text[2:]
        if b"ratelimit" in name.lower() and b"policy" not in name.lower():
            # The limit state: its reset moves with the clock, its remaining count with the
            # gate's leases (taken ahead, in the background); the fields and order stay.
            text = _DIGITS.sub("N", text)
        for pattern, replacement in _VARYING:
            text = pattern.sub(replacement, text)
        fields.append((name.decode(), text))
    return fields


def _answer(seen: Seen) -> Reply:
    if "fail" in str(seen.query):
        return Reply(status=500, body=b"{}")
    if seen.path.endswith("b" * 32):
        return Reply(status=404, body=b"{}")
    return default_reply(seen)


@pytest.fixture
def stub() -> Iterator[StubUpstream]:
    with StubUpstream(_answer) as upstream:
        yield upstream


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        upstream.reset(lambda seen: json_answer(COMPLETION))
        yield upstream


def _pair(
    tmp_path: Path, logs: LogCapture, options: dict[str, Any], **settings: Any
) -> Iterator[Pair]:
    servers = []
    for name, direct in (("direct", True), ("framework", False)):
        folder = tmp_path / name
        folder.mkdir()
        values = {"store_url": sqlite_url(folder), "cors_origins": [ORIGIN], **settings}
        servers.append(InThreadServer(make_settings(**values), direct=direct, **options))
    with servers[0] as direct_server, servers[1] as framework_server:
        yield Pair(direct_server, framework_server, logs)


@pytest.fixture
def pair(stub: StubUpstream, fake: FakeOpenAI, tmp_path: Path, logs: LogCapture) -> Iterator[Pair]:
    yield from _pair(
        tmp_path,
        logs,
        {},
        listen_api_base_url=stub.base_url,
        cache_enabled=True,
        openai_api_key=OPENAI_KEY,
        openai_base_url=fake.base_url,
        openai_timeout=2.0,
        rate_limit_rpm=100,
    )


SEARCH = "/api/v2/search_episodes?q=rust"


def test_operation_routes_answer_the_same_direct(pair: Pair) -> None:
    miss = pair.same("GET", SEARCH, headers=AUTH)
    assert miss.status_code == 200 and "uri-miss" in miss.headers["cache-status"]
    # The hot path learnt the target from the route served directly: the next is its hit.
    hot = _layer(pair.direct, HotPath)
    hit = pair.same("GET", SEARCH, headers=AUTH)
    assert hit.headers["cache-status"].startswith("keyless; hit") and hot.answered == 1
    head = pair.same("HEAD", SEARCH, headers=AUTH)
    assert head.status_code == 200 and head.content == b""
    assert pair.same("GET", "/api/v2/search_episodes", headers=AUTH).status_code == 422
    refused = pair.same("GET", SEARCH)
    assert refused.status_code == 401 and refused.headers["www-authenticate"]
    assert pair.same("GET", "/api/v2/%73earch_episodes?q=encoded", headers=AUTH).is_success
    assert pair.same("GET", "/api/v2/episodes/" + "a" * 32, headers=AUTH).status_code == 200
    assert pair.same("GET", "/api/v2/episodes/" + "b" * 32, headers=AUTH).status_code == 404
    failed = pair.same("GET", "/api/v2/search_episodes?q=fail", headers=AUTH)
    assert failed.status_code == 502
    cors = pair.same("GET", "/api/v2/genres", headers={**AUTH, "Origin": ORIGIN})
    assert cors.headers["access-control-allow-origin"] == ORIGIN
    assert pair.sent == [True, False, True, True, True, True, True, True, True, True]


def test_what_the_framework_routes_is_left_to_it(pair: Pair) -> None:
    slash = pair.same("GET", "/api/v2/search_episodes/?q=rust", headers=AUTH)
    assert slash.status_code == 404 and "no trailing slash" in slash.text
    wrong = pair.same("POST", SEARCH, headers=AUTH)
    assert wrong.status_code == 405 and wrong.headers["allow"]
    assert pair.same("GET", "/api/v2/episodes/" + "a" * 32 + "/", headers=AUTH).status_code == 404
    assert pair.same("POST", "/mcp", headers={"Content-Type": "application/json"}).is_error
    assert pair.same("GET", "/healthz").status_code == 200
    preflight = pair.same(
        "OPTIONS",
        "/openai/v1/chat/completions",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    # The gateway's (a later route taking the method) after the simple chat's path.
    assert pair.same("GET", "/openai/chat", headers=AUTH).status_code == 404
    assert pair.sent == [False] * 7


def test_the_openai_gateway_answers_the_same_direct(pair: Pair, fake: FakeOpenAI) -> None:
    chat = pair.same("POST", "/openai/v1/chat/completions", headers=AUTH, json=CHAT)
    assert chat.status_code == 200 and chat.json() == COMPLETION
    bad = pair.same("POST", "/openai/v1/chat/completions", headers=AUTH, content=b"{nope")
    assert bad.status_code == 400
    wrong = pair.same("GET", "/openai/v1/chat/completions", headers=AUTH)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    refused = pair.same("POST", "/openai/v1/chat/completions", json=CHAT)
    assert refused.status_code == 401
    assert pair.same("GET", "/openai/v1", headers=AUTH).status_code == 404
    assert pair.same("POST", "/openai/v1/chat/%63ompletions", headers=AUTH).status_code == 404
    models = pair.same("GET", "/openai/v1/models", headers={**AUTH, "Origin": ORIGIN})
    assert models.headers["access-control-allow-origin"] == ORIGIN
    # The simple chat (its own route, before the gateway's), not the gateway.
    simple = pair.same("POST", "/openai/chat", headers=AUTH, json={"prompt": "hi"})
    assert simple.status_code == 200 and simple.json()["text"] == "hi"
    assert pair.sent == [True] * 8
    assert len(fake.seen) == 3 * 2  # the chats and the models, from each app


def _boom(request: httpx.Request) -> httpx.Response:
    raise ZeroDivisionError("a bug")


def test_an_unexpected_error_is_the_same_json_500(tmp_path: Path, logs: LogCapture) -> None:
    transport = httpx.MockTransport(_boom)
    for pair in _pair(
        tmp_path,
        logs,
        {"transports": {"podcasts": transport, "openai": transport}},
        openai_api_key=OPENAI_KEY,
    ):
        search = pair.same("GET", SEARCH, headers=AUTH)
        chat = pair.same("POST", "/openai/v1/chat/completions", headers=AUTH, json=CHAT)
        for answer in (search, chat):
            assert answer.status_code == 500
            assert answer.json()["error"]["code"] == "internal_error"
            assert "x-request-id" not in answer.headers  # sent outside the request layer
        lines = [e for e in logs.events("request") if e["request_id"].startswith("d-")]
        assert [line["status"] for line in lines] == [500, 500]
        assert pair.sent == [True, True]


def test_sample_mode_answers_the_same_direct(tmp_path: Path, logs: LogCapture) -> None:
    for pair in _pair(tmp_path, logs, {}, listen_api_key=None, openai_api_key=None):
        assert pair.same("GET", "/api/v2/search_episodes?q=the", headers=AUTH).is_success
        chat = pair.same("POST", "/openai/v1/chat/completions", headers=AUTH, json=CHAT)
        assert chat.status_code == 200 and json.loads(chat.content)["choices"]
        assert pair.sent == [True, True]
