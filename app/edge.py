"""The request layer: what every request gets on its way in and every answer on its way out,
in one ASGI layer with one wrapper of `send`.

In, for each HTTP request: a record (app/observability.py: a request id, kept from a
well-formed `X-Request-Id`), the running one until the request ends; a CORS preflight is
answered here (app/cors.py). Out, on the answer's start, in this order (tests compare the
fields' order): the caller's limit state replaces any limit fields already there
(app/limits.py), the CORS fields (`Vary: Origin` without an `Origin`), then `X-Request-Id`.
After the answer: an admitted keyed caller's upstream failure counted in its usage
(`Gate.answered`), then the request's one log line, whatever happened.

Why one layer: these were four (access log, CORS, usage, limit fields), each wrapping
`send`, so each of an answer's two or three messages passed four extra coroutines; merged,
an OpenAI chat request costs ~24 us less CPU, a cache miss ~20-40 us (briefs' wrk runs,
16 connections; a cache hit, which passed one of them, ~3 us more: the generic limit and
CORS fields instead of the hot path's constants). An unhandled error's 500 is sent
outside this layer (Starlette's `ServerErrorMiddleware`): it carries none of these fields,
it is logged with status 500 and never counted as an upstream failure.
"""

from __future__ import annotations

import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.callers import Gate
from app.cors import Cors
from app.limits import with_limits
from app.observability import begin_request, end_request

__all__ = ["Edge"]

_ID = b"x-request-id"


class Edge:
    """ASGI middleware: the request layer (see the module docstring)."""

    def __init__(self, app: ASGIApp, gate: Gate, cors: Cors) -> None:
        self.app = app
        self.gate = gate
        self.cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        record, token = begin_request(scope)
        origin: str | None = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
                break
        preflight = None
        if origin is not None and scope["method"] == "OPTIONS":
            preflight = self.cors.preflight("OPTIONS", Headers(scope=scope))

        async def send_answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                headers = with_limits(list(message.get("headers", ())), record)
                if preflight is None:
                    self.cors.add_fields(headers, origin)
                # Read now: the OpenAI gateway adopts the upstream's id for its answers.
                headers.append((_ID, record.request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            if preflight is not None:
                await preflight(scope, receive, send_answer)
            else:
                await self.app(scope, receive, send_answer)
            self.gate.answered(record)
        finally:
            end_request(token, scope, record, started)
