"""A pooled HTTP/1.1 client for the upstreams: whole answers to GETs (`fetch`, the podcast
connector) and answers relayed as they arrive (`stream`, the OpenAI gateway).

Both need little of the network: send a request with a few headers (and a body) and read
the answer. For the bench's 28 KB search answer (16 at once, in process,
`python bench/http_clients.py`), aiohttp spends about 65 µs of CPU a request, the
stream-based client of app/stores/http1.py 43, this one 21: asyncio protocol callbacks and
httptools' parser (uvicorn's, in C), nothing built per request but the answer. In the
server, a cache miss went from about 415 to 335 µs of CPU with it, a chat completion from
about 166 to 138.

What it does, and no more:
- keep-alive connections per origin, at most `max_connections` open at once (more
  requests wait for one), idle ones closed after `keepalive` seconds;
- a GET that fails on a reused connection before any byte of its answer came (the server
  closed the connection while it was idle) is sent once more, on a new connection; a
  request with a body is never sent twice (it fails, as with aiohttp);
- bodies by Content-Length, chunked, or up to the server's close; interim (1xx) answers
  skipped; `Content-Encoding` decoded (app/upstream_body.py), under the cap for `fetch`;
- a streamed body is handed over as it arrives, and reading the socket pauses while more
  than 256 KiB of it wait unread;
- https with the given TLS context, which verifies the host name;
- failures raise httpx's exceptions, as the `Fetcher` (app/upstream.py) and `Streamer`
  (app/streaming.py) protocols say. A request whose caller gives up (a deadline, a
  cancelled task, a stream closed before its end) closes its connection: a connection is
  reused only after a whole answer, never half-read.

No redirects (the clients refuse 3xx or relay them), no proxies (none were configured for
aiohttp either), no HTTP/2. The DynamoDB store's POSTs have their own client
(app/stores/http1.py): it must run on AWS Lambda, whose bundle has no httptools, and tell
a write that was not sent from one that may have been.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import httptools
import httpx

from app.streaming import StreamedAnswer
from app.upstream import RawAnswer
from app.upstream_body import BodyTooLarge, decoded, read_capped

__all__ = ["Http1Client"]

_URL = re.compile(r"(https?)://([^/?#\s]+)([^#\s]*)", re.IGNORECASE)
# Bytes that would end a request line or a header early (request splitting).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_NO_BODY = (204, 304)
_HIGH_WATER = 256 * 1024  # bytes of a streamed body held unread before reading pauses
_LOW_WATER = 64 * 1024  # ... and below which it resumes
_MAX_HEAD = 64 * 1024  # bytes of an answer's status line and header fields, interim ones included


@dataclass(frozen=True, slots=True)
class _Origin:
    host: str
    port: int
    tls: bool
    authority: str  # the Host header

    @property
    def key(self) -> tuple[str, int, bool]:
        return (self.host, self.port, self.tls)


class _Stale(Exception):
    """The connection closed before any byte of the answer: the request may be sent again."""


class _OutOfStep(Exception):
    """Bytes of another answer came after the whole answer: the connection is out of step."""


class _Headers(dict[str, str]):
    """An answer's header fields by lower-case name (repeated fields joined with ", "),
    looked up whatever the case."""

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one exchange at a time, its answer parsed as it arrives."""

    def __init__(self, origin: tuple[str, int, bool]) -> None:
        self.origin = origin
        self.max_body: int | None = None
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self._exchanging = False  # a request sent, its answer neither whole nor failed
        self._answer: asyncio.Future[tuple[int, _Headers, list[bytes]]] | None = None
        self._status = 0
        self._headers = _Headers()
        self._raw: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._size = 0
        self._head = 0  # bytes received while the header fields are incomplete; -1 after
        self._fields = 0  # bytes of the header fields parsed
        self._received = False
        self._complete = False
        # Streaming (`open`): the body is handed over as it arrives, not gathered.
        self._streaming = False
        self._opened: asyncio.Future[None] | None = None
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._more: asyncio.Future[None] | None = None
        self._error: Exception | None = None
        self._paused = False

    # -- the exchange ---------------------------------------------------------------------

    def send(
        self, request: bytes, max_body: int
    ) -> asyncio.Future[tuple[int, _Headers, list[bytes]]]:
        """Write `request`; the future is the whole answer: status, header fields, body
        chunks (at most `max_body` bytes)."""
        self._start(max_body, streaming=False)
        self._answer = answer = asyncio.get_running_loop().create_future()
        self._write(request)
        return answer

    def open(self, request: bytes) -> asyncio.Future[None]:
        """Write `request`; the future is done when the answer's status and header fields
        are in. Then `next_chunk` hands the body over as it arrives (no cap)."""
        self._start(None, streaming=True)
        self._opened = opened = asyncio.get_running_loop().create_future()
        self._write(request)
        return opened

    def _start(self, max_body: int | None, *, streaming: bool) -> None:
        self.max_body, self._streaming, self._exchanging = max_body, streaming, True
        self._status, self._headers, self._raw, self._chunks = 0, _Headers(), [], []
        self._size, self._received, self._complete, self.reusable = 0, False, False, False
        self._head, self._fields, self._error = 0, 0, None
        self._answer = self._opened = self._more = None
        self._queue.clear()
        self._queued = 0

    def _write(self, request: bytes) -> None:
        assert self.transport is not None  # noqa: S101 (connected before it is handed out)
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
        self.transport.write(request)

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> _Headers:
        return self._headers

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return self._raw

    @property
    def complete(self) -> bool:
        return self._complete

    async def next_chunk(self, read_timeout: float) -> bytes:
        """The next piece of a streamed body; b"" at its end. Waits at most `read_timeout`
        seconds for it (`httpx.ReadTimeout`); a failed answer raises its error."""
        while True:
            if self._queue:
                chunk = self._queue.popleft()
                self._queued -= len(chunk)
                if self._paused and self._queued <= _LOW_WATER and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return chunk
            if self._complete:
                return b""
            if self._error is not None:
                raise self._error
            self._more = more = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(read_timeout):
                    await more
            except TimeoutError:
                raise httpx.ReadTimeout(f"no more of the answer within {read_timeout}s") from None
            finally:
                self._more = None

    def whole(self) -> bytes | None:
        """A streamed body that is all in already, taken; else None."""
        if not self._complete:
            return None
        body = b"".join(self._queue)
        self._queue.clear()
        self._queued = 0
        return body

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            try:
                self.transport.close()
            except RuntimeError:  # its event loop is closed: so is the socket, with it
                pass

    def _fail(self, error: Exception) -> None:
        if self._exchanging:
            self._exchanging = False
            self._error = error
            answer, opened = self._answer, self._opened
            if answer is not None and not answer.done():
                answer.set_exception(error)
            if opened is not None and not opened.done():
                opened.set_exception(error)
            self._wake_reader()
        self.close()

    def _finish(self) -> None:
        """The whole answer is in: nothing more to hold back. Reading goes on (paused, a
        connection in the pool would not see the server close it, nor stray bytes)."""
        self._exchanging = False
        if self._paused and not self.closed and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_result((self._status, self._headers, self._chunks))
        self._wake_reader()

    def _wake_reader(self) -> None:
        more = self._more
        if more is not None and not more.done():
            more.set_result(None)

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if not self._exchanging:  # bytes nobody asked for: out of step
            self.close()
            return
        self._received = True
        if self._head >= 0:  # header fields still coming: httptools buffers a field whole
            if self._head > _MAX_HEAD:
                self._fail(httpx.RemoteProtocolError("the answer's header fields are too long"))
                return
            self._head += len(data)
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as error:
            if not self._complete:
                mine = error.__context__  # raised by a callback of ours
                if not isinstance(mine, httpx.HTTPError):
                    mine = httpx.RemoteProtocolError(f"malformed answer: {error}")
                self._fail(mine)
                return
            self.close()  # bytes after the whole answer (_OutOfStep): never reused
        if self._complete and self._exchanging:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if not self._exchanging:
            return
        if not self._received:
            self._fail(_Stale())
        elif exc is None and self._status >= 200 and self._until_close():
            self._complete = True
            self._finish()
        else:
            self._fail(httpx.RemoteProtocolError("the server closed mid-answer"))

    def _until_close(self) -> bool:
        """Whether the body ends with the connection (no length, not chunked)."""
        headers = self._headers
        return (
            self._status not in _NO_BODY
            and "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
        )

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:  # another answer after ours, in the same read
            raise _OutOfStep

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += len(name) + len(value) + 4
        if self._fields > _MAX_HEAD:  # stops the parser: feed_data raises
            raise httpx.RemoteProtocolError("the answer's header fields are too long")
        self._raw.append((name, value))
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = dict.get(self._headers, key)  # `key` is lower-case: no `_Headers.get` call
        dict.__setitem__(self._headers, key, text if old is None else f"{old}, {text}")

    def on_headers_complete(self) -> None:
        self._status = self.parser.get_status_code()
        if self._status < 200:
            return  # an interim answer: its fields are dropped at its end
        self._head = -1
        limit = self.max_body
        declared = self._headers.get("content-length", "")
        if limit is not None and declared.isdigit() and int(declared) > limit:
            self._fail(BodyTooLarge(f"declared {declared} bytes, more than {limit}"))
            return
        opened = self._opened
        if opened is not None and not opened.done():
            opened.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._streaming:
            self._queue.append(body)
            self._queued += len(body)
            if self._queued > _HIGH_WATER and not self._paused and self.transport is not None:
                self._paused = True  # the reader is behind: stop reading the socket
                self.transport.pause_reading()
            self._wake_reader()
            return
        self._size += len(body)
        if self.max_body is not None and self._size > self.max_body:
            self._fail(BodyTooLarge(f"more than {self.max_body} bytes"))
            return
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._status < 200:  # an interim answer (103 Early Hints): the real one follows
            self._status, self._headers, self._raw, self._chunks = 0, _Headers(), [], []
            self._size = 0
            return
        self._complete = True
        self.reusable = self.parser.should_keep_alive() and not self.closed


