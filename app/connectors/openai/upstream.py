"""The OpenAI upstream client: one pooled `httpx.AsyncClient`, created on first use (AWS
Lambda safe), the key injected, nothing of the caller's request copied implicitly.

Unlike the podcast client (app/upstream.py, GET and whole JSON bodies), this one sends
bodies and hands back the answer unread (`stream=True`), for the gateway to relay as it
arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

import httpx

from app.tls import context_for

__all__ = ["OpenAIUpstream"]

_USER_AGENT = "podcast-plugin-proxy-openai-gateway/0.1"


class OpenAIUpstream:
    """Sends requests to `base_url` (e.g. https://api.openai.com/v1) with the key from `key()`
    as `Authorization: Bearer` (none when it returns None: the sample transport needs none),
    plus `OpenAI-Organization` / `OpenAI-Project` when configured."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        key: Callable[[], Awaitable[str | None]],
        transport: httpx.AsyncBaseTransport | None = None,
        organization: str | None = None,
        project: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._key = key
        self._transport = transport
        self._fixed: dict[str, str] = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
        if organization:
            self._fixed["OpenAI-Organization"] = organization
        if project:
            self._fixed["OpenAI-Project"] = project
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # No bound on open connections: a streamed answer holds its connection for the
            # whole generation, so a pool of N would queue caller N+1 behind the others'
            # streams until OPENAI_TIMEOUT (504). Callers are bounded where they connect.
            transport = self._transport or httpx.AsyncHTTPTransport(
                verify=context_for(self.base_url),  # the process's one (app/tls.py)
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
                trust_env=False,
            )
            self._client = httpx.AsyncClient(
                transport=transport,
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
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
    ) -> httpx.Response:
        """The upstream's answer to `method {base}{path}`, its headers read, its body not.

        The caller must `aclose()` it. Raises `httpx.TimeoutException` when no answer starts
        within the timeout, another `httpx.HTTPError` when the connection fails, and
        `CredentialsUnavailable` when a stored key cannot be read.
        """
        key = await self._key()
        sent = {**(headers or {}), **self._fixed}
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        client = self._http()
        request = client.build_request(
            method, self.base_url + path, params=list(query), headers=sent, content=body
        )
        async with asyncio.timeout(self.timeout):
            return await client.send(request, stream=True)
