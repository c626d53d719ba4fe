"""Upstream failures become clear JSON errors, and never carry a secret."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import respx
from starlette.testclient import TestClient

from app.upstream import MAX_UPSTREAM_BYTES
from tests.conftest import AUTH, SECRET, UPSTREAM_KEY, AppFactory, LogCapture

URL = "/api/v2/genres"


def error_of(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert SECRET not in response.text and UPSTREAM_KEY not in response.text
    return body["error"]  # type: ignore[no-any-return]


def test_upstream_404_is_404(client: TestClient, upstream: respx.MockRouter) -> None:
    upstream.get("/genres").mock(return_value=httpx.Response(404, json={"x": 1}))
    response = client.get(URL, headers=AUTH)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_upstream_429_passes_retry_after(client: TestClient, upstream: respx.MockRouter) -> None:
    upstream.get("/genres").mock(return_value=httpx.Response(429, headers={"Retry-After": "30"}))
    response = client.get(URL, headers=AUTH)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    assert error_of(response)["code"] == "rate_limited"


def test_upstream_429_without_retry_after(client: TestClient, upstream: respx.MockRouter) -> None:
    upstream.get("/genres").mock(return_value=httpx.Response(429))
    response = client.get(URL, headers=AUTH)
    assert response.status_code == 429
    assert "retry-after" not in response.headers


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_is_502_and_tells_the_operator(
    client: TestClient, upstream: respx.MockRouter, logs: LogCapture, status: int
) -> None:
    upstream.get("/genres").mock(return_value=httpx.Response(status, json={"error": "bad key"}))
    response = client.get(URL, headers=AUTH)
    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "upstream_unavailable"
    assert "key" not in error["message"].lower()  # the caller is not told about our key
    operator = [line for line in logs.lines if "check LISTEN_API_KEY" in line]
    assert len(operator) == 1
    assert UPSTREAM_KEY not in operator[0]


@pytest.mark.parametrize("status", [500, 502, 503, 418, 302])
def test_other_statuses_are_502(
    client: TestClient, upstream: respx.MockRouter, status: int
) -> None:
    upstream.get("/genres").mock(
        return_value=httpx.Response(status, headers={"Location": "https://elsewhere.example"})
    )
    response = client.get(URL, headers=AUTH)
    assert response.status_code == 502
    assert error_of(response)["code"] == "upstream_unavailable"


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.RemoteProtocolError("eof"), httpx.ReadError("reset")],
)
def test_connection_failures_are_502(
    client: TestClient, upstream: respx.MockRouter, failure: Exception
) -> None:
    upstream.get("/genres").mock(side_effect=failure)
    response = client.get(URL, headers=AUTH)
    assert response.status_code == 502
    assert error_of(response)["code"] == "upstream_unavailable"


@pytest.mark.parametrize(
    "body",
    [b"<html>gateway</html>", b"", b"{truncated", b"[1, 2, 3]", b'"just a string"'],
)
def test_unusable_answers_are_502(
    client: TestClient, upstream: respx.MockRouter, body: bytes
) -> None:
    upstream.get("/genres").mock(return_value=httpx.Response(200, content=body))
    response = client.get(URL, headers=AUTH)
    assert response.status_code == 502
    assert error_of(response)["code"] == "upstream_unavailable"


def test_oversized_answer_is_refused(client: TestClient, upstream: respx.MockRouter) -> None:
    huge = b'{"genres": [' + b'{"id": 1, "name": "x"},' * (MAX_UPSTREAM_BYTES // 20) + b"{}]}"
    upstream.get("/genres").mock(return_value=httpx.Response(200, content=huge))
    response = client.get(URL, headers=AUTH)
    assert response.status_code == 502


def test_transport_timeout_is_504(client: TestClient, upstream: respx.MockRouter) -> None:
    upstream.get("/genres").mock(side_effect=httpx.ReadTimeout("slow"))
    response = client.get(URL, headers=AUTH)
    assert response.status_code == 504
    assert error_of(response)["code"] == "upstream_timeout"


class StallingTransport(httpx.AsyncBaseTransport):
    """Sends headers at once, then drips the body forever: only a total deadline ends it."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async def drip():  # type: ignore[no-untyped-def]
            while True:
                yield b" "
                await asyncio.sleep(0.05)

        return httpx.Response(200, content=drip())


def test_slow_drip_is_cut_at_the_configured_timeout(make_client: AppFactory) -> None:
    client = make_client(transport=StallingTransport(), upstream_timeout=0.5)
    started = time.monotonic()
    response = client.get(URL, headers=AUTH)
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert elapsed < 0.5 + 1.0  # ends at the deadline, not whenever the upstream stops


def test_upstream_failure_is_logged_for_the_operator(
    client: TestClient, upstream: respx.MockRouter, logs: LogCapture
) -> None:
    upstream.get("/genres").mock(return_value=httpx.Response(503))
    client.get(URL, headers=AUTH)
    [request] = logs.events("request")
    assert request["status"] == 502
    assert request["upstream_status"] == 503
    assert request["operation"] == "getGenres"
    assert logs.events("upstream_failed")


_PODCAST = f"/podcasts/{'bb' * 16}"
_EPISODE = f"/episodes/{'aa' * 16}"
_OPERATIONS = {
    "searchEpisodes": ("/api/v2/search_episodes?q=x", "/search"),
    "searchPodcasts": ("/api/v2/search_podcasts?q=x", "/search"),
    "getBestPodcasts": ("/api/v2/best_podcasts", "/best_podcasts"),
    "justListen": ("/api/v2/just_listen", "/just_listen"),
    "getGenres": ("/api/v2/genres", "/genres"),
    "getLanguages": ("/api/v2/languages", "/languages"),
    "getRegions": ("/api/v2/regions", "/regions"),
    "getEpisode": ("/api/v2" + _EPISODE, _EPISODE),
    "getPodcast": ("/api/v2" + _PODCAST, _PODCAST),
}
_SHAPES = {
    "weird": {"weird": True},
    "a podcast": {"id": "bb" * 16, "title": "A podcast", "episodes": []},
    "genres": {"genres": [{"id": 1, "name": "Tech", "parent_id": None}]},
    "regions not an object": {"regions": "us"},
}


@pytest.mark.parametrize("shape", _SHAPES, ids=list(_SHAPES))
@pytest.mark.parametrize("operation", _OPERATIONS, ids=list(_OPERATIONS))
def test_an_answer_of_another_shape_is_502(
    client: TestClient, upstream: respx.MockRouter, logs: LogCapture, operation: str, shape: str
) -> None:
    url, path = _OPERATIONS[operation]
    answer = _SHAPES[shape]
    fits = (operation, shape) in {
        ("getGenres", "genres"),
        ("getPodcast", "a podcast"),
        ("getEpisode", "a podcast"),  # a record with an id: its fields are all optional
        ("justListen", "a podcast"),
    }
    upstream.get(path).mock(return_value=httpx.Response(200, json=answer))
    response = client.get(url, headers=AUTH)
    if fits:
        assert response.status_code == 200
        return
    assert response.status_code == 502, response.text
    assert error_of(response)["code"] == "upstream_unavailable"
    assert any(
        "upstream answer has another shape" in line and operation in line for line in logs.lines
    )
