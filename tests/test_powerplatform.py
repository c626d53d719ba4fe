"""The Power Platform custom connector export: generated from the operations, importable."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV2SpecValidator, validate

from app.connectors.podcasts import CONNECTOR
from app.connectors.podcasts.operations import OPERATIONS
from app.powerplatform import api_definition

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://podcasts.example.com/plugin"


def run_export(out: Path, base_url: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "app",
        "export",
        "powerplatform",
        "--out",
        str(out),
        "--base-url",
        base_url,
    ]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("connector")
    result = run_export(out, BASE)
    assert result.returncode == 0, result.stderr
    assert "apiDefinition.swagger.json" in result.stdout
    return out


@pytest.fixture(scope="module")
def definition(exported: Path) -> dict[str, Any]:
    text = (exported / "apiDefinition.swagger.json").read_text()
    assert len(text.encode()) < 1_000_000
    return json.loads(text)  # type: ignore[no-any-return]


def test_definition_is_valid_swagger_2(definition: dict[str, Any]) -> None:
    assert definition["swagger"] == "2.0"
    validate(definition, cls=OpenAPIV2SpecValidator)


def test_host_base_path_and_scheme_come_from_the_base_url(definition: dict[str, Any]) -> None:
    assert definition["host"] == "podcasts.example.com"
    assert definition["basePath"] == "/plugin"
    assert definition["schemes"] == ["https"]
    bare = api_definition("http://127.0.0.1:8000", "1", CONNECTOR)
    assert (bare["host"], bare["basePath"], bare["schemes"]) == ("127.0.0.1:8000", "/", ["http"])


def test_the_same_nine_operations(definition: dict[str, Any]) -> None:
    ids = {op["get"]["operationId"] for op in definition["paths"].values()}
    assert ids == {op.name[0].upper() + op.name[1:] for op in OPERATIONS}
    assert set(definition["paths"]) == {f"/api/v2{op.path}" for op in OPERATIONS}


def test_operations_follow_the_connector_rules(definition: dict[str, Any]) -> None:
    for item in definition["paths"].values():
        operation = item["get"]
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", operation["operationId"])
        summary, description = operation["summary"], operation["description"]
        assert summary and summary[0].isupper() and not summary.endswith(".")
        assert description != summary and description.endswith(".")
        for parameter in operation["parameters"]:
            assert parameter["x-ms-summary"], parameter["name"]
            assert parameter["x-ms-visibility"] in ("important", "advanced", "internal")
            assert parameter["type"] in ("string", "integer", "number", "boolean")
            assert "schema" not in parameter  # Swagger 2.0: inline type for non-body
        assert operation["responses"]["200"]["schema"]["$ref"].startswith("#/definitions/")


def test_every_answer_field_has_a_summary(definition: dict[str, Any]) -> None:
    counted = 0
    for schema in definition["definitions"].values():
        for name, prop in schema.get("properties", {}).items():
            assert prop.get("x-ms-summary"), name
            counted += 1
    assert counted > 50


def test_connection_asks_only_for_the_secret_and_sends_it_as_bearer(exported: Path) -> None:
    properties = json.loads((exported / "apiProperties.json").read_text())["properties"]
    api_key = properties["connectionParameters"]["api_key"]
    assert api_key["type"] == "securestring"
    [policy] = properties["policyTemplateInstances"]
    assert policy["templateId"] == "setheader"
    assert policy["parameters"] == {
        "x-ms-apimTemplateParameter.name": "Authorization",
        "x-ms-apimTemplateParameter.value": "Bearer @connectionParameters('api_key')",
        "x-ms-apimTemplateParameter.existsAction": "override",
        "x-ms-apimTemplate-policySection": "Request",
    }


def test_definition_declares_the_header_the_policy_sets(definition: dict[str, Any]) -> None:
    assert definition["securityDefinitions"]["api_key"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
    }


def test_icon_is_the_logo(exported: Path) -> None:
    assert (exported / "icon.png").read_bytes() == (ROOT / "well_known" / "logo.png").read_bytes()


@pytest.mark.parametrize(
    "url", ["ftp://x.example", "podcasts.example.com", "https://", "https://x/?a=1"]
)
def test_bad_base_urls_are_refused(tmp_path: Path, url: str) -> None:
    result = run_export(tmp_path, url)
    assert result.returncode == 2
    assert "base URL" in result.stderr
    assert not list(tmp_path.iterdir())
