"""The hot path: a cache hit of an operation answered below the framework.

Why: issue 11 asks for cache hits at twice the floor's throughput (bench/floor_app.py,
~8,100 req/s and ~115 µs of CPU per request at 16 connections), so a whole hit may cost
~55 µs of one core, ~25-30 µs of which are uvicorn's own. Routing, dependency resolution
and validating the parameters again (FastAPI, Starlette, pydantic) cost more than the rest
of that budget, for an answer the process already holds: through them a hit cost ~270 µs
(~3,600 req/s); app/hot.py's own share of a hit is ~25 µs (the gate's store round trips
for the admission and the usage count are the rest, until the gate admits in process).

What it answers: a GET whose exact request target (raw path and raw query bytes) an
operation route (app/proxy.py) has answered 200 with a cacheable answer, while that answer
is fresh in the response cache's in-process level (`ResponseCache.fresh`), for a caller
the gate identifies without I/O (`Gate.identify_now`). The caller is admitted by the gate
(`admit_now`, else `await admit`), a saved upstream call is counted (`Gate.record`, as the
route does) and the answer is the route's, byte for byte: body, `Cache-Status`, `Age`,
content type and length; this layer runs inside the request layer (app/edge.py), so the
limit fields, CORS's `Vary`, the request id and the log line are the same too. A limit
refusal from `admit` is answered by the route's own error mapping
(`app.problems.handle_service`).

What it never answers (the request goes to the full app unchanged): another method (HEAD,
OPTIONS, POST: MCP and the OpenAI routes), a target it has not seen answered (a different
spelling of the same query included, and every query the route refused), a request with
an `Origin` (CORS adds fields), an answer not fresh in process (expired, evicted, or only
in the shared store), and a caller `identify_now` cannot accept (unknown, wrong, revoked,
expired, out of scope, or a stored secret): those refusals come from the full path.

The route tells it which cache entry a target names (`learn`); the target is remembered
once the answer has gone out 200, for at most `MAX_ENTRIES` targets of at most
`MAX_TARGET_BYTES` (least recently used out). Built only with the response cache
(`CACHE_ENABLED`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.cache import MAX_ENTRIES, ResponseCache
from app.callers import Gate
from app.errors import ServiceError
from app.observability import current_record
from app.problems import handle_service
from app.store import Usage

__all__ = ["MAX_TARGET_BYTES", "HotPath", "learn"]

_SAVED = Usage(cache_saved=1)
MAX_TARGET_BYTES = 1024
"""Longer request targets are never remembered: the memo stays under ~5 MB however callers
pad their queries (ignored parameters)."""
_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)  # one object per remembered target, not two (GC scans)
class _Known:
    """What a request target means: its operation's cache entry, and who may ask."""

    cache: ResponseCache
    entry: str
    scopes: tuple[str, ...]
    operation: str


class _Lesson:
    """Filled by `learn` while the full app serves a request the hot path is watching."""

    __slots__ = ("known",)

    def __init__(self) -> None:
        self.known: _Known | None = None


_lesson: ContextVar[_Lesson | None] = ContextVar("hot_path_lesson", default=None)


def learn(cache: ResponseCache, entry: str, scopes: tuple[str, ...], operation: str) -> None:
    """Tell the hot path that the running request, answered by `operation` (for callers of
    `scopes`), names the cache entry `entry` (`Served.entry`, computed from its validated
    parameters). Kept only if the answer then goes out 200; nothing without a hot path."""
    lesson = _lesson.get()
    if lesson is not None:
        lesson.known = _Known(cache, entry, scopes, operation)


class HotPath:
    """ASGI middleware answering cache hits of known targets (see the module docstring).
    `answered` counts the requests it answered itself."""

    def __init__(self, app: ASGIApp, gate: Gate, max_entries: int = MAX_ENTRIES) -> None:
        self.app = app
        self.gate = gate
        self.max_entries = max_entries
        self.answered = 0
        self._known: OrderedDict[bytes, _Known] = OrderedDict()

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: a request this layer never answers (POST: the OpenAI
        # routes, MCP) runs the app's coroutine directly, without a frame of this layer
        # that every resumption of the request's task would pass through.
        if scope["type"] != "http" or scope["method"] != "GET":
            return self.app(scope, receive, send)
        return self._get(scope, receive, send)

    async def _get(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_path = scope.get("raw_path")
        if not isinstance(raw_path, bytes) or any(n == b"origin" for n, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        target = raw_path + b"?" + scope["query_string"]
        known = self._known.get(target)
        if known is not None:
            self._known.move_to_end(target)
            if await self._answer(known, scope, receive, send):
                return
        await self._watch(target, scope, receive, send)

    async def _answer(self, known: _Known, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer a hit and return True, or return False having sent nothing."""
        served = known.cache.fresh(known.entry)
        if served is None:
            return False
        gate = self.gate
        record = current_record()
        record.operation = known.operation
        caller = gate.identify_now(Headers(scope=scope), known.scopes)
        if caller is None:
            return False
        admission = gate.admit_now(caller)
        if admission is None:
            try:
                admission = await gate.admit(caller)
            except ServiceError as refusal:  # limits: the route's own answer to it
                answer = await handle_service(Request(scope, receive), refusal)
                await answer(scope, receive, send)
                return True
            # The store trip took time: read the entry again, as the route reads it once
            # admitted (ttl and age as of now; should it have expired meanwhile, the copy
            # read before, fresh when the request came).
            served = known.cache.fresh(known.entry) or served
        await gate.record(caller.subject, _SAVED)
        body = served.body
        headers = [
            (b"cache-status", str(served.cache_status).encode()),
            (b"age", str(served.age).encode()),
            (b"content-length", str(len(body)).encode()),
            _JSON,
        ]
        self.answered += 1
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True

    async def _watch(self, target: bytes, scope: Scope, receive: Receive, send: Send) -> None:
        """The full app's answer, remembering what `target` means if the route says."""
        lesson = _Lesson()
        token = _lesson.set(lesson)
        try:
            await self.app(scope, receive, send)
        finally:
            _lesson.reset(token)
        status = current_record().status  # set by the request layer as the answer started
        if status == 200 and lesson.known is not None and len(target) <= MAX_TARGET_BYTES:
            self._known[target] = lesson.known
            self._known.move_to_end(target)
            while len(self._known) > self.max_entries:
                self._known.popitem(last=False)
