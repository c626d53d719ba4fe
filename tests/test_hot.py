"""The hot path (app/hot.py), served over real HTTP (uvicorn on loopback): a cache hit it
answers is the full path's answer byte for byte (status, body, headers, log line, usage),
and every request it must not answer reaches the full path."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.hot import MAX_TARGET_BYTES, HotPath
from app.stores.sqlite import SqliteStore
from tests.conftest import SECRET, LogCapture, make_settings
from tests.keys_support import keys_cli, sqlite_url
from tests.live import InThreadServer
from tests.stub_upstream import StubUpstream

SEARCH = "/api/v2/search_episodes?q=rust&page_size=3"
SAME_MEANING = "/api/v2/search_episodes?page_size=3&q=rust"
AUTH = {"Authorization": f"Bearer {SECRET}"}
ORIGIN = "https://app.example"


@pytest.fixture
def stub() -> Iterator[StubUpstream]:
    with StubUpstream() as upstream:
        yield upstream


class Server(InThreadServer):
    """The app with its response cache on, in front of `stub`, its store in `folder`."""

    def __init__(self, stub: StubUpstream, folder: Path, **overrides: Any) -> None:
        values = {
            "listen_api_base_url": stub.base_url,
            "cache_enabled": True,
            "store_url": sqlite_url(folder),
            "cors_origins": [ORIGIN],
        }
        settings = make_settings(**{**values, **overrides})
        super().__init__(settings)
        self.folder = folder

    def get(self, target: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(self.origin + target, headers=headers or {})

    @property
    def hot(self) -> HotPath | None:
        """The app's hot path layer (None when it has none)."""
        layer: Any = self.server.config.app.middleware_stack
        while layer is not None and not isinstance(layer, HotPath):
            layer = getattr(layer, "app", None)
        return layer

    @property
    def answered(self) -> int:
        assert self.hot is not None
        return self.hot.answered

    def saved(self, subject: str, expect: tuple[int, int] | None = None) -> tuple[int, int]:
        """`subject`'s requests and cache_saved today, from the store; while the server runs,
        usage lands in batches about a second late, so with `expect` this reads again for
        up to 10 s until it holds (then returns what it has, for the test to judge)."""

        async def read() -> tuple[int, int]:
            store = SqliteStore(self.folder / "state.db")
            try:
                days = await store.usage(subject, time.time())
            finally:
                await store.aclose()
            return sum(d.requests for d in days), sum(d.cache_saved for d in days)

        deadline = time.monotonic() + 10
        while True:
            found = asyncio.run(read())
            if expect is None or found == expect or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


@pytest.fixture
def server(stub: StubUpstream, tmp_path: Path) -> Iterator[Server]:
    with Server(stub, tmp_path, rate_limit_rpm=100) as running:
        yield running


_VARYING = (  # what differs between two hits a second apart: limit state, ttl, age
    (re.compile(r"\b(r|t|ttl)=\d+"), r"\1=N"),
    (re.compile(r"^\d+$"), "N"),
)


def _comparable(answer: httpx.Response) -> list[tuple[str, str]]:
    fields = []
    for name, value in answer.headers.raw:
        text = value.decode()
        if name.lower() == b"date":
            continue
        for pattern, replacement in _VARYING:
            text = pattern.sub(replacement, text)
        fields.append((name.decode(), text))
    return fields


def _access_lines(logs: LogCapture, request_id: str) -> list[dict[str, Any]]:
    lines = [e for e in logs.events("request") if e["request_id"] == request_id]
    return [{k: v for k, v in line.items() if k != "latency_ms"} for line in lines]


