"""The response cache (app/cache.py), served: what callers see (`Cache-Status`, `Age`, bodies)
and what reaches the upstream (a recording stub on loopback), on every store backend."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.stores import behind
from tests.conftest import AUTH, OPENAI_KEY, SECRET, UPSTREAM_KEY, LeakGuard, LogCapture
from tests.conftest import make_settings as base_settings
from tests.fake_openai import FakeOpenAI, json_answer
from tests.live import live_server
from tests.servers import MotoServer, RedisServer
from tests.store_backends import create_table
from tests.stub_upstream import Reply, StubUpstream, default_reply

HIT = re.compile(r"^keyless; hit; ttl=(\d+)$")
STORED = "keyless; fwd=uri-miss; stored"
WRITTEN = behind.WINDOW + 0.5  # generous: by then a miss's store write is done


def make_settings(**overrides: Any) -> Any:
    return base_settings(**{"cache_enabled": True, **overrides})


@pytest.fixture
def stub() -> Iterator[StubUpstream]:
    with StubUpstream() as upstream:
        yield upstream


def served_client(leak_guard: LeakGuard, **settings: Any) -> TestClient:
    client = TestClient(create_app(make_settings(**settings), network="httpx"))
    client.event_hooks["response"].append(leak_guard.record_response)
    return client


def test_a_repeated_request_is_a_hit_and_reaches_the_upstream_once(
    stub: StubUpstream, leak_guard: LeakGuard
) -> None:
    with served_client(leak_guard, listen_api_base_url=stub.base_url) as client:
        first = client.get("/api/v2/search_episodes?q=rust&page_size=3", headers=AUTH)
        second = client.get("/api/v2/search_episodes?page_size=3&q=rust", headers=AUTH)
    assert first.status_code == second.status_code == 200
    assert first.headers["cache-status"] == STORED and "age" not in first.headers
    hit = HIT.match(second.headers["cache-status"])
    assert hit is not None and 290 <= int(hit[1]) <= 300  # searches: 5 minutes
    assert int(second.headers["age"]) >= 0
    assert second.content == first.content
    assert len(stub.seen) == 1


def test_different_parameters_miss_and_justlisten_is_never_cached(
    stub: StubUpstream, leak_guard: LeakGuard
) -> None:
    with served_client(leak_guard, listen_api_base_url=stub.base_url) as client:
        answers = [
            client.get(f"/api/v2/search_episodes?q={q}", headers=AUTH) for q in ("a", "b", "a")
        ]
        genres = client.get("/api/v2/genres", headers=AUTH)
        unordered = client.get("/api/v2/genres?top_level_only=1", headers=AUTH)
        random = [client.get("/api/v2/just_listen", headers=AUTH) for _ in range(2)]
    assert [a.headers["cache-status"] for a in answers[:2]] == [STORED, STORED]
    assert HIT.match(answers[2].headers["cache-status"])
    assert genres.headers["cache-status"] == unordered.headers["cache-status"] == STORED
    assert [r.headers["cache-status"] for r in random] == ["keyless; fwd=bypass"] * 2
    assert [s.path for s in stub.seen].count("/api/v2/just_listen") == 2
    assert [s.query for s in stub.seen if s.path.endswith("/search")] == [
        [("q", "a"), ("type", "episode")],
        [("q", "b"), ("type", "episode")],
    ]


def test_genres_are_kept_a_day(stub: StubUpstream, leak_guard: LeakGuard) -> None:
    with served_client(leak_guard, listen_api_base_url=stub.base_url) as client:
        client.get("/api/v2/genres", headers=AUTH)
        hit = client.get("/api/v2/genres", headers=AUTH)
    found = HIT.match(hit.headers["cache-status"])
    assert found is not None and 86_390 <= int(found[1]) <= 86_400


def test_errors_are_never_cached(stub: StubUpstream, leak_guard: LeakGuard) -> None:
    replies = iter([Reply(status=502, body=b"{}")])
    stub.answer = lambda seen: next(replies, None) or default_reply(seen)
    with served_client(leak_guard, listen_api_base_url=stub.base_url) as client:
        failed = client.get("/api/v2/genres", headers=AUTH)
        fresh = client.get("/api/v2/genres", headers=AUTH)
        hit = client.get("/api/v2/genres", headers=AUTH)
    assert failed.status_code == 502 and "cache-status" not in failed.headers
    assert fresh.status_code == 200 and fresh.headers["cache-status"] == STORED
    assert hit.status_code == 200 and HIT.match(hit.headers["cache-status"])
    assert len(stub.seen) == 2


def test_20_concurrent_identical_misses_make_one_upstream_call(stub: StubUpstream) -> None:
    stub.answer = lambda seen: Reply(body=default_reply(seen).body, delay=0.3)
    app = create_app(make_settings(listen_api_base_url=stub.base_url), network="httpx")

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy.test") as client:
            return await asyncio.gather(
                *(client.get("/api/v2/episodes/" + "a" * 32, headers=AUTH) for _ in range(20))
            )

    answers = asyncio.run(main())
    assert [a.status_code for a in answers] == [200] * 20
    assert len({a.content for a in answers}) == 1
    statuses = sorted(a.headers["cache-status"] for a in answers)
    assert statuses.count(STORED) == 1
    assert all(
        s == "keyless; fwd=uri-miss; collapsed" or HIT.match(s) for s in statuses if s != STORED
    )
    assert len(stub.seen) == 1


def test_cache_enabled_false_sends_every_request_upstream(
    stub: StubUpstream, leak_guard: LeakGuard
) -> None:
    with served_client(leak_guard, listen_api_base_url=stub.base_url, cache_enabled=False) as c:
        answers = [c.get("/api/v2/genres", headers=AUTH) for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    assert not any("cache-status" in a.headers or "age" in a.headers for a in answers)
    assert len(stub.seen) == 3


def test_a_store_that_is_down_serves_from_upstream_and_logs_once(
    stub: StubUpstream, redis_server: RedisServer, logs: LogCapture, leak_guard: LeakGuard
) -> None:
    settings = {"listen_api_base_url": stub.base_url, "store_url": redis_server.url}
    with served_client(leak_guard, **settings) as client:
        assert client.get("/api/v2/search_podcasts?q=up", headers=AUTH).status_code == 200
        redis_server.stop()
        try:
            down = [
                client.get(f"/api/v2/search_podcasts?q=down{n}", headers=AUTH) for n in range(3)
            ]
        finally:
            redis_server.start()
        time.sleep(1.1)  # the cache tries a store that failed again after a second
        back = client.get("/api/v2/search_podcasts?q=back", headers=AUTH)
    assert [a.status_code for a in down] == [200] * 3
    assert {a.headers["cache-status"] for a in down} == {
        "keyless; fwd=uri-miss; stored; detail=store-unavailable"
    }
    assert back.headers["cache-status"] == STORED
    assert len(stub.seen) == 5
    assert len(logs.events("cache_store_unavailable")) == 1  # once per outage
    assert len(logs.events("cache_store_back")) == 1


def test_a_miss_is_written_behind_and_flushed_when_the_app_shuts_down(
    stub: StubUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leak_guard: LeakGuard
) -> None:
    """The request does not wait for the shared store: while the write is pending another
    app on the store misses; it is not lost either: the first app's shutdown writes it."""
    monkeypatch.setattr(behind, "WINDOW", 60.0)  # nothing is written before shutdown
    settings = {"listen_api_base_url": stub.base_url, "store_url": f"sqlite:///{tmp_path}/s.db"}
    with served_client(leak_guard, **settings) as a:
        first = a.get("/api/v2/genres", headers=AUTH)
        with served_client(leak_guard, **settings) as b:
            pending = b.get("/api/v2/genres", headers=AUTH)
        again = a.get("/api/v2/genres", headers=AUTH)
    with served_client(leak_guard, **settings) as c:
        after = c.get("/api/v2/genres", headers=AUTH)
    assert first.headers["cache-status"] == pending.headers["cache-status"] == STORED
    assert HIT.match(again.headers["cache-status"])  # this process: its own level 1
    assert HIT.match(after.headers["cache-status"]) and after.content == first.content
    assert len(stub.seen) == 2  # a's and b's misses; c's answer came from the store


