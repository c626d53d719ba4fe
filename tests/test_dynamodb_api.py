"""The DynamoDB store's own client of DynamoDB's API (app/stores/dynamodb_api.py), against a
loopback server that records every request and answers as scripted: what goes on the wire
verifies with botocore's signer, which failures are sent again and which are not, where
credentials come from, and that no credential ever shows in an error. The store's behaviour
on DynamoDB itself is tests/test_store.py's, on moto."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials

from app.store import Limits, StoreUnavailable, Usage
from app.stores.dynamodb import DynamoStore
from app.stores.dynamodb_api import DynamoApi, DynamoError
from tests.keys_support import keys_cli
from tests.servers import moto_server  # noqa: F401 - fixture
from tests.store_backends import create_table

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_795_687_200.0
ACCESS_KEY = "ASIAEXAMPLEACCESSKEY"
SECRET_KEY = "api-test-secret-key-6c1f0d9e8b7a"
TOKEN = "api-test-session-token-/+=-4e2d91c7"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0
    crc: int | None = None  # the x-amz-crc32 to send (default: the body's own)


class Recorder:
    """A loopback HTTP server: records each request, answers with the next scripted Reply
    (then 200 `{}`)."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.replies: list[Reply] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.seen.append(
                    Seen(self.command, self.path, dict(self.headers.items()), body)
                )
                reply = recorder.replies.pop(0) if recorder.replies else Reply()
                time.sleep(reply.delay)
                content = json.dumps(reply.body).encode()
                crc = zlib.crc32(content) if reply.crc is None else reply.crc
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(content)))
                self.send_header("x-amz-crc32", str(crc))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    server = Recorder()
    yield server
    server.close()


def store_on(recorder: Recorder) -> DynamoStore:
    return DynamoStore("the-table", region="eu-west-1", endpoint=recorder.endpoint)


