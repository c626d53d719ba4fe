"""app/aws.py's Signature Version 4 is AWS's: the same Authorization header as botocore's own
`SigV4Auth` on every kind of request the DynamoDB store sends (and some it does not), and
AWS's published test vectors. moto checks no signature, so this is what proves signing."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials

from app.aws import Credentials, host_header, sign

TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCWV1LXdlc3QtMSJHMEUCIQD+test/token=="
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


class Case(NamedTuple):
    url: str
    operation: str
    body: bytes
    region: str
    at: datetime
    token: str | None = None


def json_body(value: object, ascii_only: bool = True) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":")).encode()


ODD = 'é ☃ 😀 "quoted" back\\slash\nnew line\ttab \u2028 & = + / ? # % ~ \x00'
CASES = {
    "GetItem, public endpoint": Case(
        "https://dynamodb.us-east-1.amazonaws.com",
        "GetItem",
        json_body({"TableName": "t", "Key": {"pk": {"S": "KEY#ab"}, "sk": {"S": "META"}}}),
        "us-east-1",
        datetime(2026, 11, 26, 8, 30, 0, tzinfo=UTC),
    ),
    "UpdateItem, session token, odd characters escaped": Case(
        "https://dynamodb.eu-west-1.amazonaws.com/",
        "UpdateItem",
        json_body({"TableName": "t", "Key": {"pk": {"S": ODD}}, "ExpressionAttributeValues": {}}),
        "eu-west-1",
        datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),
        TOKEN,
    ),
    "PutItem, raw UTF-8 and binary, local port": Case(
        "http://127.0.0.1:8000",
        "PutItem",
        json_body({"Item": {"s": {"S": ODD}, "v": {"B": "AAEC/w=="}}}, ascii_only=False),
        "ap-southeast-2",
        datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
        TOKEN,
    ),
    "TransactWriteItems, China": Case(
        "https://dynamodb.cn-north-1.amazonaws.com.cn",
        "TransactWriteItems",
        json_body({"TransactItems": [{"Put": {"TableName": "t", "Item": {}}}] * 2}),
        "cn-north-1",
        datetime(2030, 1, 1, 0, 0, 0, tzinfo=UTC),
    ),
    "Query, upper-case host on the default port": Case(
        "http://LOCALHOST:80",
        "Query",
        json_body({"KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last"}),
        "us-west-2",
        datetime(2026, 6, 30, 12, 0, 0, tzinfo=UTC),
    ),
    "Scan, explicit default HTTPS port, other time zone": Case(
        "https://dynamodb.us-west-2.amazonaws.com:443/",
        "Scan",
        json_body({"FilterExpression": "begins_with(pk, :p)", "Select": "COUNT"}),
        "us-west-2",
        datetime(2026, 3, 1, 1, 30, 0, tzinfo=timezone(timedelta(hours=2))),  # 23:30 UTC
        TOKEN,
    ),
    "DeleteItem, IPv6 loopback": Case(
        "http://[::1]:4566",
        "DeleteItem",
        json_body({"Key": {"pk": {"S": "KV#x"}}, "ReturnValues": "ALL_OLD"}),
        "eu-central-1",
        datetime(2026, 11, 26, 8, 30, 0, tzinfo=UTC),
    ),
    "empty body": Case(
        "https://dynamodb.us-east-1.amazonaws.com",
        "ListTables",
        b"",
        "us-east-1",
        datetime(2026, 11, 26, 8, 30, 0, tzinfo=UTC),
        TOKEN,
    ),
}


def botocore_headers(case: Case, headers: dict[str, str]) -> dict[str, str]:
    """What botocore's SigV4Auth sends for the same request, its clock frozen at `case.at`."""
    request = AWSRequest(method="POST", url=case.url, data=case.body, headers=headers)
    credentials = BotocoreCredentials("AKIDEXAMPLE", SECRET_KEY, case.token)
    naive_utc = case.at.astimezone(UTC).replace(tzinfo=None)  # as botocore's clock gives it
    # botocore.auth reads the time through the name it imported; frozen there.
    with mock.patch("botocore.auth.get_current_datetime", return_value=naive_utc):
        SigV4Auth(credentials, "dynamodb", case.region).add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_signature_is_botocores(case: Case) -> None:
    fixed = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": f"DynamoDB_20120810.{case.operation}",
    }
    ours = sign(
        "POST",
        case.url,
        fixed,
        case.body,
        credentials=Credentials("AKIDEXAMPLE", SECRET_KEY, case.token),
        region=case.region,
        service="dynamodb",
        now=case.at,
    )
    theirs = botocore_headers(case, fixed)
    stamp = case.at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    assert theirs["X-Amz-Date"] == stamp  # the frozen clock took
    assert ours["X-Amz-Date"] == stamp
    assert ours["Authorization"] == theirs["Authorization"]
    assert ours.get("X-Amz-Security-Token") == theirs.get("X-Amz-Security-Token") == case.token
    assert "x-amz-security-token" in ours["Authorization"].lower() or case.token is None
    # The Host that is signed (botocore derives it from the URL) is the Host that is sent.
    assert ours["Host"] == host_header(case.url)
    assert {k: v for k, v in ours.items() if k not in ("Host", "Authorization")} == {
        k: v for k, v in theirs.items() if k != "Authorization"
    } | {"X-Amz-Date": stamp}


