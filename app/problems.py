"""Errors as HTTP: the one place a `ServiceError` (or a routing miss) becomes a response.

Every error answer has the same body, `{"error": {"code", "message", "details"?}}`, so a
model (or a person) reads one shape whatever went wrong. Messages never contain a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pydantic import BaseModel, Field
from pydantic_core import to_json
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app.errors import (
    CredentialsUnavailable,
    Forbidden,
    InvalidParameters,
    LimitExceeded,
    NotOffered,
    ServiceError,
    ServiceLocked,
    StoreDown,
    Unauthorized,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from app.observability import current_record

__all__ = ["ERROR_STATUSES", "ErrorBody", "error_response", "handle_http", "handle_service"]

log = logging.getLogger("app.problems")


class ParamError(BaseModel):
    param: str = Field(description="The parameter, e.g. page_size.")
    message: str = Field(description="What is wrong with it.")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_parameters.")
    message: str = Field(description="What went wrong and what to do, in one or two sentences.")
    details: list[ParamError] | None = Field(None, description="One entry per invalid parameter.")


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


# Most specific first: the first class the error is an instance of decides the status.
_STATUS_OF: tuple[tuple[type[ServiceError], int], ...] = (
    (Unauthorized, 401),
    (Forbidden, 403),
    (LimitExceeded, 429),
    (StoreDown, 503),
    (ServiceLocked, 503),
    (CredentialsUnavailable, 503),
    (InvalidParameters, 422),
    (NotOffered, 404),
    (UpstreamNotFound, 404),
    (UpstreamRateLimited, 429),
    (UpstreamTimeout, 504),
    (UpstreamError, 502),
)

ERROR_STATUSES: dict[int, str] = {
    401: "Missing, wrong, expired or revoked credential.",
    403: "This key may not use this connector (or this model).",
    404: "Nothing exists with that id.",
    422: "A parameter is invalid; details name it.",
    429: "A rate limit or quota was reached (the key's or the upstream's); honour Retry-After.",
    502: "The upstream service failed or answered unusably.",
    503: "The service is closed, or cannot read its credentials or reach its store of keys.",
    504: "The upstream service did not answer in time.",
}
"""Every error status a proxy operation can answer, as documented in the spec."""


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: list[ParamError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details))
    return Response(
        to_json(body, exclude_none=True),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _status_for(error: ServiceError) -> int:
    return next((status for kind, status in _STATUS_OF if isinstance(error, kind)), 500)


async def handle_service(request: Request, exc: Exception) -> Response:
    """Exception handler for every `ServiceError`."""
    assert isinstance(exc, ServiceError)  # noqa: S101 - registered for ServiceError only
    status = _status_for(exc)
    record = current_record()
    record.error = exc.code
    headers: dict[str, str] = {}
    details = None
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    elif isinstance(exc, UpstreamRateLimited) and exc.retry_after:
        headers["Retry-After"] = exc.retry_after
    elif isinstance(exc, LimitExceeded):
        headers.update(exc.headers)
    elif isinstance(exc, InvalidParameters):
        details = [ParamError(param=p.param, message=p.message) for p in exc.problems]
    if isinstance(exc, UpstreamError) and status >= 500:
        log.warning(
            "upstream call failed: %s",
            exc.detail or exc.code,
            extra={"fields": {"event": "upstream_failed", "operation": record.operation}},
        )
    return error_response(status, exc.code, exc.message, details=details, headers=headers)


async def handle_http(request: Request, exc: Exception) -> Response:
    """Routing misses (404, 405) in the same shape as every other error."""
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    messages = {404: "No such endpoint. See /openapi.json.", 405: "Method not allowed."}
    message = messages.get(exc.status_code, str(exc.detail))
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, message, headers=exc.headers)
