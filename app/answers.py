"""Compact answers: the base model, the field types connectors build theirs from, and
how an upstream's JSON becomes one (validated in Rust, finished, encoded under a cap).

Each model is both the published JSON schema of an answer and its transformation:
validation aliases rename the upstream's `_original` fields, undeclared upstream fields
(`email`, `rss`, `transcript`, ...) are dropped, text is made plain and capped, lists are
capped. They validate the upstream's JSON bytes directly (pydantic-core, in Rust): a
record that breaks the contract is left out of its list, or refused if it is the answer.
At run time each model is applied through its mirror, a TypedDict derived from it with the
same fields and rules, which validates into plain dicts (`read`, `Compact`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, NotRequired, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StringConstraints,
    TypeAdapter,
)
from pydantic_core import PydanticUndefined, core_schema
from typing_extensions import TypedDict

from app.text import plain_text

__all__ = [
    "MAX_ANSWER_CHARS",
    "OR_NULL",
    "Answer",
    "Blurb",
    "Compact",
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
    "read",
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


Compact = dict[str, Any]
"""An answer as `read` returns it: its model's fields, in their order, as plain values (a
record is a dict in its own model's shape); an unset optional field is None or absent."""


@dataclass(frozen=True, slots=True)
class _Reader:
    """How one answer class is read: the validator and serializer of its mirror (a
    TypedDict with the model's fields, types, rules and defaults), and what `finish` does
    to it: its own text fields (name, limit), then its records (name, record class)."""

    adapter: TypeAdapter[Any]
    texts: tuple[tuple[str, int], ...]
    records: tuple[tuple[str, type[Answer]], ...]


_READERS: dict[type[Answer], _Reader] = {}
_MIRROR_CONFIG = ConfigDict(extra="ignore", populate_by_name=True)
_TYPED_DICT: Any = TypedDict  # called with a name and fields: a class built at run time


def read(cls: type[Answer], upstream_body: bytes) -> Compact:
    """The answer `cls` describes, validated from the upstream's JSON bytes (in Rust) and
    finished; pydantic's `ValidationError` when the body is not that answer."""
    reader = _READERS.get(cls) or _reader_of(cls)
    return finish(reader.adapter.validate_json(upstream_body), cls)


def finish(values: Compact, cls: type[Answer]) -> Compact:
    """`values` (an answer of `cls`) with its text made plain, in place, in what it kept
    (see `_PlainText`)."""
    reader = _READERS.get(cls) or _reader_of(cls)
    for name, limit in reader.texts:
        value = values.get(name)
        if value is not None:
            values[name] = plain_text(value, limit)
    for name, record in reader.records:
        value = values.get(name)
        if isinstance(value, list):
            for item in value:
                finish(item, record)
        elif value is not None:
            finish(value, record)
    return values


def encode_answer(answer: Compact, cls: type[Answer], limit: int = MAX_ANSWER_CHARS) -> bytes:
    """`answer` (of `cls`) as compact JSON, at most `limit` characters whatever the upstream
    sent.

    Capped fields keep almost every answer far below the limit; if one is still too large,
    the longest list in it is halved, in place, until it fits (a shorter page beats a
    failed call).
    """
    serializer = (_READERS.get(cls) or _reader_of(cls)).adapter.serializer
    # Bytes straight from pydantic-core: `model_dump_json` decodes them to a str that would
    # be encoded back (half the encoding's cost once the text holds a non-ASCII character).
    body: bytes = serializer.to_json(answer, exclude_none=True)
    while len(body) >= limit and halve_longest_list(answer):  # bytes >= characters
        body = serializer.to_json(answer, exclude_none=True)
    return body


def _reader_of(cls: type[Answer]) -> _Reader:
    texts: list[tuple[str, int]] = []
    records: list[tuple[str, type[Answer]]] = []
    for name, info in cls.model_fields.items():
        text = next((m for m in info.metadata if isinstance(m, _PlainText)), None)
        record = _record_class(info.annotation)
        if text is not None:
            texts.append((name, text.limit))
        elif record is not None:
            records.append((name, record))  # a nested record, or a list of them
    reader = _READERS[cls] = _Reader(TypeAdapter(_mirror(cls)), tuple(texts), tuple(records))
    return reader


def _record_class(annotation: object) -> type[Answer] | None:
    if isinstance(annotation, type) and issubclass(annotation, Answer):
        return annotation
    return next(filter(None, map(_record_class, get_args(annotation))), None)


@functools.cache  # one mirror a class: records nested in several answers share theirs
def _mirror(cls: type[Answer]) -> Any:
    """The TypedDict that validates what `cls` validates, into a dict (see `Compact`).

    Why: validating into dicts rather than model instances is the same work in Rust without
    building ~20 objects an answer, and finishing and encoding dicts is cheaper too: all
    three for a 10-result search took ~80 us against ~85 through the models
    (bench/compaction.py; validation alone ~25 against ~31), with byte-identical answers
    (tests/test_answers.py reads generated upstream bodies both ways). The models stay the
    definition: the published schemas are theirs, and each mirror is derived from one.
    """
    fields: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        # What a mirror does not carry over (the output's names and shape, a union's pick).
        if info.alias or info.serialization_alias or info.exclude or info.discriminator:
            raise TypeError(
                f"{cls.__name__}.{name}: an answer field has no output alias, exclusion or"
                " discriminator"
            )
        rules: dict[str, Any] = {"validation_alias": info.validation_alias}
        if info.default_factory is not None:
            rules["default_factory"] = info.default_factory
        elif info.default is not PydanticUndefined:
            rules["default"] = info.default
        annotation: Any = Annotated[(_mirrored(info.annotation), *info.metadata, Field(**rules))]
        fields[name] = annotation if info.is_required() else NotRequired[annotation]
    mirror = _TYPED_DICT(f"{cls.__name__}Fields", fields)
    mirror.__pydantic_config__ = _MIRROR_CONFIG
    return mirror


def _mirrored(annotation: Any) -> Any:
    """`annotation` with each answer class in it replaced by its mirror."""
    if isinstance(annotation, type) and issubclass(annotation, Answer):
        return _mirror(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is None:
        return annotation
    if origin is Annotated:
        return Annotated[(_mirrored(args[0]), *annotation.__metadata__)]
    if origin in (Union, UnionType):
        return Union[tuple(map(_mirrored, args))]  # noqa: UP007 (built from a tuple)
    if origin is list:
        return list[_mirrored(args[0])]  # type: ignore[misc]
    raise TypeError(f"an answer field of a type the mirror does not know: {annotation!r}")


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
