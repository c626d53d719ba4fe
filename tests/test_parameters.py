"""Parameters are checked before any upstream call; a bad one gets a 422 that names it."""

from __future__ import annotations

import re

import httpx
import pytest
import respx
from starlette.testclient import TestClient

from app.connectors.podcasts import API_PREFIX
from app.connectors.podcasts.operations import OPERATIONS, Operation, operation_named
from app.spec import json_schema_of
from tests.conftest import AUTH, PODCAST_ID


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
        ("q=x&genre_ids=%C2%B2,%D9%A1", "genre_ids"),  # ²,١: digits, but not ASCII ones
        ("q=x&genre_ids=68,%EF%BC%98%EF%BC%92", "genre_ids"),  # fullwidth ８２
        ("q=x&genre_ids=1234567", "genre_ids"),
        ("q=x&genre_ids=" + ",".join(["1"] * 21), "genre_ids"),
        ("q=x&genre_ids=68,%0982", "genre_ids"),  # a tab is not one of the spaces stripped
        ("q=x&only_in=000", "only_in"),
        ("q=x&only_in=title,", "only_in"),
        ("q=x&page_size=%D9%A1", "page_size"),
        ("q=x&offset=1_0", "offset"),
        ("q=x&offset=%2B1", "offset"),
        ("q=x&len_min=5.0", "len_min"),
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


# Spellings that Python's int() or pydantic's lax int would read as a number.
NOT_ASCII_DIGITS = ["١", "²", "８", "+1", "-0", "1_0", " 1", "1 ", "1.0", "1e0", "0x1", "true"]


def _integer_parameters() -> list[tuple[Operation, str]]:
    found = []
    for operation in OPERATIONS:
        properties = json_schema_of(operation.params).get("properties", {})
        for name, schema in properties.items():
            if schema.get("type") == "integer":
                found.append((operation, name))
    return found


def _call(client: TestClient, operation: Operation, name: str, value: str) -> httpx.Response:
    path = API_PREFIX + operation.path.format(id=PODCAST_ID)
    query = {"q": "x"} if "q" in operation.params.model_fields else {}
    return client.get(path, params={**query, name: value}, headers=AUTH)


@pytest.mark.parametrize(
    ("operation", "name"),
    _integer_parameters(),
    ids=[f"{op.name}.{name}" for op, name in _integer_parameters()],
)
def test_every_integer_parameter_takes_only_ascii_digits(
    client: TestClient, upstream: respx.MockRouter, operation: Operation, name: str
) -> None:
    route = upstream.route().mock(return_value=httpx.Response(404, json={}))
    for value in NOT_ASCII_DIGITS:
        response = _call(client, operation, name, value)
        assert response.status_code == 422, (value, response.text)
        details = response.json()["error"]["details"]
        assert [d["param"] for d in details] == [name], value
        assert "digits 0-9" in details[0]["message"]
        assert not route.called, value
    # The control: the same parameter spelled "1" reaches the upstream as "1".
    assert _call(client, operation, name, "1").status_code == 404  # the upstream's answer
    assert route.calls.last.request.url.params[name] == "1"


def test_every_numeric_parameter_is_covered() -> None:
    names = {name for _, name in _integer_parameters()}
    assert {"offset", "len_min", "page", "genre_id", "episode_count_min"} <= names
    assert {"published_before", "sort_by_date", "next_episode_pub_date"} <= names


