"""Direct dispatch: a request to a route a connector owns, sent straight to that route from
the request layer, past the framework's layers.

Why: between the request layer (app/edge.py, app/hot.py) and a route's code the framework
puts Starlette's `ExceptionMiddleware` (a `Request`, a wrapper of `send`), FastAPI's
`AsyncExitStackMiddleware`, the router (each route's regular expression tried in order,
~40 of them) and `request_response` (another `Request`, another wrapper of `send`): py-spy
put ~20% of an OpenAI chat request's main-thread time there (~50 us) and ~12% of a cache
miss's (~45 us).

What goes direct: a request whose path a connector's route may match (its operation routes,
its own routes: `Started.routes`), found by the route's path template: an exact path (no
parameter) in a table, else the template's literal start as a prefix (e.g. `/openai/` for
`/openai/{rest:path}`). It is served by that route only when the router would have picked
it: the route matches in full (path and method) and no route before it in the router's list
matches at all (those that may are found once, here, from their templates; a route this
module cannot read is always asked). Everything else goes through the framework unchanged:
a method the route does not take (405 with `Allow`, or a later route's), a trailing slash
(404), a path no connector owns (the MCP endpoint, OAuth, the public files), a scope with a
`root_path`.

What it keeps: the scope the route would get (`router`, `route`, `endpoint`,
`path_params`, `starlette.exception_handlers`), and the framework's exception mapping with
the app's own handlers, taken from its `ExceptionMiddleware` (`ServiceError` ->
`app.problems.handle_service`, `HTTPException` -> `handle_http`): a handled exception
before the answer started is answered by its handler, after it a `RuntimeError`, as
Starlette does; any other exception goes on up to `ServerErrorMiddleware` (its JSON 500).
It runs inside the request layer and the hot path, so the request id, CORS, the limit
fields, the log line, usage counting and the hot path's learning are the same. Not kept:
FastAPI's per-request `AsyncExitStack` (`fastapi_middleware_astack`), which only FastAPI's
own routes (dependencies) use; none of these routes is one. When the app's stack is not
the one this module knows (form limits, another middleware inside it), every request goes
through the framework; with OpenTelemetry on, app/main.py does not add this layer (the
router names the route in the request's span).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from starlette._exception_handler import (
    ExceptionHandlers,
    StatusHandlers,
    _lookup_exception_handler,
)
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Dispatch"]

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class _Claim:
    """A route that may be served directly, and the routes before it that may match too:
    the paths' patterns of those that are a `Route` or a `Mount` (either matches, in full or
    in part, exactly when its pattern matches the path), the others to ask."""

    route: Route
    patterns: tuple[re.Pattern[str], ...]
    others: tuple[BaseRoute, ...]
    endpoint: Endpoint | None
    """`func(request) -> response` when the route's app is Starlette's `request_response`
    of it (called here without that wrapper); None: the route's app is called."""