@pytest.mark.parametrize("credential", ["bearer", "api-key", "managed key"])
def test_a_hot_hit_is_the_full_paths_hit_byte_for_byte(
    server: Server, stub: StubUpstream, logs: LogCapture, credential: str
) -> None:
    if credential == "managed key":
        key = keys_cli(sqlite_url(server.folder), "create", "--name", "t", "--scopes", "podcasts")
        headers, subject = {"Authorization": f"Bearer {key['key']}"}, key["id"]
    else:
        headers = AUTH if credential == "bearer" else {"api-key": SECRET}
        subject = "static"
    miss = server.get(SEARCH, {**headers, "X-Request-Id": "request-miss"})
    assert miss.headers["cache-status"] == "keyless; fwd=uri-miss; stored"
    # The same meaning spelled otherwise: a hit the full path answers (and learns).
    full = server.get(SAME_MEANING, {**headers, "X-Request-Id": "request-same"})
    assert server.answered == 0
    hot = server.get(SEARCH, {**headers, "X-Request-Id": "request-same"})
    assert server.answered == 1
    again = server.get(SAME_MEANING, {**headers, "X-Request-Id": "request-again"})
    assert server.answered == 2  # learnt from the full path's hit

    assert full.status_code == hot.status_code == 200
    assert full.headers["cache-status"].startswith("keyless; hit; ttl=")
    assert hot.content == full.content == miss.content == again.content
    assert _comparable(hot) == _comparable(full)
    names = [n for n, _ in hot.headers.raw]
    assert names[-4:] == [b"ratelimit-policy", b"ratelimit", b"vary", b"x-request-id"]
    remaining = [int(re.findall(r"r=(\d+)", a.headers["ratelimit"])[0]) for a in (full, hot)]
    assert remaining[1] < remaining[0]  # the hot hit was admitted by the gate
    full_line, hot_line = _access_lines(logs, "request-same")  # full path, then hot
    assert hot_line == full_line
    assert full_line["key_id"] == subject and full_line["operation"] == "searchEpisodes"
    assert full_line["upstream_status"] is None and full_line["status"] == 200
    assert len(stub.seen) == 1
    assert server.saved(subject, (4, 3)) == (4, 3)  # every hit counted as saved, hot or not


def test_an_origin_header_gets_the_full_paths_cors_fields(server: Server) -> None:
    assert server.get(SEARCH, AUTH).status_code == 200
    answer = server.get(SEARCH, {**AUTH, "Origin": ORIGIN})
    assert answer.status_code == 200 and answer.headers["cache-status"].startswith("keyless; hit")
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "X-Request-Id" in answer.headers["access-control-expose-headers"]
    assert server.answered == 0


def test_head_and_options_go_to_the_full_path(server: Server) -> None:
    assert server.get(SEARCH, AUTH).status_code == 200
    head = httpx.head(server.origin + SEARCH, headers=AUTH)
    assert head.status_code == 200 and head.content == b""
    preflight = httpx.options(
        server.origin + SEARCH,
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200
    assert server.answered == 0


def test_an_expired_answer_is_fetched_again(server: Server, stub: StubUpstream) -> None:
    assert server.get(SEARCH, AUTH).status_code == 200
    assert server.get(SEARCH, AUTH).headers["cache-status"].startswith("keyless; hit")
    assert server.answered == 1
    # An hour later for the cache (searches are kept 5 minutes), in both of its levels.
    services = server.server.config.app.state.services
    for _connector, running in services.connectors.values():
        if running.upstream is not None and running.upstream.cache is not None:
            running.upstream.cache._clock = lambda: time.time() + 3600
    answer = server.get(SEARCH, AUTH)
    assert answer.headers["cache-status"] == "keyless; fwd=uri-miss; stored"
    assert len(stub.seen) == 2 and server.answered == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-the-secret-0123456789"},
        {"Authorization": f"Bearer {SECRET}", "api-key": SECRET},  # two credentials
        {},
    ],
    ids=["wrong secret", "two credentials", "none"],
)
def test_a_refused_caller_gets_the_full_paths_refusal(
    server: Server, stub: StubUpstream, headers: dict[str, str]
) -> None:
    cold = server.get("/api/v2/genres", headers)  # never learnt: the full path's refusal
    assert server.get(SEARCH, AUTH).status_code == 200
    warm = server.get(SEARCH, headers)
    assert warm.status_code == cold.status_code == 401
    assert warm.json() == cold.json()
    assert warm.headers["www-authenticate"] == cold.headers["www-authenticate"]
    assert server.answered == 0 and len(stub.seen) == 1