@pytest.mark.parametrize(
    ("name", "value", "accepted", "forwarded"),
    [
        ("genre_ids", "68", True, "68"),
        ("genre_ids", " 68 ,  82 ", True, "68,82"),
        ("genre_ids", ",".join(["999999"] * 20), True, ",".join(["999999"] * 20)),
        ("genre_ids", ",".join(["1"] * 21), False, None),
        ("genre_ids", "1234567", False, None),
        ("genre_ids", "000", True, "000"),
        ("genre_ids", "68,,82", False, None),
        ("genre_ids", "68\t", False, None),
        ("genre_ids", "²,١", False, None),
        ("only_in", "title, audio", True, "title,audio"),
        ("only_in", "description,author", True, "description,author"),
        ("only_in", "000", False, None),
        ("only_in", "Title", False, None),
        ("only_in", "title,body", False, None),
    ],
)
def test_comma_lists_accept_exactly_their_published_pattern(
    client: TestClient,
    upstream: respx.MockRouter,
    name: str,
    value: str,
    accepted: bool,
    forwarded: str | None,
) -> None:
    spec = client.get("/openapi.json").json()
    [parameter] = [
        p
        for p in spec["paths"]["/api/v2/search_episodes"]["get"]["parameters"]
        if p["name"] == name
    ]
    published = parameter["schema"]
    in_spec = len(value) <= published["maxLength"] and bool(re.search(published["pattern"], value))
    assert in_spec is accepted  # the spec says what the service does ...
    route = upstream.get("/search").mock(
        return_value=httpx.Response(200, json={"count": 0, "results": []})
    )
    response = client.get("/api/v2/search_episodes", params={"q": "x", name: value}, headers=AUTH)
    assert (response.status_code == 200) is accepted, response.text  # ... and it does it
    if accepted:
        assert route.calls.last.request.url.params[name] == forwarded
    else:
        assert response.status_code == 422 and not route.called
        assert "comma-separated" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("url", "param", "rule"),
    [
        ("/api/v2/episodes/NOT-AN-ID-zz{}", "id", "'^[0-9a-f]{32}$'"),
        ("/api/v2/search_podcasts?q=x&language=9random", "language", r"'^[^\W\d_][\w ()'.-]*$'"),
    ],
)
def test_422_messages_keep_the_rule_intact_and_never_echo_the_input(
    client: TestClient, upstream: respx.MockRouter, url: str, param: str, rule: str
) -> None:
    response = client.get(url, headers=AUTH)
    assert response.status_code == 422
    [detail] = response.json()["error"]["details"]
    assert detail["param"] == param
    assert rule in detail["message"]  # brackets, braces, ^ and $ all kept
    assert rule in response.json()["error"]["message"]
    for sent in ("NOT-AN-ID", "random"):
        assert sent not in response.text
    assert not upstream.calls


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("q=%ff%fe", "q"),
        ("q=caf%E9", "q"),  # Latin-1, not UTF-8
        ("q=x&language=%C3", "language"),  # a cut UTF-8 sequence
        ("q=%ED%A0%80", "q"),  # an encoded surrogate
    ],
)
def test_values_that_are_not_utf8_are_422_naming_the_parameter(
    client: TestClient, upstream: respx.MockRouter, query: str, param: str
) -> None:
    response = client.get(f"/api/v2/search_episodes?{query}", headers=AUTH)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["details"] == [
        {"param": param, "message": "must be UTF-8 text"}
    ]
    assert not upstream.calls


def test_utf8_values_and_undeclared_oddities_still_pass(
    client: TestClient, upstream: respx.MockRouter
) -> None:
    route = upstream.get("/search").mock(return_value=httpx.Response(200, json={"results": []}))
    response = client.get("/api/v2/search_episodes?q=caf%C3%A9+cr%C3%A8me&utm=%ff", headers=AUTH)
    assert response.status_code == 200
    assert route.calls.last.request.url.params["q"] == "café crème"
    assert "utm" not in str(route.calls.last.request.url)


def test_reserved_characters_in_a_value_reach_the_upstream_as_that_one_value(
    client: TestClient, upstream: respx.MockRouter
) -> None:
    route = upstream.get("/search").mock(return_value=httpx.Response(200, json={"results": []}))
    asked = "a&b=c+d #e/f%20~ é"
    response = client.get("/api/v2/search_episodes", params={"q": asked}, headers=AUTH)
    assert response.status_code == 200
    sent = route.calls.last.request.url
    assert sent.params["q"] == asked
    assert "b" not in sent.params  # the `&` and `=` did not make a parameter of their own
    assert b"q=a%26b%3Dc%2Bd+%23e%2Ff%2520~+%C3%A9&" in sent.query + b"&"
