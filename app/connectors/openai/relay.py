"""Relaying an upstream answer to the caller chunk by chunk, as the upstream produces it.

No buffering: each chunk is sent on as it arrives (for server-sent events, up to the last
complete event, so a stream that breaks never leaves half an event behind). The upstream
answer is closed whatever happens: the answer ends, the upstream fails, or the caller
hangs up (watched for while waiting on the upstream, so an idle stream is closed at once,
unless the answer's token usage is still to come: see `Relay`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

import anyio
import httpx
from starlette.types import Message, Receive, Scope, Send

from app.connectors.openai.errors import sse_error_event
from app.connectors.openai.upstream import StreamedAnswer
from app.connectors.openai.usage import UsageMeter

__all__ = ["Relay"]

log = logging.getLogger("app.openai.relay")

_BOUNDARIES = (b"\n\n", b"\r\n\r\n", b"\r\r")


def _complete_events(buffer: bytes) -> int:
    """How many leading bytes of `buffer` are whole SSE events."""
    return max((buffer.rfind(mark) + len(mark) if mark in buffer else 0) for mark in _BOUNDARIES)


async def _to_the_end(cleanup: Coroutine[Any, Any, None]) -> None:
    """Run `cleanup` to its end even when the request is being cancelled: shielded (an anyio
    cancel scope) from its first wait on. Usually it never waits (the aiohttp answer closes
    at once, usage is counted in memory) and nothing can interrupt it: then it runs without
    the scope, whose start and end cost ~4 us a request."""
    try:
        waiting = cleanup.send(None)
    except StopIteration:
        return
    with anyio.CancelScope(shield=True):
        await _Resumed(cleanup, waiting)


class _Resumed:
    """Awaiting the rest of a coroutine that was stepped once and now waits on `waiting`:
    what the running task sends or throws goes on to it, as an `await` would pass it."""

    __slots__ = ("coroutine", "waiting")

    def __init__(self, coroutine: Coroutine[Any, Any, None], waiting: Any) -> None:
        self.coroutine = coroutine
        self.waiting = waiting

    def __await__(self) -> Generator[Any, Any, None]:
        waiting = self.waiting
        while True:
            try:
                sent = yield waiting
            except GeneratorExit:
                self.coroutine.close()
                raise
            except BaseException as error:  # a cancellation too: passed on, as `await` does
                try:
                    waiting = self.coroutine.throw(error)
                except StopIteration:
                    return
            else:
                try:
                    waiting = self.coroutine.send(sent)
                except StopIteration:
                    return


class Relay:
    """An ASGI response that streams `upstream`'s body with `status` and `headers`.

    With a `meter`, the answer's token usage is read on the way and handed to `on_usage`
    once the answer is complete. If the caller hangs up first, the upstream is read on
    (nothing more is sent) for at most `drain` seconds, to reach the usage at its end;
    without a meter, or once the usage is known, it is closed at once."""

    def __init__(
        self,
        upstream: StreamedAnswer,
        *,
        status: int,
        headers: list[tuple[bytes, bytes]],
        sse: bool,
        responses_api: bool,
        meter: UsageMeter | None = None,
        on_usage: Callable[[int, int], Awaitable[None]] | None = None,
        drain: float = 0.0,
    ) -> None:
        self.upstream = upstream
        self.status = status
        self.headers = headers
        self.sse = sse
        self.responses_api = responses_api
        self.meter = meter
        self.on_usage = on_usage
        self.drain = drain
        self._gone = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        whole = None if self.sse else self.upstream.received()
        if whole is not None:
            # Nothing to wait for upstream (a JSON answer that came with its head, the
            # usual one): no watcher, no timeout, one message for the body with its
            # length (not chunked): ~15 us less.
            try:
                await self._whole(send, whole)
            finally:
                await _to_the_end(self._close())
            return
        # A plain asyncio task and timeout, not an anyio task group: this runs for every
        # answer, and a task group's start and cancel (which formats the task's repr) cost
        # more than the relay's own work (bench/throughput.py, chat).
        try:
            async with asyncio.timeout(None) as reading:
                watcher = asyncio.get_running_loop().create_task(self._watch(receive, reading))
                try:
                    await self._stream(send)
                except OSError:
                    pass  # the caller is gone: nothing more to send
                finally:
                    watcher.cancel()
        except TimeoutError:
            pass  # the caller hung up: reading stopped, at once or after `drain`
        finally:
            await _to_the_end(self._close())

    async def _close(self) -> None:
        await self.upstream.aclose()
        await self._account()

    async def _watch(self, receive: Receive, reading: asyncio.Timeout) -> None:
        """Waits for the caller to hang up, then stops `reading`: at once, or `drain`
        seconds later when the token usage is still to come."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self._gone = True
        now = asyncio.get_running_loop().time()
        learnt = self.meter is None or self.meter.tokens is not None
        reading.reschedule(now if learnt else now + self.drain)

    async def _account(self) -> None:
        if self.meter is None or self.on_usage is None:
            return
        if self.meter.tokens is None:
            log.warning(
                "no token usage in the upstream's answer: none recorded",
                extra={"fields": {"event": "usage_unknown", "caller_gone": self._gone}},
            )
            return
        await self.on_usage(*self.meter.tokens)

    async def _send(self, send: Send, message: Message) -> None:
        if self._gone:
            return
        try:
            await send(message)
        except OSError:
            self._gone = True  # keep reading for the usage, send nothing more

    async def _whole(self, send: Send, body: bytes) -> None:
        if self.meter is not None:
            self.meter.body(body)
            self.meter.finish()
        headers = [*self.headers, (b"content-length", str(len(body)).encode())]
        await self._send(
            send, {"type": "http.response.start", "status": self.status, "headers": headers}
        )
        await self._send(send, {"type": "http.response.body", "body": body, "more_body": False})

    async def _stream(self, send: Send) -> None:
        await self._send(
            send, {"type": "http.response.start", "status": self.status, "headers": self.headers}
        )
        pending = b""
        meter = self.meter
        try:
            async for chunk in self.upstream.aiter_bytes():
                if self.sse:
                    pending += chunk
                    cut = _complete_events(pending)
                    if not cut:
                        continue
                    chunk, pending = pending[:cut], pending[cut:]
                    if meter is not None:
                        chunk = meter.events(chunk)
                        if not chunk:
                            continue
                elif meter is not None:
                    meter.body(chunk)
                    # A JSON answer is of no use before its end: each chunk is held back
                    # until the next comes, and the last ends the body (one message less).
                    chunk, pending = pending, chunk
                    if not chunk:
                        continue
                await self._send(
                    send, {"type": "http.response.body", "body": chunk, "more_body": True}
                )
                if self._gone and (meter is None or meter.tokens is not None):
                    return  # the caller left and nothing more is to be learnt
            if meter is not None:
                meter.finish()
        except httpx.HTTPError as error:
            log.warning(
                "upstream stream broke: %s",
                type(error).__name__,
                extra={"fields": {"event": "upstream_stream_broken"}},
            )
            if not self.sse:
                # No clean way to end a JSON or binary body early: the connection is closed
                # unfinished, so the client sees a failed read rather than a short answer.
                raise OSError("upstream stream broke") from None
            pending = sse_error_event(
                self.responses_api,
                "The upstream stream ended unexpectedly. Try again.",
                "upstream_stream_error",
            )
        await self._send(send, {"type": "http.response.body", "body": pending, "more_body": False})
