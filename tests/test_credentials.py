"""Secrets by reference: SSM SecureString and Secrets Manager (mocked by moto), rotation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import boto3
import httpx
import pytest
import respx
from moto import mock_aws

from app import credentials
from app.credentials import SecretRef, StoredSecret
from app.errors import CredentialsUnavailable
from tests.conftest import OTHER_SECRET, SECRET, UPSTREAM_KEY, AppFactory, LogCapture

KEY_PARAM = "/podcast-proxy/listen-api-key"
SECRET_PARAM = "/podcast-proxy/chatgpt-secret"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    credentials._clients.clear()
    with mock_aws():
        yield
    credentials._clients.clear()


def put_parameter(name: str, value: str) -> None:
    boto3.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


@pytest.mark.parametrize(
    ("text", "service", "name"),
    [
        ("ssm:/a/b", "ssm", "/a/b"),
        ("arn:aws:ssm:eu-west-1:123456789012:parameter/a/b", "ssm", "/a/b"),
        ("secretsmanager:podcast/key", "secretsmanager", "podcast/key"),
        (
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:podcast-AbCdEf",
            "secretsmanager",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:podcast-AbCdEf",
        ),
    ],
)
def test_reference_forms(text: str, service: str, name: str) -> None:
    assert SecretRef.parse(text) == SecretRef(service, name)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "/a/b", "s3:bucket/key", "ssm:", "plain-secret-value"])
def test_bad_references_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected ssm:"):
        SecretRef.parse(text)


def test_app_reads_both_secrets_from_aws(
    aws: None, make_client: AppFactory, upstream: respx.MockRouter
) -> None:
    put_parameter(SECRET_PARAM, f"{SECRET},{OTHER_SECRET}")
    arn = boto3.client("secretsmanager").create_secret(
        Name="podcast-proxy/listen-api-key", SecretString=UPSTREAM_KEY
    )["ARN"]
    route = upstream.get("/languages").mock(
        return_value=httpx.Response(200, json={"languages": ["English"]})
    )
    client = make_client(
        listen_api_key=None,
        listen_api_key_ref=arn,
        chatgpt_secret="",
        chatgpt_secret_ref=f"ssm:{SECRET_PARAM}",
    )
    assert client.get("/healthz").json()["mode"] == "live"
    for secret in (SECRET, OTHER_SECRET):
        response = client.get("/api/v2/languages", headers={"Authorization": f"Bearer {secret}"})
        assert response.status_code == 200
    assert (
        client.get(
            "/api/v2/languages", headers={"Authorization": "Bearer wrong-wrong-wrong"}
        ).status_code
        == 401
    )
    assert route.calls.last.request.headers["x-listenapi-key"] == UPSTREAM_KEY


def test_rotated_secret_is_picked_up_after_the_ttl(
    aws: None, make_client: AppFactory, upstream: respx.MockRouter
) -> None:
    put_parameter(SECRET_PARAM, SECRET)
    upstream.get("/regions").mock(return_value=httpx.Response(200, json={"regions": {}}))
    client = make_client(chatgpt_secret="", chatgpt_secret_ref=f"ssm:{SECRET_PARAM}", secret_ttl=0)
    assert (
        client.get("/api/v2/regions", headers={"Authorization": f"Bearer {SECRET}"}).status_code
        == 200
    )
    put_parameter(SECRET_PARAM, OTHER_SECRET)
    assert (
        client.get(
            "/api/v2/regions", headers={"Authorization": f"Bearer {OTHER_SECRET}"}
        ).status_code
        == 200
    )
    assert (
        client.get("/api/v2/regions", headers={"Authorization": f"Bearer {SECRET}"}).status_code
        == 401
    )


def test_unreadable_secret_fails_closed_with_503(
    aws: None, make_client: AppFactory, upstream: respx.MockRouter, logs: LogCapture
) -> None:
    client = make_client(chatgpt_secret="", chatgpt_secret_ref="ssm:/does/not/exist")
    response = client.get("/api/v2/genres", headers={"Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "credentials_unavailable"
    assert upstream.calls.call_count == 0
    assert logs.events("secret_unreadable")


WEAK = ("a", "aaaaaaaaaaaaaaaa", "1234567890123456")


@pytest.mark.parametrize("weak", WEAK)
def test_weak_stored_secret_locks_the_api_and_names_only_the_reference(
    aws: None, make_client: AppFactory, upstream: respx.MockRouter, logs: LogCapture, weak: str
) -> None:
    put_parameter(SECRET_PARAM, weak)
    client = make_client(chatgpt_secret="", chatgpt_secret_ref=f"ssm:{SECRET_PARAM}")
    for _ in range(3):
        response = client.get("/api/v2/genres", headers={"Authorization": f"Bearer {weak}"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "service_locked"
    mcp = client.post(
        "/mcp",
        headers={"Authorization": f"Bearer {weak}", "Accept": "application/json"},
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    )
    assert mcp.status_code == 503
    assert upstream.calls.call_count == 0
    [event] = logs.events("secret_too_weak")  # once per read of the stored value
    assert event["ref"] == f"ssm:{SECRET_PARAM}"
    [line] = [line for line in logs.lines if "secret_too_weak" in line]
    assert f"ssm:{SECRET_PARAM}" in line
    if len(weak) > 1:
        assert weak not in line and weak[:8] not in line
    else:  # one character: check that no quoted value or value field is logged
        assert f'"{weak}"' not in line and "value" not in line


def test_weak_secrets_beside_a_strong_one_are_refused_and_it_still_works(
    aws: None, make_client: AppFactory, upstream: respx.MockRouter, logs: LogCapture
) -> None:
    put_parameter(SECRET_PARAM, f"a,{SECRET},1234567890123456")
    upstream.get("/genres").mock(return_value=httpx.Response(200, json={"genres": []}))
    client = make_client(chatgpt_secret="", chatgpt_secret_ref=f"ssm:{SECRET_PARAM}", secret_ttl=0)
    for token, status in ((SECRET, 200), ("a", 401), ("1234567890123456", 401), (SECRET, 200)):
        response = client.get("/api/v2/genres", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == status
    events = logs.events("secret_too_weak")
    assert len(events) == 4  # TTL 0: every request reads again, and each read is checked
    assert events[0]["refused"] == [1, 3]
    assert all("1234567890123456" not in line for line in logs.lines)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_stored_secret_caches_then_refreshes_and_survives_failures() -> None:
    values = iter(["first", "second", RuntimeError("throttled"), "third"])
    calls: list[SecretRef] = []

    def fetch(ref: SecretRef) -> str:
        calls.append(ref)
        value = next(values)
        if isinstance(value, Exception):
            raise value
        return value

    clock = FakeClock()
    stored = StoredSecret(SecretRef("ssm", "/x"), ttl=300, fetch=fetch, clock=clock)

    async def scenario() -> list[str]:
        seen = [await stored.value(), await stored.value()]  # one read, then cached
        clock.now += 301
        seen.append(await stored.value())  # expired: read again
        clock.now += 301
        seen.append(await stored.value())  # refresh fails: last good value still served
        clock.now += 31
        seen.append(await stored.value())  # retried after the failure backoff
        return seen

    assert asyncio.run(scenario()) == ["first", "first", "second", "second", "third"]
    assert len(calls) == 4


def test_stored_secret_without_any_value_raises() -> None:
    def fetch(ref: SecretRef) -> str:
        raise RuntimeError("no access")

    stored = StoredSecret(SecretRef("ssm", "/x"), ttl=300, fetch=fetch)
    with pytest.raises(CredentialsUnavailable):
        asyncio.run(stored.value())


def test_boto3_is_not_imported_without_references() -> None:
    code = (
        "import sys; from app.main import create_app; from app.registry import Settings; "
        "create_app(Settings(_env_file=None)); "
        "print('boto3' in sys.modules, 'mcp' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
