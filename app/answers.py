"""Compact answers: the base model, the field types connectors build theirs from, and
how an upstream's JSON becomes one (validated in Rust, finished, encoded under a cap).

Each model is both the published JSON schema of an answer and its transformation:
validation aliases rename the upstream's `_original` fields, undeclared upstream fields
(`email`, `rss`, `transcript`, ...) are dropped, text is made plain and capped, lists are
capped. They validate the upstream's JSON bytes directly (pydantic-core, in Rust): a
record that breaks the contract is left out of its list, or refused if it is the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, get_args

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    StringConstraints,
)
from pydantic_core import core_schema, to_json

from app.text import plain_text

__all__ = [
    "MAX_ANSWER_CHARS",
    "OR_NULL",
    "Answer",
    "Blurb",
    "Flag",
    "Id",
    "Int",
    "Link",
    "LongText",
    "Short",
    "Title",
    "either",
    "encode_answer",
    "finish",
    "first",
    "halve_longest_list",
]

MAX_ANSWER_CHARS = 100_000
"""ChatGPT fails on answers of 100,000 characters or more; every answer stays below."""


@dataclass(frozen=True, slots=True)
class _PlainText:
    """Field metadata: after validation, `finish` makes the text plain and at most `limit`
    characters long (`plain_text`), on the records an answer keeps.

    Validation itself runs in Rust and only checks types, so a list of any length costs
    little; cleaning text (the expensive part) then runs on the few items each list keeps,
    never on the ones it drops. `finish` calls `plain_text` itself, not a closure per field:
    about 40 fields a search answer, on every miss.
    """

    limit: int


class _NullOnError:
    """Annotation: a value of the wrong type or out of bounds becomes null, in Rust.

    For optional fields: one odd value (a link without a scheme, an over-long id, a
    sentence where a number belongs) costs that field, not the whole record.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_default_schema(handler(source), default=None, on_error="default")


OR_NULL = _NullOnError()


def first(limit: int) -> AfterValidator:
    return AfterValidator(lambda items: items[:limit])


def either(name: str) -> AliasChoices:
    # Search results say `title_original`; records say `title`. Accept both, publish one.
    return AliasChoices(f"{name}_original", name)


# Checked by pydantic-core (Rust): this runs for every field of every upstream record.
# An unusable optional value becomes null (`OR_NULL`) and the record stays; a record that
# is not an object is left out of a list (OnErrorOmit) or, as the whole answer, refused
# (502). Python runs only in `finish` (text, on the records kept) and for the scores.
Title = Annotated[str | None, _PlainText(200)]
Blurb = Annotated[str | None, _PlainText(300)]
LongText = Annotated[str | None, _PlainText(2000)]
Link = Annotated[
    Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2048)] | None, OR_NULL
]
Id = Annotated[Annotated[str, StringConstraints(max_length=64)] | None, OR_NULL]
Short = Annotated[Annotated[str, StringConstraints(max_length=100)] | None, OR_NULL]
Int = Annotated[int | None, OR_NULL]
Flag = Annotated[bool | None, OR_NULL]


class Answer(BaseModel):
    """Base of every compact answer: unknown upstream fields are ignored, i.e. dropped."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What `finish` does to one answer class: its own text fields (name, limit), then its
    records."""

    texts: tuple[tuple[str, int], ...]
    records: tuple[str, ...]


_PLANS: dict[type[Answer], _Plan] = {}


def _holds_answers(annotation: object) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, Answer):
        return True
    return any(_holds_answers(arg) for arg in get_args(annotation))


def _plan_of(cls: type[Answer]) -> _Plan:
    texts: list[tuple[str, int]] = []
    records: list[str] = []
    for name, info in cls.model_fields.items():
        text = next((m for m in info.metadata if isinstance(m, _PlainText)), None)
        if text is not None:
            texts.append((name, text.limit))
        elif _holds_answers(info.annotation):
            records.append(name)  # a nested record, or a list of them
    plan = _PLANS[cls] = _Plan(tuple(texts), tuple(records))
    return plan


def finish(answer: Answer) -> Answer:
    """`answer` with its text made plain, in place, in what it kept (see `_PlainText`)."""
    plan = _PLANS.get(type(answer)) or _plan_of(type(answer))
    values = answer.__dict__
    for name, limit in plan.texts:
        value = values[name]
        if value is not None:
            values[name] = plain_text(value, limit)
    for name in plan.records:
        value = values[name]
        if isinstance(value, list):
            for item in value:
                finish(item)
        elif value is not None:
            finish(value)
    return answer


def encode_answer(answer: Answer, limit: int = MAX_ANSWER_CHARS) -> bytes:
    """`answer` as compact JSON, at most `limit` characters whatever the upstream sent.

    Capped fields keep almost every answer far below the limit; if one is still too large,
    the longest list in it is halved until it fits (a shorter page beats a failed call).
    """
    # Bytes straight from pydantic-core: `model_dump_json` decodes them to a str that would
    # be encoded back (half the encoding's cost once the text holds a non-ASCII character).
    body = type(answer).__pydantic_serializer__.to_json(answer, exclude_none=True)
    if len(body) < limit:  # byte length >= character length, so this is conservative
        return body
    data = answer.model_dump(mode="json", exclude_none=True)
    while len(body) >= limit and halve_longest_list(data):
        body = to_json(data)
    return body


def halve_longest_list(data: Any) -> bool:
    """Halve the longest list anywhere in `data` (JSON-like, in place); False if none is left."""
    longest: list[Any] | None = None
    stack = [data]
    while stack:
        node = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if isinstance(node, list) and node and (longest is None or len(node) > len(longest)):
            longest = node
        if isinstance(node, dict | list):
            stack.extend(child for child in children if isinstance(child, dict | list))
    if not longest:
        return False
    del longest[len(longest) // 2 :]
    return True
