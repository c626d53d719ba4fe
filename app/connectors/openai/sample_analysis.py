"""Sample answers for the routes that analyse input: embeddings and moderations.

Embeddings are unit vectors seeded from SHA-256 of each input (a string, or a token array), so
the same text always gets the same vector; `dimensions` is honoured (default 1536, 3072 for
`text-embedding-3-large`), and so is `encoding_format=base64` (little-endian float32), which
the `openai` SDK asks for by default. The float values are float32-exact in both formats.
Moderations flag an input only if it contains a word of a short, obvious list.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
from typing import Any

from app.connectors.openai.sample_text import text_of
from app.connectors.openai.sample_wire import (
    JSON,
    Reply,
    SampleRequest,
    digest,
    estimate_tokens,
    invalid,
    json_reply,
    missing,
)

__all__ = ["embedding_vector", "embeddings", "moderations"]

_MAX_DIMENSIONS = {"text-embedding-3-large": 3072}
_DEFAULT_DIMENSIONS = 1536

_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
# The words that trip a category; anything else is not flagged.
_FLAG_WORDS = {
    "idiot": "harassment",
    "hate": "hate",
    "bomb": "illicit/violent",
    "suicide": "self-harm",
    "porn": "sexual",
    "kill": "violence",
    "murder": "violence",
}


def embedding_vector(seed: str, dimensions: int) -> list[float]:
    """A unit-length vector (float32-exact values) determined by `seed` alone."""
    raw = b"".join(
        hashlib.sha256(f"{seed}\x00{block}".encode()).digest()
        for block in range(-(-dimensions * 4 // 32))
    )
    values = [v / 2**31 - 1.0 for v in struct.unpack(f"<{dimensions}I", raw[: dimensions * 4])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _inputs(given: Any) -> list[tuple[str, int]]:
    # A string, a list of strings, a token array, or a list of token arrays: each its own seed,
    # with its token count (counted for token arrays, estimated from words for text).
    if isinstance(given, str):
        items: list[Any] = [given]
    elif isinstance(given, list) and given and all(isinstance(t, int) for t in given):
        items = [given]
    elif isinstance(given, list) and given:
        items = given
    else:
        raise invalid("input", "Invalid value for 'input': a string or a non-empty array.")
    seeds: list[tuple[str, int]] = []
    for item in items:
        if isinstance(item, str) and item:
            seeds.append((item, max(1, estimate_tokens(item))))
        elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
            seeds.append((json.dumps(item), len(item)))
        else:
            raise invalid("input", "Invalid value for 'input': empty string or bad token array.")
    return seeds


def embeddings(request: SampleRequest) -> Reply:
    """`POST /embeddings`: one `embedding` per input, as float lists or base64 float32."""
    body = request.json()
    model = body.get("model")
    if not model or not isinstance(model, str):
        raise missing("model")
    if "input" not in body:
        raise missing("input")
    seeds = _inputs(body["input"])
    most = _MAX_DIMENSIONS.get(model, _DEFAULT_DIMENSIONS)
    dimensions = body.get("dimensions", most)
    if not isinstance(dimensions, int) or not 1 <= dimensions <= most:
        raise invalid("dimensions", f"Invalid value for 'dimensions': expected 1 to {most}.")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise invalid("encoding_format", "Invalid value for 'encoding_format': float or base64.")
    data = []
    for index, (seed, _) in enumerate(seeds):
        vector = embedding_vector(f"{model}\x00{seed}", dimensions)
        encoded: list[float] | str = vector
        if encoding == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(count for _, count in seeds)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return json_reply({"object": "list", "data": data, "model": model, "usage": usage})


def _moderation(text: str, image: bool) -> JSON:
    words = set(re.findall(r"[a-z]+", text.lower()))
    hits = {category for word, category in _FLAG_WORDS.items() if word in words}
    kinds = ["text", "image"] if image else ["text"]
    return {
        "flagged": bool(hits),
        "categories": {c: c in hits for c in _CATEGORIES},
        "category_scores": {c: 0.97 if c in hits else 0.0001 for c in _CATEGORIES},
        "category_applied_input_types": {c: kinds if c in hits else [] for c in _CATEGORIES},
    }


def moderations(request: SampleRequest) -> Reply:
    """`POST /moderations`: one result per input (a string, strings, or multimodal parts)."""
    body = request.json()
    given = body.get("input")
    if given is None:
        raise missing("input")
    model = body.get("model") or "omni-moderation-latest"
    if isinstance(given, str):
        results = [_moderation(given, False)]
    elif isinstance(given, list) and given and all(isinstance(i, str) for i in given):
        results = [_moderation(item, False) for item in given]
    elif isinstance(given, list) and given and all(isinstance(i, dict) for i in given):
        # Multimodal parts are one input: their text together, images noted.
        image = any(part.get("type") == "image_url" for part in given)
        results = [_moderation(text_of(given), image)]
    else:
        raise invalid("input", "Invalid value for 'input': a string or an array of strings/parts.")
    rid = "modr-sample" + digest(request.body)[:24]
    return json_reply({"id": rid, "model": model, "results": results})