class _Sent:
    """`send`, noting whether the answer has started (a handled exception after that is a
    `RuntimeError`). Not a coroutine: no frame of its own in each message's send."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    def __call__(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            self.started = True
        return self.send(message)


class Dispatch:
    """ASGI middleware sending requests to connectors' routes directly (see the module
    docstring). `owned`: the routes connectors declared; it must sit directly outside the
    app's `ExceptionMiddleware` (the innermost middleware added). `sent` counts the
    requests it sent directly."""

    def __init__(self, app: ASGIApp, owned: Collection[BaseRoute]) -> None:
        self.app = app
        self.sent = 0
        self._exact: dict[str, _Claim] = {}
        self._prefixes: list[tuple[str, _Claim]] = []
        self._handlers: tuple[ExceptionHandlers, StatusHandlers] = ({}, {})
        router = _router_behind(app)
        if router is None or not isinstance(app, ExceptionMiddleware):
            return  # not the stack this module knows: everything through the framework
        self._handlers = (app._exception_handlers, app._status_handlers)
        self.router = router
        owned_ids = {id(route) for route in owned}
        for index, route in enumerate(router.routes):
            if id(route) in owned_ids and isinstance(route, Route):
                self._claim(route, router.routes[:index])

    def _claim(self, route: Route, before: Iterable[BaseRoute]) -> None:
        literal, parameters, _ = route.path.partition("{")
        if parameters:
            overlapping = [r for r in before if _may_share_prefix(r, literal)]
            self._prefixes.append((literal, _claim(route, overlapping)))
            return
        if literal in self._exact:
            return  # the first route of this path: the later one is only ever a shadow's
        probe = {"type": "http", "path": literal, "root_path": "", "method": "GET"}
        shadows: list[BaseRoute] = []
        for earlier in before:
            if not isinstance(earlier, Route | Mount):
                shadows.append(earlier)
            elif earlier.matches(probe)[0] is not Match.NONE:
                return  # an earlier route takes this path (for some method): the framework's
        self._exact[literal] = _claim(route, shadows)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: the framework's requests run its coroutine directly.
        if scope["type"] == "http" and not scope.get("root_path"):
            path: str = scope["path"]
            claim = self._exact.get(path)
            if claim is None:
                for prefix, candidate in self._prefixes:
                    if path.startswith(prefix):
                        claim = candidate
                        break
            if claim is not None:
                match, child = claim.route.matches(scope)
                if (
                    match is Match.FULL
                    and not any(pattern.match(path) for pattern in claim.patterns)
                    and not any(r.matches(scope)[0] is not Match.NONE for r in claim.others)
                ):
                    if "router" not in scope:
                        scope["router"] = self.router
                    scope["route"] = claim.route
                    scope.update(child)
                    scope["starlette.exception_handlers"] = self._handlers
                    self.sent += 1
                    return self._serve(claim, scope, receive, send)
        return self.app(scope, receive, send)

    async def _serve(self, claim: _Claim, scope: Scope, receive: Receive, send: Send) -> None:
        sent = _Sent(send)
        request: Request | None = None
        try:
            if claim.endpoint is not None:
                request = Request(scope, receive, send)
                response = await claim.endpoint(request)
                await response(scope, receive, sent)
            else:
                await claim.route.app(scope, receive, sent)
        except Exception as exc:
            exception_handlers, status_handlers = self._handlers
            handler = None
            if isinstance(exc, HTTPException):
                handler = status_handlers.get(exc.status_code)
            if handler is None:
                handler = _lookup_exception_handler(exception_handlers, exc)
            if handler is None:
                raise  # ServerErrorMiddleware's 500
            if sent.started:
                raise RuntimeError(
                    "Caught handled exception, but response already started."
                ) from exc
            conn = request if request is not None else Request(scope, receive, send)
            if is_async_callable(handler):
                answer: Any = await handler(conn, exc)  # type: ignore[arg-type]
            else:
                answer = await run_in_threadpool(handler, conn, exc)
            if answer is not None:
                await answer(scope, receive, sent)
            exc.__traceback__ = None  # as Starlette: a reused exception's tracebacks pile up


def _claim(route: Route, shadows: Iterable[BaseRoute]) -> _Claim:
    patterns = [r.path_regex for r in shadows if isinstance(r, Route | Mount)]
    others = [r for r in shadows if not isinstance(r, Route | Mount)]
    return _Claim(route, tuple(patterns), tuple(others), _endpoint_of(route))


def _router_behind(app: ASGIApp) -> Router | None:
    """The router behind the app's `ExceptionMiddleware` and FastAPI's exit stack, when
    nothing else is between them and it has nothing of its own to apply per request."""
    inner = getattr(app, "app", None)
    if isinstance(inner, AsyncExitStackMiddleware):
        inner = inner.app
    if not isinstance(inner, Router) or getattr(inner, "form_limits", None):
        return None
    return inner


def _may_share_prefix(route: BaseRoute, prefix: str) -> bool:
    """Whether `route` may match a path starting with `prefix` (True when unsure)."""
    if not isinstance(route, Route | Mount):
        return True
    literal = route.path.partition("{")[0]
    return literal.startswith(prefix) or prefix.startswith(literal)


def _endpoint_of(route: Route) -> Endpoint | None:
    """The route's `func(request) -> response` when its app is exactly Starlette's
    `request_response` of an async function or method; else None (its app is called)."""
    endpoint = route.endpoint
    plain = inspect.isfunction(endpoint) or inspect.ismethod(endpoint)
    app_name = getattr(route.app, "__qualname__", "")
    if plain and is_async_callable(endpoint) and app_name == "request_response.<locals>.app":
        return endpoint
    return None
