"""The upstream API client: one pooled transport, the key injected, failures typed.

Only this module talks to the upstream. It sends what an `Operation` built from validated
parameters and nothing of the caller's request: no `Authorization`, cookies or forwarding
headers can reach the upstream because none are ever copied.

The network is anything that can `fetch(url, headers)`: in a server, the pooled HTTP/1.1
client of app/upstream_http1.py. Any httpx transport plugs in through `HttpxFetcher`
(sample data, respx in tests, httpx's own network transport on AWS Lambda); the aiohttp
transport also fetches natively, without building httpx objects. None goes through
`httpx.AsyncClient`: on the benchmark (bench/throughput.py) the client's per-request
machinery (URL merging, auth flow, cookie jar) cost more than the proxy's own work, and
none of it is needed for one fixed upstream.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import httpx

from app.errors import (
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamRejectedKey,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.observability import current_record
from app.tls import context_for
from app.upstream_body import read_capped

if TYPE_CHECKING:
    from app.upstream_http1 import Http1Client

__all__ = [
    "MAX_UPSTREAM_BYTES",
    "Fetcher",
    "HttpxFetcher",
    "RawAnswer",
    "UpstreamClient",
    "http1_client",
]

log = logging.getLogger("app.upstream")

MAX_UPSTREAM_BYTES = 8 * 1024 * 1024
"""Larger upstream answers are refused rather than buffered."""

_RETRY_AFTER = re.compile(r"^[0-9A-Za-z ,:+-]{1,64}$")
_HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": "gzip",
    "User-Agent": "podcast-plugin-proxy/0.1",
}


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """An upstream answer: status, headers (case-insensitive), whole body (decoded)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@runtime_checkable
class Fetcher(Protocol):
    """The network as the upstream client needs it. Failures raise `httpx.TransportError`
    subclasses (`httpx.TimeoutException` for timeouts), whatever the implementation."""

    async def fetch(self, url: str, headers: Mapping[str, str]) -> RawAnswer: ...

    async def aclose(self) -> None: ...


class HttpxFetcher:
    """Fetches through any httpx transport, reading at most `max_body` bytes: the body is
    read raw and inflated by `read_capped`, in bounded steps, never whole by httpx."""

    def __init__(self, transport: httpx.AsyncBaseTransport, *, timeout: float, max_body: int):
        self.transport = transport
        self.max_body = max_body
        self._extensions = {"timeout": httpx.Timeout(timeout).as_dict()}

    async def fetch(self, url: str, headers: Mapping[str, str]) -> RawAnswer:
        request = httpx.Request("GET", url, headers=headers, extensions=self._extensions)
        response = await self.transport.handle_async_request(request)
        declared = response.headers.get("content-length", "")
        try:
            if response.is_stream_consumed:
                # Built from bytes in process (sample data, test mocks): httpx read and
                # decoded it on construction; there is no raw stream left to read.
                chunks, encoding = response.aiter_bytes(), None
            else:
                chunks, encoding = response.aiter_raw(), response.headers.get("content-encoding")
            body = await read_capped(
                chunks, int(declared) if declared.isdigit() else None, self.max_body, encoding
            )
        finally:
            await response.aclose()
        return RawAnswer(response.status_code, response.headers, body)

    async def aclose(self) -> None:
        await self.transport.aclose()


def network_transport(
    base_url: str, prefer: str = "auto", *, max_connections: int | None = 100
) -> httpx.AsyncBaseTransport:
    """The pooled httpx transport to `base_url`, where app/upstream_http1.py's client is not
    used: aiohttp's when asked for ("aiohttp", or "auto" and "http1" without httptools but
    with aiohttp); httpx's own otherwise (AWS Lambda: one request at a time, and httpx's
    transport costs no extra import), with the process's one TLS context (app/tls.py).
    `max_connections` None: no bound on open connections (httpx keeps up to 100 idle ones;
    aiohttp closes idle ones after 30 s)."""
    if prefer != "httpx":
        try:
            from app.aiohttp_transport import AiohttpTransport
        except ImportError:
            if prefer == "aiohttp":
                raise
        else:
            return AiohttpTransport(
                tls=context_for(base_url),
                max_connections=max_connections,
                max_body=MAX_UPSTREAM_BYTES,
            )
    idle = 20 if max_connections is not None else 100
    return httpx.AsyncHTTPTransport(
        verify=context_for(base_url),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=idle),
        trust_env=False,
    )


