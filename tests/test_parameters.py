"""Parameters are checked before any upstream call; a bad one gets a 422 that names it."""

from __future__ import annotations

import httpx
import pytest
import respx
from starlette.testclient import TestClient

from app.operations import OPERATIONS, operation_named
from tests.conftest import AUTH


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("", "q"),
        ("q=", "q"),
        ("q=x&page_size=0", "page_size"),
        ("q=x&page_size=11", "page_size"),
        ("q=x&page_size=ten", "page_size"),
        ("q=x&offset=-1", "offset"),
        ("q=x&sort_by_date=2", "sort_by_date"),
        ("q=x&len_min=99999", "len_min"),
        ("q=x&region=USA", "region"),
        ("q=x&language=English%0D%0AX-Evil:%201", "language"),
        ("q=x&only_in=title,body", "only_in"),
        ("q=x&genre_ids=67,abc", "genre_ids"),
        ("q=x&genre_ids=67,,68", "genre_ids"),
        ("q=line%0D%0Abreak", "q"),
        ("q=nul%00byte", "q"),
        ("q=" + "a" * 5000, "q"),
        ("q=x&page_size=3&page_size=4", "page_size"),
    ],
)
def test_bad_search_parameters_are_422(
    client: TestClient, upstream: respx.MockRouter, query: str, param: str
) -> None:
    response = client.get(f"/api/v2/search_episodes?{query}", headers=AUTH)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_parameters"
    assert param in error["message"]
    assert param in [d["param"] for d in error["details"]]
    assert upstream.calls.call_count == 0


def test_error_message_does_not_echo_the_input(client: TestClient) -> None:
    response = client.get("/api/v2/search_episodes?q=x&region=%3Cscript%3E", headers=AUTH)
    assert response.status_code == 422
    assert "<script>" not in response.text


@pytest.mark.parametrize(
    "url",
    [
        "/api/v2/best_podcasts?sort=random",
        "/api/v2/best_podcasts?page=0",
        "/api/v2/best_podcasts?genre_id=-5",
        "/api/v2/genres?top_level_only=yes",
        "/api/v2/podcasts/" + "a" * 32 + "?sort=newest",
        "/api/v2/podcasts/" + "a" * 32 + "?next_episode_pub_date=soon",
    ],
)
def test_other_bad_parameters_are_422(
    client: TestClient, upstream: respx.MockRouter, url: str
) -> None:
    response = client.get(url, headers=AUTH)
    assert response.status_code == 422
    assert upstream.calls.call_count == 0


def test_empty_optional_values_count_as_absent(
    client: TestClient, upstream: respx.MockRouter
) -> None:
    route = upstream.get("/search").mock(
        return_value=httpx.Response(200, json={"count": 0, "results": []})
    )
    response = client.get("/api/v2/search_episodes?q=x&language=&page_size=", headers=AUTH)
    assert response.status_code == 200
    assert dict(route.calls.last.request.url.params) == {"q": "x", "type": "episode"}


def test_unicode_search_terms_are_forwarded_intact(
    client: TestClient, upstream: respx.MockRouter
) -> None:
    route = upstream.get("/search").mock(
        return_value=httpx.Response(200, json={"count": 0, "results": []})
    )
    client.get("/api/v2/search_episodes", params={"q": 'Écoute "café crème" -déca'}, headers=AUTH)
    assert route.calls.last.request.url.params["q"] == 'Écoute "café crème" -déca'


def test_operation_names_are_unique_and_function_safe() -> None:
    names = [op.name for op in OPERATIONS]
    assert len(set(names)) == len(names) == 9
    assert operation_named("getEpisode").path_params == {"id"}
    assert operation_named("searchEpisodes").fixed == {"type": "episode"}
