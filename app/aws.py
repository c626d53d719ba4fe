"""AWS requests without boto3: credentials, and Signature Version 4 for JSON-protocol APIs.

boto3 and its client cost about 90 ms of a cold start (bench/cold_start.py); the DynamoDB
store needs only one signed POST per operation (app/stores/dynamodb_api.py).
tests/test_aws.py proves the signer against botocore's own `SigV4Auth` and AWS's published
test vectors.

Credentials: the environment first (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_SESSION_TOKEN`: what the Lambda runtime sets for the function's role), read on every
request. Without them (a laptop running `python -m app keys` with a profile, SSO, an EC2
role…), botocore's own credential chain, imported only then: botocore comes with the AWS
CLI and boto3, wherever such credentials are set up.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = ["CredentialChain", "Credentials", "NoCredentials", "host_header", "sign"]

_ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class Credentials:
    """One set of AWS credentials (the secret parts never appear in a repr)."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


class NoCredentials(Exception):
    """No AWS credentials were found (the message says where they were looked for)."""


def environment_credentials() -> Credentials | None:
    """The credentials in the environment, as the Lambda runtime sets them, or None."""
    access_key = os.environ.get("AWS_ACCESS_KEY_ID")
    secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access_key or not secret_key:
        return None
    return Credentials(access_key, secret_key, os.environ.get("AWS_SESSION_TOKEN") or None)


class CredentialChain:
    """The environment's credentials, else botocore's chain (profiles, SSO, instance roles),
    built once and only when first needed; refreshable credentials are refreshed by it."""

    def __init__(self) -> None:
        self._botocore: Any = None
        self._lock = threading.Lock()  # not asyncio's: the CLI and tests use several loops

    async def get(self) -> Credentials:
        """Current credentials; raises NoCredentials when there are none anywhere."""
        found = environment_credentials()
        if found is not None:
            return found
        # In a thread: botocore reads files, and may call STS, SSO or an instance's IMDS.
        return await asyncio.to_thread(self._from_botocore)

    def _from_botocore(self) -> Credentials:
        with self._lock:  # one botocore session, however many requests wait for it
            if self._botocore is None:
                try:
                    import botocore.session  # lazy: only without credentials in the environment
                except ImportError:
                    raise NoCredentials(
                        "no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are "
                        "not set, and botocore (for profiles and the rest of AWS's chain) is "
                        "not installed"
                    ) from None
                # None is not kept: the next request looks again (a profile fixed meanwhile).
                self._botocore = botocore.session.Session().get_credentials()
            chain = self._botocore
        if chain is None:
            raise NoCredentials(
                "no AWS credentials: not in the environment, nor anywhere botocore's chain "
                "looks (profile, SSO, container or instance role)"
            )
        frozen = chain.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)


def host_header(url: str) -> str:
    """The Host header for `url` as SigV4 signs it (and botocore derives it): the host in
    lower case, IPv6 in brackets, the port only when it is not the scheme's default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials: Credentials,
    region: str,
    service: str,
    now: datetime,
) -> dict[str, str]:
    """The headers to send `body` to `url` with: `headers` plus Host, X-Amz-Date,
    X-Amz-Security-Token (with a session token) and Authorization, all of them signed.

    AWS Signature Version 4 with a signed payload. `url` has no query string (AWS's JSON
    protocols have none; ValueError otherwise); its path is percent-encoded once.
    """
    parts = urlsplit(url)
    if parts.query:
        raise ValueError("sign() takes URLs without a query string")
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    sent = {**headers, "Host": host_header(url), "X-Amz-Date": stamp}
    if credentials.token:
        sent["X-Amz-Security-Token"] = credentials.token
    canonical = {name.lower(): " ".join(value.split()) for name, value in sent.items()}
    if len(canonical) != len(sent):
        raise ValueError("a header is given twice (names are case-insensitive)")
    names = sorted(canonical)
    signed_headers = ";".join(names)
    request = "\n".join(
        (
            method.upper(),
            quote(parts.path or "/", safe="/~"),
            "",  # the query string
            "".join(f"{name}:{canonical[name]}\n" for name in names),
            signed_headers,
            hashlib.sha256(body).hexdigest(),
        )
    )
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join((_ALGORITHM, stamp, scope, hashlib.sha256(request.encode()).hexdigest()))
    key = f"AWS4{credentials.secret_key}".encode()
    for part in (stamp[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    sent["Authorization"] = (
        f"{_ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return sent