def test_writes_beyond_the_pending_bound_are_dropped_said_and_logged_once(
    stub: StubUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    logs: LogCapture,
    leak_guard: LeakGuard,
) -> None:
    """Pending writes are bounded in bytes: beyond, the write is dropped (the request is
    answered all the same, never blocked), `Cache-Status` says the store did not take it,
    and the log says so once; what was within the bound is written at shutdown."""
    monkeypatch.setattr(behind, "WINDOW", 60.0)
    settings = {"listen_api_base_url": stub.base_url, "store_url": f"sqlite:///{tmp_path}/s.db"}
    with served_client(leak_guard, **settings) as a:
        first = a.get("/api/v2/search_podcasts?q=one", headers=AUTH)
        pending = a.app.state.response_cache._shared.behind  # type: ignore[attr-defined]
        pending.max_bytes = pending._bytes  # full with the first answer
        over = [a.get(f"/api/v2/search_podcasts?q=over{n}", headers=AUTH) for n in range(3)]
    with served_client(leak_guard, **settings) as c:
        kept = c.get("/api/v2/search_podcasts?q=one", headers=AUTH)
        dropped = c.get("/api/v2/search_podcasts?q=over0", headers=AUTH)
    assert first.headers["cache-status"] == STORED
    assert [o.status_code for o in over] == [200] * 3
    assert {o.headers["cache-status"] for o in over} == {f"{STORED}; detail=store-unavailable"}
    assert len(logs.events("cache_store_unavailable")) == 1
    assert HIT.match(kept.headers["cache-status"])
    assert dropped.headers["cache-status"] == STORED  # not in the store: asked again
    assert len(stub.seen) == 5


