"""CORS, with its refusals in the project's error shape.

Starlette's `CORSMiddleware` answers a refused preflight with a `text/plain` 400; a browser
tool (or a person reading the network tab) gets the same JSON error as everywhere else.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from app.problems import error_response

__all__ = ["CORS_REFUSED", "JsonCORSMiddleware"]

CORS_REFUSED = "cors_refused"


class JsonCORSMiddleware(CORSMiddleware):
    """`CORSMiddleware` whose refused preflights are `400 {"error": {"code": "cors_refused"}}`."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        # Starlette's text names what was refused ("Disallowed CORS origin, method"), never
        # the values the browser sent.
        refused = bytes(response.body).decode("utf-8", "replace").strip()
        message = (
            f"{refused}. Browser origins allowed to call this service are set by CORS_ORIGINS."
        )
        return error_response(response.status_code, CORS_REFUSED, message)
