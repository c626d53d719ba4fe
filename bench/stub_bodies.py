"""What the bench's upstream stub answers: two podcast search bodies and OpenAI chat answers.

- `search_answer("short")`: today's stub, the bundled sample data (descriptions of about
  180 characters of light markup).
- `search_answer("realistic")`: the same ten results with HTML descriptions of 700-2,000
  characters (paragraphs, links, lists, entities, show notes), as the real upstream sends
  for episodes and podcasts; deterministic (seeded).
- `chat_json()` / `chat_sse()`: a chat completion, whole and as server-sent events.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BODIES = ("short", "realistic")

_WORDS = (
    "we talk about the history of distributed systems with our guest who spent a decade "
    "building databases at scale and now teaches engineering leadership to new managers "
    "this week also the story behind the launch sponsors listener questions and more"
).split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 18))]
    return " ".join(words).capitalize() + "."


def realistic_description(rng: random.Random) -> str:
    """HTML show notes of 700-2,000 characters, in the shapes podcast hosts publish."""
    target = rng.randint(700, 2000)
    parts: list[str] = []
    while sum(map(len, parts)) < target - 150:
        kind = rng.random()
        if kind < 0.45:
            parts.append(f"<p>{_sentence(rng)} {_sentence(rng)}</p>")
        elif kind < 0.6:
            link = f"https://example.com/notes/{rng.randint(1, 9999)}"
            parts.append(f'<p>Links: <a href="{link}" rel="noopener">{link}</a> &amp; more</p>')
        elif kind < 0.75:
            items = "".join(
                f"<li>{rng.randint(0, 59):02d}:00 {_sentence(rng)}</li>" for _ in range(3)
            )
            parts.append(f"<ul>{items}</ul>")
        elif kind < 0.9:
            parts.append(f"<p><strong>Sponsor</strong>: {_sentence(rng)}<br />It&#39;s free.</p>")
        else:
            parts.append(f"<p>{_sentence(rng)} &mdash; <em>{_sentence(rng)}</em></p>")
    text = "".join(parts)
    return text[:2000] if len(text) > 2000 else text


def search_answer(body: str = "short") -> bytes:
    """A real upstream-shaped 10-result episode search (see the module docstring)."""
    sys.path.insert(0, str(ROOT))
    import httpx

    from app.connectors.podcasts.sample import SampleTransport

    async def fetch() -> bytes:
        transport = SampleTransport()
        request = httpx.Request("GET", "http://x/search?q=the&type=episode&page_size=10")
        response = await transport.handle_async_request(request)
        return await response.aread()

    answer = json.loads(asyncio.run(fetch()))
    assert len(answer["results"]) == 10
    if body == "realistic":
        rng = random.Random(11)
        for result in answer["results"]:
            description = realistic_description(rng)
            result["description_original"] = description
            result["description_highlighted"] = description
            result["podcast"]["description"] = realistic_description(rng)
    return json.dumps(answer).encode()


CHAT_TEXT = "Hello! This is the bench's stub answering a chat completion with a short text."


def chat_json() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1760000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": CHAT_TEXT, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 16, "total_tokens": 25},
            "system_fingerprint": "fp_bench",
        }
    ).encode()


def sse_chunk(content: str | None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1760000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def chat_sse() -> bytes:
    """The same answer as `chat_json`, as 16 SSE chunks and `[DONE]`."""
    words = CHAT_TEXT.split(" ")
    chunks = [sse_chunk(("" if i == 0 else " ") + w) for i, w in enumerate(words)]
    return b"".join([*chunks, sse_chunk(None, "stop"), b"data: [DONE]\n\n"])
