"""The OpenAI-compatible routes: `/openai/v1/...` and `/openai/...`, allowlisted, forwarded.

Each request: route (allowlist) -> caller identified (key or secret, scope) -> body
checked -> caller admitted (model allowed, limits: app/callers.py) -> response cache
(models; embeddings if on) or upstream, key injected -> answer relayed, its token usage
counted (app/connectors/openai/usage.py). Every refusal and failure is in OpenAI's error
shape. What reaches the
upstream: the route's path, its declared query parameters, the body as sent, and from the
caller's headers only `_FORWARDED`. What reaches the caller: the upstream's status, body
and `_RELAYED` headers, except that a refused upstream key is never shown (OpenAI's 401
message quotes part of the key).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Awaitable

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.cache import cache_of
from app.callers import Admission, Gate
from app.connectors.openai.bodies import (
    BadBody,
    CheckedBody,
    check_json,
    check_multipart,
    read_body,
    request_model,
    with_model,
    with_stream_usage,
)
from app.connectors.openai.cached import cache_key, cache_ttl, mark, through_cache
from app.connectors.openai.errors import openai_error
from app.connectors.openai.relay import Relay
from app.connectors.openai.routes import (
    PREFIXES,
    Body,
    Match,
    MethodNotAllowed,
    Route,
    clean_query,
    match,
)
from app.connectors.openai.upstream import OpenAIUpstream, StreamedAnswer
from app.connectors.openai.usage import UsageMeter
from app.errors import (
    CredentialsUnavailable,
    Forbidden,
    LimitExceeded,
    ServiceError,
    ServiceLocked,
    StoreDown,
    Unauthorized,
)
from app.observability import current_record

__all__ = ["Gateway", "auth_failure"]

log = logging.getLogger("app.openai.gateway")

_FORWARDED = ("accept", "openai-beta")
"""Caller headers sent upstream (content-type is set from the checked body). Never the
caller's credential, organization, project, cookies or forwarding headers."""

_RELAYED = frozenset(
    (
        b"content-type",
        b"content-disposition",
        b"openai-processing-ms",
        b"openai-version",
        b"retry-after",
        b"retry-after-ms",
        b"x-should-retry",
    )
)
_RELAYED_PREFIXES = (b"x-ratelimit-",)  # replaced by the caller's own (app/limits.py)
_USAGE_CHUNK = ("/chat/completions", "/completions")  # streams that take include_usage
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")
_MAX_ERROR_BODY = 256 * 1024
_SECRET_LOOKING = re.compile(r"(?i)sk-[a-z0-9_*-]{3,}|\*{3,}|api[ _-]?key|bearer")


