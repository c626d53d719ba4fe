"""Connectors' operations as MCP tools, plus their research tools (`search`/`fetch`).

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
from starlette.applications import Starlette

from app import __version__
from app.answers import MAX_ANSWER_CHARS, halve_longest_list
from app.connector import ResearchTool, Surface, Upstream
from app.errors import InvalidParameters, ServiceError
from app.mcp_request_state import refusing_policy
from app.operations import Operation
from app.proxy import call_operation
from app.services import Services
from app.spec import json_schema_of

__all__ = ["build_mcp"]

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


async def _answer(operation: Operation, arguments: dict[str, Any], upstream: Upstream) -> Any:
    params = operation.validate({k: v for k, v in arguments.items() if v is not None})
    return json.loads((await call_operation(operation, params, upstream)).body)


def _tool_function(
    operation: Operation, upstream: Upstream
) -> Callable[..., Awaitable[CallToolResult]]:
    async def call(**arguments: Any) -> CallToolResult:
        try:
            return _result(await _answer(operation, arguments, upstream))
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


def _research_function(
    tool: ResearchTool, upstream: Upstream
) -> Callable[..., Awaitable[CallToolResult]]:
    async def call(**arguments: Any) -> CallToolResult:
        try:
            return _result(await tool.run(upstream, arguments[tool.argument]))
        except ServiceError as error:
            return _error(error)

    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(tool.argument, inspect.Parameter.KEYWORD_ONLY, annotation=str)]
    )
    call.__name__ = tool.name
    return call


def build_mcp(services: Services, path: str) -> tuple[MCPServer[Any], Starlette]:
    """The MCP server and its Streamable HTTP app (stateless, JSON answers: no SSE, so it
    works the same under uvicorn and behind API Gateway/Mangum, for both protocol eras).
    Its tools are the operations and research tools of every connector offered on MCP."""
    offered = [
        (connector, started)
        for connector, started in services.connectors.values()
        if Surface.MCP in connector.surfaces and started.upstream is not None
    ]
    plugin = next((c.plugin for c, _ in offered if c.plugin is not None), None)
    server: MCPServer[Any] = MCPServer(
        name=plugin.name_for_model if plugin else "tools",
        title=plugin.name_for_human if plugin else None,
        version=__version__,
        instructions=plugin.description_for_model if plugin else None,
        log_level="WARNING",
        # Our tools never ask for input, so no requestState is ever ours; and the SDK's
        # default (AES-GCM, per-process key) needs `cryptography`, which Lambda lacks.
        request_state_security=refusing_policy(),
    )
    research = ToolAnnotations(readOnlyHint=True, openWorldHint=True)
    for connector, started in offered:
        upstream = started.upstream
        assert upstream is not None  # noqa: S101 - filtered above
        for operation in connector.operations:
            server.add_tool(
                _tool_function(operation, upstream),
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
        for extra in connector.research:
            server.add_tool(
                _research_function(extra, upstream),
                name=extra.name,
                title=extra.title,
                description=extra.description,
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
