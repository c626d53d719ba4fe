"""The ASGI app: `app.main:app`. `create_app()` builds one from settings, for tests too."""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace

import httpx
from fastapi import FastAPI
from fastapi._body_limit import AppBodyLimitMiddleware
from fastapi.telemetry import TelemetryConfig
from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware
from pydantic import SecretStr
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from app import __version__
from app.cache import ResponseCache
from app.callers import Gate
from app.connector import Connector, Started, Surface
from app.cors import Cors
from app.credentials import Credentials, SecretRef, StoredSecret
from app.dispatch import Dispatch
from app.edge import Edge
from app.errors import ServiceError
from app.hot import HotPath
from app.mcp_mount import MCP_PATH, MCPEndpoint
from app.oauth.identity import GateIdentities
from app.oauth.routes import oauth_routes
from app.oauth.server import OAuthServer
from app.observability import configure_logging
from app.problems import handle_http, handle_service, handle_unexpected
from app.proxy import OperationRoute
from app.public import connector_spec_route, public_routes
from app.registry import CONNECTORS, Settings
from app.services import Services
from app.setting_errors import settings_or_exit
from app.settings import CoreSettings
from app.store import Store

__all__ = ["create_app"]  # and `app`, built on first access (see __getattr__)

log = logging.getLogger("app.main")

_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def _ready_settings(settings: CoreSettings) -> CoreSettings:
    """Settings with the startup decisions applied and announced (never a secret in a log)."""
    all_sample = all(connector.sample_mode(settings) for connector in CONNECTORS)
    if all_sample and not settings.has_bearer_secret:
        generated = secrets.token_urlsafe(24)
        settings = settings.model_copy(update={"chatgpt_secret": [SecretStr(generated)]})
        # Printed once, to the terminal only, so a newcomer can curl straight away.
        print(
            "\n  Sample-data mode. No CHATGPT_SECRET was set, so this run accepts:\n"
            f"    Authorization: Bearer {generated}\n",
            file=sys.stderr,
            flush=True,
        )
    elif not settings.has_bearer_secret:
        log.error(
            "CHATGPT_SECRET is not set: only managed keys (python -m app keys) are accepted; "
            "other callers get 503"
        )
    return settings


def _callers(settings: CoreSettings) -> Credentials:
    ref = settings.chatgpt_secret_ref
    return Credentials(
        bearer_secrets=settings.bearer_secrets,
        bearer_ref=StoredSecret(SecretRef.parse(ref), settings.secret_ttl) if ref else None,
    )


def _response_cache(
    settings: CoreSettings, started: Mapping[str, tuple[Connector, Started]], store: Store
) -> ResponseCache | None:
    """The response cache on the store (None when `CACHE_ENABLED` is off), given to each
    connector's operations, scoped to the connector, its mode and its upstream: a store
    shared with a sample-data run, or with another upstream, never mixes their answers."""
    if not settings.cache_enabled:
        return None
    cache = ResponseCache(store)  # the gate's store: one connection pool, closed by the gate
    for connector, running in started.values():
        if running.upstream is not None:
            scope = f"{connector.name} {running.mode} {running.upstream.client.base_url}"
            running.upstream = replace(running.upstream, cache=cache.scoped(scope))
    return cache


class _Service(FastAPI):
    """FastAPI without two layers it puts around every request that do nothing here: the
    exception telemetry (it reports to OpenTelemetry, only when `OTEL_ENABLED`) and the
    request body limit (FastAPI's `max_body_size`, never set: bodies are bounded by each
    route that reads one; without it the layer only acts when mounted in another app, and
    this one never is). Each is a call and a frame in every resumption of the request's
    task. When the built stack is not the one expected, it is served as built."""

    otel_enabled = False

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        telemetry = getattr(stack, "app", None)
        body_limit = getattr(telemetry, "app", None)
        if (
            not self.otel_enabled
            and self.max_body_size is None
            and isinstance(stack, ServerErrorMiddleware)
            and isinstance(telemetry, ExceptionTelemetryMiddleware)
            and isinstance(body_limit, AppBodyLimitMiddleware)
        ):
            stack.app = body_limit.app
        return stack


