"""HTTP/1.1 POSTs to one origin over asyncio streams: the wire of app/stores/dynamodb_api.py.

DynamoDB's API is one `POST /` per operation, answered with a small JSON body. httpx's
network transport (httpcore, h11 and anyio's backend) costs about 24 ms of imports on the
first request of a Lambda container (bench/cold_start.py); asyncio's streams, already
imported, do this job. Connections are kept alive and reused (at most `max_connections`
at once, idle ones for `keepalive` seconds), and one found closed by the server while idle
(a Lambda container thawed after minutes) is dropped before it is used, as httpcore does.

Errors say whether the request can have reached the server, which decides whether a write
may be sent again:

    HttpError
    ├── InvalidRequest      a request HTTP cannot carry (a header value with CR/LF): never sent
    ├── NotSent             nothing was sent: sending again is safe
    │   ├── ConnectError        no connection (refused, DNS, TLS handshake)
    │   └── ConnectTimeout
    ├── PoolTimeout         every connection stayed busy (nothing sent)
    └── SentError           the request may have reached the server
        ├── WriteTimeout
        ├── ReadTimeout
        └── RemoteProtocolError  the connection closed early, or an answer HTTP cannot be
"""

from __future__ import annotations

import asyncio
import re
import select
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.tls import context_for

__all__ = [
    "Answer",
    "ConnectError",
    "ConnectTimeout",
    "HttpError",
    "InvalidRequest",
    "NotSent",
    "Origin",
    "PoolTimeout",
    "ReadTimeout",
    "RemoteProtocolError",
    "SentError",
    "WriteTimeout",
]

_MAX_HEAD_LINES = 100
_READ = 64 * 1024
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VALUE = re.compile(r"[\t\x20-\x7e]*")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_STATUS = re.compile(r"(HTTP/1\.[01]) ([0-9]{3})(?: .*)?")


class HttpError(Exception):
    """The exchange failed; the message never holds a header's value."""


class InvalidRequest(HttpError):
    """The request cannot be written as HTTP; nothing was sent, and sending it again cannot
    help."""


class NotSent(HttpError):
    """No byte of the request left this process."""


class ConnectError(NotSent):
    pass


class ConnectTimeout(NotSent):
    pass


class PoolTimeout(HttpError):
    pass


class SentError(HttpError):
    """The request may have reached the server: it may have been applied."""


class WriteTimeout(SentError):
    pass


class ReadTimeout(SentError):
    pass


class RemoteProtocolError(SentError):
    pass


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer: status, headers (names in lower case), whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def stale(self, now: float, keepalive: float) -> bool:
        """Closed, closing, or readable while idle (the server's EOF or a stray byte)."""
        if now - self.idle_since > keepalive or self.writer.is_closing():
            return True
        if self.reader.at_eof():
            return True
        sock = self.writer.get_extra_info("socket")
        if sock is None:
            return True
        poller = select.poll()  # not select.select: it fails for descriptors past 1023
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        self.writer.close()