def _store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    if kind == "redis":
        import redis

        server: RedisServer = request.getfixturevalue("redis_server")
        redis.Redis.from_url(server.url).flushdb()
        return server.url
    moto: MotoServer = request.getfixturevalue("moto_server")
    table = f"cache-{time.monotonic_ns()}"
    create_table(moto.endpoint, table)
    return f"dynamodb://{table}?region=us-east-1&endpoint={moto.endpoint}"


@pytest.mark.parametrize("kind", ["sqlite", "redis", "dynamodb"])
def test_one_apps_miss_is_another_apps_hit_through_the_shared_store(
    kind: str,
    stub: StubUpstream,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    leak_guard: LeakGuard,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = {
        "listen_api_base_url": stub.base_url,
        "store_url": _store_url(kind, tmp_path, request),
    }
    with served_client(leak_guard, **settings) as a, served_client(leak_guard, **settings) as b:
        miss = a.get("/api/v2/genres", headers=AUTH)
        time.sleep(WRITTEN)  # written behind: the other app sees it a window later
        hit = b.get("/api/v2/genres", headers=AUTH)
    assert miss.headers["cache-status"] == STORED
    assert HIT.match(hit.headers["cache-status"]) and hit.content == miss.content
    assert len(stub.seen) == 1


def _stored_values(path: Path) -> list[bytes]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT key, value FROM kv WHERE key LIKE 'cache:%'").fetchall()
    # Short names (128 bits, base64url) keep SQLite's index of them small.
    assert all(re.fullmatch(r"cache:[A-Za-z0-9_-]{22}", key) for key, _ in rows), rows
    return [bytes(value) for _, value in rows]


def test_the_shared_level_holds_answers_compressed_and_serves_them_whole(
    stub: StubUpstream, tmp_path: Path, leak_guard: LeakGuard
) -> None:
    """What reaches the store is a fraction of the answer (less to write, to keep, to pay
    for on DynamoDB), and another app serves it byte for byte."""
    settings = {"listen_api_base_url": stub.base_url, "store_url": f"sqlite:///{tmp_path}/s.db"}
    with served_client(leak_guard, **settings) as a:
        miss = a.get("/api/v2/search_episodes?q=compressed", headers=AUTH)
    [value] = _stored_values(tmp_path / "s.db")
    with served_client(leak_guard, **settings) as b:
        hit = b.get("/api/v2/search_episodes?q=compressed", headers=AUTH)
    assert miss.status_code == 200 and len(miss.content) > 2000
    assert len(value) < len(miss.content) / 2
    assert miss.content not in value and miss.content[:200] not in value
    assert HIT.match(hit.headers["cache-status"]) and hit.content == miss.content
    assert len(stub.seen) == 1


def _garbled(value: bytes) -> bytes:
    return value[:21] + bytes(b ^ 0x5A for b in value[21:])


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(_garbled, id="payload-garbled"),
        pytest.param(lambda v: v[:-7], id="payload-truncated"),
        pytest.param(lambda v: v[:10], id="shorter-than-its-head"),
        pytest.param(lambda v: v[:16] + b"\x07" + v[17:], id="unknown-codec"),
        pytest.param(lambda v: v[:17] + (2**31).to_bytes(4, "big") + v[21:], id="claims-2-GB"),
        pytest.param(lambda v: v[:17] + (10).to_bytes(4, "big") + v[21:], id="claims-too-little"),
        pytest.param(
            lambda v: v[:17] + (int.from_bytes(v[17:21], "big") + 99).to_bytes(4, "big") + v[21:],
            id="claims-too-much",
        ),
    ],
)
def test_an_entry_that_does_not_unpack_is_a_miss_never_an_error_or_garbage(
    corrupt: Callable[[bytes], bytes], stub: StubUpstream, tmp_path: Path, leak_guard: LeakGuard
) -> None:
    """A damaged entry in the shared store (a bad disk, another program writing there) is
    asked of the upstream again and replaced: never served, never a 500."""
    path = tmp_path / "s.db"
    settings = {"listen_api_base_url": stub.base_url, "store_url": f"sqlite:///{path}"}
    with served_client(leak_guard, **settings) as a:
        first = a.get("/api/v2/search_episodes?q=damaged", headers=AUTH)
    [value] = _stored_values(path)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE kv SET value = ? WHERE key LIKE 'cache:%'", (corrupt(value),))
    with served_client(leak_guard, **settings) as b:
        again = b.get("/api/v2/search_episodes?q=damaged", headers=AUTH)
    with served_client(leak_guard, **settings) as c:
        repaired = c.get("/api/v2/search_episodes?q=damaged", headers=AUTH)
    assert again.status_code == 200 and again.headers["cache-status"] == STORED
    assert again.content == first.content
    assert HIT.match(repaired.headers["cache-status"]) and repaired.content == first.content
    assert len(stub.seen) == 2


