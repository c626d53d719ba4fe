"""The proxy routes: one per operation, each request → auth → parameters → upstream → answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.answers import Answer, encode_answer
from app.observability import current_record
from app.operations import Operation
from app.params import Params
from app.security import API_KEY_HEADER, authorize
from app.services import Services, services_of

__all__ = ["API_PREFIX", "OperationRoute", "call_operation"]

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


async def call_operation(operation: Operation, params: Params, services: Services) -> Answer:
    """The operation's compact answer for validated parameters: the upstream call, the key
    injected. Shared by the REST routes and the MCP tools."""
    path, query = operation.upstream_request(params)
    key = await services.credentials.upstream_key()
    body = await services.upstream.get(path, query, key=key)
    return operation.compact(body)


def _endpoint(operation: Operation) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        current_record().operation = operation.name
        services = services_of(request)
        secrets = await services.credentials.bearer_secrets()
        headers = request.headers
        authorize(headers.getlist("authorization"), secrets, headers.getlist(API_KEY_HEADER))
        params = operation.parse(request.query_params.multi_items(), request.path_params)
        answer = await call_operation(operation, params, services)
        return Response(encode_answer(answer), media_type="application/json")

    endpoint.__name__ = operation.name
    return endpoint
