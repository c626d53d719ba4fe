"""The Lambda handler, driven by real event payloads (`sam local generate-event`).

tests/events/ holds them as SAM generated them: `apigateway aws-proxy --stage prod`,
`apigateway http-api-proxy` and `alb request`. Each test patches path, query, host and
headers into a copy, the way API Gateway or the ALB would fill them for that request.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from mangum import Mangum

from app.lambda_handler import make_handler, mount_prefix
from app.main import create_app
from app.observability import LineBatchHandler
from tests.conftest import AUTH, SECRET, make_settings

EVENTS = Path(__file__).parent / "events"
CONTEXT = SimpleNamespace(aws_request_id="req-1", function_name="podcast-proxy")
Event = dict[str, Any]
MakeEvent = Callable[..., Event]


def _load(name: str) -> Event:
    event: Event = json.loads((EVENTS / name).read_text())
    return event


def rest_event(
    path: str,
    query: str = "",
    headers: dict[str, str] | None = None,
    *,
    host: str = "1234567890.execute-api.us-east-1.amazonaws.com",
    base: str = "/prod",
) -> Event:
    """API Gateway REST API (v1) on stage `prod` (or a custom domain's base path)."""
    event = copy.deepcopy(_load("rest-api-prod.json"))
    pairs = parse_qsl(query, keep_blank_values=True)
    all_headers = {
        **event["headers"],
        "Host": host,
        "X-Forwarded-Proto": "https",
        **(headers or {}),
    }
    all_headers.pop("Authorization", None) if "Authorization" not in (headers or {}) else None
    event.update(
        path=path,
        httpMethod="GET",
        headers=all_headers,
        multiValueHeaders={k: [v] for k, v in all_headers.items()},
        queryStringParameters=dict(pairs) or None,
        multiValueQueryStringParameters={k: [v for kk, v in pairs if kk == k] for k, _ in pairs}
        or None,
        pathParameters={"proxy": path.lstrip("/")},
    )
    event["requestContext"].update(path=base + path, stage="prod", domainName=host)
    return event


def http_event(
    path: str,
    query: str = "",
    headers: dict[str, str] | None = None,
    *,
    host: str = "abc123.execute-api.us-east-1.amazonaws.com",
    stage: str = "$default",
) -> Event:
    """API Gateway HTTP API (v2 payload); a named stage shows in the raw path."""
    event = copy.deepcopy(_load("http-api.json"))
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    event.update(
        rawPath=raw_path,
        rawQueryString=query,
        routeKey="ANY /{proxy+}",
        cookies=[],
        headers={
            "host": host,
            "x-forwarded-proto": "https",
            **{k.lower(): v for k, v in (headers or {}).items()},
        },
        queryStringParameters=dict(parse_qsl(query)) or None,
    )
    event["requestContext"].update(domainName=host, stage=stage)
    event["requestContext"]["http"].update(method="GET", path=raw_path)
    return event


def function_url_event(path: str, query: str = "", headers: dict[str, str] | None = None) -> Event:
    """A Lambda Function URL: the v2 payload on a lambda-url host, stage `$default`."""
    return http_event(path, query, headers, host="xyz789.lambda-url.us-east-1.on.aws")


def alb_event(path: str, query: str = "", headers: dict[str, str] | None = None) -> Event:
    """An Application Load Balancer target-group event (HTTPS listener)."""
    event = copy.deepcopy(_load("alb.json"))
    event.update(
        path=path,
        httpMethod="GET",
        queryStringParameters=dict(parse_qsl(query)),
        headers={
            **event["headers"],
            "x-forwarded-proto": "https",
            "x-forwarded-port": "443",
            **{k.lower(): v for k, v in (headers or {}).items()},
        },
    )
    return event


FRONTS: dict[str, tuple[MakeEvent, str]] = {
    "rest-api-prod-stage": (
        rest_event,
        "https://1234567890.execute-api.us-east-1.amazonaws.com/prod",
    ),
    "http-api-default": (http_event, "https://abc123.execute-api.us-east-1.amazonaws.com"),
    "http-api-named-stage": (
        lambda *a, **k: http_event(*a, stage="live", **k),
        "https://abc123.execute-api.us-east-1.amazonaws.com/live",
    ),
    "alb": (alb_event, "https://lambda-alb-123578498.us-east-2.elb.amazonaws.com"),
    "function-url": (function_url_event, "https://xyz789.lambda-url.us-east-1.on.aws"),
}


@pytest.fixture
def handler() -> Mangum:
    return make_handler(create_app(make_settings(listen_api_key=None)))


def invoke(handler: Mangum, event: Event) -> tuple[int, dict[str, str], bytes]:
    answer = handler(event, CONTEXT)
    headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = values[-1]
    body = answer.get("body") or ""
    raw = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
    return answer["statusCode"], headers, raw


@pytest.mark.parametrize("front", FRONTS)
def test_manifest_and_spec_urls_are_right_behind_each_front(handler: Mangum, front: str) -> None:
    make_event, base = FRONTS[front]
    status, _headers, body = invoke(handler, make_event("/.well-known/ai-plugin.json"))
    assert status == 200
    manifest = json.loads(body)
    assert manifest["api"]["url"] == f"{base}/openapi.json"
    assert manifest["logo_url"] == f"{base}/logo.png"
    assert manifest["legal_info_url"] == f"{base}/legal"
    status, _, body = invoke(handler, make_event("/openapi.json"))
    assert status == 200
    assert json.loads(body)["servers"] == [{"url": base}]


@pytest.mark.parametrize("front", FRONTS)
def test_proxy_operation_answers_behind_each_front(handler: Mangum, front: str) -> None:
    make_event, _ = FRONTS[front]
    status, headers, body = invoke(
        handler, make_event("/api/v2/search_episodes", "q=compiler&page_size=2", AUTH)
    )
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["results"] and "compiler" in answer["results"][0]["title"].lower()


@pytest.mark.parametrize("front", FRONTS)
def test_auth_is_enforced_behind_each_front(handler: Mangum, front: str) -> None:
    make_event, _ = FRONTS[front]
    status, headers, _body = invoke(handler, make_event("/api/v2/genres"))
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    status, _, _ = invoke(
        handler, make_event("/api/v2/genres", "", {"Authorization": f"Bearer {SECRET}x"})
    )
    assert status == 401


@pytest.mark.parametrize("front", FRONTS)
def test_three_warm_invocations_in_a_row(handler: Mangum, front: str) -> None:
    make_event, _ = FRONTS[front]
    urls = ["/api/v2/genres", "/api/v2/regions", "/api/v2/search_podcasts"]
    for url, query in zip(urls, ["", "", "q=money"], strict=True):
        status, _, body = invoke(handler, make_event(url, query, AUTH))
        assert status == 200, (url, body)


def test_logo_comes_back_base64_encoded(handler: Mangum) -> None:
    answer = handler(http_event("/logo.png"), CONTEXT)
    assert answer["isBase64Encoded"] is True
    assert base64.b64decode(answer["body"]).startswith(b"\x89PNG")


def test_rest_api_custom_domain_base_path(handler: Mangum) -> None:
    event = rest_event("/.well-known/ai-plugin.json", host="api.example.com", base="/podcasts")
    _, _, body = invoke(handler, event)
    assert json.loads(body)["api"]["url"] == "https://api.example.com/podcasts/openapi.json"


def test_public_base_url_wins_behind_a_custom_domain() -> None:
    handler = make_handler(
        create_app(
            make_settings(listen_api_key=None, public_base_url="https://podcasts.example.com")
        )
    )
    for make_event, _ in FRONTS.values():
        _, _, body = invoke(handler, make_event("/.well-known/ai-plugin.json"))
        assert json.loads(body)["api"]["url"] == "https://podcasts.example.com/openapi.json"
        status, _, _ = invoke(handler, make_event("/api/v2/genres", "", AUTH))
        assert status == 200


def test_unknown_path_is_a_json_404_not_an_open_proxy(handler: Mangum) -> None:
    status, _, body = invoke(handler, rest_event("/api/v2/../../search", "q=x", AUTH))
    assert status == 404
    assert json.loads(body)["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("event", "prefix"),
    [
        (
            {
                "path": "/a",
                "httpMethod": "GET",
                "requestContext": {"path": "/prod/a", "stage": "prod"},
            },
            "/prod",
        ),
        (
            {
                "path": "/",
                "httpMethod": "GET",
                "requestContext": {"path": "/prod/", "stage": "prod"},
            },
            "/prod",
        ),
        (
            {"path": "/a", "httpMethod": "GET", "requestContext": {"path": "/a", "stage": "prod"}},
            "",
        ),
        ({"version": "2.0", "rawPath": "/a", "requestContext": {"stage": "$default"}}, ""),
        ({"version": "2.0", "rawPath": "/dev/a", "requestContext": {"stage": "dev"}}, "/dev"),
        ({"path": "/a", "httpMethod": "GET", "requestContext": {"elb": {}}}, ""),
    ],
)
def test_mount_prefix(event: Event, prefix: str) -> None:
    assert mount_prefix(event) == prefix


def test_rest_event_query_is_forwarded_once(handler: Mangum) -> None:
    query = urlencode({"q": "compiler", "page_size": "1"})
    status, _, body = invoke(handler, rest_event("/api/v2/search_episodes", query, AUTH))
    assert status == 200 and json.loads(body)["count"] == 1


def test_a_streamed_openai_answer_arrives_whole_through_lambda(handler: Mangum) -> None:
    # API Gateway buffers Lambda answers: a streamed request still gets every event, at once.
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    event = http_event(
        "/openai/v1/chat/completions",
        headers={"authorization": f"Bearer {SECRET}", "content-type": "application/json"},
    )
    event["requestContext"]["http"]["method"] = "POST"
    event.update(body=json.dumps(body), isBase64Encoded=False)
    status, headers, raw = invoke(handler, event)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = [line for line in raw.decode().split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert len(chunks) >= 4 and text.startswith("[sample data]")


def test_the_request_line_is_written_before_the_invocation_returns(handler: Mangum) -> None:
    [app_log] = [h for h in logging.getLogger("app").handlers if isinstance(h, LineBatchHandler)]
    lines = io.StringIO()
    previous = app_log.setStream(lines)
    try:
        status, _, _ = invoke(handler, http_event("/api/v2/genres", "", AUTH))
        written = lines.getvalue()  # before anything else runs: a frozen instance may not thaw
    finally:
        app_log.setStream(previous)
    assert status == 200
    [request] = [json.loads(line) for line in written.splitlines() if '"request"' in line]
    assert request["path"] == "/api/v2/genres" and request["status"] == 200


def test_a_cache_write_is_in_the_store_when_the_invocation_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The response cache writes behind; a frozen instance runs no timer, so the handler
    writes what is pending before the invocation returns: another instance hits it."""
    from starlette.testclient import TestClient

    from app.stores import behind

    monkeypatch.setattr(behind, "WINDOW", 3600.0)  # only the end of the invocation writes
    settings = {
        "listen_api_key": None,
        "cache_enabled": True,
        "store_url": f"sqlite:///{tmp_path / 'shared.db'}",
    }
    lambda_handler = make_handler(create_app(make_settings(**settings)))
    status, headers, _ = invoke(lambda_handler, rest_event("/api/v2/genres", "", AUTH))
    with TestClient(create_app(make_settings(**settings), network="httpx")) as other:
        hit = other.get("/api/v2/genres", headers=AUTH)
    assert status == 200 and headers["cache-status"] == "keyless; fwd=uri-miss; stored"
    assert hit.headers["cache-status"].startswith("keyless; hit; ")
