"""Sample-data mode: all nine operations answer from bundled data, with no network at all."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from tests.conftest import AUTH, EPISODE_ID, PODCAST_ID, UNKNOWN_ID, LogCapture, make_settings


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to open a connection fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network used in sample-data mode: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield


@pytest.mark.parametrize(
    "url",
    [
        "/api/v2/search_episodes?q=compiler",
        "/api/v2/search_podcasts?q=money",
        "/api/v2/best_podcasts",
        "/api/v2/just_listen",
        "/api/v2/genres",
        "/api/v2/languages",
        "/api/v2/regions",
        f"/api/v2/episodes/{EPISODE_ID}",
        f"/api/v2/podcasts/{PODCAST_ID}",
    ],
)
def test_every_operation_answers(sample_client: TestClient, url: str) -> None:
    response = sample_client.get(url, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body
    # No `email` field, and no address inside a text (it reads "[email removed]").
    assert '"email"' not in response.text and "@" not in response.text
    assert "transcript" not in response.text
    assert "<p>" not in response.text


def test_search_filters_by_q(sample_client: TestClient) -> None:
    body = sample_client.get("/api/v2/search_episodes?q=compiler", headers=AUTH).json()
    assert body["total"] >= 1
    assert all(
        "compiler" in r["title"].lower() or "compiler" in r["description"].lower()
        for r in body["results"]
    )
    none = sample_client.get("/api/v2/search_episodes?q=zzzunfindable", headers=AUTH).json()
    assert none == {"count": 0, "total": 0, "next_offset": 0, "results": []}


def test_search_pages_with_page_size_and_offset(sample_client: TestClient) -> None:
    first = sample_client.get("/api/v2/search_episodes?q=the&page_size=3", headers=AUTH).json()
    assert first["count"] == 3 and len(first["results"]) == 3 and first["total"] > 3
    second = sample_client.get(
        f"/api/v2/search_episodes?q=the&page_size=3&offset={first['next_offset']}", headers=AUTH
    ).json()
    assert {r["id"] for r in first["results"]}.isdisjoint({r["id"] for r in second["results"]})


def test_search_podcasts_by_language(sample_client: TestClient) -> None:
    body = sample_client.get(
        "/api/v2/search_podcasts?q=biologie&language=French", headers=AUTH
    ).json()
    assert body["results"] and all(r["language"] == "French" for r in body["results"])


def test_unknown_ids_are_404(sample_client: TestClient) -> None:
    for url in (
        f"/api/v2/episodes/{UNKNOWN_ID}",
        f"/api/v2/podcasts/{UNKNOWN_ID}",
        "/api/v2/best_podcasts?genre_id=999999",
    ):
        response = sample_client.get(url, headers=AUTH)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_podcast_pages_its_episodes(sample_client: TestClient) -> None:
    body = sample_client.get(f"/api/v2/podcasts/{PODCAST_ID}", headers=AUTH).json()
    dates = [e["pub_date_ms"] for e in body["episodes"]]
    assert dates == sorted(dates, reverse=True)
    older = sample_client.get(
        f"/api/v2/podcasts/{PODCAST_ID}?next_episode_pub_date={dates[1]}", headers=AUTH
    ).json()
    assert [e["pub_date_ms"] for e in older["episodes"]] == dates[2:]


def test_sample_mode_still_needs_the_secret(sample_client: TestClient) -> None:
    assert sample_client.get("/api/v2/genres").status_code == 401


def test_generated_secret_is_printed_once_and_works(
    capsys: pytest.CaptureFixture[str], logs: LogCapture
) -> None:
    app = create_app(make_settings(listen_api_key=None, chatgpt_secret=""))
    printed = capsys.readouterr().err
    [line] = [line for line in printed.splitlines() if "Authorization: Bearer" in line]
    secret = line.split("Bearer ")[1].strip()
    assert len(secret) >= 24
    assert any("sample-data mode" in line for line in logs.lines)
    with TestClient(app) as client:
        ok = client.get("/api/v2/genres", headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200
        assert client.get("/api/v2/genres").status_code == 401
    assert not any(secret in line for line in logs.lines)


def test_live_mode_never_generates_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    create_app(make_settings(chatgpt_secret=""))
    assert "Bearer" not in capsys.readouterr().err


def _titles(client: TestClient, what: str, q: str) -> list[str]:
    response = client.get(f"/api/v2/search_{what}", params={"q": q}, headers=AUTH)
    assert response.status_code == 200, response.text
    return [result["title"] for result in response.json()["results"]]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("startup", "Startup lessons from a failed launch"),  # the upstream docs' example
        ("star wars", "Star Wars and the art of the practical effect"),
        ("history", "A short history of the electric guitar"),
        ("music", "How the synthesizer changed pop music"),
        ("python", "Python packaging without the pain"),
        ("AI", "What AI models need from a data centre"),
    ],
)
def test_the_topics_people_try_first_find_episodes(
    sample_client: TestClient, q: str, expected: str
) -> None:
    assert expected in _titles(sample_client, "episodes", q)


@pytest.mark.parametrize("q", ["music", "history", "startup", "python", "star wars"])
def test_the_topics_people_try_first_find_podcasts(sample_client: TestClient, q: str) -> None:
    assert _titles(sample_client, "podcasts", q)


def test_sample_search_matches_whole_words_only(sample_client: TestClient) -> None:
    found = _titles(sample_client, "episodes", "ai")
    assert "Stadium finance explained" not in found  # "ai" is not a word of "stadium"
    assert found == ["What AI models need from a data centre"]


def test_sample_search_honours_exclude_and_exact_phrases(sample_client: TestClient) -> None:
    founder = _titles(sample_client, "episodes", "founder")
    assert "Raising a seed round in a down market" in founder
    without_seed = _titles(sample_client, "episodes", "founder -seed")
    assert "Raising a seed round in a down market" not in without_seed
    assert set(without_seed) == set(founder) - {"Raising a seed round in a down market"}
    assert _titles(sample_client, "episodes", 'founder -"seed round"') == without_seed
    assert _titles(sample_client, "episodes", '"wars star"') == []
    assert _titles(sample_client, "episodes", '"star wars" -dune') == [
        "Star Wars and the art of the practical effect"
    ]


@pytest.mark.parametrize("q", [" ", "   ", "%20%20"])
def test_a_blank_query_is_refused_like_a_missing_one(sample_client: TestClient, q: str) -> None:
    response = sample_client.get(f"/api/v2/search_episodes?q={q}", headers=AUTH)
    assert response.status_code == 422
    [detail] = response.json()["error"]["details"]
    assert detail["param"] == "q" and "search term" in detail["message"]
