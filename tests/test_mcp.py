"""The MCP server at /mcp, tested with the SDK's own client over real HTTP (uvicorn on
loopback) in both protocol eras, with raw JSON-RPC for the edges, and through Lambda."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from app.connectors.podcasts.operations import OPERATIONS
from app.lambda_handler import make_handler
from app.main import create_app
from app.spec import json_schema_of
from tests.conftest import AUTH, EPISODE_ID, SECRET, UNKNOWN_ID, UPSTREAM_KEY, make_settings
from tests.live import LiveServer, live_server
from tests.stub_upstream import StubUpstream

ERAS = ["legacy", "2026-07-28"]  # initialize handshake (2025-xx) / stateless 2026-07-28
T = TypeVar("T")


@pytest.fixture(scope="module")
def sample_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("mcp") / "server.log"
    with live_server({"CHATGPT_SECRET": SECRET}, log) as server:
        yield server
    assert SECRET not in server.log_text()


def with_client(server: LiveServer, mode: str, body: Callable[[Client], Awaitable[T]]) -> T:
    async def run() -> T:
        http = httpx2.AsyncClient(headers=AUTH)
        transport = streamable_http_client(f"{server.base_url}/mcp", http_client=http)
        async with Client(transport, mode=mode) as client:
            return await body(client)

    return asyncio.run(run())


@pytest.mark.parametrize("mode", ERAS)
def test_tools_are_the_operations(sample_server: LiveServer, mode: str) -> None:
    async def body(client: Client) -> Any:
        return (await client.list_tools()).tools

    tools = {tool.name: tool for tool in with_client(sample_server, mode, body)}
    assert set(tools) == {op.name for op in OPERATIONS} | {"search", "fetch"}
    for operation in OPERATIONS:
        tool = tools[operation.name]
        assert tool.title == operation.title
        assert tool.description == operation.description
        assert tool.input_schema == json_schema_of(operation.params)
        assert tool.output_schema == json_schema_of(operation.answer, "serialization")
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.open_world_hint is True
        assert tool.annotations.title == operation.title


@pytest.mark.parametrize("mode", ERAS)
def test_a_call_answers_like_the_rest_route(sample_server: LiveServer, mode: str) -> None:
    async def body(client: Client) -> Any:
        return await client.call_tool("searchEpisodes", {"q": "compiler", "page_size": 2})

    result = with_client(sample_server, mode, body)
    assert result.is_error is False
    rest = httpx.get(
        f"{sample_server.base_url}/api/v2/search_episodes",
        params={"q": "compiler", "page_size": 2},
        headers=AUTH,
    ).json()
    assert result.structured_content == rest
    assert json.loads(result.content[0].text) == rest  # the same JSON as text, too


@pytest.mark.parametrize("mode", ERAS)
def test_failures_are_tool_errors_with_the_http_message(
    sample_server: LiveServer, mode: str
) -> None:
    async def body(client: Client) -> Any:
        bad = await client.call_tool("searchEpisodes", {"q": "x", "page_size": 99})
        missing = await client.call_tool("getEpisode", {"id": UNKNOWN_ID})
        wrong_type = await client.call_tool("getGenres", {"top_level_only": "yes"})
        still_fine = await client.call_tool("getRegions", {})
        return bad, missing, wrong_type, still_fine

    bad, missing, wrong_type, still_fine = with_client(sample_server, mode, body)
    http_bad = httpx.get(
        f"{sample_server.base_url}/api/v2/search_episodes?q=x&page_size=99", headers=AUTH
    ).json()["error"]["message"]
    http_missing = httpx.get(
        f"{sample_server.base_url}/api/v2/episodes/{UNKNOWN_ID}", headers=AUTH
    ).json()["error"]["message"]
    assert bad.is_error and bad.content[0].text == http_bad
    assert missing.is_error and missing.content[0].text == http_missing
    assert wrong_type.is_error and "top_level_only" in wrong_type.content[0].text
    assert still_fine.is_error is False  # the session survives its failed calls


@pytest.mark.parametrize("mode", ERAS)
def test_integer_arguments_are_json_integers(sample_server: LiveServer, mode: str) -> None:
    arguments = {"page": 1, "genre_id": 0, "safe_mode": 0}

    async def body(client: Client) -> Any:
        numbers = await client.call_tool("getBestPodcasts", arguments)
        as_bool = await client.call_tool("getBestPodcasts", {"page": True})
        arabic = await client.call_tool("getBestPodcasts", {"page": "١"})
        fraction = await client.call_tool("getBestPodcasts", {"page": 1.5})
        return numbers, as_bool, arabic, fraction

    numbers, as_bool, arabic, fraction = with_client(sample_server, mode, body)
    rest = httpx.get(
        f"{sample_server.base_url}/api/v2/best_podcasts", params=arguments, headers=AUTH
    ).json()
    assert numbers.is_error is False and numbers.structured_content == rest
    for refused in (as_bool, arabic, fraction):
        assert refused.is_error and refused.content[0].text.startswith("Invalid parameters: page")


@pytest.mark.parametrize("mode", ERAS)
def test_search_and_fetch_for_deep_research(sample_server: LiveServer, mode: str) -> None:
    async def body(client: Client) -> Any:
        found = await client.call_tool("search", {"query": "compiler"})
        first = found.structured_content["results"][0]
        fetched = await client.call_tool("fetch", {"id": first["id"]})
        bad = await client.call_tool("fetch", {"id": "not-an-id"})
        bad_hex = await client.call_tool("fetch", {"id": "episode:../../search"})
        return found, fetched, bad, bad_hex

    found, fetched, bad, bad_hex = with_client(sample_server, mode, body)
    results = found.structured_content["results"]
    assert results and all(set(r) == {"id", "title", "url"} for r in results)
    assert results[0]["id"] == f"episode:{EPISODE_ID}"
    assert all(r["url"].startswith("https://www.listennotes.com/") for r in results)
    document = fetched.structured_content
    assert set(document) == {"id", "title", "text", "url", "metadata"}
    assert document["id"] == results[0]["id"]
    assert json.loads(document["text"])["id"] == EPISODE_ID
    assert bad.is_error
    assert bad_hex.is_error and bad_hex.content[0].text.startswith("Invalid parameters: id")


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
CALL = {
    "jsonrpc": "2.0",
    "id": 3,
    "method": "tools/call",
    "params": {"name": "getGenres", "arguments": {"top_level_only": 1}},
}
JSONRPC_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-06-18",
}


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-wrong-wrong"}, {"Authorization": SECRET}]
)
def test_mcp_needs_the_same_bearer_secret(
    sample_server: LiveServer, headers: dict[str, str]
) -> None:
    response = httpx.post(
        f"{sample_server.base_url}/mcp", json=INITIALIZE, headers={**JSONRPC_HEADERS, **headers}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["data"]["code"] == "unauthorized"  # in a JSON-RPC error


def test_get_is_405_and_a_real_hostname_is_accepted(sample_server: LiveServer) -> None:
    response = httpx.get(f"{sample_server.base_url}/mcp", headers=AUTH)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    response = httpx.post(
        f"{sample_server.base_url}/mcp",
        json=INITIALIZE,
        headers={**JSONRPC_HEADERS, **AUTH, "Host": "podcasts.example.com"},
    )
    assert response.status_code == 200  # not 421: behind a real hostname it works
    assert response.headers["content-type"].startswith("application/json")  # no SSE


def test_the_callers_token_never_goes_upstream(tmp_path: Path) -> None:
    with StubUpstream() as stub:
        env = {
            "CHATGPT_SECRET": SECRET,
            "LISTEN_API_KEY": UPSTREAM_KEY,
            "LISTEN_API_BASE_URL": stub.base_url,
        }
        with live_server(env, tmp_path / "server.log") as server:

            async def body(client: Client) -> Any:
                return await client.call_tool("getGenres", {})

            result = with_client(server, "2026-07-28", body)
        assert result.is_error is False
        [seen] = stub.seen
        assert seen.headers["x-listenapi-key"] == UPSTREAM_KEY
        assert "authorization" not in seen.headers
        assert SECRET not in json.dumps(seen.headers)


def test_three_warm_lambda_invocations() -> None:
    handler = make_handler(create_app(make_settings(listen_api_key=None), network="httpx"))
    base = json.loads((Path(__file__).parent / "events" / "http-api.json").read_text())

    def invoke(method: str, message: dict[str, Any] | None) -> dict[str, Any]:
        event = copy.deepcopy(base)
        event.update(
            rawPath="/mcp",
            rawQueryString="",
            cookies=[],
            isBase64Encoded=False,
            headers={
                "host": "abc.execute-api.eu-west-1.amazonaws.com",
                "authorization": f"Bearer {SECRET}",
                **{k.lower(): v for k, v in JSONRPC_HEADERS.items()},
            },
            body=json.dumps(message) if message else None,
        )
        event["requestContext"]["http"].update(method=method, path="/mcp")
        answer: dict[str, Any] = handler(event, SimpleNamespace(aws_request_id="r"))
        return answer

    answers = [invoke("POST", message) for message in (INITIALIZE, LIST, CALL)]
    for answer in answers:
        assert answer["statusCode"] == 200, answer
        assert answer["headers"]["content-type"].startswith("application/json")
    bodies = [
        json.loads(base64.b64decode(a["body"]) if a.get("isBase64Encoded") else a["body"])
        for a in answers
    ]
    assert bodies[0]["result"]["serverInfo"]["name"] == "podcasts"
    assert len(bodies[1]["result"]["tools"]) == len(OPERATIONS) + 2
    assert bodies[2]["result"]["isError"] is False
    assert bodies[2]["result"]["structuredContent"]["genres"]
    assert invoke("GET", None)["statusCode"] == 405


LAZY_CHECK = """
import sys
from starlette.testclient import TestClient
from app.main import create_app
from app.registry import Settings
app = create_app(Settings(_env_file=None, chatgpt_secret="lazy-secret-0123456789abcdef"))
auth = {"Authorization": "Bearer lazy-secret-0123456789abcdef"}
with TestClient(app) as client:
    assert client.get("/api/v2/genres", headers=auth).status_code == 200
    assert client.get("/openapi.json").status_code == 200
    before = "mcp" in sys.modules
    headers = {**auth, "Accept": "application/json, text/event-stream"}
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    status = client.post("/mcp", json=message, headers=headers).status_code
    print(before, status, "mcp" in sys.modules)
