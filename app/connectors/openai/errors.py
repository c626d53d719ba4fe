"""Errors in OpenAI's own shape, so that the SDKs raise the matching exception.

`{"error": {"message", "type", "param", "code"}}`, all four keys always present. The SDK
picks the exception from the status alone (400 BadRequestError, 401 AuthenticationError,
404 NotFoundError, 429 RateLimitError, 5xx InternalServerError ...) and shows `message`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.responses import Response

__all__ = ["openai_error", "sse_error_event"]


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json.dumps(body, separators=(",", ":")).encode()


def openai_error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An error answer the OpenAI SDKs understand."""
    return Response(
        error_body(message, type_, code, param),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def sse_error_event(responses_api: bool, message: str, code: str) -> bytes:
    """The last event of a stream that broke: the chat/completions form makes the SDK
    raise `APIError`; the Responses API form is its typed `error` event."""
    if responses_api:
        data: dict[str, object] = {"type": "error", "code": code, "message": message}
        data["param"] = None
        # sequence_number is required by the event's schema; the upstream's count is not
        # tracked (that would mean parsing every event), so 0 marks the gateway's own event.
        data["sequence_number"] = 0
        return b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"
    return b"data: " + error_body(message, "server_error", code) + b"\n\n"