def auth_failure(error: ServiceError) -> Response:
    """A refused or impossible caller admission, in OpenAI's shape."""
    current_record().error = error.code
    if isinstance(error, Unauthorized):
        message = (
            error.message
            if type(error).message != error.message
            else "Invalid credential: send this service's key as 'Authorization: Bearer <key>' "
            "or in an 'api-key' header (one of the two)."
        )
        return openai_error(
            401,
            message,
            code="invalid_api_key",
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    if isinstance(error, Forbidden):
        return openai_error(403, error.message, type_="permission_error", code=error.code)
    if isinstance(error, LimitExceeded):
        kind = "insufficient_quota" if error.code == "quota_exceeded" else "requests"
        return openai_error(429, error.message, type_=kind, code=error.code, headers=error.headers)
    if isinstance(error, StoreDown):
        return openai_error(503, error.message, type_="server_error", code=error.code)
    if isinstance(error, ServiceLocked):
        return openai_error(503, "This service has no caller key configured.", type_="server_error")
    return openai_error(
        503, "This service cannot read its credentials right now.", type_="server_error"
    )


class Gateway:
    """The catch-all endpoint under `/openai/`. `gate` identifies and admits callers for
    the connector `scope`; `drain` is how long a stream is read on after its caller hung
    up, for its token usage (the upstream timeout); `upstream_key_hint` is the upstream key when set
    directly, only used to make sure that no answer carrying it reaches a caller.
    `cache_embeddings` and `cache_scope`: see app/connectors/openai/cached.py.
    `upstream` None: nothing to forward to (no key and no sample data), every call is 503."""

    def __init__(
        self,
        upstream: OpenAIUpstream | None,
        gate: Gate,
        *,
        scope: str,
        default_model: str,
        max_json_bytes: int,
        upstream_key_hint: str | None = None,
        cache_embeddings: bool = False,
        cache_scope: str = "openai",
    ) -> None:
        self.upstream = upstream
        self.gate = gate
        self.scopes = (scope,)
        self.cache_embeddings, self.cache_scope = cache_embeddings, cache_scope
        self.default_model = default_model
        self.max_json_bytes = max_json_bytes
        self._key_hint = upstream_key_hint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response | Relay:
        path: str = request.scope["path"]  # not `request.url`: building it costs more
        raw_path: bytes = request.scope.get("raw_path") or path.encode()
        found = _route(request.method, path, raw_path)
        if isinstance(found, MethodNotAllowed):
            return openai_error(
                405,
                f"Method {request.method} is not allowed here.",
                code="method_not_allowed",
                headers={"Allow": ", ".join(found.allow)},
            )
        if found is None:
            return openai_error(404, "Unknown OpenAI route on this gateway.", code="unknown_url")
        route = found.route
        current_record().operation = f"openai {route.method} {route.template}"
        try:
            caller = await self.gate.identify(request.headers, self.scopes)
        except ServiceError as error:
            return auth_failure(error)
        try:
            body = await self._body(request, route)
        except BadBody as bad:
            current_record().error = "invalid_body"
            return openai_error(bad.status, bad.message, param=bad.param)
        query = clean_query(route, request.query_params.multi_items()) if route.query else []
        if isinstance(query, str):
            return openai_error(400, f"Invalid query parameter '{query}'.", param=query)
        try:
            admission = await self.gate.admit(
                caller,
                model=request_model(body),
                takes_model=body is not None and route.template != "/files",
                openai_names=True,
            )
        except ServiceError as error:
            return auth_failure(error)
        # Every stream is asked for its usage (for the caller's token quota); a caller who
        # did not ask for the usage chunk does not get it (see `_answer`).
        usage_asked = body is not None and body.usage_asked
        if body is not None and body.stream and route.template in _USAGE_CHUNK:
            body = with_stream_usage(body)
        if self.upstream is None:
            return openai_error(
                503,
                "No OpenAI key is configured and the sample data is not installed.",
                type_="server_error",
            )
        headers = {name: request.headers[name] for name in _FORWARDED if name in request.headers}
        if body is not None:
            headers["content-type"] = body.content_type

        def forward() -> Awaitable[Response | Relay]:
            return self._forward(
                route, found.path, query, headers, body, admission, strip_usage=not usage_asked
            )

        # The response cache (app/connectors/openai/cached.py): models, and embeddings if on.
        cache = cache_of(request)
        if cache is None:
            return await forward()
        ttl = cache_ttl(route, body, embeddings=self.cache_embeddings)
        if ttl is None:
            return mark(await forward(), cache.bypass.headers)
        key = cache_key(route, found.path, query, body)
        return await through_cache(cache.scoped(self.cache_scope), key, ttl, forward)

    async def _forward(
        self,
        route: Route,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        body: CheckedBody | None,
        admission: Admission,
        *,
        strip_usage: bool,
    ) -> Response | Relay:
        assert self.upstream is not None  # noqa: S101 - checked by `handle`
        try:
            answer = await self.upstream.open(
                route.method,
                path,
                query=query,
                headers=headers,
                body=body.raw if body is not None else None,
            )
        except CredentialsUnavailable as error:
            return auth_failure(error)
        except (TimeoutError, httpx.TimeoutException):
            return self._failed(
                504,
                "upstream_timeout",
                f"The upstream did not answer within {self.upstream.timeout:g} seconds.",
            )
        except httpx.HTTPError as error:
            log.warning(
                "OpenAI upstream unreachable: %s",
                type(error).__name__,
                extra={"fields": {"event": "upstream_failed"}},
            )
            return self._failed(502, "upstream_unavailable", "The upstream could not be reached.")
        return await self._answer(answer, route, admission, strip_usage=strip_usage)

    async def _body(self, request: Request, route: Route) -> CheckedBody | None:
        if route.body is Body.NONE:
            return None
        content_type = request.headers.get("content-type", "")
        multipart = content_type.lower().startswith("multipart/")
        if route.body is Body.MULTIPART or (route.body is Body.JSON_OR_MULTIPART and multipart):
            raw = await read_body(
                request.stream(), request.headers.get("content-length"), route.max_body
            )
            return check_multipart(raw, content_type)
        kind = content_type.split(";", 1)[0].strip().lower()
        if kind not in ("", "application/json"):
            raise BadBody("Expected Content-Type: application/json.")
        raw = await read_body(
            request.stream(), request.headers.get("content-length"), self.max_json_bytes
        )
        body = check_json(raw)
        if route.needs_model and "model" not in body.fields:
            body = with_model(body, self.default_model)
        return body

    def _failed(self, status: int, code: str, message: str) -> Response:
        current_record().error = code
        return openai_error(status, message, type_="server_error", code=code)

    async def _answer(
        self, answer: StreamedAnswer, route: Route, admission: Admission, *, strip_usage: bool
    ) -> Response | Relay:
        status = answer.status_code
        record = current_record()
        record.upstream_status = status
        upstream_id = answer.headers.get("x-request-id", "")
        if _REQUEST_ID.match(upstream_id):
            # The access log answers with the record's id: the upstream's wins, the one the
            # SDK shows as `request_id` and that OpenAI's support can look up.
            record.request_id = upstream_id
        headers: list[tuple[bytes, bytes]] = []
        for raw_name, value in answer.raw_headers:
            name = raw_name.lower()
            if name in _RELAYED or name.startswith(_RELAYED_PREFIXES):
                headers.append((name, value))
        if status in (401, 403):
            await answer.aclose()
            log.error(
                "the OpenAI upstream refused the configured key (HTTP %s): check OPENAI_API_KEY",
                status,
                extra={"fields": {"event": "upstream_key_rejected", "upstream_status": status}},
            )
            return self._refused()
        if status >= 400:
            try:
                body = await _read_error(answer)
            except httpx.HTTPError:
                return self._failed(502, "upstream_unavailable", "The upstream failed.")
            if not self._safe(body):
                log.error(
                    "the OpenAI upstream's HTTP %s answer was withheld (it looked like it held "
                    "a credential)",
                    status,
                    extra={"fields": {"event": "upstream_answer_withheld"}},
                )
                return self._failed(502, "upstream_error", "The upstream's answer was withheld.")
            if status >= 500 and not _openai_shaped(body):
                return self._server_failure(status)
            return Response(body, status_code=status, headers=dict(_str_headers(headers)))
        kind = answer.headers.get("content-type", "")
        sse = kind.startswith("text/event-stream")
        if sse:
            headers += [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
        metered = sse or kind.startswith("application/json")
        assert self.upstream is not None  # noqa: S101 - it answered
        return Relay(
            answer,
            status=status,
            headers=headers,
            sse=sse,
            responses_api=route.template == "/responses",
            meter=UsageMeter(sse=sse, strip_usage_chunk=strip_usage) if metered else None,
            on_usage=admission.spend,
            drain=self.upstream.timeout,
        )

    def _refused(self) -> Response:
        current_record().error = "upstream_key_rejected"
        return openai_error(
            502,
            "The gateway's upstream credential was refused. The operator has been told.",
            type_="server_error",
            code="upstream_auth_failed",
            headers={"x-should-retry": "false"},  # retrying will not fix a wrong key
        )

    def _server_failure(self, status: int) -> Response:
        log.warning(
            "OpenAI upstream answered HTTP %s",
            status,
            extra={"fields": {"event": "upstream_failed", "upstream_status": status}},
        )
        return self._failed(502, "upstream_error", f"The upstream failed (HTTP {status}).")

    def _safe(self, body: bytes) -> bool:
        if self._key_hint and self._key_hint.encode() in body:
            return False
        try:
            error = json.loads(body)["error"]
            message = error.get("message") or ""
        except (ValueError, KeyError, TypeError, AttributeError):
            return True  # not OpenAI-shaped: nothing from a key-quoting message
        return not (isinstance(message, str) and _SECRET_LOOKING.search(message))


@functools.lru_cache(maxsize=256)  # the few paths clients use, matched once (~1 us each)
def _route(method: str, path: str, raw_path: bytes) -> Match | MethodNotAllowed | None:
    if b"%" in raw_path or b"\\" in raw_path:
        return None  # no route has an escaped character: `%2F`, `%2e%2e` never reach one
    for prefix in PREFIXES:
        if path.startswith(prefix + "/"):
            found = match(method, path[len(prefix) :])
            if not isinstance(found, Match | MethodNotAllowed):
                continue
            return found
    return None


async def _read_error(answer: StreamedAnswer) -> bytes:
    try:
        kept = b""
        async for chunk in answer.aiter_bytes():
            kept += chunk
            if len(kept) > _MAX_ERROR_BODY:
                raise httpx.ReadError("error body too large")
        return kept
    finally:
        await answer.aclose()


def _openai_shaped(body: bytes) -> bool:
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and isinstance(error.get("message"), str)


def _str_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
