"""The OpenAI connector assembled from settings: its upstream, its routes, its startup line."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx
from pydantic_settings import BaseSettings
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.callers import Gate
from app.connector import Started
from app.connectors.openai.chat import SIMPLE_CHAT, SimpleChat
from app.connectors.openai.settings import OpenAISettings
from app.connectors.openai.upstream import OpenAIUpstream
from app.credentials import Credentials, SecretRef, StoredSecret
from app.settings import CoreSettings

__all__ = ["API_PREFIX", "CHAT_PATH", "OpenAIConnector", "start"]

log = logging.getLogger("app.openai")

API_PREFIX = "/openai"
CHAT_PATH = API_PREFIX + SIMPLE_CHAT.path
NAME = "openai"
"""The connector's name: its scope (`keys create --scopes openai`)."""


def _sample_transport(base_url: str) -> httpx.AsyncBaseTransport | None:
    # Worker B's module (the bundled sample answers), when it is installed.
    if importlib.util.find_spec("app.connectors.openai.sample") is None:
        return None
    return _LazySample(urlsplit(base_url).path)


class _LazySample(httpx.AsyncBaseTransport):
    """The sample transport, imported and built on the first OpenAI request: its modules
    cost a sample-mode cold start ~4 ms, and a request to the other connectors never
    needs them."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._transport: httpx.AsyncBaseTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._transport is None:
            from app.connectors.openai.sample import OpenAISampleTransport  # type: ignore[import-not-found,import-untyped,unused-ignore]

            self._transport = OpenAISampleTransport(prefix=self._prefix)
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()


class _LazyApp:
    """An ASGI app built on its first request by `build`: the gateway
    (app/connectors/openai/gateway.py), whose modules (routes, relay, cache glue) cost every
    cold start ~2 ms, and which a Lambda container serving the REST operations never needs."""

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self._build = build
        self._app: ASGIApp | None = None

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: once built, the gateway's coroutine runs without a frame
        # of this one that every resumption of the request's task would pass through.
        if self._app is None:
            self._app = self._build()
        return self._app(scope, receive, send)


class OpenAIConnector:
    """Everything the app needs from the OpenAI connector: `routes` and `aclose()`.

    `transport` replaces the network (tests), `network` picks it otherwise ("auto",
    "aiohttp", "httpx"); without a key the sample data is the transport; with neither,
    the routes answer 503 rather than call out without a key.
    """

    def __init__(
        self,
        settings: OpenAISettings,
        secret_ttl: float,
        gate: Gate,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        network: str = "auto",
    ) -> None:
        key = settings.openai_api_key
        key_ref = (
            StoredSecret(SecretRef.parse(settings.openai_api_key_ref), secret_ttl)
            if settings.openai_api_key_ref
            else None
        )
        self._credentials = Credentials(
            upstream_key=key.get_secret_value() if key is not None else None,
            upstream_key_ref=key_ref,
        )
        base = settings.openai_base
        if settings.openai_sample_mode and transport is None:
            transport = _sample_transport(base)
            available = transport is not None
            source = "sample data" if available else "no sample data installed: routes answer 503"
            log.warning("openai: %s (no OPENAI_API_KEY): answers are marked as sample", source)
        else:
            available = True
            where = f"reference {key_ref.ref}" if key_ref else "OPENAI_API_KEY"
            log.info("openai: live, %s, key from %s", base, where)
        self.upstream = (
            OpenAIUpstream(
                base,
                timeout=settings.openai_timeout,
                key=self._credentials.upstream_key,
                transport=transport,
                prefer=network,
                organization=settings.openai_organization,
                project=settings.openai_project,
            )
            if available
            else None
        )
        upstream = self.upstream
        cache_scope = " ".join(
            [
                "openai",
                "sample" if settings.openai_sample_mode else "live",
                base,
                settings.openai_organization or "-",
                settings.openai_project or "-",
            ]
        )

        def build_gateway() -> ASGIApp:
            from app.connectors.openai.gateway import Gateway

            return Gateway(
                upstream,
                gate,
                scope=NAME,
                default_model=settings.openai_default_model,
                max_json_bytes=settings.openai_max_json_bytes,
                upstream_key_hint=key.get_secret_value() if key is not None else None,
                cache_embeddings=settings.openai_cache_embeddings,
                cache_scope=cache_scope,
            )

        gateway = _LazyApp(build_gateway)
        chat = SimpleChat(
            self.upstream,
            gate,
            scope=NAME,
            default_model=settings.openai_default_model,
        )
        self.routes: list[BaseRoute] = [
            Route(CHAT_PATH, chat.__call__, methods=["POST"], include_in_schema=False),
            Route("/openai/{rest:path}", gateway, include_in_schema=False),
        ]

    async def aclose(self) -> None:
        if self.upstream is not None:
            await self.upstream.aclose()


def start(
    settings: BaseSettings,
    gate: Gate,
    transport: httpx.AsyncBaseTransport | None,
    network: str,
) -> Started:
    """The OpenAI connector for `settings` (see `OpenAIConnector`)."""
    assert isinstance(settings, OpenAISettings) and isinstance(settings, CoreSettings)  # noqa: S101
    connector = OpenAIConnector(
        settings, settings.secret_ttl, gate, transport=transport, network=network
    )
    return Started(
        mode="sample" if settings.openai_sample_mode else "live",
        routes=connector.routes,
        closers=[connector.aclose],
    )
