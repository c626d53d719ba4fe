"""OpenAI sample-data mode: an in-process httpx transport that answers like the OpenAI API.

With no OpenAI key configured, the gateway's upstream client gets `OpenAISampleTransport`
instead of the network, so every OpenAI route runs its real path (forwarding, streaming
relay, errors) against answers made here, offline and deterministically, in OpenAI's own
shapes: JSON objects, data-only SSE for chat and legacy completions (ending `data: [DONE]`),
`event:`/`data:` SSE for Responses, WAV for speech, PNG for images, plain text for
transcriptions in text formats. Streams are real streamed responses, one event per chunk.

It is plain that this is sample data: every answer carries `x-sample-data: true` and an
`x-request-id`; generated text starts with "[sample data]"; model ids are echoed unchanged.
Errors use OpenAI's shape `{"error": {"message", "type", "param", "code"}}`: 400 for bad JSON
or a missing required field, 404 for an unknown model, file, job or path.
What each route makes is described in `sample_text`, `sample_analysis`, `sample_media` and
`sample_store`. The class works with both `httpx.AsyncClient` and `httpx.Client`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator

import httpx

from app.connectors.openai import sample_analysis, sample_media, sample_text
from app.connectors.openai.sample_store import SampleStore
from app.connectors.openai.sample_wire import (
    SAMPLE_EPOCH,
    Reply,
    SampleError,
    SampleRequest,
    digest,
    json_reply,
)

__all__ = ["SAMPLE_MODELS", "OpenAISampleTransport"]

SAMPLE_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "text-embedding-3-small",
    "omni-moderation-latest",
    "dall-e-2",
    "tts-1",
    "whisper-1",
)

Handler = Callable[[SampleStore, SampleRequest, str], Reply]


def _stateless(answer: Callable[[SampleRequest], Reply]) -> Handler:
    return lambda _store, request, _id: answer(request)


def _model_list(_store: SampleStore, _request: SampleRequest, _id: str) -> Reply:
    return json_reply({"object": "list", "data": [_model(name) for name in SAMPLE_MODELS]})


def _model_one(_store: SampleStore, _request: SampleRequest, name: str) -> Reply:
    if name not in SAMPLE_MODELS:
        raise SampleError(
            404,
            f"The model '{name}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    return json_reply(_model(name))


def _model(name: str) -> dict[str, object]:
    created = SAMPLE_EPOCH - 86400 * (SAMPLE_MODELS.index(name) + 1)
    return {"id": name, "object": "model", "created": created, "owned_by": "system"}


_ID = "([A-Za-z0-9_.:-]+)"
# (method, path pattern under the prefix, handler); the handler gets the path's id, if any.
_ROUTES: tuple[tuple[str, re.Pattern[str], Handler], ...] = tuple(
    (method, re.compile(pattern), handler)
    for method, pattern, handler in (
        ("GET", "/models", _model_list),
        ("GET", f"/models/{_ID}", _model_one),
        ("POST", "/chat/completions", _stateless(sample_text.chat_completion)),
        ("POST", "/responses", _stateless(sample_text.response)),
        ("POST", "/completions", _stateless(sample_text.completion)),
        ("POST", "/embeddings", _stateless(sample_analysis.embeddings)),
        ("POST", "/moderations", _stateless(sample_analysis.moderations)),
        ("POST", "/images/generations", _stateless(sample_media.image_generation)),
        ("POST", "/images/edits", _stateless(sample_media.image_edit)),
        ("POST", "/images/variations", _stateless(sample_media.image_variation)),
        ("POST", "/audio/speech", _stateless(sample_media.speech)),
        ("POST", "/audio/transcriptions", _stateless(sample_media.transcription)),
        ("POST", "/audio/translations", _stateless(sample_media.translation)),
        ("POST", "/files", lambda store, request, _id: store.upload(request)),
        ("GET", f"/files/{_ID}", lambda store, _request, file_id: store.file(file_id)),
        ("POST", "/fine_tuning/jobs", lambda store, request, _id: store.create_job(request)),
        ("GET", "/fine_tuning/jobs", lambda store, request, _id: store.jobs(request)),
        ("GET", f"/fine_tuning/jobs/{_ID}", lambda store, _request, job: store.job(job)),
        (
            "POST",
            f"/fine_tuning/jobs/{_ID}/cancel",
            lambda store, _request, job: store.cancel(job),
        ),
        (
            "GET",
            f"/fine_tuning/jobs/{_ID}/events",
            lambda store, request, job: store.events(job, request),
        ),
    )
)


class _EventStream(httpx.AsyncByteStream, httpx.SyncByteStream):
    """A streamed body sent one event at a time, yielding to the loop between events."""

    def __init__(self, chunks: tuple[bytes, ...]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for index, chunk in enumerate(self._chunks):
            if index:
                await asyncio.sleep(0)  # so a relay sees each event arrive on its own
            yield chunk


class OpenAISampleTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """Answers the OpenAI routes under `prefix` (e.g. `/v1/chat/completions`) in process.

    Files and fine-tuning jobs live in this instance's memory (bounded), so one instance
    remembers an upload or a job between calls; a new instance starts empty.
    """

    def __init__(self, prefix: str = "/v1") -> None:
        self._prefix = prefix.rstrip("/")
        self._store = SampleStore()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request; a stream answer arrives chunk by chunk."""
        return self._respond(request, await request.aread())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request from a synchronous `httpx.Client`."""
        return self._respond(request, request.read())

    def _respond(self, request: httpx.Request, body: bytes) -> httpx.Response:
        sample = SampleRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.url.params),
            content_type=request.headers.get("content-type", ""),
            body=body,
        )
        try:
            reply = self._answer(sample)
        except SampleError as error:
            reply = json_reply(error.body, error.status)
        headers = {
            "content-type": reply.content_type,
            "x-sample-data": "true",
            "x-request-id": "req_sample" + digest(request.method, str(request.url), body)[:24],
            "openai-processing-ms": "0",
        }
        if reply.chunks is None:
            return httpx.Response(reply.status, headers=headers, content=reply.body)
        headers["cache-control"] = "no-cache"
        return httpx.Response(reply.status, headers=headers, stream=_EventStream(reply.chunks))

    def _answer(self, request: SampleRequest) -> Reply:
        path = request.path
        if path.startswith(self._prefix + "/"):
            local = path[len(self._prefix) :].rstrip("/")
            for method, pattern, handler in _ROUTES:
                match = pattern.fullmatch(local)
                if match and method == request.method:
                    return handler(self._store, request, match.group(1) if match.groups() else "")
        raise SampleError(404, f"Invalid URL ({request.method} {path})")
