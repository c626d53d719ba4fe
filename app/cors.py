"""CORS: Starlette's rules and fields, applied by the request layer (app/edge.py), with its
refusals in the project's error shape.

Starlette's `CORSMiddleware` answers a refused preflight with a `text/plain` 400; a browser
tool (or a person reading the network tab) gets the same JSON error as everywhere else.
Every other answer gets the fields `CORSMiddleware` would add; to a request without an
`Origin` (every non-browser caller) that is `Vary: Origin` alone (its answer would differ
with one, so no shared cache may give it to a browser), added without Starlette's
`MutableHeaders` work unless the answer already varies.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from app.problems import error_response

__all__ = ["CORS_REFUSED", "Cors"]

CORS_REFUSED = "cors_refused"
_VARY_ORIGIN = (b"vary", b"Origin")


class _JsonCORSMiddleware(CORSMiddleware):
    """`CORSMiddleware` whose refused preflights are `400 {"error": {"code": "cors_refused"}}`.
    Used for its rules only (never called as a layer)."""

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


async def _no_app(*_: object) -> None:  # pragma: no cover - never called
    raise AssertionError("the CORS rules are not a layer")


class Cors:
    """The CORS policy: allowed origins, methods and headers, as `CORSMiddleware` takes them."""

    def __init__(
        self,
        *,
        allow_origins: Collection[str],
        allow_methods: Collection[str],
        allow_headers: Collection[str],
        expose_headers: Collection[str],
        max_age: int,
    ) -> None:
        self._rules = _JsonCORSMiddleware(
            _no_app,
            allow_origins=allow_origins,
            allow_methods=allow_methods,
            allow_headers=allow_headers,
            expose_headers=expose_headers,
            max_age=max_age,
        )

    def preflight(self, method: str, request_headers: Headers) -> Response | None:
        """The answer to a preflight (an `OPTIONS` with `Origin` and
        `Access-Control-Request-Method`): allowed, or a JSON 400; None for other requests."""
        if (
            method == "OPTIONS"
            and "origin" in request_headers
            and "access-control-request-method" in request_headers
        ):
            return self._rules.preflight_response(request_headers)
        return None

    def add_fields(self, headers: list[tuple[bytes, bytes]], origin: str | None) -> None:
        """Add to an answer's `headers` (in place) what `CORSMiddleware` adds to an answer
        that is not a preflight's, for a request from `origin` (None: no `Origin` field)."""
        if origin is None and all(name != b"vary" for name, _ in headers):
            headers.append(_VARY_ORIGIN)  # the common case, as Starlette would append it
            return
        rules = self._rules
        fields = MutableHeaders(raw=headers)
        if origin is not None:
            fields.update(rules.simple_headers)
        # Starlette's branches (this service never allows credentials).
        if origin is not None and not rules.allow_all_origins and rules.is_allowed_origin(origin):
            rules.allow_explicit_origin(fields, origin)
        else:
            fields["Vary"] = ", ".join([*fields.getlist("Vary"), "Origin"])
