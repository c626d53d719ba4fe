"""The /mcp endpoint: the caller admitted (a key needs the scope of a connector whose tools
it offers), then the MCP SDK's Streamable HTTP app. An OAuth access token (app/oauth/) is
admitted as the key that approved it; a refusal tells OAuth clients where to sign in
(`WWW-Authenticate: Bearer resource_metadata=...`).

The SDK (about 1.3 s to import) is imported and the MCP server built on the first /mcp
request, not at startup. Its session manager may run only once per process, so it runs
in one background task for the life of the process (also on AWS Lambda, where Mangum
re-enters the same event loop for each warm invocation), stopped by the app's lifespan
when there is one.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.connector import Surface
from app.errors import ServiceError, Unauthorized
from app.oauth.server import OAuthServer
from app.observability import current_record
from app.problems import error_response, handle_service
from app.services import Services, services_of

__all__ = ["MCP_PATH", "MCPEndpoint"]

MCP_PATH = "/mcp"


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
            response = await handle_service(request, error)
            if isinstance(error, Unauthorized):  # tells OAuth clients where to sign in
                response.headers["WWW-Authenticate"] = oauth.challenge(request)
            await response(scope, receive, send)
            return
        if request.method not in ("POST", "DELETE"):
            response = error_response(
                405,
                "method_not_allowed",
                "POST JSON-RPC messages to this endpoint; answers are JSON, not an SSE stream.",
                headers={"Allow": "POST"},
            )
            await response(scope, receive, send)
            return
        app = await self._ready(services)
        await app(scope, receive, send)

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
