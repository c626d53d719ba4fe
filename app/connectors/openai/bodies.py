"""Request bodies: read under a cap, checked, and kept as the exact bytes the caller sent.

A body is refused (400, or 413 when too large) before any upstream call when it is not
what its route takes: one JSON object, or a complete multipart/form-data message. What
passes is forwarded untouched, so parameters the gateway does not know still reach the
upstream. `CheckedBody.model` is the request's model, JSON or form field, for later
per-caller model rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any

from pydantic_core import from_json
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

__all__ = [
    "BadBody",
    "CheckedBody",
    "check_json",
    "check_multipart",
    "read_body",
    "request_model",
    "with_model",
    "with_stream_usage",
]

_BOUNDARY = re.compile(rb"^[0-9A-Za-z'()+_,./:=?-]{1,70}$")  # RFC 2046, without the space
_MAX_FIELD = 1024  # a model name longer than this is not a model name


class BadBody(Exception):
    """The body is refused. `status` is 400 or 413; `message` is safe to show the caller."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param


@dataclass(frozen=True)
class CheckedBody:
    raw: bytes
    content_type: str
    model: str | None = None
    stream: bool = False
    fields: frozenset[str] = frozenset()  # top-level JSON keys / form field names
    usage_asked: bool = False  # `stream_options.include_usage` is true


async def read_body(chunks: AsyncIterable[bytes], declared: str | None, max_bytes: int) -> bytes:
    """The whole body; `BadBody(413)` as soon as it (or Content-Length) exceeds `max_bytes`."""
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BadBody(f"The request body is larger than {max_bytes} bytes.", status=413)
    kept: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise BadBody(f"The request body is larger than {max_bytes} bytes.", status=413)
        kept.append(chunk)
    return b"".join(kept)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One decoder: `json.loads` with an option builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def check_json(raw: bytes) -> CheckedBody:
    """`raw` if it is one UTF-8 JSON object (no NaN or Infinity); `BadBody` otherwise."""
    try:
        # pydantic-core's parser first (~0.4 us for a chat request, json's ~1.3); it reads
        # what json reads, refusing NaN and Infinity too, but for a lone surrogate's
        # escape, which json's parser then reads.
        value = from_json(raw, allow_inf_nan=False)
    except ValueError:
        try:
            value = _DECODER.decode(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise BadBody("The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise BadBody("The request body must be a JSON object.")
    model = value.get("model")
    if model is not None and not isinstance(model, str):
        raise BadBody("'model' must be a string.", param="model")
    stream = value.get("stream") is True
    options = value.get("stream_options")
    asked = isinstance(options, dict) and options.get("include_usage") is True
    return CheckedBody(raw, "application/json", model, stream, frozenset(value), asked)


def with_stream_usage(body: CheckedBody) -> CheckedBody:
    """`body` asking for the stream's usage chunk (`stream_options.include_usage`). Without
    `stream_options`, it is spliced in after the opening brace, every other byte kept;
    with one that lacks `include_usage` (rare), the body is re-encoded."""
    if body.usage_asked:
        return body
    if "stream_options" not in body.fields:
        start = body.raw.index(b"{") + 1
        member = b'"stream_options":{"include_usage":true}' + (b"," if body.fields else b"")
        raw = body.raw[:start] + member + body.raw[start:]
    else:
        value = json.loads(body.raw)
        if not isinstance(value["stream_options"], dict):
            return body  # not an object: the upstream refuses it as the caller sent it
        value["stream_options"]["include_usage"] = True
        raw = json.dumps(value, ensure_ascii=False).encode()
    fields = body.fields | {"stream_options"}
    return CheckedBody(raw, body.content_type, body.model, body.stream, fields, True)


def with_model(body: CheckedBody, model: str) -> CheckedBody:
    """`body` with `"model": model` spliced in after its opening brace: every other byte is
    kept as sent (nothing is re-encoded). Only for a body without a `model` key."""
    start = body.raw.index(b"{") + 1
    member = b'"model":' + json.dumps(model).encode() + (b"," if body.fields else b"")
    raw = body.raw[:start] + member + body.raw[start:]
    fields = body.fields | {"model"}
    return CheckedBody(raw, body.content_type, model, body.stream, fields, body.usage_asked)


def check_multipart(raw: bytes, content_type: str) -> CheckedBody:
    """`raw` if it is a complete multipart/form-data message for `content_type`'s boundary;
    `BadBody` otherwise. Reads the `model` and `stream` fields on the way."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary", b"")
    if kind != b"multipart/form-data" or not _BOUNDARY.match(boundary):
        raise BadBody("Expected a multipart/form-data body with a valid boundary.")
    names: list[str] = []
    values: dict[str, bytearray] = {}
    header: dict[str, bytes] = {"field": b"", "value": b""}
    current: list[str | None] = [None]

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        if header["field"].lower() == b"content-disposition":
            _, disposition = parse_options_header(header["value"])
            name = disposition.get(b"name")
            if name is not None:
                current[0] = name.decode("utf-8", "replace")
        header["field"] = header["value"] = b""

    def on_part_begin() -> None:
        current[0] = None

    def on_headers_finished() -> None:
        if current[0] is None:
            raise BadBody("Every form part needs a Content-Disposition with a name.")
        names.append(current[0])
        if current[0] in ("model", "stream"):
            values[current[0]] = bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        name = current[0]
        if name in values:
            values[name] += data[start:end]
            if len(values[name]) > _MAX_FIELD:
                raise BadBody(f"The form field '{name}' is too long.", param=name)

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(raw)
        parser.finalize()
    except BadBody:
        raise
    except Exception:
        raise BadBody("The multipart body is malformed.") from None
    if parser.state != MultipartState.END:
        raise BadBody("The multipart body is incomplete.")
    try:
        model = values["model"].decode("utf-8") if "model" in values else None
    except UnicodeDecodeError:
        raise BadBody("'model' must be text.", param="model") from None
    stream = values.get("stream", bytearray()).strip().lower() == b"true"
    return CheckedBody(raw, content_type, model, stream, frozenset(names))


def request_model(body: CheckedBody | None) -> str | None:
    """The model a request asks for, from its JSON body or its `model` form field."""
    return body.model if body is not None else None