def test_a_revoked_or_out_of_scope_key_is_refused(server: Server) -> None:
    url = sqlite_url(server.folder)
    revoked = keys_cli(url, "create", "--name", "revoked")
    keys_cli(url, "revoke", revoked["id"])
    elsewhere = keys_cli(url, "create", "--name", "other", "--scopes", "openai")
    assert server.get(SEARCH, AUTH).status_code == 200
    for _ in range(2):  # the second time the key cache holds the refused key
        answer = server.get(SEARCH, {"Authorization": f"Bearer {revoked['key']}"})
        assert answer.status_code == 401 and "revoked" in answer.json()["error"]["message"]
        answer = server.get(SEARCH, {"Authorization": f"Bearer {elsewhere['key']}"})
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden"
    assert server.answered == 0


def test_a_different_query_is_never_served_anothers_answer(
    server: Server, stub: StubUpstream
) -> None:
    assert server.get("/api/v2/search_episodes?q=a+b", AUTH).status_code == 200
    assert server.get("/api/v2/search_episodes?q=a+b", AUTH).status_code == 200
    assert server.answered == 1
    other = server.get("/api/v2/search_episodes?q=a%2Bb", AUTH)  # "a+b", not "a b"
    assert other.headers["cache-status"] == "keyless; fwd=uri-miss; stored"
    assert [dict(s.query)["q"] for s in stub.seen] == ["a b", "a+b"]
    assert server.answered == 1


def test_a_long_target_is_never_remembered(server: Server, stub: StubUpstream) -> None:
    padded = SEARCH + "&padding=" + "x" * MAX_TARGET_BYTES  # ignored, but remembered bytes
    assert server.get(padded, AUTH).status_code == 200
    again = server.get(padded, AUTH)
    assert again.status_code == 200 and again.headers["cache-status"].startswith("keyless; hit")
    assert server.answered == 0 and len(stub.seen) == 1


def test_a_refused_query_never_enters_the_hot_path(server: Server, stub: StubUpstream) -> None:
    bad = "/api/v2/search_episodes?q=rust&page_size=999"
    first, second = server.get(bad, AUTH), server.get(bad, AUTH)
    assert first.status_code == second.status_code == 422
    assert first.json() == second.json()
    assert server.answered == 0 and stub.seen == []


def test_a_limit_refusal_on_the_hot_path_is_the_full_paths(
    stub: StubUpstream, tmp_path: Path
) -> None:
    with Server(stub, tmp_path, rate_limit_rpm=2) as server:
        assert server.get(SEARCH, AUTH).status_code == 200
        assert server.get(SEARCH, AUTH).status_code == 200
        assert server.answered == 1
        hot = server.get(SEARCH, AUTH)
        assert server.answered == 1  # admitted by no one: the gate refused
        full = server.get("/api/v2/genres", AUTH)
    assert hot.status_code == full.status_code == 429
    assert hot.json()["error"]["code"] == full.json()["error"]["code"] == "rate_limited"
    assert [n for n, _ in hot.headers.raw] == [n for n, _ in full.headers.raw]
    assert server.saved("static")[1] == 1  # the refused request saved nothing


def test_without_the_cache_there_is_no_hot_path(stub: StubUpstream, tmp_path: Path) -> None:
    with Server(stub, tmp_path, cache_enabled=False) as server:
        server.get(SEARCH, AUTH)
        assert server.get(SEARCH, AUTH).status_code == 200
        assert server.hot is None
    assert len(stub.seen) == 2
