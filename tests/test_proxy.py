"""Every operation end to end: what reaches the upstream, and what the caller gets back."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx
from starlette.testclient import TestClient

from app.main import create_app
from tests import payloads
from tests.conftest import AUTH, SECRET, UPSTREAM_KEY, make_settings
from tests.stub_upstream import StubUpstream

# (proxy path and query, upstream path, upstream answer, expected upstream query)
CASES: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
    (
        "/api/v2/search_episodes?q=compilers&page_size=5&language=English&sort_by_date=1",
        "/search",
        payloads.search_answer(payloads.SEARCH_EPISODE),
        {
            "q": "compilers",
            "page_size": "5",
            "language": "English",
            "sort_by_date": "1",
            "type": "episode",
        },
    ),
    (
        "/api/v2/search_podcasts?q=infra&episode_count_min=10&genre_ids=67,%20107",
        "/search",
        payloads.search_answer(payloads.SEARCH_PODCAST),
        {"q": "infra", "episode_count_min": "10", "genre_ids": "67,107", "type": "podcast"},
    ),
    (
        "/api/v2/best_podcasts?genre_id=67&page=2&region=us&sort=listen_score",
        "/best_podcasts",
        payloads.BEST,
        {"genre_id": "67", "page": "2", "region": "us", "sort": "listen_score"},
    ),
    ("/api/v2/just_listen", "/just_listen", payloads.EPISODE, {}),
    (
        "/api/v2/genres?top_level_only=1",
        "/genres",
        {"genres": [{"id": 67, "name": "Technology", "parent_id": None}]},
        {"top_level_only": "1"},
    ),
    ("/api/v2/languages", "/languages", {"languages": ["English", "French"]}, {}),
    ("/api/v2/regions", "/regions", {"regions": {"us": "United States"}}, {}),
    (
        f"/api/v2/episodes/{payloads.EPISODE_ID}",
        f"/episodes/{payloads.EPISODE_ID}",
        payloads.EPISODE,
        {},
    ),
    (
        f"/api/v2/podcasts/{payloads.PODCAST_ID}?sort=oldest_first&next_episode_pub_date=1700000000000",
        f"/podcasts/{payloads.PODCAST_ID}",
        {**payloads.PODCAST, "episodes": [payloads.EPISODE], "next_episode_pub_date": 1},
        {"sort": "oldest_first", "next_episode_pub_date": "1700000000000"},
    ),
]


@pytest.mark.parametrize(("url", "upstream_path", "answer", "expected_query"), CASES)
def test_operation_forwards_only_declared_parameters_with_the_key(
    client: TestClient,
    upstream: respx.MockRouter,
    url: str,
    upstream_path: str,
    answer: dict[str, Any],
    expected_query: dict[str, str],
) -> None:
    route = upstream.get(upstream_path).mock(return_value=httpx.Response(200, json=answer))
    separator = "&" if "?" in url else "?"
    response = client.get(
        f"{url}{separator}unknown=1&api_key=stolen",
        headers={
            **AUTH,
            "Cookie": "session=abc",
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Host": "evil.example",
            "openai-conversation-id": "conv-1",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert route.call_count == 1
    sent = route.calls.last.request
    assert dict(sent.url.params) == expected_query
    assert sent.headers["x-listenapi-key"] == UPSTREAM_KEY
    for header in (
        "authorization",
        "cookie",
        "x-forwarded-for",
        "x-forwarded-host",
        "openai-conversation-id",
    ):
        assert header not in sent.headers
    assert SECRET not in str(sent.url) and SECRET not in str(sent.headers)


def test_fixed_type_cannot_be_overridden(client: TestClient, upstream: respx.MockRouter) -> None:
    route = upstream.get("/search").mock(
        return_value=httpx.Response(200, json=payloads.search_answer(payloads.SEARCH_EPISODE))
    )
    response = client.get("/api/v2/search_episodes?q=x&type=podcast&type=curated", headers=AUTH)
    assert response.status_code == 200
    assert route.calls.last.request.url.params.get_list("type") == ["episode"]


def test_search_answer_is_compact_and_renamed(
    client: TestClient, upstream: respx.MockRouter
) -> None:
    upstream.get("/search").mock(
        return_value=httpx.Response(200, json=payloads.search_answer(payloads.SEARCH_EPISODE, 3))
    )
    body = client.get("/api/v2/search_episodes?q=compilers", headers=AUTH).json()
    assert {k: body[k] for k in ("count", "total", "next_offset")} == {
        "count": 3,
        "total": 42,
        "next_offset": 10,
    }
    first = body["results"][0]
    assert first["title"] == "Compilers explained"
    assert first["description"] == "How a compiler works.\nMail [email removed]"
    assert first["podcast"]["title"] == "Signal & Noise"
    assert first["podcast"]["publisher"] == "Hollow Pine Media"
    assert "title_original" not in first and "title_highlighted" not in first
    assert "email" not in first["podcast"] and "thumbnail" not in first["podcast"]
    assert "took" not in body


def test_podcast_answer_drops_private_and_bulky_fields(
    client: TestClient, upstream: respx.MockRouter
) -> None:
    upstream.get(f"/podcasts/{payloads.PODCAST_ID}").mock(
        return_value=httpx.Response(
            200, json={**payloads.PODCAST, "episodes": [payloads.EPISODE] * 12}
        )
    )
    body = client.get(f"/api/v2/podcasts/{payloads.PODCAST_ID}", headers=AUTH).json()
    for private in ("email", "rss", "looking_for", "extra"):
        assert private not in body
    assert body["genre_ids"] == [67, 107]
    assert len(body["episodes"]) == 10
    assert "transcript" not in body["episodes"][0]


def test_episode_answer_has_no_transcript(client: TestClient, upstream: respx.MockRouter) -> None:
    upstream.get(f"/episodes/{payloads.EPISODE_ID}").mock(
        return_value=httpx.Response(200, json=payloads.EPISODE)
    )
    response = client.get(f"/api/v2/episodes/{payloads.EPISODE_ID}", headers=AUTH)
    body = response.json()
    assert body["title"] == "Compilers explained"
    assert body["podcast"]["title"] == "Signal & Noise"
    assert "transcript" not in body and "email" not in body["podcast"]
    assert len(response.content) < 2_000


def test_regions_become_a_list_of_objects(client: TestClient, upstream: respx.MockRouter) -> None:
    upstream.get("/regions").mock(
        return_value=httpx.Response(200, json={"regions": {"us": "United States", "fr": "France"}})
    )
    body = client.get("/api/v2/regions", headers=AUTH).json()
    assert body == {
        "regions": [{"code": "us", "name": "United States"}, {"code": "fr", "name": "France"}]
    }


def test_uppercase_or_traversal_ids_never_reach_the_upstream(
    client: TestClient, upstream: respx.MockRouter
) -> None:
    for bad in ("AA" * 16, "..%2F..%2Fsearch", "a" * 31, "a" * 33, "g" * 32):
        response = client.get(f"/api/v2/episodes/{bad}", headers=AUTH)
        assert response.status_code in (404, 422), bad
        assert response.json()["error"]["code"] in ("invalid_parameters", "not_found")
    assert upstream.calls.call_count == 0


def test_answers_use_the_configured_upstream_base(
    make_client: Any, upstream: respx.MockRouter
) -> None:
    route = upstream.get("/languages").mock(
        return_value=httpx.Response(200, json={"languages": []})
    )
    client = make_client()
    client.get("/api/v2/languages", headers=AUTH)
    assert str(route.calls.last.request.url) == "https://listen-api.example.test/api/v2/languages"


@pytest.mark.parametrize("network", ["http1", "aiohttp", "httpx"])
def test_one_pooled_connection_serves_sequential_requests(network: str) -> None:
    """Over real sockets: the transport is built once and keeps its connection alive."""
    with StubUpstream() as stub:
        app = create_app(make_settings(listen_api_base_url=stub.base_url), network=network)
        with TestClient(app) as client:
            for _ in range(5):
                response = client.get("/api/v2/genres", headers=AUTH)
                assert response.status_code == 200
                assert response.json()["genres"][0]["name"] == "Technology"
        assert len(stub.seen) == 5
        assert len(stub.connections()) == 1
        assert stub.seen[0].headers["x-listenapi-key"] == UPSTREAM_KEY
