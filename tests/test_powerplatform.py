"""The Power Platform custom connector exports (podcasts, openai): importable and certifiable."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV2SpecValidator, validate

from app.connectors.podcasts.operations import OPERATIONS
from app.connectors.podcasts.powerplatform import connector as podcast_connector
from app.powerplatform import api_definition
from app.spec import build_spec

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "tests" / "schemas" / "powerplatform"
BASE = "https://podcasts.example.com/plugin"
CONNECTORS = ("podcasts", "openai")
METHODS = ("get", "post", "put", "patch", "delete")
OPENAI_ACTIONS = {
    "SimpleChat",
    "ChatPost",
    "CompletionPost",
    "EmbedPost",
    "ModerationPost",
    "ImagePost",
    "ImageEditPost",
    "ImageVariationPost",
    "AudioSpeechPost",
    "AudioTranscriptionPost",
    "AudioTranslationPost",
    "ModelsGet",
    "FineTuningPost",
    "FineTuningGet",
    "FineTuningCancelPost",
    "FineTuningEventsGet",
}
SMALL_WORDS = {
    "a",
    "an",
    "and",
    "as",
    "at",
    "by",
    "for",
    "in",
    "of",
    "on",
    "or",
    "per",
    "the",
    "to",
}


def run_export(out: Path, base_url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app", "export", "powerplatform", *extra]
    command += ["--out", str(out), "--base-url", base_url]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)


def load_jsonc(path: Path) -> Any:
    """JSON with `//` comments: a comment starts at `//` outside a string (URLs stay)."""
    lines = []
    for line in path.read_text().splitlines():
        kept, in_string, escaped = [], False, False
        for index, char in enumerate(line):
            if in_string:
                escaped = char == "\\" and not escaped
                in_string = not (char == '"' and not escaped)
            elif char == '"':
                in_string = True
            elif line.startswith("//", index):
                break
            kept.append(char)
        lines.append("".join(kept))
    return json.loads("\n".join(lines))


@pytest.fixture(scope="module", params=CONNECTORS)
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(request.param)
    extra = [] if request.param == "podcasts" else ["--connector", request.param]
    result = run_export(out, BASE, *extra)
    assert result.returncode == 0, result.stderr
    assert "apiDefinition.swagger.json" in result.stdout
    return out


@pytest.fixture(scope="module")
def definition(exported: Path) -> dict[str, Any]:
    text = (exported / "apiDefinition.swagger.json").read_text()
    assert len(text.encode()) < 1_000_000
    return json.loads(text)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def properties(exported: Path) -> dict[str, Any]:
    return json.loads((exported / "apiProperties.json").read_text())  # type: ignore[no-any-return]


def operations(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in definition["paths"].values():
        for method in METHODS:
            if method in item:
                yield item[method]


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_definition_is_valid_swagger_2(definition: dict[str, Any]) -> None:
    assert definition["swagger"] == "2.0"
    validate(definition, cls=OpenAPIV2SpecValidator)


def test_definition_passes_microsofts_connector_schema(definition: dict[str, Any]) -> None:
    schema = load_jsonc(SCHEMAS / "apiDefinition.swagger.schema.json")
    validator = jsonschema.Draft4Validator(schema)
    assert [error.message for error in validator.iter_errors(definition)] == []
    # The oracle can fail: an extension Microsoft's schema does not know is refused.
    assert not validator.is_valid(definition | {"x-ms-openai-manifest": {}})


def test_properties_pass_microsofts_paconn_schema(properties: dict[str, Any]) -> None:
    schema = load_jsonc(SCHEMAS / "paconn-apiProperties.schema.json")
    validator = jsonschema.Draft7Validator(schema)
    assert [error.message for error in validator.iter_errors(properties)] == []
    refused = {"properties": properties["properties"] | {"scriptOperations": ["ChatPost"]}}
    assert not validator.is_valid(refused)


def test_files_are_indented_with_four_spaces(exported: Path) -> None:
    for name in ("apiDefinition.swagger.json", "apiProperties.json"):
        lines = (exported / name).read_text().splitlines()
        assert lines[1].startswith('    "') and not lines[1].startswith("     ")
        assert all((len(line) - len(line.lstrip(" "))) % 4 == 0 for line in lines)


def test_identity_meets_certification(
    definition: dict[str, Any], properties: dict[str, Any]
) -> None:
    info = definition["info"]
    assert set(info["contact"]) == {"name", "url", "email"}
    assert all(info["contact"].values())
    assert len(info["title"]) <= 30
    assert not re.search(r"\b(api|connector)\b", info["title"], re.I)
    assert 30 <= len(info["description"]) <= 500
    metadata = {
        m["propertyName"]: m["propertyValue"] for m in definition["x-ms-connector-metadata"]
    }
    assert set(metadata) == {"Website", "Privacy policy", "Categories"}
    assert metadata["Website"].startswith("https://")
    assert metadata["Privacy policy"].startswith("https://")
    props = properties["properties"]
    assert props["publisher"] and props["stackOwner"]
    assert re.fullmatch(r"#[0-9A-Fa-f]{6}", props["iconBrandColor"])
    assert props["iconBrandColor"].lower() not in ("#ffffff", "#007ee5")


def test_operations_follow_the_connector_rules(definition: dict[str, Any]) -> None:
    found = list(operations(definition))
    assert 0 < len(found) <= 256
    for operation in found:
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", operation["operationId"])
        summary, description = operation["summary"], operation["description"]
        assert summary and summary[0].isupper() and not summary.endswith(".")
        assert description != summary and description.endswith(".")
        for parameter in operation["parameters"]:
            assert parameter["description"], parameter["name"]
            if parameter["in"] != "body":
                assert parameter["type"] in ("string", "integer", "number", "boolean", "file")
                assert "schema" not in parameter  # Swagger 2.0: inline type for non-body
        assert "200" in operation["responses"]


def is_title_case(label: str) -> bool:
    words = label.split(" ")
    return all(
        word[0].isupper() or word[0] in "(0123456789" or (index and word in SMALL_WORDS)
        for index, word in enumerate(words)
    )


def test_every_parameter_and_field_has_a_title_case_summary(definition: dict[str, Any]) -> None:
    counted = 0
    for operation in operations(definition):
        for parameter in operation["parameters"]:
            assert is_title_case(parameter["x-ms-summary"]), parameter
            counted += 1
    for node in walk(definition["paths"]):
        for name, prop in node.get("properties", {}).items():
            if isinstance(prop, dict):
                assert is_title_case(prop.get("x-ms-summary", "")), (name, prop)
                counted += 1
    assert counted > 50


def test_no_ref_anywhere_so_no_summary_is_ignored(exported: Path) -> None:
    text = (exported / "apiDefinition.swagger.json").read_text()
    assert '"$ref"' not in text


def test_descriptions_name_operations_as_the_connector_does(definition: dict[str, Any]) -> None:
    text = json.dumps(definition["paths"])
    for operation in OPERATIONS:  # the podcast names other surfaces use: getGenres …
        assert not re.search(rf"\b{operation.name}\b", text), operation.name
    if "/api/v2/genres" in definition["paths"]:
        assert "GetGenres" in definition["paths"]["/api/v2/best_podcasts"]["get"]["description"]


def test_no_text_meant_for_a_model_is_shown_to_makers(exported: Path) -> None:
    text = (exported / "apiDefinition.swagger.json").read_text()
    assert "invent" not in text.lower()
    spec = json.dumps(
        build_spec([(op.path, op) for op in OPERATIONS], title="t", version="1", description="d")
    )
    assert "Never invent links." in spec  # the GPT spec keeps it


def test_icon_is_230_px_on_a_solid_background(exported: Path, properties: dict[str, Any]) -> None:
    data = (exported / "icon.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (width, height, depth, colour) == (230, 230, 8, 2)  # opaque RGB
    idat = b""
    at = 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        if data[at + 4 : at + 8] == b"IDAT":
            idat += data[at + 8 : at + 8 + length]
        at += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + 230 * 3
    assert len(raw) == 230 * stride
    brand = bytes.fromhex(properties["properties"]["iconBrandColor"][1:])

    def pixel(x: int, y: int) -> bytes:
        assert raw[y * stride] == 0  # unfiltered rows
        return raw[y * stride + 1 + 3 * x : y * stride + 4 + 3 * x]

    border = [(x, y) for x in range(230) for y in (0, 229)] + [
        (x, y) for y in range(230) for x in (0, 229)
    ]
    assert {pixel(x, y) for x, y in border} == {brand}
    assert pixel(115, 115) != brand  # the logo is drawn on it


def test_connection_asks_for_the_bare_credential_sent_in_api_key(
    definition: dict[str, Any], properties: dict[str, Any]
) -> None:
    # Reverses the former rule (a setheader policy adding "Bearer "): "Import an OpenAPI file"
    # reads no apiProperties.json, so the definition alone must make the connection work.
    props = properties["properties"]
    assert list(props["connectionParameters"]) == ["api_key"]
    assert props["connectionParameters"]["api_key"]["type"] == "securestring"
    assert props["policyTemplateInstances"] == []
    assert definition["securityDefinitions"] == {
        "api_key": {"type": "apiKey", "in": "header", "name": "api-key"}
    }
    assert definition["security"] == [{"api_key": []}]


def test_host_base_path_and_scheme_come_from_the_base_url(definition: dict[str, Any]) -> None:
    assert definition["host"] == "podcasts.example.com"
    assert definition["basePath"] == "/plugin"
    assert definition["schemes"] == ["https"]
    bare = api_definition(podcast_connector("a@example.com"), "http://127.0.0.1:8000", "1")
    assert (bare["host"], bare["basePath"], bare["schemes"]) == ("127.0.0.1:8000", "/", ["http"])


@pytest.mark.parametrize(
    "url", ["ftp://x.example", "podcasts.example.com", "https://", "https://x/?a=1"]
)
@pytest.mark.parametrize("connector", CONNECTORS)
def test_bad_base_urls_are_refused(tmp_path: Path, url: str, connector: str) -> None:
    result = run_export(tmp_path, url, "--connector", connector)
    assert result.returncode == 2
    assert "base URL" in result.stderr
    assert not list(tmp_path.iterdir())


def test_an_unknown_connector_is_refused(tmp_path: Path) -> None:
    result = run_export(tmp_path / "out", BASE, "--connector", "bogus")
    assert result.returncode == 2
    assert "bogus" in result.stderr
    assert not (tmp_path / "out").exists()