"""


def test_the_sdk_is_imported_only_when_mcp_is_used(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", LAZY_CHECK],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "DATA_DIR": str(tmp_path)},  # the store's file, not in the repository
    )
    assert out.stdout.split() == ["False", "200", "True"]


def test_mcp_answers_keep_the_rest_cap(tmp_path: Path) -> None:
    from app.answers import MAX_ANSWER_CHARS
    from tests.stub_upstream import Reply

    genres = [{"id": i, "name": f"Genre number {i}", "parent_id": i // 10} for i in range(2_000)]
    body = json.dumps({"genres": genres}).encode()
    with StubUpstream(lambda seen: Reply(body=body)) as stub:
        env = {"CHATGPT_SECRET": SECRET, "LISTEN_API_KEY": UPSTREAM_KEY}
        with live_server({**env, "LISTEN_API_BASE_URL": stub.base_url}, tmp_path / "log") as server:
            rest = httpx.get(f"{server.base_url}/api/v2/genres", headers=AUTH)
            raw = httpx.post(
                f"{server.base_url}/mcp", json=CALL, headers={**JSONRPC_HEADERS, **AUTH}
            )

            async def call(client: Client) -> Any:
                return await client.call_tool("getGenres", {})

            result = with_client(server, "2026-07-28", call)
    assert rest.status_code == 200 and len(rest.text) < MAX_ANSWER_CHARS
    assert raw.status_code == 200 and len(raw.text) < MAX_ANSWER_CHARS, len(raw.text)
    assert raw.json()["result"]["isError"] is False
    kept = result.structured_content["genres"]
    assert 100 < len(kept) < 2_000  # a shorter page, not a failure
    assert json.loads(result.content[0].text) == result.structured_content
    assert kept == rest.json()["genres"][: len(kept)]


@pytest.mark.parametrize("query", ["", "   ", "x" * 201])
def test_search_names_its_own_argument(sample_server: LiveServer, query: str) -> None:
    async def body(client: Client) -> Any:
        return await client.call_tool("search", {"query": query})

    result = with_client(sample_server, "2026-07-28", body)
    assert result.is_error
    assert result.content[0].text.startswith("Invalid parameters: query:")


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-wrong-wrong-wrong"}, {"api-key": "nope"}]
)
def test_the_sdk_shows_why_a_token_was_refused(
    sample_server: LiveServer, headers: dict[str, str]
) -> None:
    async def run() -> Any:
        http = httpx2.AsyncClient(headers=headers)
        transport = streamable_http_client(f"{sample_server.base_url}/mcp", http_client=http)
        async with Client(transport, mode="2026-07-28") as client:
            return await client.list_tools()

    with pytest.raises(Exception) as raised:
        asyncio.run(run())

    def messages(error: BaseException) -> list[str]:
        nested = getattr(error, "exceptions", ())
        return [str(error), *(m for inner in nested for m in messages(inner))]

    shown = " | ".join(messages(raised.value))
    assert "Server returned an error response" not in shown
    assert "Authorization: Bearer" in shown or "credential" in shown.lower(), shown


def test_mcp_refusals_are_json_rpc_and_keep_their_headers(sample_server: LiveServer) -> None:
    url = f"{sample_server.base_url}/mcp"
    unauthenticated = httpx.post(url, json=INITIALIZE, headers=JSONRPC_HEADERS)
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
    assert unauthenticated.json()["jsonrpc"] == "2.0"
    assert unauthenticated.json()["error"]["data"]["code"] == "unauthorized"
    for method in ("DELETE", "GET", "PUT"):
        refused = httpx.request(method, url, headers=AUTH)
        assert refused.status_code == 405 and refused.headers["allow"] == "POST"
        assert refused.json()["error"]["data"]["code"] == "method_not_allowed"
    wrong_type = httpx.post(
        url, content=json.dumps(INITIALIZE), headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    assert wrong_type.headers["content-type"] == "application/json"
    huge = {**INITIALIZE, "params": {**INITIALIZE["params"], "pad": "x" * 2_000_000}}
    too_large = httpx.post(url, json=huge, headers={**JSONRPC_HEADERS, **AUTH})
    assert too_large.status_code == 413
    assert too_large.json()["error"]["data"]["code"] == "body_too_large"
    # Still serving, and a normal message goes through the body check intact.
    ok = httpx.post(url, json=INITIALIZE, headers={**JSONRPC_HEADERS, **AUTH})
    assert ok.status_code == 200 and ok.json()["result"]["serverInfo"]["name"] == "podcasts"


def test_a_browser_mcp_client_may_post_from_an_allowed_origin(tmp_path: Path) -> None:
    origin = "http://localhost:6274"  # the MCP Inspector's default
    env = {"CHATGPT_SECRET": SECRET, "CORS_ORIGINS": origin}
    with live_server(env, tmp_path / "server.log") as server:
        preflight = httpx.options(
            f"{server.base_url}/mcp",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,mcp-protocol-version",
            },
        )
        posted = httpx.post(
            f"{server.base_url}/mcp",
            json=INITIALIZE,
            headers={**JSONRPC_HEADERS, **AUTH, "Origin": origin},
        )
    assert preflight.status_code == 200
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert posted.status_code == 200
    assert posted.headers["access-control-allow-origin"] == origin
