"""Sample answers for the text routes: chat completions, Responses, legacy completions.

The reply is derived from the last user message, so the same request always gets the same
answer, and it starts with "[sample data]". Token counts are estimated from words
(`estimate_tokens`). `max_tokens` / `max_completion_tokens` / `max_output_tokens` cut the reply
short, with `finish_reason: "length"`. Streams send the reply in several pieces.
"""

from __future__ import annotations

import re
from typing import Any

from app.connectors.openai.sample_wire import (
    JSON,
    SAMPLE_EPOCH,
    Reply,
    SampleRequest,
    data_event,
    digest,
    estimate_tokens,
    invalid,
    json_reply,
    missing,
    named_event,
    sse_reply,
)

__all__ = ["chat_completion", "completion", "response", "sample_reply", "text_of"]

_PIECES = 5


def text_of(content: Any) -> str:
    """The plain text of a message content: a string, or a list of text parts/items."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(text_of(part) for part in content)
    if isinstance(content, dict):
        if isinstance(content.get("text"), str):
            return str(content["text"])
        return text_of(content.get("content"))
    return ""


def sample_reply(prompt: str) -> str:
    """The canned reply to `prompt`: says it is sample data and quotes the prompt."""
    said = " ".join(prompt.split())
    if len(said) > 120:
        said = said[:117] + "..."
    return f'[sample data] You said: "{said}". This is a canned reply; no model was called.'


def _limit(text: str, max_tokens: Any) -> tuple[str, str]:
    # Keep whole words while the estimate fits, as a model stops at its token budget.
    if not isinstance(max_tokens, int) or estimate_tokens(text) <= max_tokens:
        return text, "stop"
    words = text.split(" ")
    while len(words) > 1 and estimate_tokens(" ".join(words)) > max_tokens:
        words.pop()
    return " ".join(words), "length"


def _pieces(text: str) -> list[str]:
    # Whitespace stays attached to the following word, so the pieces join back to `text`.
    words = re.findall(r"\s*\S+", text) or [text]
    size = -(-len(words) // _PIECES)
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def _model(body: JSON) -> str:
    model = body.get("model")
    if not model:
        raise missing("model")
    if not isinstance(model, str):
        raise invalid("model", "Invalid type for 'model': expected a string.")
    return model


def _stream_flags(body: JSON) -> tuple[bool, bool]:
    stream = body.get("stream") is True
    options = body.get("stream_options")
    if options is not None and not stream:
        raise invalid(
            "stream_options",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        )
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return stream, include_usage


def _usage(prompt: int, completion: int) -> JSON:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(request: SampleRequest) -> Reply:
    """`POST /chat/completions`: one `chat.completion`, or a `chat.completion.chunk` stream."""
    body = request.json()
    model = _model(body)
    messages = body.get("messages")
    if messages is None:
        raise missing("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "Invalid value for 'messages': expected a non-empty array.")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise invalid("messages", "Invalid value for 'messages': each needs a 'role'.")
    stream, include_usage = _stream_flags(body)
    users = [m for m in messages if m["role"] == "user"] or messages
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    text, finish = _limit(sample_reply(text_of(users[-1].get("content"))), limit)
    prompt_tokens = sum(estimate_tokens(text_of(m.get("content"))) for m in messages)
    usage = _usage(prompt_tokens, estimate_tokens(text))
    head = {
        "id": "chatcmpl-sample" + digest(request.body)[:24],
        "created": SAMPLE_EPOCH,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_sample",
    }
    if not stream:
        message: JSON = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        return json_reply(
            {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        )

    def chunk(delta: JSON, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        extra = {"usage": None} if include_usage else {}
        return data_event({**head, "object": "chat.completion.chunk", "choices": [choice], **extra})

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": piece}) for piece in _pieces(text)]
    events.append(chunk({}, finish))
    if include_usage:
        events.append(
            data_event({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        )
    events.append(data_event("[DONE]"))
    return sse_reply(events)


def completion(request: SampleRequest) -> Reply:
    """`POST /completions` (legacy): one `text_completion`, or a stream of them ending [DONE]."""
    body = request.json()
    model = _model(body)
    prompt = body.get("prompt")
    if prompt is None:
        raise missing("prompt")
    stream, include_usage = _stream_flags(body)
    prompt_text = prompt[0] if isinstance(prompt, list) and prompt else prompt
    text, finish = _limit(" " + sample_reply(text_of(prompt_text)), body.get("max_tokens"))
    usage = _usage(estimate_tokens(text_of(prompt)), estimate_tokens(text))
    head = {
        "id": "cmpl-sample" + digest(request.body)[:24],
        "object": "text_completion",
        "created": SAMPLE_EPOCH,
        "model": model,
        "system_fingerprint": "fp_sample",
    }

    def choice(piece: str, finish_reason: str | None) -> JSON:
        return {"index": 0, "text": piece, "logprobs": None, "finish_reason": finish_reason}

    if not stream:
        return json_reply({**head, "choices": [choice(text, finish)], "usage": usage})
    pieces = _pieces(text)
    events = [
        data_event({**head, "choices": [choice(p, finish if i == len(pieces) - 1 else None)]})
        for i, p in enumerate(pieces)
    ]
    if include_usage:
        events.append(data_event({**head, "choices": [], "usage": usage}))
    events.append(data_event("[DONE]"))
    return sse_reply(events)


def _response_object(rid: str, body: JSON, status: str, output: list[JSON]) -> JSON:
    return {
        "id": rid,
        "object": "response",
        "created_at": SAMPLE_EPOCH,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def response(request: SampleRequest) -> Reply:
    """`POST /responses`: one `response`, or its typed event stream (`event:` + `data:`)."""
    body = request.json()
    _model(body)
    given = body.get("input")
    if given is None:
        raise missing("input")
    stream = body.get("stream") is True
    items = given if isinstance(given, list) else [given]
    users = [i for i in items if not isinstance(i, dict) or i.get("role", "user") == "user"]
    text, finish = _limit(
        sample_reply(text_of(users[-1] if users else "")), body.get("max_output_tokens")
    )
    input_tokens = estimate_tokens(text_of(given)) + estimate_tokens(
        str(body.get("instructions") or "")
    )
    rid = "resp_sample" + digest(request.body)[:24]
    item_id = "msg_sample" + digest(request.body, "item")[:24]
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    item = {"id": item_id, "type": "message", "status": "completed", "role": "assistant"}
    status = "completed" if finish == "stop" else "incomplete"
    done = _response_object(rid, body, status, [{**item, "content": [part]}])
    done["usage"] = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": estimate_tokens(text),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + estimate_tokens(text),
    }
    if status == "incomplete":
        done["incomplete_details"] = {"reason": "max_output_tokens"}
    if not stream:
        return json_reply(done)
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    opening = _response_object(rid, body, "in_progress", [])
    steps: list[tuple[str, JSON]] = [
        ("response.created", {"response": opening}),
        ("response.in_progress", {"response": opening}),
        (
            "response.output_item.added",
            {"output_index": 0, "item": {**item, "status": "in_progress", "content": []}},
        ),
        ("response.content_part.added", {**where, "part": {**part, "text": ""}}),
        *[
            ("response.output_text.delta", {**where, "delta": p, "logprobs": []})
            for p in _pieces(text)
        ],
        ("response.output_text.done", {**where, "text": text, "logprobs": []}),
        ("response.content_part.done", {**where, "part": part}),
        ("response.output_item.done", {"output_index": 0, "item": {**item, "content": [part]}}),
        (f"response.{status}", {"response": done}),
    ]
    return sse_reply(
        named_event(kind, {"type": kind, **payload, "sequence_number": n})
        for n, (kind, payload) in enumerate(steps)
    )