def create_app(
    settings: CoreSettings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    network: str = "auto",
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    leases: bool = True,
    direct: bool = True,
) -> FastAPI:
    """A ready app hosting every connector of the registry.

    `transports` replaces a connector's network, by connector name (tests, benchmarks);
    `transport` is short for the plugin connector's. Without its upstream key a connector
    answers from its bundled sample data. `network` picks the network transport otherwise:
    "auto" (with the `server` extra: app/upstream_http1.py's client for whole answers,
    aiohttp for the OpenAI gateway), "http1" (the same), "aiohttp" or "httpx". `leases`:
    whether the gate may take admissions ahead of use (app/allowance.py); off on AWS Lambda.
    `direct`: whether requests to connectors' routes skip the framework's layers
    (app/dispatch.py); off, every request goes through them (the tests compare the two)."""
    settings = settings if settings is not None else Settings()
    configure_logging(settings.log_level)
    settings = _ready_settings(settings)
    gate = Gate(settings, _callers(settings), leases=leases)
    replaced = dict(transports or {})
    plugin = next((c for c in CONNECTORS if Surface.PLUGIN in c.surfaces), None)
    if transport is not None and plugin is not None:
        replaced.setdefault(plugin.name, transport)
    started = {
        connector.name: (
            connector,
            connector.start(settings, gate, replaced.get(connector.name), network),
        )
        for connector in CONNECTORS
    }
    mcp = MCPEndpoint()
    cache = _response_cache(settings, started, gate.store)
    mcp_scopes = [c.name for c in CONNECTORS if Surface.MCP in c.surfaces]
    oauth = OAuthServer(
        settings,
        gate.store,
        GateIdentities(gate, mcp_scopes),
        resource_path=MCP_PATH,
        redirect_uris=settings.oauth_redirect_uris,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await mcp.aclose()
        for _connector, running in started.values():
            await running.aclose()
        if cache is not None:
            await cache.aclose()  # its pending store writes, while the store is open
        await gate.aclose()  # and the store, which the response cache shares

    app = _Service(
        title="Upstream API proxy",
        version=__version__,
        openapi_url=None,  # the spec is served by app.public, generated from the operations
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        redirect_slashes=False,  # a trailing slash is a JSON 404 naming the path (app.problems)
        # Off unless asked for: FastAPI checks for OpenTelemetry providers on every request.
        telemetry=None if settings.otel_enabled else _NO_TELEMETRY,
    )
    app.otel_enabled = settings.otel_enabled
    app.state.services = Services(settings=settings, gate=gate, connectors=started)
    app.state.response_cache = cache
    app.state.oauth = oauth
    app.router.routes.extend(public_routes())
    app.router.routes.extend(oauth_routes(MCP_PATH))
    app.router.routes.extend(
        connector_spec_route(connector)
        for connector in CONNECTORS
        if connector.operations and Surface.PLUGIN not in connector.surfaces
    )
    owned: list[BaseRoute] = []  # connectors' routes: sent straight to them (app/dispatch.py)
    for connector, running in started.values():
        if running.upstream is not None:
            owned.extend(
                OperationRoute(operation, connector.api_prefix, running.upstream, connector.name)
                for operation in connector.operations
            )
        owned.extend(running.routes)
    app.router.routes.extend(owned)
    app.router.routes.append(Route(MCP_PATH, mcp, include_in_schema=False))
    app.add_exception_handler(ServiceError, handle_service)
    app.add_exception_handler(HTTPException, handle_http)
    app.add_exception_handler(Exception, handle_unexpected)  # 500 in JSON, never text/plain
    cors = Cors(
        allow_origins=settings.cors_origins,
        # POST: /mcp from browser-based MCP clients (inspectors) and the OpenAI routes.
        allow_methods=["GET", "POST"],
        allow_headers=[
            "Authorization",
            "api-key",
            "Content-Type",
            "mcp-protocol-version",
            "openai-conversation-id",
            "openai-ephemeral-user-id",
        ],
        expose_headers=["WWW-Authenticate", "Retry-After", "X-Request-Id", "RateLimit"],
        max_age=600,
    )
    if direct and not settings.otel_enabled:  # telemetry names the route the router picked
        app.add_middleware(Dispatch, owned=owned)
    if cache is not None:  # cache hits answered below the framework, inside the request layer
        app.add_middleware(HotPath, gate=gate)
    app.add_middleware(Edge, gate=gate, cors=cors)  # the last added is the outermost
    return app


_default_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    # `app.main:app` is built on first access, from the environment, so that importing
    # `create_app` (tests, tools) does not build a default app as a side effect.
    global _default_app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _default_app is None:
        _default_app = create_app(settings_or_exit(Settings))  # bad settings: one line each
    return _default_app