def botocore_authorization(seen: Seen, url: str, region: str, secret: str) -> str:
    """botocore's signature of the request as it reached the server, at its X-Amz-Date."""
    headers = {k: v for k, v in seen.headers.items() if k in ("Content-Type", "X-Amz-Target")}
    request = AWSRequest(method=seen.method, url=url, data=seen.body, headers=headers)
    access_key = seen.headers["Authorization"].split("Credential=")[1].split("/")[0]
    token = seen.headers.get("X-Amz-Security-Token")
    at = datetime.strptime(seen.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    with mock.patch("botocore.auth.get_current_datetime", return_value=at):
        SigV4Auth(BotocoreCredentials(access_key, secret, token), "dynamodb", region).add_auth(
            request
        )
    return str(request.headers["Authorization"])


def test_what_reaches_the_wire_is_signed_as_botocore_signs_it(recorder: Recorder) -> None:
    async def scenario() -> bytes | None:
        store = store_on(recorder)
        await store.kv_put("cache:é☃", b"\x00\xffvalue", 60, NOW)
        recorder.replies.append(Reply(body={"Item": {"v": {"B": "AP8="}, "exp": {"N": "1e10"}}}))
        value = await store.kv_get("cache:é☃", NOW)
        await store.aclose()
        return value

    assert asyncio.run(scenario()) == b"\x00\xff"  # binary attributes are base64 both ways
    put, get = recorder.seen
    for seen, operation in ((put, "PutItem"), (get, "GetItem")):
        assert (seen.method, seen.path) == ("POST", "/")
        assert seen.headers["X-Amz-Target"] == f"DynamoDB_20120810.{operation}"
        assert seen.headers["Content-Type"] == "application/x-amz-json-1.0"
        assert seen.headers["Host"] == recorder.endpoint.removeprefix("http://")
        assert seen.headers["X-Amz-Security-Token"] == TOKEN
        assert f"Credential={ACCESS_KEY}/" in seen.headers["Authorization"]
        assert "host;x-amz-date;x-amz-security-token;x-amz-target" in seen.headers["Authorization"]
        expected = botocore_authorization(seen, recorder.endpoint, "eu-west-1", SECRET_KEY)
        assert seen.headers["Authorization"] == expected
    item = json.loads(put.body)
    assert item["TableName"] == "the-table"
    assert item["Item"]["pk"] == {"S": "KV#cache:é☃"}
    assert base64.b64decode(item["Item"]["v"]["B"]) == b"\x00\xffvalue"


def test_5xx_and_throttling_are_tried_twice_a_bad_checksum_for_reads(recorder: Recorder) -> None:
    throttled = Reply(400, {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException"})

    async def scenario() -> None:
        store = store_on(recorder)
        recorder.replies[:] = [Reply(500, {"__type": "InternalServerError"}), Reply()]
        assert await store.kv_get("k", NOW) is None
        recorder.replies[:] = [Reply(crc=1), Reply()]
        assert await store.kv_get("k", NOW) is None  # a read: asked again
        recorder.replies[:] = [Reply(crc=1), Reply()]
        with pytest.raises(StoreUnavailable, match="CRC32"):
            await store.kv_put("k", b"v", 60, NOW)  # a write: applied once, not again
        recorder.replies.clear()
        recorder.replies[:] = [throttled, throttled, Reply()]
        with pytest.raises(StoreUnavailable, match="dynamodb: UpdateItem: ThrottlingException"):
            await store.record("s", NOW, Usage(refused=1))
        await store.aclose()

    asyncio.run(scenario())
    assert len(recorder.seen) == 2 + 2 + 1 + 2  # the third answer was never asked for
    # Each attempt is signed afresh: the same request, a valid signature each time.
    for seen in recorder.seen:
        expected = botocore_authorization(seen, recorder.endpoint, "eu-west-1", SECRET_KEY)
        assert seen.headers["Authorization"] == expected


def test_a_write_without_an_answer_is_not_sent_twice_a_read_is(recorder: Recorder) -> None:
    async def scenario() -> None:
        store = store_on(recorder)
        recorder.replies[:] = [Reply(delay=1.5), Reply()]
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="dynamodb: DeleteItem: ReadTimeout"):
            await store.kv_take("oauth:code:x", NOW)  # a second try could lose the code
        assert time.monotonic() - started < 1.4
        assert len(recorder.seen) == 1
        recorder.replies[:] = [Reply(delay=1.5), Reply()]
        assert await store.key_by_digest("0" * 64) is None  # GetItem: sent again
        assert len(recorder.seen) == 3
        await store.aclose()

    asyncio.run(scenario())


def test_a_failed_condition_hands_back_the_old_item(recorder: Recorder) -> None:
    failed = {
        "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
        "message": "The conditional request failed",
        "Item": {"tat": {"N": str(int(NOW * 1e6) + 60_000_000)}},
    }

    async def scenario() -> None:
        store = store_on(recorder)
        recorder.replies[:] = [Reply(400, failed)]
        decision = await store.admit("s", Limits(rpm=1), NOW)  # the old tat: a minute out
        assert not decision.allowed and decision.reason == "rate_limited"
        await store.aclose()

    asyncio.run(scenario())
    assert len(recorder.seen) == 1  # refused from the old item alone
    sent = json.loads(recorder.seen[0].body)
    assert sent["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"


def test_no_credential_shows_in_an_error(recorder: Recorder) -> None:
    quoted = (
        "The request signature we calculated does not match the signature you provided.\n"
        f"The Canonical String for this request should have been 'x-amz-security-token:{TOKEN}'"
    )
    denied = Reply(400, {"__type": "InvalidSignatureException", "message": quoted + SECRET_KEY})

    async def scenario() -> str:
        store = store_on(recorder)
        recorder.replies[:] = [Reply(400, {"__type": "X", "message": f"a {TOKEN} {SECRET_KEY}"})]
        with pytest.raises(StoreUnavailable) as first:
            await store.kv_delete("k")
        recorder.replies[:] = [denied]
        with pytest.raises(StoreUnavailable) as second:
            await store.kv_delete("k")
        await store.aclose()
        return f"{first.value} {second.value}"

    message = asyncio.run(scenario())
    assert "InvalidSignatureException" in message and "does not match" in message
    assert TOKEN not in message and SECRET_KEY not in message and "Canonical" not in message


def test_without_environment_credentials_the_profile_is_used(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    shared = tmp_path / "credentials"
    shared.write_text(
        "[laptop]\naws_access_key_id = AKIAPROFILEEXAMPLE\n"
        "aws_secret_access_key = profile-secret-0b5e7f\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shared))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))  # none
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role lookup
    monkeypatch.setenv("AWS_PROFILE", "laptop")

    async def scenario() -> None:
        store = store_on(recorder)
        assert await store.kv_get("k", NOW) is None
        await store.aclose()

    asyncio.run(scenario())
    [seen] = recorder.seen
    assert "Credential=AKIAPROFILEEXAMPLE/" in seen.headers["Authorization"]
    assert "X-Amz-Security-Token" not in seen.headers
    expected = botocore_authorization(seen, recorder.endpoint, "eu-west-1", "profile-secret-0b5e7f")
    assert seen.headers["Authorization"] == expected

    # No credentials anywhere: unavailable, saying so, and nothing is sent.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent"))
    monkeypatch.delenv("AWS_PROFILE")

    async def nowhere() -> None:
        store = store_on(recorder)
        with pytest.raises(StoreUnavailable, match="dynamodb: GetItem: no AWS credentials"):
            await store.kv_get("k", NOW)
        await store.aclose()

    asyncio.run(nowhere())
    assert len(recorder.seen) == 1


def test_dynamo_error_is_retryable_only_for_5xx_and_throttling() -> None:
    assert DynamoError(500, "InternalServerError", "", None).retryable
    assert DynamoError(400, "ProvisionedThroughputExceededException", "", None).retryable
    assert not DynamoError(400, "ConditionalCheckFailedException", "", None).retryable
    assert not DynamoError(400, "ResourceNotFoundException", "", None).retryable
    assert DynamoApi("cn-north-1").url == "https://dynamodb.cn-north-1.amazonaws.com.cn"
    assert DynamoApi("eu-west-1").url == "https://dynamodb.eu-west-1.amazonaws.com"
    for region in ("eu-west-1.attacker.example/", "eu-west-1@attacker.example", "", "-x"):
        with pytest.raises(ValueError, match="region"):  # the signed request's host
            DynamoApi(region)


def test_serving_a_request_with_keys_on_dynamodb_imports_neither_boto3_nor_botocore(
    moto_server: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    table = f"imports-{uuid.uuid4().hex[:8]}"
    create_table(moto_server.endpoint, table)
    url = f"dynamodb://{table}?region=us-east-1&endpoint={moto_server.endpoint}"
    key = keys_cli(url, "create", "--name", "imports")["key"]
    event = json.loads((ROOT / "tests" / "events" / "http-api.json").read_text())
    event.update(rawPath="/api/v2/genres", rawQueryString="", cookies=[])
    event["headers"] = {"host": "abc.example.test", "authorization": f"Bearer {key}"}
    event["requestContext"]["http"].update(method="GET", path="/api/v2/genres")
    code = (
        "import json, sys\n"
        "from app.lambda_handler import handler\n"
        "answer = handler(json.loads(sys.argv[1]), None)\n"
        "print(answer['statusCode'], *(m for m in ('boto3', 'botocore') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "OPENAI_"))}
    env.update(aws, STORE_URL=url, CHATGPT_SECRET="imports-secret-0123456789")
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(event)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["200"]  # served with the key, and nothing else imported
    [day] = keys_cli(url, "usage", keys_cli(url, "list")[0]["id"])
    assert day["requests"] == 1  # the request was counted on DynamoDB


def test_a_key_seen_once_is_touched_in_one_round_trip(recorder: Recorder) -> None:
    from app.store import KeyRecord
    from app.stores.dynamodb import _key_item

    record = KeyRecord("key_abc", "d" * 64, "n", "lnp_abcd", "wxyz", NOW)

    async def scenario() -> None:
        store = store_on(recorder)
        recorder.replies[:] = [Reply(body={"Item": _key_item(record)})]
        assert await store.key_by_digest("d" * 64) == record
        await store.touch("key_abc", NOW + 60)
        await store.aclose()

    asyncio.run(scenario())
    targets = [seen.headers["X-Amz-Target"].split(".")[1] for seen in recorder.seen]
    assert targets == ["GetItem", "UpdateItem"]  # no KID# read: the digest was known
    assert json.loads(recorder.seen[1].body)["Key"]["pk"] == {"S": "KEY#" + "d" * 64}
