"""Token usage read off OpenAI answers as they are relayed, for the caller's quota.

- A JSON answer (chat/completions, completions, responses, embeddings ...): its `usage`
  object, read once the body is complete (bodies over `MAX_JSON_USAGE` are not read).
- A chat/completions or completions stream: the usage-only chunk (`"choices": []` with
  `usage`) that `stream_options.include_usage` makes the upstream send last. The gateway
  asks for it on every stream (`with_stream_usage`) and, when the caller did not, removes
  that chunk from what the caller receives (`strip_usage_chunk`).
- A Responses API stream: `response.usage` of its `response.completed` (or `incomplete`,
  `failed`) event.

Input tokens count as prompt tokens and output tokens as completion tokens.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic_core import from_json

__all__ = ["MAX_JSON_USAGE", "UsageMeter"]

MAX_JSON_USAGE = 2 * 1024 * 1024
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_FINAL_RESPONSE = ("response.completed", "response.incomplete", "response.failed")


def _tokens(usage: Any) -> tuple[int, int] | None:
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens", 0))
    completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return max(0, prompt), max(0, completion)


def _data(event: bytes) -> Any:
    lines = [
        line[5:].removeprefix(b" ") for line in event.splitlines() if line.startswith(b"data:")
    ]
    try:
        return json.loads(b"\n".join(lines))
    except (ValueError, RecursionError):
        return None


class UsageMeter:
    """Watches one answer: `sse` events through `events()`, or a JSON body through `body()`
    and `finish()`. `tokens` is (prompt, completion) once found."""

    def __init__(self, *, sse: bool, strip_usage_chunk: bool = False) -> None:
        self.sse = sse
        self.strip_usage_chunk = strip_usage_chunk
        self.tokens: tuple[int, int] | None = None
        self._kept: list[bytes] | None = []
        self._size = 0

    def events(self, data: bytes) -> bytes:
        """`data` (whole SSE events) as the caller should get it, the usage read on the way."""
        if b'"usage"' not in data:
            return data  # the common case: nothing to read, nothing parsed
        kept: list[bytes] = []
        start = 0
        for end in _EVENT_END.finditer(data):
            event = data[start : end.end()]
            start = end.end()
            if b'"usage"' in event and self._drop(_data(event)):
                continue
            kept.append(event)
        kept.append(data[start:])
        return b"".join(kept)

    def _drop(self, value: Any) -> bool:
        if not isinstance(value, dict):
            return False
        if value.get("type") in _FINAL_RESPONSE and isinstance(value.get("response"), dict):
            self.tokens = _tokens(value["response"].get("usage")) or self.tokens
            return False
        found = _tokens(value.get("usage"))
        if found is None:
            return False
        self.tokens = found
        return self.strip_usage_chunk and value.get("choices") == []

    def body(self, chunk: bytes) -> None:
        """One more piece of a JSON answer."""
        if self._kept is None:
            return
        self._size += len(chunk)
        if self._size > MAX_JSON_USAGE:
            self._kept = None
            return
        self._kept.append(chunk)

    def finish(self) -> None:
        """The JSON answer is complete: read its `usage`."""
        if self.sse or not self._kept:
            return
        whole = b"".join(self._kept)
        try:
            # pydantic-core's parser first (~1 us for a chat answer, json's ~3), json's
            # where it refuses what json reads (a lone surrogate's escape).
            value = from_json(whole)
        except ValueError:
            try:
                value = json.loads(whole)
            except (ValueError, RecursionError):
                return
        if isinstance(value, dict):
            self.tokens = _tokens(value.get("usage")) or self.tokens