def test_a_changed_byte_or_header_changes_the_signature() -> None:
    case = CASES["UpdateItem, session token, odd characters escaped"]
    credentials = Credentials("AKIDEXAMPLE", SECRET_KEY, case.token)

    def authorization(body: bytes, target: str, region: str = case.region) -> str:
        return sign(
            "POST",
            case.url,
            {"X-Amz-Target": target},
            body,
            credentials=credentials,
            region=region,
            service="dynamodb",
            now=case.at,
        )["Authorization"]

    base = authorization(case.body, "DynamoDB_20120810.UpdateItem")
    assert authorization(case.body + b" ", "DynamoDB_20120810.UpdateItem") != base
    assert authorization(case.body, "DynamoDB_20120810.DeleteItem") != base
    assert authorization(case.body, "DynamoDB_20120810.UpdateItem", "eu-west-2") != base


# AWS's Signature Version 4 test suite (example.amazonaws.com, service "service") and the
# worked example of Amazon S3's documentation (GET Object, with a Range header).
VECTORS = [
    (
        "get-vanilla",
        "GET",
        "https://example.amazonaws.com/",
        {},
        Credentials("AKIDEXAMPLE", SECRET_KEY),
        ("us-east-1", "service", datetime(2015, 8, 30, 12, 36, tzinfo=UTC)),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    (
        "post-vanilla",
        "POST",
        "https://example.amazonaws.com/",
        {},
        Credentials("AKIDEXAMPLE", SECRET_KEY),
        ("us-east-1", "service", datetime(2015, 8, 30, 12, 36, tzinfo=UTC)),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    ),
    (
        "S3 GET Object",
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        {"Range": "bytes=0-9 ", "x-amz-content-sha256": hashlib.sha256(b"").hexdigest()},
        Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("us-east-1", "s3", datetime(2013, 5, 24, tzinfo=UTC)),
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    ),
]


@pytest.mark.parametrize(
    ("method", "url", "headers", "credentials", "where", "expected"),
    [v[1:] for v in VECTORS],
    ids=[v[0] for v in VECTORS],
)
def test_aws_published_vectors(
    method: str,
    url: str,
    headers: dict[str, str],
    credentials: Credentials,
    where: tuple[str, str, datetime],
    expected: str,
) -> None:
    region, service, at = where
    signed = sign(
        method, url, headers, b"", credentials=credentials, region=region, service=service, now=at
    )
    assert signed["Authorization"] == expected


def test_credentials_never_show_their_secrets() -> None:
    shown = repr(Credentials("AKIDEXAMPLE", SECRET_KEY, TOKEN))
    assert "AKIDEXAMPLE" in shown and SECRET_KEY not in shown and TOKEN not in shown
