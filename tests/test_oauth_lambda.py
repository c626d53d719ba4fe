"""OAuth for /mcp on AWS Lambda: API Gateway events into two handler instances (two
containers) sharing one DynamoDB store (moto's, real HTTP on loopback)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from mangum import Mangum

from app.lambda_handler import make_handler
from app.main import create_app
from tests.conftest import SECRET, make_settings
from tests.oauth_flow import CALLBACK, form_fields, pkce, query_of
from tests.test_lambda import http_event, invoke, rest_event

API = "https://1234567890.execute-api.us-east-1.amazonaws.com/prod"


@pytest.fixture
def store_url(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    from tests.store_backends import create_table

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    table = f"oauth-test-{time.monotonic_ns()}"
    create_table(moto_server.endpoint, table)
    return f"dynamodb://{table}?region=us-east-1&endpoint={moto_server.endpoint}"


def _instance(store_url: str) -> Mangum:
    """One Lambda container: its own app, settings and store client."""
    settings = make_settings(
        listen_api_key=None,
        store_url=store_url,
        oauth_redirect_uris=["http://127.0.0.1:*/callback"],
    )
    return make_handler(create_app(settings))


@pytest.fixture
def instances(store_url: str) -> Iterator[tuple[Mangum, Mangum]]:
    yield _instance(store_url), _instance(store_url)


def call(
    handler: Mangum,
    method: str,
    target: str,
    *,
    form: dict[str, str] | None = None,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """`target` is a public URL under API or a path under the stage; REST API, stage prod."""
    parts = urlsplit(target.removeprefix(API))
    sent = dict(headers or {})
    event = rest_event(parts.path, parts.query, sent)
    event["httpMethod"] = method
    if form is not None:
        event["body"] = urlencode(form)
        content_type = "application/x-www-form-urlencoded"
    elif json_body is not None:
        event["body"] = json.dumps(json_body)
        content_type = "application/json"
    else:
        content_type = ""
    if content_type:
        event["headers"]["Content-Type"] = content_type
        event["multiValueHeaders"]["Content-Type"] = [content_type]
    event["isBase64Encoded"] = False
    return invoke(handler, event)


LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def test_discovery_urls_are_right_behind_an_api_gateway_stage(
    instances: tuple[Mangum, Mangum],
) -> None:
    handler, _ = instances
    status, headers, _ = call(handler, "POST", "/mcp", json_body=LIST, headers=MCP_HEADERS)
    assert status == 401
    prm_url = f"{API}/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{prm_url}"' in headers["www-authenticate"]
    for path in (
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ):
        status, _, body = call(handler, "GET", path)
        assert status == 200
        assert json.loads(body)["resource"] == f"{API}/mcp"
        assert json.loads(body)["authorization_servers"] == [API]
    # Behind the stage the issuer has a path, and the one discovery URL of it that reaches
    # the stage is the OpenID-style one: it serves the RFC 8414 document.
    status, _, body = call(handler, "GET", "/.well-known/openid-configuration")
    assert status == 200
    document = json.loads(body)
    assert document["issuer"] == API
    assert document["token_endpoint"] == f"{API}/oauth/token"
    assert document["authorization_endpoint"] == f"{API}/oauth/authorize"


def test_discovery_on_an_http_api_default_stage() -> None:
    # Discovery reads nothing from the store: a store that cannot be reached proves it.
    unreachable = "dynamodb://absent?region=us-east-1&endpoint=http://127.0.0.1:9"
    handler = make_handler(create_app(make_settings(listen_api_key=None, store_url=unreachable)))
    event = http_event("/.well-known/oauth-authorization-server")
    status, _, body = invoke(handler, event)
    assert status == 200
    assert json.loads(body)["issuer"] == "https://abc123.execute-api.us-east-1.amazonaws.com"


def test_a_token_issued_by_one_instance_is_accepted_by_another(
    instances: tuple[Mangum, Mangum],
) -> None:
    first, second = instances
    status, _, body = call(
        first,
        "POST",
        "/oauth/register",
        json_body={
            "redirect_uris": [CALLBACK],
            "client_name": "Lambda test",
            "token_endpoint_auth_method": "none",
        },
    )
    assert status == 201, body
    client_id = json.loads(body)["client_id"]
    verifier, challenge = pkce()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": CALLBACK,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "s1",
            "resource": f"{API}/mcp",
        }
    )
    # Authorize on one container, show the page on the other, approve on the first.
    status, headers, _ = call(first, "GET", f"/oauth/authorize?{query}")
    assert status == 302
    consent_url = headers["location"]
    assert consent_url.startswith(f"{API}/oauth/consent?request=")
    status, _, page = call(second, "GET", consent_url)
    assert status == 200
    fields = form_fields(page.decode())
    status, headers, _ = call(
        first, "POST", "/oauth/consent", form={**fields, "key": SECRET, "decision": "approve"}
    )
    assert status == 303
    code = query_of(headers["location"])["code"]
    token_form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
        "client_id": client_id,
    }
    status, _, body = call(second, "POST", "/oauth/token", form=token_form)
    assert status == 200, body
    tokens = json.loads(body)
    bearer = {**MCP_HEADERS, "Authorization": f"Bearer {tokens['access_token']}"}
    for handler in (first, second):
        status, _, body = call(handler, "POST", "/mcp", json_body=LIST, headers=bearer)
        assert status == 200, body
        assert json.loads(body)["result"]["tools"]
    # The code is spent on every instance.
    status, _, body = call(first, "POST", "/oauth/token", form=token_form)
    assert status == 400 and json.loads(body)["error"] == "invalid_grant"
    # And the copied code ended the grant, everywhere.
    status, _, _ = call(second, "POST", "/mcp", json_body=LIST, headers=bearer)
    assert status == 401


def test_a_refresh_on_one_instance_rotates_for_all(instances: tuple[Mangum, Mangum]) -> None:
    first, second = instances
    status, _, body = call(
        first,
        "POST",
        "/oauth/register",
        json_body={"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"},
    )
    client_id = json.loads(body)["client_id"]
    verifier, challenge = pkce()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": CALLBACK,
            "code_challenge": challenge,
            "state": "s2",
        }
    )
    _, headers, _ = call(first, "GET", f"/oauth/authorize?{query}")
    _, _, page = call(first, "GET", headers["location"])
    _, headers, _ = call(
        second,
        "POST",
        "/oauth/consent",
        form={**form_fields(page.decode()), "key": SECRET, "decision": "approve"},
    )
    code = query_of(headers["location"])["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
        "client_id": client_id,
    }
    _, _, body = call(first, "POST", "/oauth/token", form=form)
    old = json.loads(body)["refresh_token"]
    refresh = {"grant_type": "refresh_token", "refresh_token": old, "client_id": client_id}
    status, _, body = call(second, "POST", "/oauth/token", form=refresh)
    assert status == 200
    new = json.loads(body)
    status, _, body = call(first, "POST", "/oauth/token", form=refresh)  # the old one again
    assert status == 400 and json.loads(body)["error"] == "invalid_grant"
    bearer = {**MCP_HEADERS, "Authorization": f"Bearer {new['access_token']}"}
    status, _, _ = call(second, "POST", "/mcp", json_body=LIST, headers=bearer)
    assert status == 401  # the family is revoked on every instance
