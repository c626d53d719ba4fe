"""Relaying an upstream answer to the caller chunk by chunk, as the upstream produces it.

No buffering: each chunk is sent on as it arrives (for server-sent events, up to the last
complete event, so a stream that breaks never leaves half an event behind). The upstream
answer is closed whatever happens: the answer ends, the upstream fails, or the caller
hangs up (watched for while waiting on the upstream, so an idle stream is closed at once).
"""

from __future__ import annotations

import logging

import anyio
import httpx
from starlette.types import Receive, Scope, Send

from app.connectors.openai.errors import sse_error_event

__all__ = ["Relay"]

log = logging.getLogger("app.openai.relay")

_BOUNDARIES = (b"\n\n", b"\r\n\r\n", b"\r\r")


def _complete_events(buffer: bytes) -> int:
    """How many leading bytes of `buffer` are whole SSE events."""
    return max((buffer.rfind(mark) + len(mark) if mark in buffer else 0) for mark in _BOUNDARIES)


class Relay:
    """An ASGI response that streams `upstream`'s body with `status` and `headers`."""

    def __init__(
        self,
        upstream: httpx.Response,
        *,
        status: int,
        headers: list[tuple[bytes, bytes]],
        sse: bool,
        responses_api: bool,
    ) -> None:
        self.upstream = upstream
        self.status = status
        self.headers = headers
        self.sse = sse
        self.responses_api = responses_api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def watch_for_hang_up() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(watch_for_hang_up)
                try:
                    await self._stream(send)
                except OSError:
                    pass  # the caller is gone: nothing more to send
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        pending = b""
        try:
            async for chunk in self.upstream.aiter_bytes():
                if self.sse:
                    pending += chunk
                    cut = _complete_events(pending)
                    if not cut:
                        continue
                    chunk, pending = pending[:cut], pending[cut:]
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
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
        await send({"type": "http.response.body", "body": pending, "more_body": False})
