"""The HTTP server: uvicorn with httptools, plus a bound on each request's head.

uvicorn's httptools protocol reads a request line and header fields of any size for as long
as the client cares to send them: a header that never ends grows the process by its length,
and a client trickling bytes holds its connection forever. `HeadLimitedProtocol` adds two
bounds, both enforced before the app sees anything, so neither needs a bearer secret:

- size: a head larger than `max_header_bytes` is answered `431` (the project's error shape)
  and the connection is closed without reading the rest;
- time: a head not complete `header_timeout` seconds after its first byte (after the
  connection opened, for the first request) is answered `408` and closed; a connection that
  sent nothing is closed silently. Keep-alive idle time stays uvicorn's.

Its other refusals are in the project's error shape too, never uvicorn's `text/plain`: a
request line over `MAX_URL_BYTES` is `414 url_too_long`, and a request the HTTP parser
rejects (bytes that are not HTTP, a bad character in the request line) `400 bad_request`;
each closes the connection.

`python -m app serve` runs it; the Dockerfile, `dev.py serve`, the tests' live server and the
benchmark all go through there. On AWS Lambda none of this runs: API Gateway and ALBs bound
request heads themselves. Importing this module imports uvicorn, so the Lambda handler's
import path (app.main) never imports it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import sys
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.setting_errors import settings_or_exit
from app.settings import CoreSettings as Settings

__all__ = ["GC_THRESHOLD", "HeadLimitedProtocol", "serve"]

DEFAULT_MAX_HEADER_BYTES = 16 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0
MAX_URL_BYTES = 8 * 1024
"""Longest request target accepted (path and query): far above any valid call, and under
what API Gateway and ALBs accept, so a URL served here is served there."""


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing an oversized head."""


class _UrlTooLong(Exception):
    """Raised from a parser callback to stop parsing an over-long request target."""


def _error_answer(status: int, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


def _too_large_answer(max_header_bytes: int) -> bytes:
    message = f"Request headers exceed {max_header_bytes} bytes."
    return _error_answer(431, "headers_too_large", message)


_URL_TOO_LONG = _error_answer(
    414, "url_too_long", f"The request's URL exceeds {MAX_URL_BYTES} bytes."
)
_BAD_REQUEST = _error_answer(
    400, "bad_request", "The request is not valid HTTP/1.1 (e.g. a byte not allowed in a URL)."
)


def _too_slow_answer(header_timeout: float) -> bytes:
    message = f"Request headers did not arrive within {header_timeout:g} s."
    return _error_answer(408, "header_timeout", message)


_COALESCE_BYTES = 64 * 1024  # pending beyond this is sent at once


class _Coalescing(asyncio.Transport):
    """The connection's transport, with the writes made in one turn of the event loop sent
    together: uvicorn writes a response's head and its body separately, two system calls
    where one does (~4 us a request on bench/throughput.py). A stream's chunks still leave
    as they come: the next turn of the loop sends them, or at once past 64 KiB pending.
    Closing sends what is pending first; nothing is written once the connection is closing."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._send)
            self._size = 0
        self._pending.append(bytes(data))
        self._size += len(data)
        if self._size >= _COALESCE_BYTES:
            # A producer that never yields (a body from memory) gets the transport's own
            # flow control at once, not one turn late, and nothing piles up here.
            self._send()

    def _send(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._send()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._send()
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))


class HeadLimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size and a time bound on every request head.

    Size is checked twice. While a head is incomplete, every whole chunk read after the one
    it began in counts in full, so at most one read (256 KiB) more than the limit is ever
    held. When the head completes, its request line and fields are measured exactly, unless
    it began and ended in one read no larger than the limit (the common case, checked for
    free).
    """

    max_header_bytes = DEFAULT_MAX_HEADER_BYTES
    header_timeout = DEFAULT_HEADER_TIMEOUT
    _too_large = _too_large_answer(DEFAULT_MAX_HEADER_BYTES)
    _too_slow = _too_slow_answer(DEFAULT_HEADER_TIMEOUT)

    @classmethod
    def configured(cls, max_header_bytes: int, header_timeout: float) -> type[HeadLimitedProtocol]:
        """A subclass with these bounds (uvicorn takes a class, not an instance)."""
        bounds = {
            "max_header_bytes": max_header_bytes,
            "header_timeout": header_timeout,
            "_too_large": _too_large_answer(max_header_bytes),
            "_too_slow": _too_slow_answer(header_timeout),
        }
        return type(cls.__name__, (cls,), bounds)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = False  # a request's first byte arrived, its headers have not ended
        self._head_fresh = False  # ... and it began in the read being parsed now
        self._head_bytes = 0  # bytes of the open head counted so far (whole reads)
        self._read_size = 0
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Coalescing(transport, self.loop))
        self._head_deadline = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        self._head_fresh = False
        self._read_size = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as error:
            if isinstance(error.__context__, _HeadTooLarge):
                self._refuse(self._too_large)
            elif isinstance(error.__context__, _UrlTooLong):
                self._refuse(_URL_TOO_LONG)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self._refuse(_BAD_REQUEST)
            return
        if self._head_open and not self.transport.is_closing():
            if not self._head_fresh:
                self._head_bytes += len(data)
                if self._head_bytes > self.max_header_bytes:
                    self._refuse(self._too_large)
                    return
            if self._head_deadline is None:  # none yet: this head began in this read
                self._head_deadline = self.loop.call_later(
                    self.header_timeout, self._head_timed_out
                )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_fresh = True
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            raise _UrlTooLong

    def on_headers_complete(self) -> None:
        fits_one_read = self._head_fresh and self._read_size <= self.max_header_bytes
        if not fits_one_read and self._head_size() > self.max_header_bytes:
            raise _HeadTooLarge
        self._head_open = False
        self._cancel_deadline()
        super().on_headers_complete()

    def _head_size(self) -> int:
        """The request line and header fields as sent, give or take optional whitespace."""
        request_line = len(self.url) + 20  # method, spaces, HTTP version, CRLF
        return request_line + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _cancel_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        if self._head_open:
            self._refuse(self._too_slow)
        elif self.cycle is None:  # connected and said nothing
            self.transport.close()

    def _refuse(self, answer: bytes) -> None:
        """Answer and close: the unread rest of the head is discarded by the kernel."""
        self._cancel_deadline()
        self._head_open = False
        self.transport.write(answer)
        self.transport.close()


