"""`Operation`: the one definition every surface of an upstream call is generated from.

A REST route, its OpenAPI operation, an MCP tool, a Power Platform action and a benchmark
case are all read off an `Operation`. Nothing about an operation is written anywhere else.
A connector declares its operations (e.g. app/connectors/podcasts/operations.py).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal
from urllib.parse import quote_plus, unquote_to_bytes

from pydantic import ValidationError

from app import answers
from app.errors import InvalidParameters, ParameterProblem, UpstreamUnavailable
from app.params import Params

__all__ = ["Operation", "by_name"]


@dataclass(frozen=True)
class Operation:
    """One upstream call, as callers see it."""

    name: str
    """operationId and tool name: unique, `^[A-Za-z0-9_-]{1,64}$`."""
    title: str
    """A few words for people (Power Platform summary, MCP tool title)."""
    description: str
    """For the model: what it does and when to use it (at most 300 characters)."""
    path: str
    """Path on this service, relative to the API prefix, e.g. `/episodes/{id}`."""
    upstream_path: str
    """Path on the upstream, relative to its base URL. Only validated ids fill it."""
    params: type[Params]
    answer: type[answers.Answer]
    fixed: Mapping[str, str] = field(default_factory=dict)
    """Upstream parameters set by the operation itself; callers cannot override them."""
    method: Literal["GET", "POST"] = "GET"
    """GET: parameters in the query (and path); POST: one JSON object body."""
    cache_ttl: int | None = None
    """Seconds its successful answers are served from the response cache (app/cache.py),
    for every caller alike; None: never cached (e.g. a random pick)."""

    @cached_property
    def path_params(self) -> frozenset[str]:
        return frozenset(
            name for _, name, _, _ in string.Formatter().parse(self.path) if name is not None
        )

    def parse(self, query: Iterable[tuple[str, str]], path: Mapping[str, str]) -> Params:
        """Validated parameters from the query items and path values, or `InvalidParameters`.

        Undeclared query parameters are ignored (they are never forwarded); a declared one
        given twice is an error rather than a silent pick; an empty value counts as absent.
        """
        declared = self.params.model_fields
        in_path = self.path_params
        values: dict[str, str] = {}
        problems: list[ParameterProblem] = []
        for key, value in query:
            if key not in declared or key in in_path or value == "":
                continue
            if key in values:
                problems.append(ParameterProblem(key, "given more than once"))
            values[key] = value
        values.update(path)
        if problems:
            raise InvalidParameters(problems)
        return self.validate(values)

    def parse_query_string(self, raw: bytes, path: Mapping[str, str]) -> Params:
        """`parse` for a raw query string (`a=1&b=%C3%A9`): a declared parameter whose value
        is not UTF-8 once percent-decoded is an `InvalidParameters` naming it, where a
        lenient decoder would have turned it into replacement characters."""
        items: list[tuple[str, str]] = []
        problems: list[ParameterProblem] = []
        for pair in raw.split(b"&"):
            if not pair:
                continue
            name_bytes, _, value_bytes = pair.partition(b"=")
            try:
                name = _percent_decoded(name_bytes)
            except UnicodeDecodeError:
                continue  # not a name any operation declares: ignored, like every unknown one
            try:
                items.append((name, _percent_decoded(value_bytes)))
            except UnicodeDecodeError:
                if name in self.params.model_fields:
                    problems.append(ParameterProblem(name, "must be UTF-8 text"))
        if problems:
            raise InvalidParameters(problems)
        return self.parse(items, path)

    def validate(self, values: Mapping[str, Any]) -> Params:
        """Validated parameters from already-typed values (an MCP tool call's arguments)."""
        try:
            return self.params.model_validate(values)
        except ValidationError as error:
            raise InvalidParameters(_problems(error)) from None

    def upstream_request(self, parsed: Params) -> tuple[str, str]:
        """The upstream path and query string for validated parameters, the fixed ones
        included: encoded once, in name order, so it is also the cache key's (one answer
        whatever order the caller gave them in)."""
        query = {
            key: str(value)
            for key, value in parsed.model_dump(exclude_none=True).items()
            if key not in self.path_params
        }
        path = self.upstream_path.format(**{key: getattr(parsed, key) for key in self.path_params})
        return path, "&".join(
            f"{_quoted(key)}={_quoted(value)}"
            for key, value in sorted((query | dict(self.fixed)).items())
        )

    def compact(self, upstream_body: bytes) -> answers.Compact:
        """The compact answer for the upstream's JSON body (`encode_answer` it with
        `self.answer`), or `UpstreamUnavailable`."""
        try:
            return answers.read(self.answer, upstream_body)
        except ValidationError as error:
            kinds = {item["type"] for item in error.errors(include_url=False)}
            what = "is not JSON" if "json_invalid" in kinds else "has another shape"
            detail = f"{self.name}: upstream answer {what} ({', '.join(sorted(kinds))})"
            raise UpstreamUnavailable(detail=detail) from None


# Pydantic's messages name the rule (a pattern such as `^[0-9a-f]{32}$`, the allowed
# values) but never the input (`include_input=False`); only control characters, which
# could forge a log line or a header, are dropped, and the length is capped.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


# What `quote_plus` leaves as it is: a value of only these needs no call to it.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def _quoted(text: str) -> str:
    """`urllib.parse.quote_plus(text)` (as `urlencode` encodes), without its work when
    there is nothing to encode (names, numbers, most queries)."""
    return text if _UNRESERVED.fullmatch(text) else quote_plus(text)


def _percent_decoded(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")


def _problems(error: ValidationError) -> list[ParameterProblem]:
    found = []
    for item in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "query"
        found.append(ParameterProblem(where, _CONTROL.sub("", item["msg"])[:200]))
    return found


def by_name(operations: Iterable[Operation]) -> dict[str, Operation]:
    """`operations` keyed by name; ValueError if two share one."""
    found: dict[str, Operation] = {}
    for operation in operations:
        if operation.name in found:
            raise ValueError(f"two operations are named {operation.name!r}")
        found[operation.name] = operation
    return found
