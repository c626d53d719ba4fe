"""Upstream answers handed over unread, for a caller to relay as they arrive.

The network is anything that can `stream(method, url, headers, body)` (`Streamer`). Any
httpx transport plugs in through `HttpxStreamer` (sample data, tests, httpx's own network
transport); the aiohttp transport (app/aiohttp_transport.py) streams natively, without
building httpx objects. Either way the answer is a `StreamedAnswer` and every failure,
opening or reading, is an `httpx.HTTPError` (`httpx.TimeoutException` for timeouts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

import httpx

__all__ = ["HttpxStreamer", "StreamedAnswer", "Streamer"]


class StreamedAnswer(Protocol):
    """An answer whose status and headers are read and whose body is not.

    `headers` looks names up case-insensitively; `raw_headers` lists them all as they came,
    names in any case. The body is decoded (`Content-Encoding`) as it is read. `aclose()`
    must be called: it keeps the connection for reuse only when the body was read to its end.
    """

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def raw_headers(self) -> Sequence[tuple[bytes, bytes]]: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    def received(self) -> bytes | None:
        """The whole body, when all of it has arrived already and needs no decoding (so
        reading it cannot wait, fail or inflate anything); else None, and `aiter_bytes`
        reads it. Consumes what it returns."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Streamer(Protocol):
    """The network as a relaying client needs it."""

    async def stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        read_timeout: float,
    ) -> StreamedAnswer:
        """The answer to `method url`, its body unread. `read_timeout` bounds
        connecting and each wait for more of the answer, not the whole answer (a stream may
        last long)."""
        ...

    async def aclose(self) -> None: ...


class _HttpxAnswer:
    """An `httpx.Response` opened with `stream=True`, as a `StreamedAnswer`."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers: Mapping[str, str] = response.headers

    @property
    def raw_headers(self) -> Sequence[tuple[bytes, bytes]]:
        return self._response.headers.raw

    def received(self) -> None:
        return None  # httpx reads on demand: the relay iterates

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self._response.aiter_bytes()

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxStreamer:
    """Streams through any httpx transport with one `httpx.AsyncClient` (no redirects, no
    environment proxies)."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
        )

    async def stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        read_timeout: float,
    ) -> StreamedAnswer:
        """See `Streamer.stream`."""
        request = self._client.build_request(
            method, url, headers=headers, content=body, timeout=httpx.Timeout(read_timeout)
        )
        return _HttpxAnswer(await self._client.send(request, stream=True))

    async def aclose(self) -> None:
        await self._client.aclose()