def test_two_processes_share_one_cache_across_rest_and_mcp(
    stub: StubUpstream, tmp_path: Path
) -> None:
    env = {
        "CHATGPT_SECRET": SECRET,
        "LISTEN_API_KEY": UPSTREAM_KEY,
        "LISTEN_API_BASE_URL": stub.base_url,
        "STORE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
    }
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "getGenres", "arguments": {"top_level_only": 1}},
    }
    mcp_headers = {
        **AUTH,
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }
    with (
        live_server(env, tmp_path / "a.log") as a,
        live_server(env, tmp_path / "b.log") as b,
    ):
        miss = httpx.get(f"{a.base_url}/api/v2/genres?top_level_only=1", headers=AUTH)
        time.sleep(WRITTEN)
        hit = httpx.get(f"{b.base_url}/api/v2/genres?top_level_only=1", headers=AUTH)
        tool = httpx.post(f"{b.base_url}/mcp", json=call, headers=mcp_headers)
    assert miss.headers["cache-status"] == STORED
    assert HIT.match(hit.headers["cache-status"]) and hit.json() == miss.json()
    assert tool.json()["result"]["structuredContent"] == miss.json()
    assert len(stub.seen) == 1


# -- OpenAI -------------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        upstream.reset(
            lambda seen: json_answer(
                {"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]}
                if seen.method == "GET"
                else {"object": "list", "data": [{"embedding": [0.5]}], "model": "m"}
            )
        )
        yield upstream


