"""The operation routes: one per operation, each request → caller admitted (key, scope,
limits: app/callers.py) → parameters → upstream → answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.answers import Answer, encode_answer
from app.connector import Upstream
from app.errors import UpstreamError
from app.observability import current_record
from app.operations import Operation
from app.params import Params
from app.services import services_of

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


async def call_operation(operation: Operation, params: Params, upstream: Upstream) -> Answer:
    """The operation's compact answer for validated parameters: the upstream call, the key
    injected. Shared by the REST routes and the MCP tools."""
    path, query = operation.upstream_request(params)
    try:
        key = await upstream.key()
        body = await upstream.client.get(path, query, key=key)
        return operation.compact(body)
    except UpstreamError as error:
        raise error.naming(upstream.service) from None


def _endpoint(
    operation: Operation, upstream: Upstream, connector: str
) -> Callable[[Request], Awaitable[Response]]:
    scopes = (connector,)

    async def endpoint(request: Request) -> Response:
        current_record().operation = operation.name
        await services_of(request).gate.enter(request.headers, scopes)
        params = operation.parse(request.query_params.multi_items(), request.path_params)
        answer = await call_operation(operation, params, upstream)
        return Response(encode_answer(answer), media_type="application/json")

    endpoint.__name__ = operation.name
    return endpoint
