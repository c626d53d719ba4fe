"""Which OpenAI answers the response cache keeps (app/cache.py), and serving them through it.

Only `GET /models` and `GET /models/{model}` (an hour), and `POST /embeddings` (a day) when
`OPENAI_CACHE_EMBEDDINGS` is on: the same model, input and options give the same vectors.
Nothing else, ever: chat, completions and responses are generated anew on each call (and
streamed), the others create or read per-caller objects (files, fine-tuning jobs).

The key is the route, the upstream path, the query and the exact body after the gateway's
checks (the default model filled in), within the connector's scope (sample or live, base
URL, organization, project). Not the caller: these answers depend on the service's key,
never on who asks. Only 200 JSON answers of at most `_MAX_KEPT` bytes are kept; anything
else is served as it came, uncached.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from starlette.responses import Response, StreamingResponse

from app.cache import ResponseCache, Uncacheable
from app.connectors.openai.bodies import CheckedBody
from app.connectors.openai.errors import openai_error
from app.connectors.openai.relay import Relay
from app.connectors.openai.routes import Route
from app.observability import current_record
from app.store import KV_MAX_BYTES

__all__ = ["EMBEDDINGS_TTL", "MODELS_TTL", "cache_key", "cache_ttl", "through_cache"]

MODELS_TTL = 3_600
EMBEDDINGS_TTL = 86_400
_MODELS = ("/models", "/models/{model+}")
_MAX_KEPT = KV_MAX_BYTES - 1024  # room for the content type and the cache's own header


def cache_ttl(route: Route, body: CheckedBody | None, *, embeddings: bool) -> int | None:
    """Seconds the answer to this request may be served from the cache; None: never."""
    if route.method == "GET" and route.template in _MODELS:
        return MODELS_TTL
    if embeddings and route.template == "/embeddings" and body is not None and not body.stream:
        return EMBEDDINGS_TTL
    return None


def cache_key(
    route: Route, path: str, query: list[tuple[str, str]], body: CheckedBody | None
) -> str:
    digest = hashlib.sha256(body.raw).hexdigest() if body is not None else "-"
    return f"{route.method} {path} {query!r} {digest}"


async def through_cache(
    cache: ResponseCache,
    key: str,
    ttl: int,
    forward: Callable[[], Awaitable[Response | Relay]],
) -> Response | Relay:
    """The answer for `key` from `cache`, or `forward()`ed (and kept when it is a 200 JSON
    answer small enough); with its `Cache-Status` (and `Age` on a hit)."""

    async def produce() -> bytes:
        answer = await forward()
        if not isinstance(answer, Relay) or answer.status != 200 or answer.sse:
            raise Uncacheable(answer)
        content_type = dict(answer.headers).get(b"content-type", b"application/json")
        kept, size = [], 0
        try:
            chunks = answer.upstream.aiter_bytes()
            async for chunk in chunks:
                kept.append(chunk)
                size += len(chunk)
                if size > _MAX_KEPT:  # serve it as it comes, uncached
                    raise Uncacheable(_streamed(answer, kept, chunks, content_type))
        except httpx.HTTPError:
            await answer.upstream.aclose()
            current_record().error = "upstream_unavailable"
            failed = openai_error(
                502, "The upstream failed.", type_="server_error", code="upstream_unavailable"
            )
            raise Uncacheable(failed) from None
        await answer.upstream.aclose()
        await _spend(answer, kept)  # a miss spent upstream tokens: the caller's usage
        return content_type + b"\n" + b"".join(kept)

    try:
        served = await cache.fetch(key, ttl, produce)
    except Uncacheable as passed:
        answer: Response | Relay = passed.answer  # type: ignore[assignment]
        return answer
    content_type, _, body = served.body.partition(b"\n")
    return Response(
        body, headers={"content-type": content_type.decode("latin-1"), **served.headers}
    )


async def _spend(answer: Relay, body: list[bytes]) -> None:
    """Count the tokens of an answer read here rather than relayed (its relay's meter and
    `on_usage` would have done it; a hit spends nothing upstream, so records nothing)."""
    if answer.meter is None or answer.on_usage is None:
        return
    for chunk in body:
        answer.meter.body(chunk)
    answer.meter.finish()
    if answer.meter.tokens is not None:
        await answer.on_usage(*answer.meter.tokens)


def mark(answer: Response | Relay, headers: dict[str, str]) -> Response | Relay:
    """`answer` with `headers` added (e.g. an uncacheable route's `Cache-Status`)."""
    for name, value in headers.items():
        if isinstance(answer, Relay):
            answer.headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        else:
            answer.headers[name] = value
    return answer


def _streamed(
    answer: Relay, kept: list[bytes], rest: AsyncIterator[bytes], content_type: bytes
) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        try:
            for chunk in kept:
                yield chunk
            async for chunk in rest:
                yield chunk
        finally:
            await answer.upstream.aclose()

    return StreamingResponse(body(), headers={"content-type": content_type.decode("latin-1")})
