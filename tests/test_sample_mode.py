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
    assert "email" not in response.text and "transcript" not in response.text
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
    body = sample_client.get("/api/v2/search_podcasts?q=a&language=French", headers=AUTH).json()
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
