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
import ssl
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
from tests.tls_support import certificate, serving_context

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
    port: int = 0  # the client's: one port, one connection


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0
    crc: int | None = None  # the x-amz-crc32 to send (default: the body's own)
    chunked: bool = False  # the body in chunks, without a Content-Length
    hang_up: bool = False  # close the connection after answering, without saying so


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
                    Seen(
                        self.command,
                        self.path,
                        dict(self.headers.items()),
                        body,
                        self.client_address[1],
                    )
                )
                reply = recorder.replies.pop(0) if recorder.replies else Reply()
                time.sleep(reply.delay)
                content = json.dumps(reply.body).encode()
                crc = zlib.crc32(content) if reply.crc is None else reply.crc
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("x-amz-crc32", str(crc))
                if reply.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for at in range(0, len(content), 7):
                        piece = content[at : at + 7]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                self.close_connection = reply.hang_up

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


# Cold start on Lambda (bench/cold_start.py): what a REST request with a key on DynamoDB
# does not need. boto3 and its client (~90 ms), httpx's network transport (~24 ms), for a
# plain-http endpoint the CA bundle (~15 ms), the OpenAI gateway and sample data (~6 ms).
UNNEEDED = (
    "boto3",
    "botocore",
    "httpcore",
    "h11",
    "certifi",
    "app.connectors.openai.gateway",
    "app.connectors.openai.sample",
)


def test_a_rest_request_with_a_key_on_dynamodb_imports_only_what_it_needs(
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
        f"print(answer['statusCode'], *(m for m in {UNNEEDED!r} if m in sys.modules))\n"
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
    assert done.stdout.split() == ["200"]  # served with the key, and none of them imported
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


def test_connections_are_kept_and_one_closed_while_frozen_is_not_used(recorder: Recorder) -> None:
    """A Lambda container is frozen between invocations, and DynamoDB closes idle
    connections meanwhile: the next write goes once, on a new connection, and succeeds."""

    async def scenario() -> None:
        store = store_on(recorder)
        await store.kv_put("a", b"1", 60, NOW)
        recorder.replies[:] = [Reply(hang_up=True)]
        await store.kv_put("b", b"2", 60, NOW)  # answered, then the server hangs up
        time.sleep(0.2)  # noqa: ASYNC251 - frozen: the loop never sees the FIN arrive
        await store.kv_put("c", b"3", 60, NOW)  # a write: one try only
        await store.kv_put("d", b"4", 60, NOW)
        await store.aclose()

    asyncio.run(scenario())
    ports = [seen.port for seen in recorder.seen]
    assert len(ports) == 4  # each write reached DynamoDB exactly once
    assert ports[0] == ports[1] != ports[2] == ports[3]  # kept alive, replaced when closed


def test_an_answer_in_chunks_is_read_whole(recorder: Recorder) -> None:
    item = {"v": {"B": base64.b64encode(b"chunked value").decode()}, "exp": {"N": "1e10"}}

    async def scenario() -> tuple[bytes | None, bytes | None]:
        store = store_on(recorder)
        recorder.replies[:] = [Reply(body={"Item": item}, chunked=True)] * 2
        first = await store.kv_get("k", NOW)
        second = await store.kv_get("k", NOW)  # on the same connection, read to its end
        await store.aclose()
        return first, second

    assert asyncio.run(scenario()) == (b"chunked value", b"chunked value")
    assert len({seen.port for seen in recorder.seen}) == 1


def test_a_session_token_http_cannot_carry_sends_nothing(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-3f9a\r\nX-Injected: 1")

    async def scenario() -> str:
        store = store_on(recorder)
        with pytest.raises(StoreUnavailable) as refused:
            await store.kv_get("k", NOW)
        await store.aclose()
        return str(refused.value)

    message = asyncio.run(scenario())
    assert message == "dynamodb: GetItem: a request HTTP cannot carry; nothing was sent"
    assert "session-token-3f9a" not in message  # the error is logged: never a credential
    assert recorder.seen == []


def test_https_is_verified_against_the_shared_context(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Over https the certificate is checked (a self-signed one is refused, and nothing is
    sent); one the process's TLS context trusts carries signed requests, kept alive."""
    from app import tls

    cert_file, key_file = certificate(tmp_path)
    serving = serving_context(cert_file, key_file)
    recorder.server.socket = serving.wrap_socket(recorder.server.socket, server_side=True)
    endpoint = recorder.endpoint.replace("http://", "https://")

    async def refused() -> str:
        store = DynamoStore("the-table", region="eu-west-1", endpoint=endpoint)
        with pytest.raises(StoreUnavailable) as failed:
            await store.kv_get("k", NOW)
        await store.aclose()
        return str(failed.value)

    assert "ConnectError" in asyncio.run(refused())  # certifi's CAs never signed it
    assert recorder.seen == []

    trusting = ssl.create_default_context(cafile=cert_file)
    monkeypatch.setattr(tls, "_context", trusting)  # as if a CA of the bundle had signed it

    async def served() -> None:
        store = DynamoStore("the-table", region="eu-west-1", endpoint=endpoint)
        assert await store.kv_get("k", NOW) is None
        await store.kv_put("k", b"v", 60, NOW)
        await store.aclose()

    asyncio.run(served())
    assert [s.headers["X-Amz-Target"] for s in recorder.seen] == [
        "DynamoDB_20120810.GetItem",
        "DynamoDB_20120810.PutItem",
    ]
    assert len({seen.port for seen in recorder.seen}) == 1
    for seen in recorder.seen:
        assert seen.headers["Authorization"] == botocore_authorization(
            seen, endpoint, "eu-west-1", SECRET_KEY
        )