def http1_client(base_url: str, prefer: str, *, max_connections: int | None) -> Http1Client | None:
    """The HTTP/1.1 client of app/upstream_http1.py for `base_url` when `prefer` picks it
    ("auto" or "http1") and httptools is installed (the `server` extra); None otherwise
    ("auto" then falls back to `network_transport`; "http1" without httptools raises)."""
    if prefer not in ("auto", "http1"):
        return None
    try:
        from app.upstream_http1 import Http1Client
    except ImportError:
        if prefer == "http1":
            raise
        return None
    return Http1Client(
        tls=context_for(base_url), max_connections=max_connections, max_body=MAX_UPSTREAM_BYTES
    )


class UpstreamClient:
    """GET JSON from the upstream API. The transport (and its connection pool) is created on
    first use, so the client works whether or not an ASGI lifespan ever runs (AWS Lambda).

    `prefer` picks the network: "auto" or "http1", the pooled HTTP/1.1 client of
    app/upstream_http1.py (several times cheaper than aiohttp for a whole answer);
    "aiohttp" or "httpx", their transports (`network_transport`); "auto" falls back to
    them without httptools (the `server` extra)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        key_header: str,
        key_setting: str,
        transport: httpx.AsyncBaseTransport | None = None,
        prefer: str = "auto",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key_header = key_header
        self.key_setting = key_setting  # named in the operator's log when the key is refused
        self.timeout = timeout
        self._transport = transport
        self._prefer = prefer
        self._fetcher: Fetcher | None = None

    def _network(self) -> Fetcher:
        if self._fetcher is None and self._transport is None:
            self._fetcher = http1_client(self.base_url, self._prefer, max_connections=100)
        if self._fetcher is None:
            transport = self._transport or network_transport(self.base_url, self._prefer)
            if isinstance(transport, Fetcher):
                self._fetcher = transport  # fetches natively (aiohttp)
            else:
                self._fetcher = HttpxFetcher(
                    transport, timeout=self.timeout, max_body=MAX_UPSTREAM_BYTES
                )
        return self._fetcher

    async def aclose(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.aclose()
        elif self._transport is not None:
            await self._transport.aclose()

    async def get(self, path: str, query: str, *, key: str | None) -> bytes:
        """The body of a 200 answer to `GET {base}{path}?{query}` (`query` encoded); an
        `UpstreamError` otherwise.

        `key` is sent in the `key_header` header, the only credential that goes upstream. The
        whole exchange, body included, ends within `timeout` seconds.
        """
        url = f"{self.base_url}{path}?{query}" if query else self.base_url + path
        headers = {**_HEADERS, self.key_header: key} if key is not None else _HEADERS
        try:
            async with asyncio.timeout(self.timeout):
                answer = await self._network().fetch(url, headers)
        except (TimeoutError, httpx.TimeoutException):
            raise UpstreamTimeout(detail=f"no answer within {self.timeout}s") from None
        except httpx.HTTPError as error:
            raise UpstreamUnavailable(detail=f"transport: {type(error).__name__}") from None
        current_record().upstream_status = answer.status
        if answer.status != 200:
            raise _status_error(answer.status, answer.headers, self.key_setting)
        return answer.body


def _status_error(status: int, headers: Mapping[str, str], key_setting: str) -> UpstreamError:
    if status == 404:
        return UpstreamNotFound(status=404)
    if status == 429:
        retry_after = headers.get("retry-after")
        if retry_after is not None and not _RETRY_AFTER.match(retry_after):
            retry_after = None
        return UpstreamRateLimited(retry_after=retry_after)
    if status in (401, 403):
        log.error(
            "upstream refused the API key (HTTP %s): check %s",
            status,
            key_setting,
            extra={"fields": {"event": "upstream_key_rejected", "upstream_status": status}},
        )
        return UpstreamRejectedKey(status=status)
    return UpstreamUnavailable(status=status, detail=f"upstream answered HTTP {status}")
