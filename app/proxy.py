"""The proxy routes: one per operation, each request → auth → parameters → upstream → answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.answers import encode_answer
from app.observability import current_record
from app.operations import Operation
from app.security import authorize
from app.services import services_of

__all__ = ["API_PREFIX", "OperationRoute"]

API_PREFIX = "/api/v2"


class OperationRoute(Route):
    """The REST route of one `Operation`; the spec is generated from these routes."""

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        super().__init__(
            API_PREFIX + operation.path,
            _endpoint(operation),
            methods=["GET"],
            name=operation.name,
            include_in_schema=False,
        )


def _endpoint(operation: Operation) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        current_record().operation = operation.name
        services = services_of(request)
        secrets = await services.credentials.bearer_secrets()
        authorize(request.headers.getlist("authorization"), secrets)
        params = operation.parse(request.query_params.multi_items(), request.path_params)
        path, query = operation.upstream_request(params)
        key = await services.credentials.upstream_key()
        body = await services.upstream.get(path, query, key=key)
        answer = encode_answer(operation.compact(body))
        return Response(answer, media_type="application/json")

    endpoint.__name__ = operation.name
    return endpoint