class Http1Client:
    """Whole answers to GETs (`fetch`, an `app.upstream.Fetcher`) and answers relayed as
    they arrive (`stream`, an `app.streaming.Streamer`) over pooled HTTP/1.1 connections
    (see the module docstring). `tls`: the context https connections verify with.
    `max_connections` None: no bound. `max_body`: the cap of `fetch`'s answers. The pool
    belongs to the event loop of its first request; another loop starts afresh."""

    def __init__(
        self,
        *,
        tls: ssl.SSLContext,
        max_connections: int | None = 100,
        max_body: int = 8 * 1024 * 1024,
        keepalive: float = 30.0,
    ) -> None:
        self.tls = tls
        self.max_connections = max_connections
        self.max_body = max_body
        self.keepalive = keepalive
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._opening = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._origins: dict[str, _Origin] = {}
        self._heads: dict[tuple[str, tuple[tuple[str, str], ...]], bytes] = {}

    async def fetch(self, url: str, headers: Mapping[str, str]) -> RawAnswer:
        """GET `url`: the whole answer, its body decoded, at most `max_body` bytes."""
        origin, target = self._split(url)
        request = b"GET %s HTTP/1.1\r\n%s\r\n" % (target.encode(), self._head(origin, headers))
        self._on_this_loop()
        for attempt in (1, 2):
            connection, reused = await self._acquire(origin)
            try:
                status, fields, chunks = await connection.send(request, self.max_body)
            except _Stale:
                self._discard(connection)
                if reused and attempt == 1:
                    # Closed while idle: once more, on a new connection. The idle ones left
                    # are older than it: the server has most likely closed them too.
                    for older in self._idle.pop(origin.key, ()):
                        older.close()
                        self._wake()
                    continue
                raise httpx.RemoteProtocolError("the server closed without answering") from None
            except BaseException:  # a failure, or the caller gave up: never reused half-read
                self._discard(connection)
                raise
            self._release(connection)
            encoding = fields.get("content-encoding")
            if encoding is None or encoding.strip().lower() == "identity":
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            else:
                body = await read_capped(_each(chunks), None, self.max_body, encoding)
            return RawAnswer(status, fields, body)
        raise AssertionError("unreachable")  # pragma: no cover

    async def stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        read_timeout: float,
    ) -> StreamedAnswer:
        """See `app.streaming.Streamer.stream`: the answer once its status and header fields
        are in, its body read as the caller iterates it. Never sent twice: a connection the
        server closed while idle fails the request (as aiohttp does for a POST)."""
        if not (method.isascii() and method.isalpha() and method.isupper()):
            raise httpx.LocalProtocolError("not an HTTP method")
        origin, target = self._split(url)
        length = b"" if body is None else b"Content-Length: %d\r\n" % len(body)
        head = self._head(origin, {k: v for k, v in headers.items() if not _is_length(k)})
        request = b"%s %s HTTP/1.1\r\n%s%s\r\n" % (method.encode(), target.encode(), head, length)
        self._on_this_loop()
        try:
            async with asyncio.timeout(read_timeout):
                connection, _ = await self._acquire(origin)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection within {read_timeout}s") from None
        try:
            async with asyncio.timeout(read_timeout):
                await connection.open(request + body if body else request)
        except _Stale:
            self._discard(connection)
            raise httpx.RemoteProtocolError("the server closed without answering") from None
        except TimeoutError:
            self._discard(connection)
            raise httpx.ReadTimeout(f"no answer within {read_timeout}s") from None
        except BaseException:
            self._discard(connection)
            raise
        return _StreamedAnswer(self, connection, read_timeout)

    async def aclose(self) -> None:
        self._abandon()

    def _on_this_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._abandon()
            self._loop = loop

    # -- requests -----------------------------------------------------------------------

    def _split(self, url: str) -> tuple[_Origin, str]:
        found = _URL.fullmatch(url)
        if found is None:
            raise httpx.UnsupportedProtocol(f"not an http(s) URL: {url[:80]!r}")
        scheme, authority, target = found.groups()
        origin = self._origins.get(authority + scheme)
        if origin is None:
            origin = _origin(scheme.lower(), authority)
            if len(self._origins) < 64:
                self._origins[authority + scheme] = origin
        if _UNSAFE.search(target):
            raise httpx.UnsupportedProtocol("a URL with control characters")
        if not target.startswith("/"):
            target = "/" + target
        return origin, target

    def _head(self, origin: _Origin, headers: Mapping[str, str]) -> bytes:
        """The request's header lines, each ending in CRLF (the clients send the same few
        each time: they are built once)."""
        key = (origin.authority, tuple(headers.items()))
        head = self._heads.get(key)
        if head is None:
            lines = [f"Host: {origin.authority}", *(f"{k}: {v}" for k, v in key[1])]
            for name, _ in key[1]:
                if not _TOKEN.fullmatch(name):
                    raise httpx.LocalProtocolError("a header name that is not a token")
            for line in lines:
                if _UNSAFE.search(line):
                    # Never the line itself in the message: its value may be a credential.
                    raise httpx.LocalProtocolError("a header holds a control character")
            try:
                head = "".join(f"{line}\r\n" for line in lines).encode("latin-1")
            except UnicodeEncodeError:
                raise httpx.LocalProtocolError("a header HTTP/1.1 cannot carry") from None
            if len(self._heads) < 64:
                self._heads[key] = head
        return head

    # -- the pool -----------------------------------------------------------------------

    async def _acquire(self, origin: _Origin) -> tuple[_Connection, bool]:
        """A connection to `origin`, and whether it served a request before."""
        loop = asyncio.get_running_loop()
        while True:
            idle = self._idle.get(origin.key)
            while idle:
                connection = idle.pop()  # the most recent: the least likely to be closed
                if connection.closed or loop.time() - connection.idle_since > self.keepalive:
                    connection.close()
                    continue
                self._busy.add(connection)
                return connection, True
            if self.max_connections is None or self._count() < self.max_connections:
                return await self._connect(origin), False
            spare = next((idle for idle in self._idle.values() if idle), None)
            if spare:  # another origin's idle connection gives its place up
                spare.pop(0).close()
                continue
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if not waiter.cancelled() and waiter.done():
                    self._wake()  # pass on the turn it was given
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _connect(self, origin: _Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        connection = _Connection(origin.key)
        self._opening += 1
        try:
            await loop.create_connection(
                lambda: connection,
                origin.host,
                origin.port,
                ssl=self.tls if origin.tls else None,
                server_hostname=origin.host if origin.tls else None,
            )
        except (OSError, ssl.SSLError) as error:
            raise httpx.ConnectError(f"{type(error).__name__}: {error}") from None
        finally:
            self._opening -= 1
            self._wake()
        self._busy.add(connection)
        return connection

    def _release(self, connection: _Connection) -> None:
        self._busy.discard(connection)
        if connection.reusable and not connection.closed and self._loop is not None:
            now = connection.idle_since = self._loop.time()
            idle = self._idle.setdefault(connection.origin, [])
            idle.append(connection)
            # The oldest idle ones (taken last) are closed once past `keepalive`, or once
            # the server closed them: a burst's connections do not stay open for good.
            while idle[0].closed or now - idle[0].idle_since > self.keepalive:
                idle.pop(0).close()
        else:
            connection.close()
        self._wake()

    def _discard(self, connection: _Connection) -> None:
        self._busy.discard(connection)
        connection.close()
        self._wake()

    def _count(self) -> int:
        return self._opening + len(self._busy) + sum(map(len, self._idle.values()))

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _abandon(self) -> None:
        """Close every connection (shutdown, or a new event loop): busy ones end their
        exchange with an error."""
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        for connection in list(self._busy):  # fails its exchange: not sent once more
            try:
                connection._fail(httpx.ReadError("the client was closed"))
            except RuntimeError:  # an earlier event loop's, closed
                connection.close()
        self._busy.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def __repr__(self) -> str:
        return f"<Http1Client open={self._count()} max_connections={self.max_connections}>"


def _origin(scheme: str, authority: str) -> _Origin:
    tls = scheme == "https"
    if _UNSAFE.search(authority) or "@" in authority:
        raise httpx.UnsupportedProtocol("a URL with credentials or control characters")
    host, port = authority, 443 if tls else 80
    if authority.startswith("["):  # an IPv6 literal, maybe with a port
        end = authority.find("]")
        host, rest = authority[1:end], authority[end + 1 :]
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif ":" in authority:
        name, _, digits = authority.rpartition(":")
        if not digits.isdigit():
            raise httpx.UnsupportedProtocol(f"a port that is not a number: {authority[:80]!r}")
        host, port = name, int(digits)
    if not 0 < port < 65536:
        raise httpx.UnsupportedProtocol(f"a port out of range: {authority[:80]!r}")
    return _Origin(host, port, tls, authority)


async def _each(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _is_length(name: str) -> bool:
    return name.lower() in ("content-length", "transfer-encoding")  # the body's own framing


class _StreamedAnswer:
    """A streamed answer (`app.streaming.StreamedAnswer`) on one of the client's
    connections, which goes back to the pool when the body was read to its end."""

    def __init__(self, client: Http1Client, connection: _Connection, read_timeout: float):
        self._client = client
        self._connection: _Connection | None = connection
        self._read_timeout = read_timeout
        self.status_code = connection.status
        self.headers: Mapping[str, str] = connection.headers
        self.raw_headers: Sequence[tuple[bytes, bytes]] = connection.raw_headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async for piece in decoded(self._chunks(), self.headers.get("content-encoding")):
            yield piece

    async def _chunks(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            raise httpx.StreamClosed()
        while chunk := await connection.next_chunk(self._read_timeout):
            yield chunk

    def received(self) -> bytes | None:
        coding = self.headers.get("content-encoding")
        if self._connection is None or (coding and coding.strip().lower() != "identity"):
            return None
        return self._connection.whole()

    def __del__(self) -> None:
        # Dropped without `aclose` (a bug of the caller's): its connection is closed, not
        # held busy for good. Nothing else is safe here: no awaiting, no logging.
        connection = self._connection
        if connection is not None:
            self._connection = None
            self._client._discard(connection)

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if connection.complete:
            self._client._release(connection)
        else:  # read only in part: the connection is out of step, closed (the upstream
            self._client._discard(connection)  # sees the caller leave)
