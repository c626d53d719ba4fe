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
    read, kms, _store = policy["Statement"]
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


def test_the_store_table_is_on_demand_with_ttl(template: dict[str, Any]) -> None:
    table = template["Resources"]["StoreTable"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["DeletionPolicy"] == "Retain"  # keys and usage outlive a stack update
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert {
        (a["AttributeName"], a["AttributeType"]) for a in properties["AttributeDefinitions"]
    } == {
        ("pk", "S"),
        ("sk", "S"),
    }
    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}


def test_the_function_uses_the_table_and_may_touch_only_it(function: dict[str, Any]) -> None:
    from app.store import open_store

    store_url = function["Environment"]["Variables"]["STORE_URL"]
    assert store_url == {"Fn::Sub": "dynamodb://${StoreTable}?region=${AWS::Region}"}
    # The URL, once CloudFormation substitutes it, is one open_store accepts.
    substituted = store_url["Fn::Sub"].replace("${StoreTable}", "stack-StoreTable-1AB2")
    assert open_store(substituted.replace("${AWS::Region}", "eu-west-1")).name == "dynamodb"

    [policy] = function["Policies"]
    store = [s for s in policy["Statement"] if "dynamodb" in str(s)]
    assert len(store) == 1 and store[0]["Effect"] == "Allow"
    assert store[0]["Resource"] == {"Fn::GetAtt": ["StoreTable", "Arn"]}
    assert sorted(store[0]["Action"]) == [
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
    ]
    assert "*" not in str(store[0])


def test_the_policy_grants_exactly_what_the_dynamodb_store_calls(
    function: dict[str, Any],
) -> None:
    import re

    source = (ROOT / "app" / "stores" / "dynamodb.py").read_text()
    # Every DynamoDB operation goes through DynamoStore._call("Operation", ...).
    called = set(re.findall(r'_call\(\s*"(\w+)"', source))
    assert source.count("self._api.") == 2  # the one call in _call, and aclose
    assert {"GetItem", "UpdateItem", "TransactWriteItems"} <= called  # the pattern still finds
    # A transaction needs the permission of each action in it (here: Put).
    transaction = re.search(r'"TransactWriteItems",(.*?)\n        \)', source, re.DOTALL)
    assert transaction and set(re.findall(r'\{"(\w+)": \{"TableName"', transaction[1])) == {"Put"}
    actions = (called - {"TransactWriteItems"}) | {"PutItem"}
    [policy] = function["Policies"]
    [store] = [s for s in policy["Statement"] if "dynamodb" in str(s)]
    assert {a.removeprefix("dynamodb:") for a in store["Action"]} == actions