GC_THRESHOLD = 10_000
"""The youngest generation's collection threshold of a served process (`serve`)."""


def serve(host: str, port: int, *, log_level: str = "info") -> None:
    """Serve app.main:app on host:port until interrupted, with the head bounds of `Settings`.

    Bad settings and a taken address each end the process with one line on stderr and
    status 2, before anything else is printed (in sample-data mode, a generated secret
    that no server would accept)."""
    settings = settings_or_exit(Settings)
    listening = _bound(host, port)
    protocol = HeadLimitedProtocol.configured(settings.max_header_bytes, settings.header_timeout)
    # The app writes one structured line per request; uvicorn's own would repeat it (with
    # the query string), so it is off. No `Server: uvicorn` field: it tells a caller only
    # what to attack, and costs every answer a field.
    config = uvicorn.Config(
        "app.main:app",
        host=host,
        port=port,
        http=protocol,
        access_log=False,
        log_level=log_level,
        server_header=False,
    )
    config.load()  # imports the app and builds it (uvicorn would, on `run`)
    # What the process built to start (modules, the app, its routes and models: ~75,000
    # objects) lives as long as the process: kept out of the collector's sight, every full
    # collection scans only what requests leave behind. Measured at 16 connections: full
    # collections ran twice a second, ~30 ms of CPU each, ~28 µs of every cache miss
    # (cache off) to ~49 µs (cache on); frozen, ~14 and ~23 µs.
    gc.collect()  # garbage made while starting is freed, not frozen
    gc.freeze()
    # A request allocates hundreds of objects that the collector tracks; at the default
    # threshold (700) the youngest generation is collected every few requests, and what a
    # request still holds then (its task, buffers, the cache's new entries) is promoted and
    # scanned again by the older generations' collections. Collected every 10,000 instead
    # (a few MB more young objects at most): ~10% less CPU per request on a cache miss and
    # on an OpenAI chat request (briefs' wrk runs, 16 connections, interleaved: distinct
    # 413-438 -> 385-399 us, chat 186-192 -> 170-183 us).
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    shown = f"[{host}]" if ":" in host else host
    logging.getLogger("uvicorn.error").info(
        "Serving on http://%s:%d (Press CTRL+C to quit)", shown, listening.getsockname()[1]
    )
    uvicorn.Server(config).run(sockets=[listening])


def _bound(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (uvicorn listens on it), or exit naming HOST and PORT."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        reason = error.strerror or type(error).__name__
        print(
            f"Cannot listen on {host}:{port} ({reason}). Stop what uses it, or choose another "
            "address with HOST and PORT (or --host and --port).",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    sock.set_inheritable(True)
    return sock
