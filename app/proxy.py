"""The operation routes: one per operation, each request → caller admitted (key, scope,
limits: app/callers.py) → parameters → cached answer or upstream → answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.answers import encode_answer
from app.cache import Served
from app.connector import Upstream
from app.errors import UpstreamError
from app.hot import learn
from app.observability import current_record
from app.operations import Operation
from app.params import Params
from app.services import services_of
from app.store import Usage

__all__ = ["OperationRoute", "call_operation"]


class OperationRoute(Route):
    """The REST route of one `Operation` under its connector's prefix; the spec is generated
    from these routes."""

    def __init__(
        self, operation: Operation, prefix: str, upstream: Upstream, connector: str
    ) -> None:
        self.operation = operation
        super().__init__(
            prefix + operation.path,
            _endpoint(operation, upstream, connector),
            methods=["GET"],
            name=operation.name,
            include_in_schema=False,
        )


async def call_operation(operation: Operation, params: Params, upstream: Upstream) -> Served:
    """The operation's compact answer (JSON) for validated parameters: from the response
    cache when the operation has a `cache_ttl` and the answer is there, else the upstream
    call, the key injected. Shared by the REST routes and the MCP tools.

    The cache key is what goes upstream (path and query: the validated parameters), never
    the caller: the podcast API answers the same whoever asks, so one caller's miss is
    every caller's hit."""
    path, query = operation.upstream_request(params)

    async def produce() -> bytes:
        try:
            key = await upstream.key()
            body = await upstream.client.get(path, query, key=key)
            return encode_answer(operation.compact(body), operation.answer)
        except UpstreamError as error:
            raise error.naming(upstream.service) from None

    cache = upstream.cache
    if cache is None:
        return Served(await produce())
    if operation.cache_ttl is None:
        return replace(cache.bypass, body=await produce())
    key = f"{operation.name} {path}?{query}"
    return await cache.fetch(key, operation.cache_ttl, produce)


def _endpoint(
    operation: Operation, upstream: Upstream, connector: str
) -> Callable[[Request], Awaitable[Response]]:
    scopes = (connector,)

    async def endpoint(request: Request) -> Response:
        current_record().operation = operation.name
        admission = await services_of(request).gate.enter(request.headers, scopes)
        params = operation.parse_query_string(request.scope["query_string"], request.path_params)
        served = await call_operation(operation, params, upstream)
        if served.saved:
            await admission.gate.record(admission.caller.subject, Usage(cache_saved=1))
        if served.entry is not None and upstream.cache is not None:
            learn(upstream.cache, served.entry, scopes, operation.name)  # app/hot.py
        return Response(served.body, media_type="application/json", headers=served.headers)

    endpoint.__name__ = operation.name
    return endpoint
