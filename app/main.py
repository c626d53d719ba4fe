"""The ASGI app: `app.main:app`. `create_app()` builds one from settings, for tests too."""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from pydantic import SecretStr
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route

from app import __version__
from app.connectors.openai.connector import OpenAIConnector
from app.credentials import Credentials, SecretRef, StoredSecret
from app.errors import ServiceError
from app.mcp_mount import MCP_PATH, MCPEndpoint
from app.observability import AccessLog, configure_logging
from app.operations import OPERATIONS
from app.problems import handle_http, handle_service
from app.proxy import OperationRoute
from app.public import public_routes
from app.sample_transport import SampleTransport
from app.services import Services
from app.settings import Settings
from app.upstream import UpstreamClient

__all__ = ["create_app"]  # and `app`, built on first access (see __getattr__)

log = logging.getLogger("app.main")

_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def _ready_settings(settings: Settings) -> Settings:
    """Settings with the startup decisions applied and announced (never a secret in a log)."""
    if settings.sample_mode:
        log.warning("LISTEN_API_KEY is not set: sample-data mode, answers come from bundled data")
        if not settings.has_bearer_secret:
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
        log.error("CHATGPT_SECRET is not set: the proxy API is closed and answers 503")
    return settings


def _credentials(settings: Settings) -> Credentials:
    def stored(ref: str | None) -> StoredSecret | None:
        return StoredSecret(SecretRef.parse(ref), settings.secret_ttl) if ref else None

    key = settings.listen_api_key
    return Credentials(
        bearer_secrets=settings.bearer_secrets,
        bearer_ref=stored(settings.chatgpt_secret_ref),
        upstream_key=key.get_secret_value() if key is not None else None,
        upstream_key_ref=stored(settings.listen_api_key_ref),
    )


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    network: str = "auto",
    openai_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """A ready app. `transport` replaces the network for the upstream (tests, benchmarks);
    without a key the bundled sample data is the transport. `network` picks the network
    transport otherwise: "auto" (aiohttp when installed), "aiohttp" or "httpx".
    `openai_transport` does the same for the OpenAI connector's upstream."""
    settings = settings if settings is not None else Settings()
    configure_logging(settings.log_level)
    settings = _ready_settings(settings)
    if transport is None and settings.sample_mode:
        transport = SampleTransport(prefix=urlsplit(settings.upstream_base).path)
    upstream = UpstreamClient(
        settings.upstream_base,
        timeout=settings.upstream_timeout,
        transport=transport,
        prefer=network,
    )

    mcp = MCPEndpoint()
    credentials = _credentials(settings)
    openai = OpenAIConnector(settings, credentials, transport=openai_transport)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await mcp.aclose()
        await upstream.aclose()
        await openai.aclose()

    app = FastAPI(
        title="Podcast plugin proxy",
        version=__version__,
        openapi_url=None,  # the spec is served by app.public, generated from the operations
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # Off unless asked for: FastAPI checks for OpenTelemetry providers on every request.
        telemetry=None if settings.otel_enabled else _NO_TELEMETRY,
    )
    app.state.services = Services(settings=settings, credentials=credentials, upstream=upstream)
    app.router.routes.extend(public_routes())
    app.router.routes.extend(OperationRoute(operation) for operation in OPERATIONS)
    app.router.routes.append(Route(MCP_PATH, mcp, include_in_schema=False))
    app.router.routes.extend(openai.routes)
    app.add_exception_handler(ServiceError, handle_service)
    app.add_exception_handler(HTTPException, handle_http)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "openai-conversation-id",
            "openai-ephemeral-user-id",
        ],
        max_age=600,
    )
    app.add_middleware(AccessLog)
    return app


_default_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    # `app.main:app` is built on first access, from the environment, so that importing
    # `create_app` (tests, tools) does not build a default app as a side effect.
    global _default_app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _default_app is None:
        _default_app = create_app()
    return _default_app
