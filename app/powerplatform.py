"""Power Platform custom connector export (Power Apps, Power Automate, Logic Apps).

A connector is `apiDefinition.swagger.json` (Swagger 2.0), `apiProperties.json` and an
`icon.png`. All three are generated here from the same `Operation` definitions and
models as the OpenAPI spec: nothing about an operation is written twice.

The connection asks the maker for the bare secret (a `securestring` named `api_key`) and
a `setheader` policy sends it as `Authorization: Bearer <secret>`, so nobody types
"Bearer " by hand (the usual complaint about API-key connectors).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.connector import Connector
from app.manifest import well_known_asset
from app.operations import Operation
from app.problems import ERROR_STATUSES, ErrorBody
from app.spec import SchemaGenerator, json_schema_of

__all__ = ["api_definition", "api_properties", "connector_operation_id", "export"]

JSON = dict[str, Any]
MAX_DEFINITION_BYTES = 1_000_000
_WORDS = {"id": "ID", "ids": "IDs", "url": "URL", "ms": "(ms)", "sec": "(s)"}
_IMPORTANT = {"q", "id", "genre_id", "language", "region", "page_size"}


def connector_operation_id(operation: Operation) -> str:
    """PascalCase with no `_` or `-`, as Power Platform wants: searchEpisodes -> SearchEpisodes."""
    return operation.name[:1].upper() + operation.name[1:]


def _summary(name: str) -> str:
    """A field or parameter name as a short title: listennotes_url -> Listennotes URL."""
    if name == "q":
        return "Search terms"
    title = " ".join(_WORDS.get(word, word) for word in name.split("_"))
    return title[:1].upper() + title[1:]


def _base(base_url: str) -> tuple[str, str, list[str]]:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ValueError(f"not an http(s) base URL: {base_url!r}")
    return parts.netloc, parts.path.rstrip("/") or "/", [parts.scheme]


def _parameters(operation: Operation) -> list[JSON]:
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
            "x-ms-summary": _summary(name),
            "x-ms-visibility": "important" if name in _IMPORTANT else "advanced",
        }
        # Swagger 2.0 puts a non-body parameter's type and constraints on the parameter.
        for key in ("type", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern"):
            if key in prop:
                entry[key] = prop[key]
        found.append(entry)
    return found


def _with_summaries(node: Any) -> Any:
    """Every property of every definition gets an `x-ms-summary` (its title in the designer)."""
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            for name, prop in node["properties"].items():
                prop.setdefault("x-ms-summary", _summary(name))
        for value in node.values():
            _with_summaries(value)
    elif isinstance(node, list):
        for value in node:
            _with_summaries(value)
    return node


def _definitions(operations: Iterable[Operation]) -> tuple[dict[Any, JSON], JSON]:
    models: list[type[BaseModel]] = [ErrorBody, *{op.answer: None for op in operations}]
    refs, defs = models_json_schema(
        [(model, "serialization") for model in models],
        ref_template="#/definitions/{model}",
        schema_generator=SchemaGenerator,
    )
    return refs, _with_summaries(defs.get("$defs", {}))


def api_definition(base_url: str, version: str, connector: Connector) -> JSON:
    """The connector's Swagger 2.0 definition for the service at `base_url`."""
    host, base_path, schemes = _base(base_url)
    refs, definitions = _definitions(connector.operations)
    error_ref = refs[(ErrorBody, "serialization")]
    paths: JSON = {}
    for operation in connector.operations:
        responses: JSON = {
            "200": {"description": "OK", "schema": refs[(operation.answer, "serialization")]}
        }
        for status, description in ERROR_STATUSES.items():
            responses[str(status)] = {"description": description, "schema": error_ref}
        paths[connector.api_prefix + operation.path] = {
            "get": {
                "operationId": connector_operation_id(operation),
                "summary": operation.title,
                "description": operation.description,
                "parameters": _parameters(operation),
                "responses": responses,
            }
        }
    return {
        "swagger": "2.0",
        "info": {
            "title": connector.plugin.name_for_human if connector.plugin else connector.title,
            "description": connector.plugin.description_for_human if connector.plugin else "",
            "version": version,
        },
        "host": host,
        "basePath": base_path,
        "schemes": schemes,
        "consumes": [],
        "produces": ["application/json"],
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "api_key": {"type": "apiKey", "in": "header", "name": "Authorization"}
        },
        "security": [{"api_key": []}],
    }


def api_properties() -> JSON:
    """Connection parameters (the bare secret) and the policy that makes it a Bearer token."""
    return {
        "properties": {
            "connectionParameters": {
                "api_key": {
                    "type": "securestring",
                    "uiDefinition": {
                        "displayName": "Service secret",
                        "description": "The service's secret (CHATGPT_SECRET), without 'Bearer'.",
                        "tooltip": "Paste only the secret; the connector adds 'Bearer ' itself.",
                        "constraints": {"tabIndex": 2, "clearText": False, "required": "true"},
                    },
                }
            },
            "iconBrandColor": "#582CA0",
            "capabilities": [],
            "policyTemplateInstances": [
                {
                    "templateId": "setheader",
                    "title": "Send the secret as a Bearer token",
                    "parameters": {
                        "x-ms-apimTemplateParameter.name": "Authorization",
                        "x-ms-apimTemplateParameter.value": _BEARER_FROM_CONNECTION,
                        "x-ms-apimTemplateParameter.existsAction": "override",
                        "x-ms-apimTemplate-policySection": "Request",
                    },
                }
            ],
        }
    }


_BEARER_FROM_CONNECTION = "Bearer @connectionParameters('api_key')"
_OPERATION_ID = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def export(out: Path, base_url: str, version: str, connector: Connector) -> list[Path]:
    """Write the three connector files into `out`; their paths, in writing order."""
    definition = api_definition(base_url, version, connector)
    text = json.dumps(definition, indent=2, ensure_ascii=False) + "\n"
    if len(text.encode()) >= MAX_DEFINITION_BYTES:
        raise ValueError("the API definition is over Power Platform's 1 MB limit")
    bad = [
        op["get"]["operationId"]
        for op in definition["paths"].values()
        if not _OPERATION_ID.match(op["get"]["operationId"])
    ]
    if bad:
        raise ValueError(f"operationIds Power Platform refuses: {bad}")
    out.mkdir(parents=True, exist_ok=True)
    files = {
        out / "apiDefinition.swagger.json": text.encode(),
        out / "apiProperties.json": (json.dumps(api_properties(), indent=2) + "\n").encode(),
        out / "icon.png": well_known_asset("logo.png"),
    }
    for path, content in files.items():
        path.write_bytes(content)
    return list(files)
