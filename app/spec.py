"""The OpenAPI 3.1 document ChatGPT (plugin or GPT Action) reads, generated from the routes.

Built from the `Operation` of every mounted operation route and from the pydantic models
they name: nothing in it is written by hand. It is built once per app and given the
request's public base URL as its one server.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from app.operations import Operation
from app.params import NoParams
from app.problems import ERROR_STATUSES, ErrorBody

__all__ = ["SECURITY_SCHEME", "SchemaGenerator", "build_spec", "json_schema_of"]

SECURITY_SCHEME = "bearerAuth"
_REF = "#/components/schemas/{model}"
JSON = dict[str, Any]


class SchemaGenerator(GenerateJsonSchema):
    """Pydantic's JSON schema, minus what only confuses a model: `null` alternatives of
    optional fields (absent is how they are left out) and per-field titles."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        generated = super().default_schema(schema)
        if generated.get("default", ...) is None:
            del generated["default"]
        return generated


def json_schema_of(model: type[BaseModel], mode: str = "validation") -> JSON:
    """`model`'s JSON schema as every surface of this service publishes it."""
    return model.model_json_schema(mode=mode, schema_generator=SchemaGenerator)  # type: ignore[arg-type]


def _parameters(operation: Operation) -> list[JSON]:
    schema = json_schema_of(operation.params)
    required = set(schema.get("required", []))
    found = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", "")
        location = "path" if name in operation.path_params else "query"
        parameter: JSON = {
            "name": name,
            "in": location,
            "required": name in required or location == "path",
            "description": description,
            "schema": prop,
        }
        if not parameter["required"]:
            # `Operation.parse` takes `?name=` as leaving it out, on purpose (ChatGPT and
            # Power Platform send empty optional values); the contract says so.
            parameter["allowEmptyValue"] = True
        found.append(parameter)
    return found


def _responses(operation: Operation, answer_ref: JSON, error_ref: JSON) -> JSON:
    responses: JSON = {
        "200": {
            "description": f"{operation.title}: compact answer.",
            "content": {"application/json": {"schema": answer_ref}},
        }
    }
    for status, description in ERROR_STATUSES.items():
        if status == 422 and operation.params is NoParams:
            continue  # nothing to validate, so never 422
        entry: JSON = {
            "description": description,
            "content": {"application/json": {"schema": error_ref}},
        }
        if status == 429:
            entry["headers"] = {
                "Retry-After": {
                    "description": "Seconds (or an HTTP date) to wait, when the upstream said.",
                    "schema": {"type": "string"},
                }
            }
        responses[str(status)] = entry
    return responses


def build_spec(
    operations: Iterable[tuple[str, Operation]], *, title: str, version: str, description: str
) -> JSON:
    """The OpenAPI document for `(path, operation)` pairs, with no `servers` yet."""
    pairs = list(operations)
    models: list[type[BaseModel]] = [ErrorBody, *{op.answer: None for _, op in pairs}]
    bodies = [(op.params, "validation") for _, op in pairs if op.method == "POST"]
    refs, defs = models_json_schema(
        [*((model, "serialization") for model in models), *bodies],  # type: ignore[list-item]
        ref_template=_REF,
        schema_generator=SchemaGenerator,
    )
    error_ref = refs[(ErrorBody, "serialization")]
    paths: JSON = {}
    for path, operation in pairs:
        entry: JSON = {
            "operationId": operation.name,
            "summary": operation.title,
            "description": operation.description,
        }
        if operation.method == "POST":
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(operation.params, "validation")]}},
            }
        else:
            entry["parameters"] = _parameters(operation)
        entry["responses"] = _responses(
            operation, refs[(operation.answer, "serialization")], error_ref
        )
        entry["x-openai-isConsequential"] = False
        paths[path] = {operation.method.lower(): entry}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "servers": [],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The service's shared secret (ChatGPT: API key, Bearer).",
                }
            },
        },
        "security": [{SECURITY_SCHEME: []}],
    }
