"""DynamoDB's JSON protocol over HTTP/1.1, for app/stores/dynamodb.py: what boto3's low-level
client did for it, without boto3's import and client build (about 90 ms of a cold
start), nor httpx's network transport (about 24 ms of imports: app/stores/http1.py).

One operation is one `POST /` of `{"TableName": …, …}` (the same typed attributes boto3's
client takes: `{"S": …}`, `{"N": "…"}`, `{"B": base64}`) with `X-Amz-Target:
DynamoDB_20120810.<Operation>`, signed with SigV4 (app/aws.py). As boto3's config did: 1 s
connect and read timeouts, and two attempts when the connection fails or the answer is a
5xx or a throttling error. Unlike boto3, a write whose request may have reached DynamoDB
without a readable answer (a read timeout, a dropped connection, an `x-amz-crc32` that
does not match the body) is not sent again; a read is. The store's writes are counters and
conditional puts and deletes, which a second try would apply twice or answer wrongly (a
key-value entry taken by the first try, reported absent by the second): such a write fails
instead (the store's StoreUnavailable; callers fail closed).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import zlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from app.aws import CredentialChain, Credentials, NoCredentials, sign
from app.stores import http1

__all__ = ["DynamoApi", "DynamoError", "DynamoFailure", "endpoint_for"]

_TARGET = "DynamoDB_20120810."
_REGION = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)  # botocore's
# Operations that change nothing: sent again after any transport failure.
_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems", "DescribeTable"}
_CONTENT_TYPE = "application/x-amz-json-1.0"
# botocore's retryable throttling codes, those DynamoDB's data plane can answer.
_THROTTLING = {
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionInProgressException",
}


class DynamoFailure(Exception):
    """The operation failed: DynamoDB was not reached, or answered something unusable. The
    message says why, never with a credential."""


class DynamoError(DynamoFailure):
    """DynamoDB answered an error: `code` as in its `__type` (e.g.
    `ConditionalCheckFailedException`), and `item`, the old item, when the request asked
    for it (`ReturnValuesOnConditionCheckFailure=ALL_OLD`) and the condition failed."""

    def __init__(self, status: int, code: str, message: str, item: dict[str, Any] | None):
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.item = status, code, message, item

    @property
    def retryable(self) -> bool:
        return self.status >= 500 or self.status == 429 or self.code in _THROTTLING


def endpoint_for(region: str) -> str:
    """DynamoDB's public endpoint in `region` (the aws and aws-cn partitions). ValueError if
    `region` is not a region's name (it becomes part of the host that gets the credentials)."""
    if not _REGION.fullmatch(region):
        raise ValueError("the DynamoDB region must be a region's name, like eu-west-1")
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://dynamodb.{region}.{domain}"


class DynamoApi:
    """A client of DynamoDB's API in `region`, at `endpoint` if given (a local server)."""

    def __init__(
        self,
        region: str,
        endpoint: str | None = None,
        *,
        timeout: float = 1.0,
        attempts: int = 2,
    ) -> None:
        self.region = region
        self.url = endpoint or endpoint_for(region)
        self._path = urlsplit(self.url).path or "/"  # what sign() signs
        self.timeout = timeout
        self.attempts = attempts
        self.credentials = CredentialChain()
        self._origin: http1.Origin | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> http1.Origin:
        # Made on first use, in the loop that uses it (pooled connections belong to one
        # loop): a Lambda container keeps one loop; the CLI and tests may run several.
        # No proxy or .netrc from the environment, no redirects: as before, with httpx.
        loop = asyncio.get_running_loop()
        if self._origin is None or self._loop is not loop:
            self._origin = http1.Origin(
                self.url,
                timeout=self.timeout,
                # Waiting for a pooled connection is not DynamoDB failing: only a burst
                # beyond the pool (a server, not Lambda's one request at a time) waits.
                pool_timeout=10 * self.timeout,
                # boto3 ran in asyncio's default threads, at most 32 (6 on 2 cores) at once;
                # 16 requests in flight is ~2,000/s on DynamoDB, and the rest queue here
                # rather than at a slow server (moto in tests), where they would time out.
                max_connections=16,
            )
            self._loop = loop
        return self._origin

    async def call(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        """DynamoDB's answer to `operation` with `request` (its JSON body, as a dict).

        Raises DynamoError when DynamoDB answers an error (after the retries above), and
        DynamoFailure when it cannot be reached, or no credentials are found.
        """
        body = json.dumps(request, separators=(",", ":")).encode()
        fixed = {"Content-Type": _CONTENT_TYPE, "X-Amz-Target": _TARGET + operation}
        failure: DynamoFailure = DynamoFailure("no attempt made")
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(random.uniform(0.01, 0.05))  # noqa: S311 (jitter)
            try:
                credentials = await self.credentials.get()
            except NoCredentials as exc:
                raise DynamoFailure(str(exc)) from None
            headers = sign(
                "POST",
                self.url,
                fixed,
                body,
                credentials=credentials,
                region=self.region,
                service="dynamodb",
                now=datetime.now(UTC),
            )
            headers["Accept-Encoding"] = "identity"  # unsigned; x-amz-crc32 is of the raw body
            try:
                response = await self._http().post(self._path, headers, body)
            except http1.InvalidRequest:  # a header HTTP cannot carry (a malformed token)
                raise DynamoFailure("a request HTTP cannot carry; nothing was sent") from None
            except http1.HttpError as exc:
                failure = DynamoFailure(_describe(exc))
                # Not sent: any operation is sent again. Sent, maybe applied: only a read.
                # A full pool is not sent again: the retry would only wait longer.
                resend = isinstance(exc, http1.NotSent) or (
                    operation in _READS and isinstance(exc, http1.SentError)
                )
                if resend:
                    continue
                raise failure from None
            try:
                return _answer(response, credentials)
            except DynamoError as exc:
                if not exc.retryable:
                    raise
                failure = exc
            except DynamoFailure as exc:  # an answer, but garbled: a write was applied
                if operation not in _READS:
                    raise
                failure = exc
        raise failure

    async def aclose(self) -> None:
        if self._origin is not None and self._loop is asyncio.get_running_loop():
            await self._origin.aclose()
        self._origin = self._loop = None


def _answer(response: http1.Answer, credentials: Credentials) -> dict[str, Any]:
    content = response.body
    crc = response.headers.get("x-amz-crc32")
    if crc is not None and crc.isdigit() and int(crc) != zlib.crc32(content):
        raise DynamoFailure("the answer's CRC32 does not match its body")
    try:
        parsed = json.loads(content) if content else {}
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise DynamoFailure(f"HTTP {response.status}: an answer that is not JSON")
    if response.status == 200:
        return parsed
    kind = str(parsed.get("__type") or response.headers.get("x-amzn-errortype") or "")
    code = kind.rpartition("#")[2].partition(":")[0] or f"HTTP{response.status}"
    message = str(parsed.get("message") or parsed.get("Message") or "")
    # A signature error may quote the canonical request, session token included: the
    # first line says what went wrong, and no credential is ever repeated.
    message = message.split("\n", 1)[0][:300]
    for secret in (credentials.token, credentials.secret_key):
        if secret:
            message = message.replace(secret, "[redacted]")
    item = parsed.get("Item")
    return_item = item if isinstance(item, dict) else None
    raise DynamoError(response.status, code, message, return_item)


def _describe(exc: http1.HttpError) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
