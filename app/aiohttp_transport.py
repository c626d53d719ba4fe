"""An httpx transport on one pooled aiohttp session: the upstream client's network layer.

Why not httpx's own (httpcore) transport: on this service's hot path it was the largest
cost by far (bench/throughput.py; measured in process, 16 concurrent GETs of a 10-result
answer: httpcore 483 req/s, aiohttp 6,068). It is an httpx transport (`httpx.Request` in,
`httpx.Response` out), so anything built on httpx can use it, and it also implements the
upstream client's `fetch` directly, which skips building httpx objects per request
(about 100 µs each time, a tenth of the proxy's cost on the benchmark).

Why not the `httpx-aiohttp` package: it streams every body through extra wrappers and
maps `aiohttp.ClientConnectionError` (a dropped connection) to `httpx.ConnectTimeout`,
which would turn an upstream failure into a timeout. This one reads the body once, with
a size cap, and maps failures to the httpx exception a caller expects.

It also streams (`stream`, app/streaming.py): the OpenAI gateway relays answers through
it as they arrive, measured 6x faster than through httpx (bench/throughput.py, chat).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping

import aiohttp
import httpx

from app.streaming import StreamedAnswer
from app.upstream import RawAnswer
from app.upstream_body import BodyTooLarge, decoded, read_capped

__all__ = ["AiohttpTransport", "BodyTooLarge"]


def _mapped(error: Exception) -> httpx.TransportError:
    # Most specific first: aiohttp's classes inherit from one another.
    if isinstance(error, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(error))
    if isinstance(error, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return httpx.ReadTimeout(str(error))
    if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(str(error))
    if isinstance(error, aiohttp.ClientPayloadError):
        return httpx.ReadError(str(error))
    if isinstance(error, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(str(error))
    return httpx.NetworkError(str(error))


class _AiohttpAnswer:
    """An aiohttp answer as a `StreamedAnswer`: failures while reading are httpx's."""

    def __init__(self, answer: aiohttp.ClientResponse) -> None:
        self._answer = answer
        self.status_code = answer.status
        self.headers: Mapping[str, str] = answer.headers
        self.raw_headers = answer.raw_headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        chunks = self._answer.content.iter_any()
        try:
            async for chunk in decoded(chunks, self.headers.get("Content-Encoding")):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _mapped(error) from error

    def received(self) -> bytes | None:
        content = self._answer.content
        coding = self.headers.get("Content-Encoding")
        if not content.is_eof() or (coding and coding.strip().lower() != "identity"):
            return None
        try:
            return content.read_nowait()
        except Exception:  # a failed read: `aiter_bytes` raises it, mapped
            return None

    async def aclose(self) -> None:
        # Read to its end, the answer has already handed its connection back to the pool
        # (aiohttp does so at the end of the body); otherwise this closes the connection,
        # which the upstream sees as the caller leaving.
        self._answer.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Pooled HTTP/1.1 over aiohttp. The session is created on first use, inside the
    running event loop, and reused for the life of the process. `max_connections` None:
    no bound (a relayed stream holds its connection for as long as it lasts). `tls`: the
    context https connections verify with (app/tls.py's, as every client of the process)."""

    def __init__(
        self,
        *,
        tls: ssl.SSLContext,
        max_connections: int | None = 100,
        max_body: int = 8 * 1024 * 1024,
    ) -> None:
        self.tls = tls
        self.max_connections = max_connections
        self.max_body = max_body
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections or 0, keepalive_timeout=30, ssl=self.tls
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,  # read_capped (fetch) or httpx inflates, once
                cookie_jar=aiohttp.DummyCookieJar(),  # never keep upstream cookies
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
                timeout=aiohttp.ClientTimeout(total=None),  # the caller owns the deadline
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = request.content or None
        try:
            async with self._pool().request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body,
                allow_redirects=False,
            ) as answer:
                content = await self._read(answer)
                status, headers = answer.status, answer.raw_headers
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _mapped(error) from error
        return httpx.Response(
            status,
            headers=headers,
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def fetch(self, url: str, headers: Mapping[str, str]) -> RawAnswer:
        """GET `url`: the upstream client's fast path (see the module docstring)."""
        try:
            # The body comes raw (the session never decompresses) and `read_capped`
            # inflates it in bounded steps, counting toward the cap.
            async with self._pool().get(url, headers=headers, allow_redirects=False) as answer:
                body = await self._read(answer, answer.headers.get("Content-Encoding"))
                return RawAnswer(answer.status, answer.headers, body)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _mapped(error) from error

    async def stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        read_timeout: float,
    ) -> StreamedAnswer:
        """See `app.streaming.Streamer.stream`. The body is inflated as it is read."""
        timeouts = self._timeouts.get(read_timeout)
        if timeouts is None:  # one per value (the gateway has one): not built per request
            timeouts = aiohttp.ClientTimeout(
                total=None, sock_connect=read_timeout, sock_read=read_timeout
            )
            if len(self._timeouts) < 16:
                self._timeouts[read_timeout] = timeouts
        try:
            answer = await self._pool().request(
                method, url, headers=headers, data=body, allow_redirects=False, timeout=timeouts
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _mapped(error) from error
        return _AiohttpAnswer(answer)

    async def _read(self, answer: aiohttp.ClientResponse, encoding: str | None = None) -> bytes:
        return await read_capped(
            answer.content.iter_any(), answer.content_length, self.max_body, encoding
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __repr__(self) -> str:
        state = "open" if self._session and not self._session.closed else "idle"
        return f"<AiohttpTransport {state} max_connections={self.max_connections}>"
