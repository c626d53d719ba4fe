"""The vocabulary of the OpenAI sample transport: a parsed request, a reply, an error.

Handlers in `sample_text`, `sample_media` and `sample_store` take a `SampleRequest` and return
a `Reply`, or raise `SampleError`, which the transport turns into OpenAI's error shape
`{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, cast

__all__ = [
    "JSON",
    "SAMPLE_EPOCH",
    "FormFile",
    "Reply",
    "SampleError",
    "SampleForm",
    "SampleRequest",
    "digest",
    "estimate_tokens",
    "json_reply",
    "missing",
    "sse_reply",
]

JSON = dict[str, Any]
# Every `created` timestamp derives from this (2025-01-01T00:00:00Z), so answers are reproducible.
SAMPLE_EPOCH = 1735689600


class SampleError(Exception):
    """An answer in OpenAI's error shape, all four keys present, `param`/`code` nullable."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: JSON = {
            "error": {"message": message, "type": kind, "param": param, "code": code}
        }


def missing(param: str) -> SampleError:
    """The 400 OpenAI sends when a required parameter is absent."""
    return SampleError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def invalid(param: str, message: str) -> SampleError:
    """The 400 OpenAI sends when a parameter is present but unusable."""
    return SampleError(400, message, param=param, code="invalid_value")


@dataclass(frozen=True)
class Reply:
    """One answer: a complete body, or (`chunks` set) a stream sent one chunk at a time."""

    status: int
    content_type: str
    body: bytes = b""
    chunks: tuple[bytes, ...] | None = None


def json_reply(payload: JSON, status: int = 200) -> Reply:
    """A JSON answer, compact as OpenAI sends it."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return Reply(status, "application/json", text.encode())


def sse_reply(events: Iterable[bytes]) -> Reply:
    """A server-sent-events answer; each item is one whole event, sent as its own chunk."""
    return Reply(200, "text/event-stream; charset=utf-8", chunks=tuple(events))


def data_event(payload: JSON | str) -> bytes:
    """One data-only SSE event (chat and legacy completions); a str is sent verbatim."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def named_event(event: str, payload: JSON) -> bytes:
    """One `event:` + `data:` SSE event (the Responses API)."""
    return f"event: {event}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def digest(*parts: str | bytes) -> str:
    """A stable hex digest of the parts, for ids and seeds that must not vary between runs."""
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part if isinstance(part, bytes) else part.encode())
        hasher.update(b"\x00")
    return hasher.hexdigest()


def estimate_tokens(text: str) -> int:
    """Roughly how many tokens `text` is: four tokens for every three words, rounded."""
    return math.floor(len(text.split()) * 4 / 3 + 0.5)


@dataclass(frozen=True)
class FormFile:
    """One uploaded file of a multipart form."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class SampleForm:
    """A multipart form: text fields by name, files by name (a name may repeat, as `image[]`)."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[FormFile]] = field(default_factory=dict)

    def file(self, *names: str) -> FormFile:
        """The first file under any of `names`, or the 400 OpenAI sends for a missing one."""
        for name in names:
            if self.files.get(name):
                return self.files[name][0]
        raise missing(names[0])

    def text(self, name: str) -> str:
        """A required text field, or the 400 for a missing one."""
        value = self.fields.get(name, "")
        if not value:
            raise missing(name)
        return value


@dataclass(frozen=True)
class SampleRequest:
    """What a handler needs of a request: method, path under the prefix, query, body."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: bytes

    def json(self) -> JSON:
        """The body as one JSON object, or the 400 OpenAI sends for anything else."""
        try:
            parsed = json.loads(self.body)
        except ValueError:
            raise SampleError(
                400,
                "We could not parse the JSON body of your request. The OpenAI API expects a "
                "JSON payload, but what was sent was not valid JSON.",
            ) from None
        if not isinstance(parsed, dict):
            raise SampleError(400, "The request body must be a JSON object.")
        return cast(JSON, parsed)

    def form(self) -> SampleForm:
        """The body as a multipart/form-data form, or a 400 if it is not one."""
        if not self.content_type.lower().startswith("multipart/form-data"):
            raise SampleError(400, "This endpoint expects a multipart/form-data body.")
        head = f"Content-Type: {self.content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
        message = BytesParser(policy=policy.HTTP).parsebytes(head + self.body)
        if not isinstance(message, EmailMessage) or not message.is_multipart():
            raise SampleError(400, "The multipart/form-data body could not be parsed.")
        form = SampleForm()
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            filename = part.get_filename()
            if filename is None:
                form.fields[name] = data.decode("utf-8", "replace")
            else:
                upload = FormFile(filename, part.get_content_type(), data)
                form.files.setdefault(name, []).append(upload)
        return form
