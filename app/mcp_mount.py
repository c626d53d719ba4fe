"""The /mcp endpoint: the caller admitted (a key needs the scope of a connector whose tools
it offers), then the MCP SDK's Streamable HTTP app. An OAuth access token (app/oauth/) is
admitted as the key that approved it; a refusal tells OAuth clients where to sign in
(`WWW-Authenticate: Bearer resource_metadata=...`).

The SDK (about 0.8 s to import) is imported and the MCP server built on the first /mcp
request, not at startup. Its session manager may run only once per process, so it runs
in one background task for the life of the process (also on AWS Lambda, where Mangum
re-enters the same event loop for each warm invocation), stopped by the app's lifespan
when there is one.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.connector import Surface
from app.errors import ServiceError, Unauthorized
from app.oauth.server import OAuthServer
from app.observability import current_record
from app.problems import error_response, handle_service
from app.services import Services, services_of

__all__ = ["MCP_PATH", "MCPEndpoint"]

MCP_PATH = "/mcp"
MAX_MESSAGE_BYTES = 1024 * 1024
"""The largest JSON-RPC message accepted (tool arguments here are a few hundred bytes)."""
_JSONRPC_SERVER_ERROR = -32000  # implementation-defined server errors: -32000 to -32099
_JSONRPC_INVALID_REQUEST = -32600


def _as_jsonrpc(
    refusal: Response, message: str, code: str, rpc_code: int = _JSONRPC_SERVER_ERROR
) -> Response:
    """`refusal` (status and headers kept: WWW-Authenticate, Retry-After, Allow) with a
    JSON-RPC error body, which MCP clients show instead of a generic transport error."""
    body = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": rpc_code, "message": message, "data": {"code": code}},
    }
    headers = {k: v for k, v in refusal.headers.items() if k not in ("content-length",)}
    return Response(
        json.dumps(body),
        status_code=refusal.status_code,
        headers=headers,
        media_type="application/json",
    )


async def _checked_body(request: Request) -> bytes | Response:
    """The request's body when it is a JSON message of an acceptable size; else the refusal."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        message = "Send JSON-RPC messages as Content-Type: application/json."
        refusal = error_response(415, "unsupported_media_type", message)
        return _as_jsonrpc(refusal, message, "unsupported_media_type", _JSONRPC_INVALID_REQUEST)
    declared = request.headers.get("content-length", "")
    too_large = declared.isdigit() and int(declared) > MAX_MESSAGE_BYTES
    chunks: list[bytes] = []
    size = 0
    if not too_large:
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_MESSAGE_BYTES:
                    too_large = True
                    break
                chunks.append(chunk)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is there to read it
    if too_large:
        message = f"A JSON-RPC message may be at most {MAX_MESSAGE_BYTES} bytes."
        refusal = error_response(413, "body_too_large", message, headers={"Connection": "close"})
        return _as_jsonrpc(refusal, message, "body_too_large", _JSONRPC_INVALID_REQUEST)
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    """A `receive` that hands the SDK the body already read (the checks consumed it)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # like a client that stays connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class MCPEndpoint:
    """ASGI app for `MCP_PATH` (POST JSON-RPC; GET answers 405: no SSE stream is offered)."""

    def __init__(self) -> None:
        self._app: ASGIApp | None = None
        self._lock = asyncio.Lock()
        self._stop: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        current_record().operation = "mcp"
        services = services_of(request)
        # A key may use MCP when it may use a connector whose tools MCP offers.
        scopes = [
            name
            for name, (connector, _) in services.connectors.items()
            if Surface.MCP in connector.surfaces
        ]
        oauth: OAuthServer = request.app.state.oauth
        try:
            # An OAuth access token (ChatGPT, Claude) stands for the key that approved it;
            # anything else is a key or a static secret.
            caller = await oauth.bearer(request, scopes)
            if caller is None:
                caller = await services.gate.identify(request.headers, scopes)
            await services.gate.admit(caller)
        except ServiceError as error:
            refusal = await handle_service(request, error)
            if isinstance(error, Unauthorized):  # tells OAuth clients where to sign in
                refusal.headers["WWW-Authenticate"] = oauth.challenge(request)
            await _as_jsonrpc(refusal, error.message, error.code)(scope, receive, send)
            return
        if request.method != "POST":
            # Stateless: no SSE stream to GET and no session to DELETE.
            message = (
                "POST JSON-RPC messages to this endpoint; answers are JSON, not an SSE stream."
            )
            refusal = error_response(405, "method_not_allowed", message, headers={"Allow": "POST"})
            await _as_jsonrpc(refusal, message, "method_not_allowed")(scope, receive, send)
            return
        checked = await _checked_body(request)
        if isinstance(checked, Response):
            await checked(scope, receive, send)
            return
        app = await self._ready(services)
        await app(scope, _replay(checked), send)

    async def _ready(self, services: Services) -> ASGIApp:
        if self._app is not None:
            return self._app
        async with self._lock:
            if self._app is None:
                from app.mcp_tools import build_mcp  # lazy: the REST routes never pay for it

                server, app = build_mcp(services, MCP_PATH)
                started = asyncio.Event()
                self._stop = asyncio.Event()
                # A fresh context: the runner must not carry this request's log record.
                self._runner = asyncio.get_running_loop().create_task(
                    self._run(server.session_manager, started, self._stop),
                    context=contextvars.Context(),
                )
                await started.wait()
                self._app = app
        return self._app

    @staticmethod
    async def _run(manager: Any, started: asyncio.Event, stop: asyncio.Event) -> None:
        async with manager.run():
            started.set()
            await stop.wait()

    async def aclose(self) -> None:
        """Stop the session manager (the app's lifespan calls this at shutdown)."""
        if self._stop is not None and self._runner is not None:
            self._stop.set()
            await self._runner
