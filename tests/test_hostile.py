"""Hostile input and faults, against the real server (uvicorn subprocess, aiohttp transport)
and a real upstream on loopback. Bounded: every loop has a fixed count and timeouts.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import statistics
import time
from collections.abc import Iterator
from itertools import count

import aiohttp
import pytest

from app.connectors.podcasts.answers import SearchEpisodesAnswer
from tests import payloads
from tests.conftest import OTHER_SECRET, SECRET, UPSTREAM_KEY
from tests.live import LiveServer, live_server
from tests.stub_upstream import Reply, Seen, StubUpstream, default_reply

UPSTREAM_TIMEOUT = 1.0
EPISODE = payloads.EPISODE_ID
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def stub() -> Iterator[StubUpstream]:
    with StubUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def server(stub: StubUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {
        "LISTEN_API_KEY": UPSTREAM_KEY,
        "LISTEN_API_BASE_URL": stub.base_url,
        "CHATGPT_SECRET": f"{SECRET},{OTHER_SECRET}",
        "UPSTREAM_TIMEOUT": str(UPSTREAM_TIMEOUT),
    }
    with live_server(env, tmp_path_factory.mktemp("live") / "server.log") as live:
        yield live
    # The whole module's log: one line per request, and no secret anywhere in it.
    text = live.log_text()
    for secret in (SECRET, OTHER_SECRET, UPSTREAM_KEY):
        assert secret not in text


@pytest.fixture(autouse=True)
def _fresh_stub(stub: StubUpstream) -> None:
    stub.answer = default_reply
    with stub._lock:
        stub.seen.clear()


def raw_get(
    server: LiveServer,
    target: str,
    headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> tuple[int, dict[str, str], bytes]:
    """Send exactly this request line and these headers (http.client: no normalising)."""
    host, port = server.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def json_error(body: bytes) -> dict[str, str]:
    error = json.loads(body)["error"]
    assert set(error) >= {"code", "message"}
    return error  # type: ignore[no-any-return]


GOOD = ("Authorization", f"Bearer {SECRET}")
BYPASSES: dict[str, list[tuple[str, str]]] = {
    "wrong case": [("Authorization", f"Bearer {SECRET.upper()}")],
    "extra space": [("Authorization", f"Bearer  {SECRET}")],
    "trailing space": [("Authorization", f"Bearer {SECRET} ")],
    "two headers": [GOOD, GOOD],
    "good and bad headers": [GOOD, ("Authorization", "Bearer nope")],
    "8 KB header": [("Authorization", "Bearer " + "x" * 8192)],
    "suffix": [("Authorization", f"Bearer {SECRET}0")],
    "prefix": [("Authorization", f"Bearer 0{SECRET}")],
    "truncated": [("Authorization", f"Bearer {SECRET[:-1]}")],
    "empty bearer": [("Authorization", "Bearer ")],
    "scheme only": [("Authorization", "Bearer")],
    "basic": [("Authorization", f"Basic {SECRET}")],
    "token": [("Authorization", f"Token {SECRET}")],
    "bare secret": [("Authorization", SECRET)],
    "no header": [],
    "cookie": [("Cookie", f"Authorization=Bearer {SECRET}")],
    "proxy header": [("Proxy-Authorization", f"Bearer {SECRET}")],
}


def test_auth_bypass_attempts_are_401_and_no_slower_than_success(
    server: LiveServer, stub: StubUpstream
) -> None:
    target = "/api/v2/search_episodes?q=compilers"
    successes = []
    for attempt in range(15):
        started = time.perf_counter()
        # Each time a target not seen before (an ignored parameter), so that the full path
        # answers, as it answers refusals: app/hot.py answers only targets it has seen.
        status, _, _ = raw_get(server, f"{target}&attempt={attempt}", [GOOD])
        successes.append(time.perf_counter() - started)
        assert status == 200
    seen_by_upstream = len(stub.seen)
    for name, headers in BYPASSES.items():
        timings = []
        for _ in range(15):
            started = time.perf_counter()
            status, answer_headers, body = raw_get(server, target, headers)
            timings.append(time.perf_counter() - started)
            assert status == 401, name
            assert answer_headers["www-authenticate"].startswith("Bearer"), name
            assert json_error(body)["code"] == "unauthorized", name
        # A refusal never waits on the upstream, so it is no slower than a success (the
        # factor absorbs this shared machine's noise, not a real difference).
        assert statistics.median(timings) <= statistics.median(successes) * 1.5, name
    assert len(stub.seen) == seen_by_upstream  # no refused request reached the upstream


@pytest.mark.parametrize(
    "target",
    [
        "/api/v2/episodes/../../search?q=x",
        "/api/v2/episodes/..%2F..%2Fsearch?q=x",
        "/api/v2/episodes/%2e%2e%2f%2e%2e%2fsearch",
        f"/api/v2/episodes/{EPISODE}/../../search",
        f"/api/v2/episodes/{EPISODE}%2F..%2F..%2Fsearch",
        "/api/v2/podcasts/aaaaaaaaaaaaaaaa%2Fbbbbbbbbbbbbbbbb",
        f"/api/v2/episodes/{EPISODE}%00",
        f"/api/v2/episodes/{EPISODE}%0d%0aX-Injected:%201",
        "/api/v2/episodes/%252e%252e",
        "/api/v2/search?q=x&type=episode",
        "/api/v2/../../etc/passwd",
        "//listen-api.listennotes.com/api/v2/search?q=x",
        "/api/v2/genres/../../../",
        "/api/v2/episodes/" + "a" * 5000,
    ],
)
def test_path_abuse_gets_a_clear_4xx_and_never_reaches_the_upstream(
    server: LiveServer, stub: StubUpstream, target: str
) -> None:
    status, headers, body = raw_get(server, target, [GOOD])
    assert status in (404, 422), (target, status)
    assert headers["content-type"] == "application/json"
    assert json_error(body)["code"] in ("not_found", "invalid_parameters")
    assert stub.seen == []


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("q=line%0D%0Abreak", "q"),
        ("q=nul%00byte", "q"),
        ("q=" + "a" * 5000, "q"),
        ("q=x&language=English%0D%0AX-Evil:%201", "language"),
        ("q=x&region=u%00", "region"),
        ("q=x&page_size=3&page_size=4", "page_size"),
        ("q=x&q=y", "q"),
        ("q=x&genre_ids=1%0A2", "genre_ids"),
        ("q=x&only_in=title,../../etc", "only_in"),
        ("q=x&offset=1e9", "offset"),
    ],
)
def test_parameter_abuse_gets_422_and_never_reaches_the_upstream(
    server: LiveServer, stub: StubUpstream, query: str, param: str
) -> None:
    status, _, body = raw_get(server, f"/api/v2/search_episodes?{query}", [GOOD])
    assert status == 422
    error = json_error(body)
    assert error["code"] == "invalid_parameters"
    assert param in error["message"]
    assert stub.seen == []


def test_unknown_and_fixed_parameters_are_not_forwarded(
    server: LiveServer, stub: StubUpstream
) -> None:
    target = (
        "/api/v2/search_episodes?q=compilers&api_key=evil&type=podcast&callback=x"
        "&show_transcript=1&next=http://evil.example&page_size=2"
    )
    status, _, body = raw_get(
        server, target, [GOOD, ("Cookie", "session=1"), ("X-Forwarded-For", "203.0.113.7")]
    )
    assert status == 200
    SearchEpisodesAnswer.model_validate_json(body)
    [seen] = stub.seen
    assert seen.path == "/api/v2/search"
    assert sorted(seen.query) == [("page_size", "2"), ("q", "compilers"), ("type", "episode")]
    assert seen.headers["x-listenapi-key"] == UPSTREAM_KEY
    for header in ("authorization", "cookie", "x-forwarded-for", "proxy-authorization"):
        assert header not in seen.headers


def faulty(numbers: Iterator[int]) -> object:
    """10% 500s, 5% stalls past the timeout, 5% malformed JSON, the rest valid."""

    def answer(seen: Seen) -> Reply:
        n = next(numbers) % 20
        if n in (0, 1):
            return Reply(status=500, body=b'{"error": "boom"}')
        if n == 2:
            return Reply(body=b"{}", delay=UPSTREAM_TIMEOUT + 2)
        if n == 3:
            return Reply(body=b'{"count": 10, "results": [{"id": "trunc')
        return default_reply(seen)

    return answer


def test_faults_under_load(server: LiveServer, stub: StubUpstream) -> None:
    stub.answer = faulty(count())  # type: ignore[assignment]

    async def one(client: aiohttp.ClientSession, i: int) -> tuple[int, float, bytes]:
        started = time.perf_counter()
        request_id = f"faults-under-load-{i:04d}"  # to find this request's own log line
        async with client.get(
            f"/api/v2/search_episodes?q=load{i}", headers={"X-Request-Id": request_id}
        ) as response:
            body = await response.read()
        return response.status, time.perf_counter() - started, body

    async def load() -> list[tuple[int, float, bytes]]:
        # aiohttp, lean enough that the client's own queueing stays out of the timings.
        async with aiohttp.ClientSession(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {SECRET}"},
            connector=aiohttp.TCPConnector(limit=200),
            timeout=aiohttp.ClientTimeout(total=30),
        ) as client:
            return await asyncio.gather(*(one(client, i) for i in range(200)))

    results = asyncio.run(load())
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 502, 504}, statuses  # never an unhandled 500
    assert statuses.count(504) >= 5 and statuses.count(502) >= 20 and statuses.count(200) >= 100
    for status, elapsed, body in results:
        assert elapsed < UPSTREAM_TIMEOUT + 1, (status, elapsed)  # nothing hangs
        if status == 200:
            assert SearchEpisodesAnswer.model_validate_json(body).results
        else:
            expected = "upstream_timeout" if status == 504 else "upstream_unavailable"
            assert json_error(body)["code"] == expected
    assert len(stub.seen) == 200
    # The server's own measure of each request (its log line) is within the bound too.
    time.sleep(0.2)
    lines = [
        json.loads(line)
        for line in server.log_text().splitlines()
        if '"request_id":"faults-under-load-' in line
    ]
    assert len(lines) == 200
    assert max(line["latency_ms"] for line in lines) < (UPSTREAM_TIMEOUT + 1) * 1000
    # Still serving afterwards.
    stub.answer = default_reply
    assert server.process.poll() is None
    status, _, body = raw_get(server, "/api/v2/search_episodes?q=after", [GOOD])
    assert status == 200 and json.loads(body)["results"]


def test_dropped_connection_is_a_502_not_a_timeout(server: LiveServer, stub: StubUpstream) -> None:
    stub.answer = lambda seen: Reply(drop=True)
    started = time.perf_counter()
    status, _, body = raw_get(server, "/api/v2/genres", [GOOD])
    assert status == 502
    assert json_error(body)["code"] == "upstream_unavailable"
    assert time.perf_counter() - started < UPSTREAM_TIMEOUT


def test_gzip_answers_are_decoded(server: LiveServer, stub: StubUpstream) -> None:
    import gzip

    body = gzip.compress(json.dumps({"languages": ["English", "Français"]}).encode())
    stub.answer = lambda seen: Reply(
        body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    status, _, answer = raw_get(server, "/api/v2/languages", [GOOD])
    assert status == 200
    assert json.loads(answer) == {"languages": ["English", "Français"]}
    assert stub.seen[0].headers["accept-encoding"] == "gzip"


def test_each_request_is_one_log_line(server: LiveServer) -> None:
    ids = [f"one-line-check-{n:04d}" for n in range(3)]
    for request_id in ids:
        raw_get(server, "/healthz", [("X-Request-Id", request_id)])
    deadline = time.monotonic() + 5  # the line is written just after the answer is sent
    while time.monotonic() < deadline:
        lines = [
            json.loads(line)
            for line in server.log_text().splitlines()
            if '"event":"request"' in line
        ]
        counts = [sum(line["request_id"] == request_id for line in lines) for request_id in ids]
        if counts == [1, 1, 1]:
            break
        time.sleep(0.05)
    assert counts == [1, 1, 1]
