"""Caller keys end to end: made with `python -m app keys`, used against the app under
uvicorn on loopback with its SQLite store in a temporary folder, in front of upstreams
that record what reached them."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import SECRET, LogCapture
from tests.fake_openai import Answer, FakeOpenAI, json_answer
from tests.keys_support import Served, keys_cli, sqlite_url, store_bytes, usage_totals
from tests.stub_upstream import StubUpstream

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

GENRES = "/api/v2/genres"
CHAT = "/openai/v1/chat/completions"
COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 60, "completion_tokens": 50, "total_tokens": 110},
}


@pytest.fixture(scope="module")
def stub() -> Iterator[StubUpstream]:
    with StubUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def _fresh(stub: StubUpstream, fake: FakeOpenAI) -> None:
    stub.seen.clear()
    fake.reset(lambda seen: json_answer(COMPLETION))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def served(stub: StubUpstream, fake: FakeOpenAI, folder: Path) -> Iterator[Served]:
    with Served(stub, fake, store_url=sqlite_url(folder), rate_limit_rpm=1000) as server:
        yield server


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_key(folder: Path, *args: str) -> dict[str, Any]:
    return keys_cli(sqlite_url(folder), "create", "--name", "test", *args)  # type: ignore[no-any-return]


def usage(
    folder: Path, key_id: str, until: Callable[[dict[str, int]], bool] = lambda _: True
) -> dict[str, int]:
    return usage_totals(sqlite_url(folder), key_id, until)


def chat(served: Served, key: str, **body: Any) -> httpx.Response:
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **body}
    return httpx.post(served.origin + CHAT, json=payload, headers=bearer(key), timeout=10)


# --- keys ----------------------------------------------------------------------------------


def test_a_key_from_the_cli_works_and_is_never_shown_or_stored_again(
    served: Served, folder: Path, logs: LogCapture
) -> None:
    made = make_key(folder, "--scopes", "podcasts")
    key, key_id = made["key"], made["id"]
    assert key.startswith("lnp_") and len(key) >= 40 and made["shown"].startswith(key[:6])
    answer = httpx.get(served.origin + GENRES, headers={"api-key": key})
    assert answer.status_code == 200
    assert answer.headers["ratelimit-policy"] == '"minute";q=1000;w=60'
    assert answer.headers["ratelimit"].startswith('"minute";r=999;t=')
    listing = keys_cli(sqlite_url(folder), "list")
    assert [entry["id"] for entry in listing] == [key_id]
    assert key not in json.dumps(listing) and key[4:-4] not in json.dumps(listing)
    stored = store_bytes(folder)
    assert stored and key.encode() not in stored and key[4:-6].encode() not in stored
    [line] = [event for event in logs.events("request") if event["path"] == GENRES]
    assert line["key_id"] == key_id
    assert not any(key in text for text in logs.lines)
    assert usage(folder, key_id)["requests"] == 1


def test_wrong_keys_are_401_without_asking_the_store(served: Served, folder: Path) -> None:
    key = make_key(folder)["key"]
    typo = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]  # the checksum fails
    for credential in (typo, "lnp_" + "x" * 49, key + "x"):
        answer = httpx.get(served.origin + GENRES, headers=bearer(credential))
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
    assert httpx.get(served.origin + GENRES, headers=bearer(key)).status_code == 200


def test_an_expired_key_is_401(served: Served, folder: Path) -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    key = make_key(folder, "--expires", soon.isoformat())["key"]
    assert httpx.get(served.origin + GENRES, headers=bearer(key)).status_code == 200
    time.sleep(max(0.0, soon.timestamp() - time.time()) + 0.2)
    answer = httpx.get(served.origin + GENRES, headers=bearer(key))
    assert answer.status_code == 401
    assert "expired" in answer.json()["error"]["message"]


def test_a_revoked_key_stops_within_the_cache_bound(
    stub: StubUpstream, fake: FakeOpenAI, folder: Path
) -> None:
    ttl = 1.0
    with Served(stub, fake, store_url=sqlite_url(folder), key_cache_ttl=ttl) as served:
        made = make_key(folder)
        assert httpx.get(served.origin + GENRES, headers=bearer(made["key"])).status_code == 200
        assert keys_cli(sqlite_url(folder), "revoke", made["id"]) == {
            "id": made["id"],
            "revoked": True,
        }
        revoked_at = time.monotonic()
        while httpx.get(served.origin + GENRES, headers=bearer(made["key"])).status_code == 200:
            assert time.monotonic() - revoked_at < ttl + 1.0, "still accepted past the bound"
            time.sleep(0.05)
        answer = httpx.get(served.origin + GENRES, headers=bearer(made["key"]))
        assert answer.status_code == 401 and "revoked" in answer.json()["error"]["message"]
        assert keys_cli(sqlite_url(folder), "list")[0]["revoked"] is not None


def test_the_cli_refuses_bad_input(folder: Path) -> None:
    for args in (
        ("--scopes", "podcasts,weather"),
        ("--rpm", "-1"),
        ("--daily-requests", "0"),
        ("--expires", "2026-02-30"),
        ("--expires", "2001-01-01"),
    ):
        done = keys_cli(sqlite_url(folder), "create", "--name", "x", *args, check=False)
        assert done.returncode == 2 and done.stdout == "", args
        assert done.stderr.strip()
    assert keys_cli(sqlite_url(folder), "list") == []


# --- scopes and models -----------------------------------------------------------------------


def test_scopes_refuse_other_connectors_with_nothing_upstream(
    served: Served, stub: StubUpstream, fake: FakeOpenAI, folder: Path
) -> None:
    podcasts = make_key(folder, "--scopes", "podcasts")["key"]
    only_openai = make_key(folder, "--scopes", "openai")["key"]
    answer = chat(served, podcasts)
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == "forbidden"
    assert "openai" in error["message"]
    answer = httpx.post(
        served.origin + "/openai/chat", json={"prompt": "hi"}, headers=bearer(podcasts)
    )
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden"
    answer = httpx.get(served.origin + GENRES, headers=bearer(only_openai))
    assert answer.status_code == 403 and "podcasts" in answer.json()["error"]["message"]
    mcp = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    refused = httpx.post(served.origin + "/mcp", json=hello, headers={**mcp, **bearer(only_openai)})
    assert refused.status_code == 403
    assert stub.seen == [] and fake.seen == []
    accepted = httpx.post(served.origin + "/mcp", json=hello, headers={**mcp, **bearer(podcasts)})
    assert accepted.status_code == 200
    assert chat(served, only_openai).status_code == 200


def test_models_refuse_other_models_with_nothing_upstream(
    served: Served, fake: FakeOpenAI, folder: Path
) -> None:
    key = make_key(folder, "--models", "gpt-4o-mini")["key"]
    answer = chat(served, key, model="gpt-4o")
    assert answer.status_code == 403
    assert "gpt-4o" in answer.json()["error"]["message"]
    assert "gpt-4o-mini" in answer.json()["error"]["message"]
    simple = httpx.post(
        served.origin + "/openai/chat",
        json={"prompt": "hi", "model": "o3"},
        headers=bearer(key),
    )
    assert simple.status_code == 403 and simple.json()["error"]["code"] == "forbidden"
    assert fake.seen == []
    assert chat(served, key).status_code == 200
    assert len(fake.seen) == 1


# --- limits ----------------------------------------------------------------------------------


def test_over_the_rate_is_429_rate_limited_in_the_routes_shape(
    served: Served, folder: Path, stub: StubUpstream
) -> None:
    key = make_key(folder, "--rpm", "2")["key"]
    for left in (1, 0):
        answer = httpx.get(served.origin + GENRES, headers=bearer(key))
        assert answer.status_code == 200
        assert answer.headers["ratelimit"].startswith(f'"minute";r={left};')
    answer = httpx.get(served.origin + GENRES, headers=bearer(key))
    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "rate_limited"
    retry = int(answer.headers["retry-after"])
    assert 20 <= retry <= 31  # one request back every 30 s
    assert answer.headers["ratelimit"] == f'"minute";r=0;t={retry}'
    assert "x-should-retry" not in answer.headers
    assert len(stub.seen) == 2
    answer = chat(served, key)
    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "rate_limited"
    assert answer.headers["x-ratelimit-limit-requests"] == "2"
    assert answer.headers["x-ratelimit-remaining-requests"] == "0"


def test_over_a_quota_is_429_quota_exceeded_and_the_sdk_does_not_retry(
    served: Served, folder: Path, fake: FakeOpenAI, logs: LogCapture
) -> None:
    fake.reset(
        lambda seen: json_answer(
            COMPLETION,
            **{"x-ratelimit-remaining-requests": "4999", "x-ratelimit-limit-tokens": "9"},
        )
    )
    made = make_key(folder, "--daily-requests", "2")
    answer = chat(served, made["key"])
    assert answer.status_code == 200
    # The caller's own limits, not the operator's upstream account's.
    assert answer.headers["x-ratelimit-remaining-requests"] == "999"
    assert "x-ratelimit-limit-tokens" not in answer.headers
    assert answer.headers["ratelimit-policy"].endswith('"day";q=2;w=86400')
    assert httpx.get(served.origin + GENRES, headers=bearer(made["key"])).status_code == 200
    answer = httpx.get(served.origin + GENRES, headers=bearer(made["key"]))
    assert answer.status_code == 429 and answer.json()["error"]["code"] == "quota_exceeded"
    assert answer.headers["x-should-retry"] == "false"
    assert int(answer.headers["retry-after"]) > 0
    before = len([e for e in logs.events("request") if e["path"] == CHAT])
    client = openai.OpenAI(
        api_key=made["key"], base_url=served.origin + "/openai/v1", max_retries=2
    )
    with client, pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert refused.value.code == "quota_exceeded"

    def served_chats() -> int:
        return len([e for e in logs.events("request") if e["path"] == CHAT])

    # The access line is written as the answer ends, possibly after the SDK has it.
    deadline = time.monotonic() + 5
    while served_chats() == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served_chats() == before + 1  # the SDK retried nothing
    assert len(fake.seen) == 1
    totals = usage(folder, made["id"], lambda t: t.get("refused", 0) >= 2)
    assert totals["requests"] == 2 and totals["refused"] == 2


def test_the_shared_secret_still_works_within_rate_limit_rpm(
    stub: StubUpstream, fake: FakeOpenAI, folder: Path
) -> None:
    with Served(stub, fake, store_url=sqlite_url(folder), rate_limit_rpm=3) as served:
        statuses = [
            httpx.get(served.origin + GENRES, headers={"api-key": SECRET}).status_code
            for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
    assert keys_cli(sqlite_url(folder), "usage", "static")[0]["requests"] == 3


# --- tokens ----------------------------------------------------------------------------------


def sse(*events: dict[str, Any]) -> list[bytes]:
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def chunk(text: str) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }


USAGE_CHUNK = {
    "id": "c",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "choices": [],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
}
SSE = {"Content-Type": "text/event-stream"}


def test_tokens_from_json_answers_fill_the_monthly_quota(served: Served, folder: Path) -> None:
    made = make_key(folder, "--monthly-tokens", "100")
    assert chat(served, made["key"]).status_code == 200  # 0 used < 100: admitted, uses 110
    answer = chat(served, made["key"])
    assert answer.status_code == 429 and answer.json()["error"]["code"] == "quota_exceeded"
    assert "tokens" in answer.json()["error"]["message"]
    totals = usage(folder, made["id"], lambda t: t.get("completion_tokens", 0) >= 50)
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (60, 50)
    simple = httpx.post(
        served.origin + "/openai/chat", json={"prompt": "hi"}, headers=bearer(made["key"])
    )
    assert simple.status_code == 429 and simple.json()["error"]["code"] == "quota_exceeded"


def test_streams_are_asked_for_usage_and_callers_who_did_not_ask_never_see_it(
    served: Served, folder: Path, fake: FakeOpenAI
) -> None:
    fake.reset(lambda seen: Answer(headers=SSE, chunks=sse(chunk("a"), chunk("b"), USAGE_CHUNK)))
    made = make_key(folder)
    client = openai.OpenAI(
        api_key=made["key"], base_url=served.origin + "/openai/v1", max_retries=0
    )
    with client:
        got = list(client.chat.completions.create(model="m", messages=[], stream=True))
        assert [c.choices[0].delta.content for c in got] == ["a", "b"]
        assert json.loads(fake.seen[-1].body)["stream_options"] == {"include_usage": True}
        asked = list(
            client.chat.completions.create(
                model="m", messages=[], stream=True, stream_options={"include_usage": True}
            )
        )
        assert asked[-1].choices == [] and asked[-1].usage is not None
    totals = usage(folder, made["id"], lambda t: t.get("completion_tokens", 0) >= 6)
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (14, 6)


def test_responses_streams_count_their_completed_usage(
    served: Served, folder: Path, fake: FakeOpenAI
) -> None:
    completed = {
        "type": "response.completed",
        "sequence_number": 1,
        "response": {"id": "r", "usage": {"input_tokens": 11, "output_tokens": 4}},
    }
    events = [b"event: response.completed\ndata: " + json.dumps(completed).encode() + b"\n\n"]
    fake.reset(lambda seen: Answer(headers=SSE, chunks=events))
    made = make_key(folder)
    answer = httpx.post(
        served.origin + "/openai/v1/responses",
        json={"model": "m", "input": "hi", "stream": True},
        headers=bearer(made["key"]),
    )
    assert answer.status_code == 200 and b"response.completed" in answer.content
    assert "stream_options" not in json.loads(fake.seen[-1].body)
    totals = usage(folder, made["id"], lambda t: t.get("completion_tokens", 0) >= 4)
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (11, 4)


def test_a_caller_hanging_up_mid_stream_still_pays(
    served: Served, folder: Path, fake: FakeOpenAI
) -> None:
    chunks = sse(*[chunk(str(n)) for n in range(6)], USAGE_CHUNK)
    fake.reset(lambda seen: Answer(headers=SSE, chunks=chunks, pause=0.2))
    made = make_key(folder)
    with (
        httpx.Client() as client,
        client.stream(
            "POST",
            served.origin + CHAT,
            json={"model": "m", "messages": [], "stream": True},
            headers=bearer(made["key"]),
        ) as answer,
    ):
        next(answer.iter_raw())
    deadline = time.monotonic() + 8
    while usage(folder, made["id"]).get("completion_tokens", 0) == 0:
        assert time.monotonic() < deadline, "the tokens of an abandoned stream were lost"
        time.sleep(0.2)
    totals = usage(folder, made["id"])
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (7, 3)


def test_upstream_failures_are_counted(served: Served, folder: Path, fake: FakeOpenAI) -> None:
    fake.reset(lambda seen: Answer(status=500, body=b"oops", headers={}))
    made = make_key(folder)
    assert chat(served, made["key"]).status_code == 502
    assert (
        usage(folder, made["id"], lambda t: t.get("upstream_errors", 0) > 0)["upstream_errors"] == 1
    )


# --- usage written in batches ------------------------------------------------------------------


def test_usage_counted_in_memory_is_all_in_the_store_once_the_service_stops(
    stub: StubUpstream, fake: FakeOpenAI, folder: Path
) -> None:
    # A rate high enough for leases: unused admissions must come back at shutdown too.
    made = make_key(folder, "--rpm", "60000", "--models", "gpt-4o-mini")
    url = sqlite_url(folder)
    with Served(stub, fake, store_url=url, rate_limit_rpm=1000, cache_enabled=True) as served:
        genres = [httpx.get(served.origin + GENRES, headers=bearer(made["key"])) for _ in range(30)]
        assert [a.status_code for a in genres] == [200] * 30
        assert sum("; hit" in a.headers["cache-status"] for a in genres) == 29
        assert chat(served, made["key"]).status_code == 200  # 60 + 50 tokens
        assert chat(served, made["key"], model="gpt-4o").status_code == 403  # refused
        fake.reset(lambda seen: Answer(status=500, body=b"oops", headers={}))
        assert chat(served, made["key"]).status_code == 502
    assert len(stub.seen) == 1
    totals = usage_totals(sqlite_url(folder), made["id"])  # read once: the service is gone
    assert {k: totals[k] for k in ("requests", "refused", "upstream_errors")} == {
        "requests": 32,
        "refused": 1,
        "upstream_errors": 1,
    }
    assert (totals["prompt_tokens"], totals["completion_tokens"], totals["cache_saved"]) == (
        60,
        50,
        29,
    )