def openai_client(fake: FakeOpenAI, leak_guard: LeakGuard, **settings: Any) -> TestClient:
    return served_client(
        leak_guard, openai_api_key=OPENAI_KEY, openai_base_url=fake.base_url, **settings
    )


OPENAI_AUTH = {"Authorization": f"Bearer {SECRET}"}


def test_openai_models_are_cached_and_chat_never(fake: FakeOpenAI, leak_guard: LeakGuard) -> None:
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with openai_client(fake, leak_guard) as client:
        models = [client.get("/openai/v1/models", headers=OPENAI_AUTH) for _ in range(2)]
        one = [client.get("/openai/v1/models/gpt-4o", headers=OPENAI_AUTH) for _ in range(2)]
        chats = [
            client.post("/openai/v1/chat/completions", json=chat, headers=OPENAI_AUTH)
            for _ in range(2)
        ]
    assert [m.status_code for m in models + one + chats] == [200] * 6
    for pair in (models, one):
        assert pair[0].headers["cache-status"] == STORED
        assert HIT.match(pair[1].headers["cache-status"]) and "age" in pair[1].headers
        assert pair[1].json() == pair[0].json()
        assert pair[1].headers["content-type"] == pair[0].headers["content-type"]
    assert [c.headers["cache-status"] for c in chats] == ["keyless; fwd=bypass"] * 2
    assert [s.path for s in fake.seen] == [
        "/v1/models",
        "/v1/models/gpt-4o",
        "/v1/chat/completions",
        "/v1/chat/completions",
    ]


@pytest.mark.parametrize("enabled", [False, True])
def test_openai_embeddings_are_cached_only_with_the_setting(
    fake: FakeOpenAI, leak_guard: LeakGuard, enabled: bool
) -> None:
    body = {"model": "text-embedding-3-small", "input": "hello"}
    with openai_client(fake, leak_guard, openai_cache_embeddings=enabled) as client:
        answers = [
            client.post("/openai/v1/embeddings", json=body, headers=OPENAI_AUTH) for _ in range(2)
        ]
        other = client.post(
            "/openai/v1/embeddings", json={**body, "input": "bye"}, headers=OPENAI_AUTH
        )
    assert [a.status_code for a in (*answers, other)] == [200] * 3
    if enabled:
        assert HIT.match(answers[1].headers["cache-status"])
        assert other.headers["cache-status"] == STORED
        assert [json.loads(s.body)["input"] for s in fake.seen] == ["hello", "bye"]
    else:
        assert {a.headers["cache-status"] for a in answers} == {"keyless; fwd=bypass"}
        assert len(fake.seen) == 3


def test_openai_errors_are_not_cached(fake: FakeOpenAI, leak_guard: LeakGuard) -> None:
    answers = iter([json_answer({"error": {"message": "busy", "type": "x"}}, status=500)])
    fallback = fake.answer
    fake.answer = lambda seen: next(answers, None) or fallback(seen)
    with openai_client(fake, leak_guard) as client:
        failed = client.get("/openai/v1/models", headers=OPENAI_AUTH)
        fresh = client.get("/openai/v1/models", headers=OPENAI_AUTH)
        hit = client.get("/openai/v1/models", headers=OPENAI_AUTH)
    assert failed.status_code == 500 and fresh.status_code == hit.status_code == 200
    assert fresh.headers["cache-status"] == STORED and HIT.match(hit.headers["cache-status"])
    assert len(fake.seen) == 2