class Origin:
    """Keep-alive HTTP/1.1 connections to the origin of `url` (http or https), for one event
    loop. `timeout` bounds connecting, writing the request and each read of the answer;
    `pool_timeout` the wait for a free connection."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        pool_timeout: float,
        max_connections: int,
        keepalive: float = 5.0,
        max_body: int = 32 * 1024 * 1024,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an http or https URL with a host")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.timeout = timeout
        self.pool_timeout = pool_timeout
        self.keepalive = keepalive
        self.max_body = max_body
        self._ssl: ssl.SSLContext | None = context_for(url) if self.tls else None
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []

    async def post(self, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """The answer to `POST path` with `headers` (Content-Length is added) and `body`.
        Raises an HttpError (see the module docstring); ValueError for a header that HTTP
        cannot carry (nothing is sent)."""
        head = _head(path, headers, len(body))
        try:
            async with asyncio.timeout(self.pool_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise PoolTimeout("no free connection") from None
        try:
            connection = self._reuse() or await self._connect()
            keep = False
            try:
                answer, keep = await self._exchange(connection, head + body)
            finally:
                if keep:
                    connection.idle_since = asyncio.get_running_loop().time()
                    self._idle.append(connection)
                else:
                    connection.close()
            return answer
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        """Close the idle connections (busy ones close when their exchange ends)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        for connection in idle:
            try:
                async with asyncio.timeout(1.0):
                    await connection.writer.wait_closed()
            except (TimeoutError, OSError):
                connection.writer.transport.abort()

    def _reuse(self) -> _Connection | None:
        now = asyncio.get_running_loop().time()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the likeliest alive
            if not connection.stale(now, self.keepalive):
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self.tls else None,
                    limit=_READ,
                )
        except TimeoutError:
            raise ConnectTimeout("connecting took too long") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError)
            raise ConnectError(f"{type(exc).__name__}: {exc}") from None
        return _Connection(reader, writer)

    async def _exchange(self, connection: _Connection, request: bytes) -> tuple[Answer, bool]:
        """The answer, and whether the connection may carry another request."""
        try:
            connection.writer.write(request)
            async with asyncio.timeout(self.timeout):
                await connection.writer.drain()
        except TimeoutError:
            raise WriteTimeout("sending took too long") from None
        except OSError as exc:
            raise RemoteProtocolError(f"sending failed: {type(exc).__name__}") from None
        try:
            return await self._read(connection.reader)
        except TimeoutError:
            raise ReadTimeout("no answer in time") from None
        except asyncio.IncompleteReadError:
            raise RemoteProtocolError("the server closed the connection mid-answer") from None
        except (asyncio.LimitOverrunError, ValueError) as exc:  # our parsing's refusals
            raise RemoteProtocolError(f"an answer HTTP cannot be: {exc}") from None
        except OSError as exc:
            raise RemoteProtocolError(f"reading failed: {type(exc).__name__}") from None

    async def _read(self, reader: asyncio.StreamReader) -> tuple[Answer, bool]:
        async with asyncio.timeout(self.timeout):
            status, version, headers = await _read_head(reader)
            while 100 <= status < 200:  # informational (100 Continue): the answer follows
                status, version, headers = await _read_head(reader)
        keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        length = headers.get("content-length")
        if status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._chunked(reader)
        elif length is not None:
            if not length.isdigit():
                raise ValueError("Content-Length is not a number")
            body = await self._exactly(reader, int(length))
        else:  # the body ends with the connection
            body, keep = await self._until_eof(reader), False
        return Answer(status, headers, body), keep

    async def _exactly(self, reader: asyncio.StreamReader, size: int) -> bytes:
        if size > self.max_body:
            raise ValueError(f"a body over {self.max_body} bytes")
        parts: list[bytes] = []
        left = size
        while left:
            async with asyncio.timeout(self.timeout):
                part = await reader.read(min(left, _READ))
            if not part:
                raise asyncio.IncompleteReadError(b"".join(parts), size)
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    async def _chunked(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            async with asyncio.timeout(self.timeout):
                line = await reader.readuntil(b"\r\n")
            digits = line.split(b";", 1)[0].strip()
            if not _HEX.fullmatch(digits):  # int() would also take -5, 0x5 or 1_0
                raise ValueError("a chunk size that is not hexadecimal digits")
            size = int(digits, 16)
            if size == 0:
                async with asyncio.timeout(self.timeout):
                    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                        pass
                return b"".join(parts)
            total += size
            if total > self.max_body:
                raise ValueError(f"a body over {self.max_body} bytes")
            parts.append(await self._exactly(reader, size))
            async with asyncio.timeout(self.timeout):
                if await reader.readexactly(2) != b"\r\n":
                    raise ValueError("a chunk without its CRLF")

    async def _until_eof(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            async with asyncio.timeout(self.timeout):
                part = await reader.read(_READ)
            if not part:
                return b"".join(parts)
            total += len(part)
            if total > self.max_body:
                raise ValueError(f"a body over {self.max_body} bytes")
            parts.append(part)


def _head(path: str, headers: Mapping[str, str], length: int) -> bytes:
    if not path.startswith("/") or not _VALUE.fullmatch(path) or " " in path:
        raise InvalidRequest("the request path is not one HTTP can carry")
    lines = [f"POST {path} HTTP/1.1"]
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or not _VALUE.fullmatch(value):
            # Never the value in the message: it may be a credential.
            raise InvalidRequest(f"the header {name!r} has a value HTTP cannot carry")
        if name.lower() == "content-length":
            continue
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    line = await reader.readuntil(b"\r\n")
    status = _STATUS.fullmatch(line.decode("latin-1").rstrip("\r\n"))
    if status is None:  # e.g. `HTTP/1.1 2000`, which a prefix would read as 200
        raise ValueError("not an HTTP/1 status line")
    version, code = status.groups()
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEAD_LINES):
        line = await reader.readuntil(b"\r\n")
        if line == b"\r\n":
            return int(code), version, headers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise ValueError("a header line without a name")
        key, value = name.lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    raise ValueError(f"more than {_MAX_HEAD_LINES} header lines")
