"""The public documents: manifest, spec, logo, legal text, health; CORS."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_spec_validator import validate
from starlette.testclient import TestClient

from app.connectors.podcasts.operations import OPERATIONS
from tests.conftest import AUTH, SECRET, UPSTREAM_KEY, AppFactory

OPERATION_IDS = {
    "searchEpisodes",
    "searchPodcasts",
    "getBestPodcasts",
    "justListen",
    "getGenres",
    "getLanguages",
    "getRegions",
    "getEpisode",
    "getPodcast",
}


def test_manifest_fields_and_limits(client: TestClient) -> None:
    response = client.get("/.well-known/ai-plugin.json")
    assert response.status_code == 200
    manifest = response.json()
    assert manifest["schema_version"] == "v1"
    assert len(manifest["name_for_human"]) <= 20
    assert re.fullmatch(r"[A-Za-z0-9_]{1,50}", manifest["name_for_model"])
    assert len(manifest["description_for_human"]) <= 100
    assert len(manifest["description_for_model"]) <= 8000
    assert manifest["description_for_model"].endswith(".")  # reviewers reject it otherwise
    assert manifest["auth"] == {
        "type": "service_http",
        "authorization_type": "bearer",
        "verification_tokens": {"openai": "verify-token-123"},
    }
    assert manifest["api"] == {"type": "openapi", "url": "http://testserver/openapi.json"}
    assert manifest["logo_url"] == "http://testserver/logo.png"
    assert manifest["legal_info_url"] == "http://testserver/legal"
    assert "@" in manifest["contact_email"]
    assert SECRET not in response.text and UPSTREAM_KEY not in response.text


def test_manifest_urls_follow_the_forwarded_scheme_and_host(client: TestClient) -> None:
    manifest = client.get(
        "/.well-known/ai-plugin.json",
        headers={"Host": "plugin.example.com", "X-Forwarded-Proto": "https"},
    ).json()
    assert manifest["api"]["url"] == "https://plugin.example.com/openapi.json"
    assert manifest["logo_url"] == "https://plugin.example.com/logo.png"


@pytest.mark.parametrize(
    ("headers", "origin"),
    [
        ({"Host": "evil.example/x?", "X-Forwarded-Proto": "https"}, "https://testserver"),
        ({"X-Forwarded-Proto": "javascript"}, "http://testserver"),
        ({"Host": "a.example:443", "X-Forwarded-Proto": "https"}, "https://a.example"),
    ],
)
def test_malformed_forwarding_headers_are_ignored(
    client: TestClient, headers: dict[str, str], origin: str
) -> None:
    url = client.get("/.well-known/ai-plugin.json", headers=headers).json()["api"]["url"]
    assert url == f"{origin}/openapi.json"


def test_public_base_url_setting_wins(make_client: AppFactory) -> None:
    client = make_client(public_base_url="https://podcasts.example.com/plugin/")
    manifest = client.get("/.well-known/ai-plugin.json", headers={"Host": "other.example"}).json()
    assert manifest["api"]["url"] == "https://podcasts.example.com/plugin/openapi.json"
    spec = client.get("/openapi.json").json()
    assert spec["servers"] == [{"url": "https://podcasts.example.com/plugin"}]


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    response = client.get(
        "/openapi.json", headers={"Host": "plugin.example.com", "X-Forwarded-Proto": "https"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    return response.json()  # type: ignore[no-any-return]


def test_spec_is_valid_openapi(spec: dict[str, Any]) -> None:
    validate(spec)  # raises on any error


def test_spec_has_exactly_the_nine_operations(spec: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert sorted(ids) == sorted(OPERATION_IDS)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", i) for i in ids)
    assert set(spec["paths"]) == {f"/api/v2{op.path}" for op in OPERATIONS}


def test_spec_has_one_server_and_bearer_auth(spec: dict[str, Any]) -> None:
    assert spec["servers"] == [{"url": "https://plugin.example.com"}]
    schemes = spec["components"]["securitySchemes"]
    assert list(schemes.values()) == [schemes["bearerAuth"]]
    assert schemes["bearerAuth"]["type"] == "http" and schemes["bearerAuth"]["scheme"] == "bearer"
    assert spec["security"] == [{"bearerAuth": []}]


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_spec_respects_gpt_action_limits(spec: dict[str, Any]) -> None:
    for item in spec["paths"].values():
        for operation in item.values():
            assert 0 < len(operation["description"]) <= 300
            assert len(operation["summary"]) <= 300
            assert operation["x-openai-isConsequential"] is False
            for parameter in operation["parameters"]:
                assert 0 < len(parameter["description"]) <= 700, parameter["name"]
    for node in _walk(spec["components"]["schemas"]):
        if node.get("type") == "object":
            assert node.get("properties"), node
        if node.get("type") == "array":
            assert "items" in node, node
    assert len(str(spec)) < 100_000


def test_spec_documents_every_answer(spec: dict[str, Any]) -> None:
    for item in spec["paths"].values():
        operation = item["get"]
        responses = operation["responses"]
        assert {"200", "401", "404", "429", "502", "503", "504"} <= set(responses)
        has_params = bool(operation["parameters"])
        assert ("422" in responses) == has_params, operation["operationId"]
        for status, entry in responses.items():
            assert entry["content"]["application/json"]["schema"]["$ref"].startswith(
                "#/components/schemas/"
            ), status


def test_spec_parameters_are_typed_and_bounded(spec: dict[str, Any]) -> None:
    search = spec["paths"]["/api/v2/search_episodes"]["get"]
    params = {p["name"]: p for p in search["parameters"]}
    assert params["q"]["required"] is True
    assert params["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert "type" not in params and "api_key" not in params
    episode = spec["paths"]["/api/v2/episodes/{id}"]["get"]
    [id_param] = episode["parameters"]
    assert id_param["in"] == "path" and id_param["required"] is True
    assert id_param["schema"]["pattern"] == "^[0-9a-f]{32}$"


def test_spec_says_an_empty_optional_value_counts_as_absent(
    spec: dict[str, Any], sample_client: TestClient
) -> None:
    for path, item in spec["paths"].items():
        for parameter in item["get"]["parameters"]:
            assert parameter.get("allowEmptyValue", False) is not parameter["required"], path
    # What the spec says is what the service does (ChatGPT and Power Platform send these).
    for url in ("/api/v2/best_podcasts?region=", "/api/v2/genres?top_level_only="):
        assert sample_client.get(url, headers=AUTH).status_code == 200, url


def test_logo_is_a_png(client: TestClient) -> None:
    response = client.get("/logo.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_legal_text(client: TestClient) -> None:
    response = client.get("/legal")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "privacy" in response.text.lower()


def test_health(client: TestClient, sample_client: TestClient) -> None:
    assert client.get("/healthz").json()["mode"] == "live"
    assert sample_client.get("/healthz").json() == {
        "status": "ok",
        "mode": "sample",
        "connectors": {"podcasts": "sample", "openai": "sample"},
        "version": "0.1.0",
    }


@pytest.mark.parametrize("origin", ["https://chat.openai.com", "https://chatgpt.com"])
def test_cors_allows_chatgpt(client: TestClient, origin: str) -> None:
    response = client.options(
        "/api/v2/genres",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin


def test_cors_refuses_other_origins(client: TestClient) -> None:
    response = client.options(
        "/api/v2/genres",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    simple = client.get("/.well-known/ai-plugin.json", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_cors_origins_are_configurable(make_client: AppFactory) -> None:
    client = make_client(cors_origins="https://studio.example.com")
    response = client.get("/healthz", headers={"Origin": "https://studio.example.com"})
    assert response.headers["access-control-allow-origin"] == "https://studio.example.com"
    response = client.get("/healthz", headers={"Origin": "https://chatgpt.com"})
    assert "access-control-allow-origin" not in response.headers


def test_unknown_path_and_method_get_json_errors(client: TestClient) -> None:
    missing = client.get("/api/v2/../../etc/passwd")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = client.post("/api/v2/genres", headers={"Authorization": f"Bearer {SECRET}"})
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def _shared_cache_may_store(headers: Any) -> bool:
    """RFC 9111 §3 for a shared cache: not `private`, not `no-store`, and a freshness."""
    directives = {d.strip().split("=")[0] for d in headers["cache-control"].lower().split(",")}
    return not directives & {"private", "no-store"} and bool(directives & {"max-age", "s-maxage"})


@pytest.mark.parametrize("path", ["/.well-known/ai-plugin.json", "/openapi.json"])
def test_a_forged_host_cannot_poison_a_shared_cache(client: TestClient, path: str) -> None:
    forged = client.get(path, headers={"Host": "evil.example", "X-Forwarded-Proto": "https"})
    assert "https://evil.example" in forged.text  # built from the request, as documented...
    assert not _shared_cache_may_store(forged.headers)  # ...so no shared cache may keep it
    vary = {v.strip().lower() for v in forged.headers["vary"].split(",")}
    assert {"host", "x-forwarded-proto"} <= vary


@pytest.mark.parametrize("path", ["/.well-known/ai-plugin.json", "/openapi.json"])
def test_with_a_public_base_url_the_documents_are_shareable(
    make_client: AppFactory, path: str
) -> None:
    client = make_client(public_base_url="https://podcasts.example.org")
    answer = client.get(path, headers={"Host": "evil.example"})
    assert "evil.example" not in answer.text
    assert "https://podcasts.example.org" in answer.text
    assert _shared_cache_may_store(answer.headers)


@pytest.mark.parametrize(
    ("path", "meant"),
    [
        ("/api/v2/genres/", "/api/v2/genres"),
        ("/api/v2/search_episodes/?q=x", "/api/v2/search_episodes"),
        (f"/api/v2/podcasts/{'ab' * 16}/", "/api/v2/podcasts/{id}"),
        ("/openapi.json/", "/openapi.json"),
    ],
)
def test_a_trailing_slash_is_a_json_404_naming_the_endpoint(
    client: TestClient, path: str, meant: str
) -> None:
    response = client.get(
        path, headers={"Authorization": f"Bearer {SECRET}"}, follow_redirects=False
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert f"did you mean {meant} " in error["message"]
    assert "ab" * 16 not in response.text


def test_a_refused_preflight_is_a_json_error(client: TestClient) -> None:
    response = client.options(
        "/api/v2/genres",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    error = response.json()["error"]
    assert error["code"] == "cors_refused"
    assert "origin" in error["message"] and "CORS_ORIGINS" in error["message"]
    assert "evil.example" not in response.text


def test_a_bug_is_a_json_500_that_tells_nothing(client: TestClient) -> None:
    from starlette.routing import Route

    async def broken(request: object) -> None:
        raise RuntimeError(f"boom with {SECRET}")

    client.app.router.routes.append(Route("/broken", broken))  # type: ignore[attr-defined]
    with TestClient(client.app, raise_server_exceptions=False) as plain:
        response = plain.get("/broken")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "internal_error"
    assert "boom" not in response.text and SECRET not in response.text


def test_the_fields_every_answer_gets_in_order(make_client: AppFactory) -> None:
    """CORS, then the request id, last: `Vary: Origin` to a non-browser caller (joined into
    a `Vary` the route set), the allowed origin's fields to a browser, a preflight's own
    fields untouched; one `Vary` field each time."""
    client = make_client(cors_origins="https://studio.example.com")

    def tail(answer: Any, count: int) -> list[tuple[str, str]]:
        raw = [(n.decode(), v.decode()) for n, v in answer.headers.raw]
        assert [n for n, _ in raw].count("vary") == 1
        assert raw[-1] == ("x-request-id", answer.headers["x-request-id"])
        return raw[-count:-1]

    assert tail(client.get("/healthz"), 2) == [("vary", "Origin")]
    manifest = client.get("/.well-known/ai-plugin.json")
    tail(manifest, 1)
    assert manifest.headers["vary"] == "Host, X-Forwarded-Proto, Origin"
    browser = client.get("/healthz", headers={"Origin": "https://studio.example.com"})
    assert tail(browser, 4) == [
        ("access-control-expose-headers", "WWW-Authenticate, Retry-After, X-Request-Id, RateLimit"),
        ("access-control-allow-origin", "https://studio.example.com"),
        ("vary", "Origin"),
    ]
    other = client.get("/healthz", headers={"Origin": "https://chatgpt.com"})
    assert tail(other, 2) == [("vary", "Origin")]
    preflight = client.options(
        "/healthz",
        headers={"Origin": "https://studio.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200
    tail(preflight, 1)
    assert preflight.headers["vary"] == (
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
        "Access-Control-Request-Private-Network"
    )
