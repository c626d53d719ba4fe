"""Swagger 2.0 pieces for a Power Platform connector, from pydantic models and operations.

Power Platform reads Swagger 2.0, which ignores every sibling of a `$ref`: a title put
beside one never reaches the designer. So schemas here are written inline (no
`definitions`), and every property gets a Title Case `x-ms-summary`, its label for makers.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from app.spec import json_schema_of

if TYPE_CHECKING:
    from app.operations import Operation

__all__ = [
    "connector_operation_id",
    "error_responses",
    "get_operation_paths",
    "inline_schema",
    "title_case",
    "with_summaries",
]

JSON = dict[str, Any]
_WORDS = {
    "id": "ID",
    "ids": "IDs",
    "url": "URL",
    "urls": "URLs",
    "ms": "(ms)",
    "sec": "(s)",
    "ttl": "TTL",
}
_SMALL = {"a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "per", "the", "to"}
_KEEP = ("description", "type", "format", "items", "properties", "required", "enum")
_CONSTRAINTS = ("minimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "maxItems")


def connector_operation_id(operation: Operation) -> str:
    """PascalCase with no `_` or `-`, as Power Platform wants: searchEpisodes -> SearchEpisodes."""
    return operation.name[:1].upper() + operation.name[1:]


def title_case(name: str) -> str:
    """A field name as a Title Case label: listennotes_url -> Listennotes URL,
    audio_length_sec -> Audio Length (s), self-harm/intent -> Self Harm Intent."""
    words = [word for word in re.split(r"[_\-/ $]+", name) if word]
    titled = []
    for index, word in enumerate(words):
        if word.lower() in _WORDS:
            titled.append(_WORDS[word.lower()])
        elif index and word.lower() in _SMALL:
            titled.append(word.lower())
        else:
            titled.append(word[:1].upper() + word[1:])
    return " ".join(titled)


def with_summaries(schema: Any, titles: Mapping[str, str] | None = None) -> Any:
    """`schema` with an `x-ms-summary` on every property at every depth (a given one is
    kept); `titles` overrides the label for some names. Changes and returns `schema`."""
    titles = titles or {}
    if isinstance(schema, dict):
        properties = schema.get("properties")
        if isinstance(properties, dict):
            for name, prop in properties.items():
                prop.setdefault("x-ms-summary", titles.get(name) or title_case(name))
        for value in schema.values():
            with_summaries(value, titles)
    elif isinstance(schema, list):
        for value in schema:
            with_summaries(value, titles)
    return schema


def _inline(node: Any, defs: Mapping[str, JSON]) -> Any:
    if isinstance(node, list):
        return [_inline(value, defs) for value in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        # The property's own description says more than the model's docstring.
        merged = target | {key: value for key, value in node.items() if key != "$ref"}
        return _inline(merged, defs)
    if "allOf" in node and len(node["allOf"]) == 1:
        rest = {key: value for key, value in node.items() if key != "allOf"}
        return _inline(node["allOf"][0] | rest, defs)
    kept: JSON = {}
    for key, value in node.items():
        if key == "properties":
            kept[key] = {name: _inline(prop, defs) for name, prop in value.items()}
        elif key in _KEEP or key in _CONSTRAINTS or key == "default":
            kept[key] = _inline(value, defs)
    return kept


def inline_schema(model: type[BaseModel], mode: str = "serialization") -> JSON:
    """`model`'s JSON schema as Swagger 2.0 reads it: every `$ref` replaced by its target,
    no titles, and a Title Case `x-ms-summary` on every property."""
    schema = json_schema_of(model, mode)
    defs = schema.pop("$defs", {})
    return with_summaries(_inline(schema, defs))  # type: ignore[no-any-return]


def error_responses(statuses: Mapping[int, str], schema: JSON) -> JSON:
    """One response per error status, each with the same (inline) error schema."""
    return {
        str(status): {"description": description, "schema": copy.deepcopy(schema)}
        for status, description in statuses.items()
    }


def _query_parameters(
    operation: Operation, important: frozenset[str], titles: Mapping[str, str]
) -> list[JSON]:
    schema = json_schema_of(operation.params)
    required = set(schema.get("required", []))
    found = []
    for name, prop in schema.get("properties", {}).items():
        in_path = name in operation.path_params
        entry: JSON = {
            "name": name,
            "in": "path" if in_path else "query",
            "required": in_path or name in required,
            "description": prop.get("description", ""),
            "x-ms-summary": titles.get(name) or title_case(name),
            "x-ms-visibility": "important" if name in important else "advanced",
        }
        # Swagger 2.0 puts a non-body parameter's type and constraints on the parameter.
        for key in ("type", "enum", *_CONSTRAINTS):
            if key in prop:
                entry[key] = prop[key]
        found.append(entry)
    return found


def get_operation_paths(
    operations: Iterable[Operation],
    *,
    prefix: str,
    connector_id: Mapping[str, str],
    errors: JSON,
    important: frozenset[str] = frozenset(),
    titles: Mapping[str, str] | None = None,
) -> JSON:
    """Swagger 2.0 `paths` for read-only operations (GET, query and path parameters):
    `connector_id` names each operation, `errors` are the error responses they share."""
    paths: JSON = {}
    for operation in operations:
        responses: JSON = {
            "200": {"description": "OK", "schema": inline_schema(operation.answer)},
            **copy.deepcopy(errors),
        }
        paths[prefix + operation.path] = {
            "get": {
                "operationId": connector_id[operation.name],
                "summary": operation.title,
                "description": operation.description,
                "parameters": _query_parameters(operation, important, titles or {}),
                "responses": responses,
            }
        }
    return paths
