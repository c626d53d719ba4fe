"""infra/template.yaml keeps the promises the service depends on."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    parsed, problems = decode_str((ROOT / "infra" / "template.yaml").read_text())
    assert not problems
    return parsed  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def function(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["ProxyFunction"]["Properties"]  # type: ignore[no-any-return]


def test_function_runs_the_handler_on_python_312(function: dict[str, Any]) -> None:
    assert function["Runtime"] == "python3.12"
    module, _, attribute = function["Handler"].rpartition(".")
    assert callable(getattr(importlib.import_module(module), attribute))
    assert function["Architectures"] == [{"Ref": "Architecture"}]
    assert function["MemorySize"] == {"Ref": "MemorySize"}


def test_timeouts_are_ordered(template: dict[str, Any], function: dict[str, Any]) -> None:
    upstream_max = template["Parameters"]["UpstreamTimeout"]["MaxValue"]
    assert upstream_max < function["Timeout"] < 29  # API Gateway gives up at 29-30 s


def test_secrets_are_passed_by_name_only(
    template: dict[str, Any], function: dict[str, Any]
) -> None:
    env = function["Environment"]["Variables"]
    assert "LISTEN_API_KEY" not in env and "CHATGPT_SECRET" not in env
    assert "ssm" in str(env["LISTEN_API_KEY_REF"]) and "ssm" in str(env["CHATGPT_SECRET_REF"])
    assert not any(p.get("NoEcho") for p in template["Parameters"].values())
    assert "resolve:ssm" not in str(template)


def test_function_may_read_only_the_two_parameters(function: dict[str, Any]) -> None:
    [policy] = function["Policies"]
    read, kms = policy["Statement"]
    assert read["Action"] == "ssm:GetParameter"
    assert len(read["Resource"]) == 2
    assert "ListenApiKeyParameter" in str(read["Resource"][0])
    assert "ChatgptSecretParameter" in str(read["Resource"][1])
    assert "kms:Decrypt" in str(kms) and "kms:ViaService" in str(kms)


def test_http_api_is_throttled_and_routes_everything(
    template: dict[str, Any], function: dict[str, Any]
) -> None:
    settings = template["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert settings == {
        "ThrottlingRateLimit": {"Ref": "ThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ThrottlingBurstLimit"},
    }
    paths = {event["Properties"]["Path"] for event in function["Events"].values()}
    assert paths == {"/", "/{proxy+}"}


def test_logs_are_retained_and_urls_are_output(template: dict[str, Any]) -> None:
    log_group = template["Resources"]["LogGroup"]["Properties"]
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    outputs = template["Outputs"]
    assert "/.well-known/ai-plugin.json" in str(outputs["ManifestUrl"]["Value"])
    assert str(outputs["SpecUrl"]["Value"]).rstrip("'\"}").endswith("/openapi.json")
    assert "BaseUrl" in outputs
