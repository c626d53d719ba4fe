"""The nine operations as MCP tools, plus `search`/`fetch` for deep-research clients.

The only module that imports the MCP SDK; `app.mcp_mount` imports it on the first /mcp
request, so the REST routes' cold start never pays for it. Each tool is read off its
`Operation`: the name, title and description, the input schema (the parameter model's,
as the OpenAPI spec publishes it) and the output schema (the answer model's). A call runs
the same path as the REST route; a failure comes back as a result with `isError: true`
and the same message as the HTTP error, never as a crash of the session.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic_core import to_jsonable_python
from starlette.applications import Starlette

from app import __version__
from app.answers import MAX_ANSWER_CHARS, halve_longest_list
from app.errors import InvalidParameters, ServiceError
from app.manifest import DESCRIPTION_FOR_MODEL, NAME_FOR_HUMAN
from app.operations import OPERATIONS, Operation, operation_named
from app.proxy import call_operation
from app.services import Services
from app.spec import json_schema_of

__all__ = ["build_mcp"]

_FETCHABLE = {"episode": "getEpisode", "podcast": "getPodcast"}
_ENVELOPE = 200  # the JSON-RPC envelope around a result: {"jsonrpc":"2.0","id":...,"result":}


def _result(data: dict[str, Any]) -> CallToolResult:
    """The answer twice, as MCP asks (structured, and as JSON text for older clients), the
    whole result under the same cap as a REST answer: the longest list is halved until it
    fits, as `encode_answer` does for REST."""
    while True:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        result = CallToolResult(
            content=[TextContent(type="text", text=text)], structuredContent=data
        )
        size = len(result.model_dump_json(by_alias=True, exclude_none=True))
        if size < MAX_ANSWER_CHARS - _ENVELOPE or not halve_longest_list(data):
            return result


def _failure(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], isError=True)


def _error(error: ServiceError) -> CallToolResult:
    # The same message as the HTTP error body's (InvalidParameters names the parameters).
    return _failure(str(error) if isinstance(error, InvalidParameters) else error.message)


async def _answer(operation: Operation, arguments: dict[str, Any], services: Services) -> Any:
    params = operation.validate({k: v for k, v in arguments.items() if v is not None})
    answer = await call_operation(operation, params, services)
    return to_jsonable_python(answer, exclude_none=True)


def _tool_function(
    operation: Operation, services: Services
) -> Callable[..., Awaitable[CallToolResult]]:
    async def call(**arguments: Any) -> CallToolResult:
        try:
            return _result(await _answer(operation, arguments, services))
        except ServiceError as error:
            return _error(error)

    # The SDK reads a tool's arguments off its signature: one keyword per parameter, each
    # accepted as is, so that *our* validation (and its messages) decides, as for REST.
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Any)
            for name in operation.params.model_fields
        ]
    )
    call.__name__ = operation.name
    return call


async def _search(query: str, services: Services) -> CallToolResult:
    """Episodes and podcasts for `query`, in the shape deep-research clients expect."""
    results: list[dict[str, str]] = []
    try:
        for name, kind in (("searchEpisodes", "episode"), ("searchPodcasts", "podcast")):
            data = await _answer(operation_named(name), {"q": query, "page_size": 5}, services)
            for item in data.get("results", []):
                if item.get("id") and item.get("listennotes_url"):
                    results.append(
                        {
                            "id": f"{kind}:{item['id']}",
                            "title": item.get("title", ""),
                            "url": item["listennotes_url"],
                        }
                    )
    except ServiceError as error:
        return _error(error)
    return _result({"results": results})


async def _fetch(id: str, services: Services) -> CallToolResult:
    """The full compact record for an id from `search` (episode:<hex> or podcast:<hex>)."""
    kind, _, raw_id = id.strip().partition(":")
    if kind not in _FETCHABLE:
        return _failure("id must be episode:<id> or podcast:<id>, as search returns it.")
    operation = operation_named(_FETCHABLE[kind])  # its parameter model checks raw_id
    try:
        record = await _answer(operation, {"id": raw_id}, services)
    except ServiceError as error:
        return _error(error)
    document = {
        "id": id,
        "title": record.get("title", ""),
        "text": json.dumps(record, ensure_ascii=False),
        "url": record.get("listennotes_url", ""),
        "metadata": {
            "kind": kind,
            "publisher": record.get("publisher") or record.get("podcast", {}).get("publisher", ""),
        },
    }
    return _result(document)


def build_mcp(services: Services, path: str) -> tuple[MCPServer[Any], Starlette]:
    """The MCP server and its Streamable HTTP app (stateless, JSON answers: no SSE, so it
    works the same under uvicorn and behind API Gateway/Mangum, for both protocol eras)."""
    server: MCPServer[Any] = MCPServer(
        name="podcasts",
        title=NAME_FOR_HUMAN,
        version=__version__,
        instructions=DESCRIPTION_FOR_MODEL,
        log_level="WARNING",
    )
    for operation in OPERATIONS:
        server.add_tool(
            _tool_function(operation, services),
            name=operation.name,
            title=operation.title,
            description=operation.description,
            annotations=ToolAnnotations(
                title=operation.title, readOnlyHint=True, openWorldHint=True
            ),
        )
        tool = server._tool_manager.get_tool(operation.name)
        assert tool is not None  # noqa: S101 - just added
        tool.parameters = json_schema_of(operation.params)
        tool.fn_metadata.output_schema = json_schema_of(operation.answer, "serialization")

    async def search(query: str) -> CallToolResult:
        return await _search(query, services)

    async def fetch(id: str) -> CallToolResult:
        return await _fetch(id, services)

    research = ToolAnnotations(readOnlyHint=True, openWorldHint=True)
    server.add_tool(
        search,
        name="search",
        title="Search podcasts and episodes",
        description="Search podcast episodes and podcasts; each result has id, "
        "title and url. Pass an id to fetch for the full record.",
        annotations=research,
    )
    server.add_tool(
        fetch,
        name="fetch",
        title="Fetch a podcast or episode",
        description="The full record for an id returned by search.",
        annotations=research,
    )
    app = server.streamable_http_app(
        streamable_http_path=path,
        json_response=True,
        stateless_http=True,
        # The caller has already passed the bearer check; behind a real hostname the
        # SDK's DNS-rebinding guard (for unauthenticated local servers) would refuse it.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return server, app
