"""The OpenAI upstream client: one pooled network transport, created on first use (AWS
Lambda safe), the key injected, nothing of the caller's request copied implicitly.

Unlike the podcast client (app/upstream.py, GET and whole JSON bodies), this one sends
bodies and hands back the answer unread (app/streaming.py), for the gateway to relay as it
arrives. The network is picked like the podcast client's: in a server, the HTTP/1.1
client of app/upstream_http1.py (it streams natively, at a third of aiohttp's CPU a
request); "aiohttp" or, without the `server` extra, httpx's own (`network_transport`); a
given httpx transport (sample data, tests) is used through `HttpxStreamer`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from urllib.parse import urlencode

import httpx

from app.streaming import HttpxStreamer, StreamedAnswer, Streamer
from app.upstream import http1_client, network_transport

__all__ = ["OpenAIUpstream", "StreamedAnswer"]

_USER_AGENT = "podcast-plugin-proxy-openai-gateway/0.1"


class OpenAIUpstream:
    """Sends requests to `base_url` (e.g. https://api.openai.com/v1) with the key from `key()`
    as `Authorization: Bearer` (none when it returns None: the sample transport needs none),
    plus `OpenAI-Organization` / `OpenAI-Project` when configured. `transport` replaces the
    network; `prefer` picks it otherwise: "auto" or "http1" (app/upstream_http1.py's client
    when httptools is installed), "aiohttp", "httpx"."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        key: Callable[[], Awaitable[str | None]],
        transport: httpx.AsyncBaseTransport | None = None,
        prefer: str = "auto",
        organization: str | None = None,
        project: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._key = key
        self._transport = transport
        self._prefer = prefer
        self._fixed: dict[str, str] = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
        if organization:
            self._fixed["OpenAI-Organization"] = organization
        if project:
            self._fixed["OpenAI-Project"] = project
        self._streamer: Streamer | None = None

    def _network(self) -> Streamer:
        # No bound on open connections: a streamed answer holds its connection for the
        # whole generation, so a pool of N would queue caller N+1 behind the others'
        # streams until OPENAI_TIMEOUT (504). Callers are bounded where they connect.
        if self._streamer is None and self._transport is None:
            self._streamer = http1_client(self.base_url, self._prefer, max_connections=None)
        if self._streamer is None:
            transport = self._transport or network_transport(
                self.base_url, self._prefer, max_connections=None
            )
            if isinstance(transport, Streamer):
                self._streamer = transport  # streams natively (aiohttp)
            else:
                self._streamer = HttpxStreamer(transport)
        return self._streamer

    async def aclose(self) -> None:
        if self._streamer is not None:
            await self._streamer.aclose()
        elif self._transport is not None:
            await self._transport.aclose()

    async def open(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> StreamedAnswer:
        """The upstream's answer to `method {base}{path}`, its headers read, its body not.

        The caller must `aclose()` it. Raises `httpx.TimeoutException` when no answer starts
        within the timeout (or a read of its body waits longer), another `httpx.HTTPError`
        when the connection fails, and `CredentialsUnavailable` when a stored key cannot be
        read.
        """
        key = await self._key()
        sent = {**headers, **self._fixed} if headers else dict(self._fixed)
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        url = self.base_url + path
        if query:
            url += "?" + urlencode(query)
        async with asyncio.timeout(self.timeout):
            return await self._network().stream(method, url, sent, body, read_timeout=self.timeout)
