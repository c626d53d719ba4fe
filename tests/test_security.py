"""Caller authentication: exactly one well-formed credential header with a configured secret."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import httpx
import pytest
import respx
from starlette.testclient import TestClient

from app.security import presented_bearer
from tests.conftest import OTHER_SECRET, SECRET, AppFactory, LogCapture
from tests.live import live_server

URL = "/api/v2/languages"


@pytest.fixture(autouse=True)
def _languages(upstream: respx.MockRouter) -> respx.Route:
    return upstream.get("/languages").mock(
        return_value=httpx.Response(200, json={"languages": ["English"]})
    )


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_scheme_is_case_insensitive(client: TestClient, scheme: str) -> None:
    response = client.get(URL, headers={"Authorization": f"{scheme} {SECRET}"})
    assert response.status_code == 200
    assert response.json() == {"languages": ["English"]}


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Bearer",
        "Bearer ",
        f"Bearer  {SECRET}",
        f"Bearer {SECRET} ",
        f" Bearer {SECRET}",
        f"Bearer {SECRET}x",
        f"Bearer x{SECRET}",
        f"Bearer {SECRET[:-1]}",
        f"Bearer {SECRET.upper()}",
        f"Basic {SECRET}",
        f"Token {SECRET}",
        SECRET,
        f"Bearer\t{SECRET}",
        "Bearer " + "a" * 8192,
    ],
)
def test_anything_else_is_401(client: TestClient, upstream: respx.MockRouter, value: str) -> None:
    response = client.get(URL, headers={"Authorization": value})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "unauthorized"
    assert SECRET not in response.text
    assert upstream.calls.call_count == 0


def test_missing_header_is_401(client: TestClient, upstream: respx.MockRouter) -> None:
    response = client.get(URL)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert upstream.calls.call_count == 0


def test_two_authorization_headers_are_401(client: TestClient, upstream: respx.MockRouter) -> None:
    headers = [("Authorization", f"Bearer {SECRET}"), ("Authorization", f"Bearer {SECRET}")]
    response = client.get(URL, headers=httpx.Headers(headers))
    assert response.status_code == 401
    assert upstream.calls.call_count == 0


def test_secret_in_query_or_cookie_is_not_accepted(client: TestClient) -> None:
    assert client.get(f"{URL}?access_token={SECRET}").status_code == 401
    assert client.get(URL, headers={"Cookie": f"Authorization=Bearer {SECRET}"}).status_code == 401


def test_every_rotated_secret_is_accepted(make_client: AppFactory) -> None:
    client = make_client(chatgpt_secret=f"{SECRET}, {OTHER_SECRET}")
    for secret in (SECRET, OTHER_SECRET):
        assert client.get(URL, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert (
        client.get(URL, headers={"Authorization": "Bearer nope-nope-nope-nope"}).status_code == 401
    )


def test_auth_is_checked_before_parameters(client: TestClient) -> None:
    # Without the secret a caller learns nothing, not even which parameters are wrong.
    response = client.get("/api/v2/search_episodes?page_size=999")
    assert response.status_code == 401


def test_no_secret_configured_means_closed(
    make_client: AppFactory, upstream: respx.MockRouter, logs: LogCapture
) -> None:
    client = make_client(chatgpt_secret="")
    assert any("CHATGPT_SECRET is not set" in line for line in logs.lines)
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer anything-at-all"}):
        response = client.get(URL, headers=headers)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "service_locked"
    assert upstream.calls.call_count == 0
    # The public documents stay up, so the operator can still see the service.
    assert client.get("/healthz").status_code == 200
    assert client.get("/.well-known/ai-plugin.json").status_code == 200


@pytest.mark.parametrize(
    ("values", "token"),
    [
        (["Bearer abc"], b"abc"),
        (["bearer abc"], b"abc"),
        ([], None),
        (["Bearer abc", "Bearer abc"], None),
        (["Bearer a b"], None),
        (["Bearer\u00a0abc"], None),
    ],
)
def test_presented_bearer(values: list[str], token: bytes | None) -> None:
    assert presented_bearer(values) == token


# The bare credential in `api-key` (Azure-style clients; the Power Platform connectors).


def test_bare_credential_in_api_key_is_accepted(
    client: TestClient, upstream: respx.MockRouter
) -> None:
    response = client.get(URL, headers={"api-key": SECRET})
    assert response.status_code == 200
    assert response.json() == {"languages": ["English"]}
    [call] = upstream.calls
    assert "api-key" not in call.request.headers
    assert SECRET not in str(call.request.headers) + str(call.request.url)


@pytest.mark.parametrize(
    "headers",
    [
        [("api-key", f"Bearer {SECRET}")],
        [("api-key", f"{SECRET} ")],
        [("api-key", f" {SECRET}")],
        [("api-key", SECRET[:-1])],
        [("api-key", "")],
        [("api-key", SECRET), ("api-key", SECRET)],
        [("api-key", SECRET), ("Authorization", f"Bearer {SECRET}")],
        [("api-key", "wrong"), ("Authorization", f"Bearer {SECRET}")],
    ],
)
def test_api_key_is_strict_and_exclusive(
    client: TestClient, upstream: respx.MockRouter, headers: list[tuple[str, str]]
) -> None:
    response = client.get(URL, headers=httpx.Headers(headers))
    assert response.status_code == 401
    assert SECRET not in response.text
    assert upstream.calls.call_count == 0


def test_api_key_works_on_the_served_app(tmp_path: Path) -> None:
    env = {"CHATGPT_SECRET": SECRET}  # no upstream key: sample data, no network
    with live_server(env, tmp_path / "server.log") as server:
        url = server.base_url + URL

        def status(headers: dict[str, str]) -> int:
            request = urllib.request.Request(url, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return int(answer.status)
            except urllib.error.HTTPError as error:
                return int(error.code)

        assert status({"api-key": SECRET}) == 200
        assert status({"Authorization": f"Bearer {SECRET}"}) == 200
        assert status({"api-key": SECRET, "Authorization": f"Bearer {SECRET}"}) == 401
        assert status({"api-key": OTHER_SECRET + "x"}) == 401
