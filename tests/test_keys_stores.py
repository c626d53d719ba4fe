"""Keys and limits on every store, and when the store goes away: two server processes
sharing one SQLite file, a real redis-server stopped and started again, and DynamoDB
(moto in server mode) behind the Lambda handler."""

from __future__ import annotations

import concurrent.futures
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.lambda_handler import make_handler
from app.main import create_app
from tests.conftest import SECRET, LogCapture, make_settings
from tests.fake_openai import FakeOpenAI
from tests.keys_support import Served, keys_cli, sqlite_url
from tests.live import live_server
from tests.servers import moto_server, redis_server  # noqa: F401 - fixtures
from tests.store_backends import create_table
from tests.stub_upstream import StubUpstream
from tests.test_lambda import http_event, invoke

GENRES = "/api/v2/genres"


@pytest.fixture(scope="module")
def stub() -> Iterator[StubUpstream]:
    with StubUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        yield upstream


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_two_processes_sharing_one_sqlite_file_let_exactly_the_limit_through(
    tmp_path: Path, stub: StubUpstream
) -> None:
    url = sqlite_url(tmp_path / "store")
    key = keys_cli(url, "create", "--name", "bot", "--rpm", "5")["key"]
    env = {"STORE_URL": url, "CHATGPT_SECRET": SECRET, "LISTEN_API_KEY": "k" * 20}
    env["LISTEN_API_BASE_URL"] = stub.base_url
    with (
        live_server(env, tmp_path / "one.log") as one,
        live_server(env, tmp_path / "two.log") as two,
    ):
        origins = [one.base_url, two.base_url] * 10
        start = threading.Barrier(len(origins))

        def call(origin: str) -> int:
            start.wait()
            return httpx.get(origin + GENRES, headers=bearer(key), timeout=10).status_code

        with concurrent.futures.ThreadPoolExecutor(len(origins)) as pool:
            statuses = list(pool.map(call, origins))
    # 5 a minute: one more every 12 s, far longer than this burst takes.
    assert sorted(statuses) == [200] * 5 + [429] * 15
    assert len(stub.seen) == 5


def test_redis_going_away_and_coming_back(
    redis_server: Any,  # noqa: F811
    stub: StubUpstream,
    fake: FakeOpenAI,
    logs: LogCapture,
) -> None:
    url = redis_server.url
    key = keys_cli(url, "create", "--name", "bot")["key"]
    with Served(stub, fake, store_url=url, rate_limit_rpm=3) as served:
        assert httpx.get(served.origin + GENRES, headers=bearer(key)).status_code == 200
        redis_server.stop()
        try:
            down = httpx.get(served.origin + GENRES, headers=bearer(key), timeout=10)
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "store_unavailable"
            assert "store" in down.json()["error"]["message"]
            chat = httpx.post(
                served.origin + "/openai/v1/chat/completions",
                json={"model": "m", "messages": []},
                headers=bearer(key),
                timeout=10,
            )
            assert chat.status_code == 503 and chat.json()["error"]["type"] == "server_error"
            # The shared secret keeps working, limited in process (3 a minute).
            statuses = [
                httpx.get(served.origin + GENRES, headers={"api-key": SECRET}).status_code
                for _ in range(4)
            ]
            assert statuses == [200, 200, 200, 429]
            assert len(logs.events("store_unavailable")) == 1  # once per outage
        finally:
            redis_server.start()
        # redis-server keeps nothing across a restart here: a new key, the same server.
        key = keys_cli(url, "create", "--name", "bot")["key"]
        deadline = time.monotonic() + 5
        while httpx.get(served.origin + GENRES, headers=bearer(key)).status_code != 200:
            assert time.monotonic() < deadline, "the service did not resume by itself"
            time.sleep(0.2)
        assert logs.events("store_recovered")
    assert "redis" in logs.events("store_unavailable")[0]["store"]


def test_a_locked_sqlite_store_is_503_for_keys_while_the_secret_still_works(
    tmp_path: Path, stub: StubUpstream, fake: FakeOpenAI, logs: LogCapture
) -> None:
    # Running as root, a folder cannot be made unreadable; another process holding the
    # write lock past the busy timeout (5 s) makes the store just as unusable.
    folder = tmp_path / "store"
    url = sqlite_url(folder)
    key = keys_cli(url, "create", "--name", "bot")["key"]
    with Served(stub, fake, store_url=url) as served:
        assert httpx.get(served.origin + GENRES, headers=bearer(key)).status_code == 200
        holder = sqlite3.connect(folder / "state.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            down = httpx.get(served.origin + GENRES, headers=bearer(key), timeout=20)
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "store_unavailable"
            secret = httpx.get(served.origin + GENRES, headers={"api-key": SECRET}, timeout=20)
            assert secret.status_code == 200
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        time.sleep(1.1)  # the gate retries the store at most once a second while it is down
        assert httpx.get(served.origin + GENRES, headers=bearer(key)).status_code == 200
    assert len(logs.events("store_unavailable")) == 1
    assert logs.events("store_recovered")


def test_a_key_on_dynamodb_through_the_lambda_handler(
    moto_server: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    table = f"keys-{uuid.uuid4().hex[:8]}"
    create_table(moto_server.endpoint, table)
    url = f"dynamodb://{table}?region=us-east-1&endpoint={moto_server.endpoint}"
    made = keys_cli(url, "create", "--name", "lambda", "--rpm", "2", "--scopes", "podcasts")
    handler = make_handler(create_app(make_settings(listen_api_key=None, store_url=url)))
    statuses = []
    for _ in range(3):
        status, headers, _body = invoke(handler, http_event(GENRES, headers=bearer(made["key"])))
        statuses.append(status)
    assert statuses == [200, 200, 429]
    assert headers["retry-after"] and headers["ratelimit"].startswith('"minute";r=0;')
    status, _, _ = invoke(handler, http_event(GENRES, headers=bearer("lnp_" + "x" * 49)))
    assert status == 401
    [day] = keys_cli(url, "usage", made["id"])
    assert (day["requests"], day["refused"]) == (2, 1)
