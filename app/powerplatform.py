"""Power Platform custom connector export (Power Apps, Power Automate, Logic Apps).

A connector is `apiDefinition.swagger.json` (Swagger 2.0), `apiProperties.json` and an
`icon.png`. This module names no upstream: each connector package hands over a
`PowerPlatformConnector` (its identity and its Swagger `paths`) and this writes the three files.

The connection asks the maker for the bare credential (a `securestring` named `api_key`)
and the definition sends it in an `api-key` header, which the service accepts as it
accepts `Authorization: Bearer`. So there is no policy at all: a maker who imports only
the swagger file ("Import an OpenAPI file", which reads no apiProperties.json and so no
policy) gets a working connection, and nobody types "Bearer " by hand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.png import icon_on_background
from app.security import API_KEY_HEADER

__all__ = [
    "API_KEY_HEADER",
    "MAX_DEFINITION_BYTES",
    "MAX_OPERATIONS",
    "PowerPlatformConnector",
    "api_definition",
    "api_properties",
    "export",
    "for_makers",
]

JSON = dict[str, Any]
MAX_DEFINITION_BYTES = 1_000_000
MAX_OPERATIONS = 256
_OPERATION_ID = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@dataclass(frozen=True)
class PowerPlatformConnector:
    """What one upstream connector contributes to its Power Platform export."""

    title: str
    """Display name: at most 30 characters, without "API" or "Connector"."""
    description: str
    """For makers, 30 to 500 characters."""
    publisher: str
    stack_owner: str
    """Who owns the service behind the connector (apiProperties `stackOwner`)."""
    brand_color: str
    """#RRGGBB; neither white nor #007ee5 (both refused by certification)."""
    categories: str
    """x-ms-connector-metadata Categories, e.g. "AI" or "Data"."""
    contact_name: str
    contact_email: str
    logo: bytes
    """A PNG drawn on a transparent background; the icon puts it on `brand_color`."""
    paths: JSON
    """Swagger 2.0 `paths`, every schema inline, every operationId PascalCase."""
    credential_help: str = "The credential this service gave you, without 'Bearer'."
    model_only: tuple[str, ...] = field(default_factory=tuple)
    """Sentences written for a model (e.g. "Never invent links."), dropped for makers."""
    renames: Mapping[str, str] = field(default_factory=dict)
    """Operation names as other surfaces spell them -> as the connector does (getGenres ->
    GetGenres), so descriptions name the actions a maker sees."""


def _base(base_url: str) -> tuple[str, str, list[str]]:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ValueError(f"not an http(s) base URL: {base_url!r}")
    return parts.netloc, parts.path.rstrip("/") or "/", [parts.scheme]


def for_makers(node: Any, connector: PowerPlatformConnector) -> Any:
    """`node` with every description and summary rewritten for makers: model-only
    sentences removed, operations named as the connector names them."""
    if isinstance(node, list):
        return [for_makers(value, connector) for value in node]
    if not isinstance(node, dict):
        return node
    found: JSON = {}
    for key, value in node.items():
        if key in ("description", "summary") and isinstance(value, str):
            for sentence in connector.model_only:
                value = value.replace(sentence, "")
            for name, renamed in connector.renames.items():
                value = re.sub(rf"\b{re.escape(name)}\b", renamed, value)
            value = re.sub(r"\s{2,}", " ", value).strip()
        found[key] = for_makers(value, connector)
    return found


def api_definition(connector: PowerPlatformConnector, base_url: str, version: str) -> JSON:
    """The connector's Swagger 2.0 definition for the service at `base_url`."""
    host, base_path, schemes = _base(base_url)
    site = base_url.rstrip("/")
    return {
        "swagger": "2.0",
        "info": {
            "title": connector.title,
            "description": connector.description,
            "version": version,
            "contact": {
                "name": connector.contact_name,
                "url": site,
                "email": connector.contact_email,
            },
        },
        "host": host,
        "basePath": base_path,
        "schemes": schemes,
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "paths": for_makers(connector.paths, connector),
        "definitions": {},
        "parameters": {},
        "responses": {},
        "securityDefinitions": {
            "api_key": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
        },
        "security": [{"api_key": []}],
        "tags": [],
        "x-ms-connector-metadata": [
            {"propertyName": "Website", "propertyValue": site},
            {"propertyName": "Privacy policy", "propertyValue": site + "/legal"},
            {"propertyName": "Categories", "propertyValue": connector.categories},
        ],
    }


def api_properties(connector: PowerPlatformConnector) -> JSON:
    """The connection parameter (the bare credential), brand colour, publisher. No policy:
    the definition's `api-key` header carries the credential as the maker pasted it."""
    return {
        "properties": {
            "connectionParameters": {
                "api_key": {
                    "type": "securestring",
                    "uiDefinition": {
                        "displayName": "API key",
                        "description": connector.credential_help,
                        "tooltip": "Paste only the credential; it is sent in the api-key header.",
                        "constraints": {"tabIndex": 2, "clearText": False, "required": "true"},
                    },
                }
            },
            "iconBrandColor": connector.brand_color,
            "publisher": connector.publisher,
            "stackOwner": connector.stack_owner,
            "capabilities": [],
            "policyTemplateInstances": [],
        }
    }


def _operations(definition: JSON) -> list[JSON]:
    return [
        item[method]
        for item in definition["paths"].values()
        for method in _METHODS
        if method in item
    ]


def _check(connector: PowerPlatformConnector, definition: JSON, text: str) -> None:
    if len(connector.title) > 30 or re.search(r"\b(API|Connector)\b", connector.title, re.I):
        raise ValueError(f"title Power Platform refuses: {connector.title!r}")
    if connector.brand_color.lower() in ("#ffffff", "#007ee5"):
        raise ValueError(f"brand colour Power Platform refuses: {connector.brand_color}")
    if len(text.encode()) >= MAX_DEFINITION_BYTES:
        raise ValueError("the API definition is over Power Platform's 1 MB limit")
    operations = _operations(definition)
    if len(operations) > MAX_OPERATIONS:
        raise ValueError(f"{len(operations)} operations: over Power Platform's 256")
    bad = [op["operationId"] for op in operations if not _OPERATION_ID.match(op["operationId"])]
    if bad:
        raise ValueError(f"operationIds Power Platform refuses: {bad}")
    if '"$ref"' in text:
        raise ValueError("a $ref in the definition: Swagger 2.0 drops its x-ms-summary")


def _json(document: JSON) -> bytes:
    return (json.dumps(document, indent=4, ensure_ascii=False) + "\n").encode()


def export(out: Path, base_url: str, version: str, connector: PowerPlatformConnector) -> list[Path]:
    """Write `connector`'s three files into `out`; their paths, in writing order.

    Raises ValueError (and writes nothing) for a bad base URL or a definition Power
    Platform would refuse (size, operation count, operationIds, title, colour).
    """
    definition = api_definition(connector, base_url, version)
    text = _json(definition).decode()
    _check(connector, definition, text)
    files = {
        out / "apiDefinition.swagger.json": text.encode(),
        out / "apiProperties.json": _json(api_properties(connector)),
        out / "icon.png": icon_on_background(connector.logo, connector.brand_color),
    }
    out.mkdir(parents=True, exist_ok=True)
    for path, content in files.items():
        path.write_bytes(content)
    return list(files)
