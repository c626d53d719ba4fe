"""The allowlist: every OpenAI API route the gateway forwards, and nothing else.

A request reaches the upstream only if its method and path match a row here, each path
parameter matches `PARAM` (no `/`, no `..`, no percent-encoding) and its query keeps
only the row's declared names, each validated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

__all__ = [
    "PARAM",
    "PREFIXES",
    "ROUTES",
    "Body",
    "Match",
    "MethodNotAllowed",
    "NoRoute",
    "Route",
    "clean_query",
    "match",
]

MiB: Final = 1024 * 1024

PARAM: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
"""A path parameter: model ids (`ft:gpt-4o-mini:org::abc`), file and job ids."""

PREFIXES: Final = ("/openai/v1", "/openai")
"""Both answer: an SDK configured without `/v1` asks for `/openai/models`."""

_QUERY_VALUES: Final = {
    "after": re.compile(r"^[A-Za-z0-9_-]{1,128}$"),
    "limit": re.compile(r"^(?:[1-9][0-9]?|100)$"),  # 1..100, OpenAI's own bounds
}


class Body(Enum):
    NONE = "none"  # nothing is forwarded, whatever the caller sent
    JSON = "json"  # one JSON object, forwarded byte for byte
    MULTIPART = "multipart"  # multipart/form-data, forwarded byte for byte
    JSON_OR_MULTIPART = "json_or_multipart"  # chosen by the request's Content-Type


@dataclass(frozen=True)
class Route:
    """One forwarded route. `template` is relative to the prefix and to the upstream base."""

    method: str
    template: str
    body: Body = Body.NONE
    streamable: bool = False  # `"stream": true` in the JSON body asks for SSE
    binary: bool = False  # the answer is bytes (audio), not JSON
    needs_model: bool = False  # a JSON body without `model` gets OPENAI_DEFAULT_MODEL
    query: tuple[str, ...] = ()  # the query parameters forwarded; others are dropped
    max_body: int = 0  # bytes; 0 for JSON (the OPENAI_MAX_JSON_BYTES setting applies)
    segments: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.template.strip("/").split("/")))


# Multipart caps are OpenAI's documented limits plus 1 MiB for the form's other fields:
# audio files 25 MB; image edits up to 50 MB (gpt-image-1); variations 4 MB PNG (dall-e-2).
# Files are up to 512 MB upstream, but the gateway holds a body in memory to check it
# before forwarding: 100 MiB here (larger files belong to the Uploads API, not routed).
ROUTES: Final[tuple[Route, ...]] = (
    Route("GET", "/models"),
    Route("GET", "/models/{model+}"),  # vLLM serves Hugging Face ids: org/name
    Route("POST", "/chat/completions", Body.JSON, streamable=True, needs_model=True),
    Route("POST", "/responses", Body.JSON, streamable=True, needs_model=True),
    Route("POST", "/completions", Body.JSON, streamable=True, needs_model=True),
    Route("POST", "/embeddings", Body.JSON, needs_model=True),
    Route("POST", "/moderations", Body.JSON),
    Route("POST", "/images/generations", Body.JSON, streamable=True),
    Route("POST", "/images/edits", Body.JSON_OR_MULTIPART, streamable=True, max_body=51 * MiB),
    Route("POST", "/images/variations", Body.MULTIPART, max_body=5 * MiB),
    Route("POST", "/audio/speech", Body.JSON, binary=True),
    Route("POST", "/audio/transcriptions", Body.MULTIPART, streamable=True, max_body=26 * MiB),
    Route("POST", "/audio/translations", Body.MULTIPART, max_body=26 * MiB),
    Route("POST", "/files", Body.MULTIPART, max_body=100 * MiB),
    Route("GET", "/files/{file_id}"),
    Route("POST", "/fine_tuning/jobs", Body.JSON),
    Route("GET", "/fine_tuning/jobs", query=("after", "limit")),
    Route("GET", "/fine_tuning/jobs/{job_id}"),
    Route("POST", "/fine_tuning/jobs/{job_id}/cancel"),
    Route("GET", "/fine_tuning/jobs/{job_id}/events", query=("after", "limit")),
)


@dataclass(frozen=True)
class Match:
    route: Route
    path: str  # the upstream path, relative to the base URL, e.g. /models/gpt-4o


@dataclass(frozen=True)
class MethodNotAllowed:
    allow: tuple[str, ...]


@dataclass(frozen=True)
class NoRoute:
    pass


_MAX_REST = 3  # segments a `{name+}` parameter may take: `org/name` model ids, and a margin


def _fits(route: Route, parts: list[str]) -> bool:
    if route.segments and route.segments[-1].endswith("+}"):
        head = len(route.segments) - 1
        if not head < len(parts) <= head + _MAX_REST:
            return False
        rest = parts[head:]
        if not all(PARAM.match(part) and ".." not in part for part in rest):
            return False
        return _fits(Route(route.method, "/" + "/".join(route.segments[:head])), parts[:head])
    if len(route.segments) != len(parts):
        return False
    for template, part in zip(route.segments, parts, strict=True):
        if template.startswith("{"):
            if not PARAM.match(part) or ".." in part:
                return False
        elif template != part:
            return False
    return True


def match(method: str, path: str) -> Match | MethodNotAllowed | NoRoute:
    """The route for `method` and `path` (already stripped of its prefix, starting with /).

    `path` must be the decoded path of a request whose raw path held no percent-escape:
    the caller checks that, so `/` and `.` here are literal.
    """
    if not path.startswith("/") or path.endswith("/"):
        return NoRoute()
    fitting = _FITTING_FIXED.get(path)
    if fitting is None:
        fitting = _fitting(path)
    for route in fitting:
        if route.method == method:
            return Match(route, path)
    if fitting:
        return MethodNotAllowed(tuple(sorted({route.method for route in fitting})))
    return NoRoute()


def _fitting(path: str) -> tuple[Route, ...]:
    parts = path[1:].split("/")
    return tuple(route for route in ROUTES if _fits(route, parts))


_FITTING_FIXED: Final = {
    route.template: _fitting(route.template) for route in ROUTES if "{" not in route.template
}
"""The routes fitting each parameter-free template, found once (the common requests)."""


def clean_query(route: Route, items: list[tuple[str, str]]) -> list[tuple[str, str]] | str:
    """The declared query parameters of `items`, validated; or the name of the bad one.

    Undeclared names are dropped (an Azure-style client adds `api-version` everywhere);
    a declared one given twice or not matching its pattern is refused.
    """
    kept: list[tuple[str, str]] = []
    for name, value in items:
        if name not in route.query:
            continue
        if any(seen == name for seen, _ in kept) or not _QUERY_VALUES[name].match(value):
            return name
        kept.append((name, value))
    return kept
