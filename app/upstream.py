"""The upstream API client: one pooled `httpx.AsyncClient`, the key injected, failures typed.

Only this module talks to the upstream. It sends what an `Operation` built from validated
parameters and nothing of the caller's request: no `Authorization`, cookies or forwarding
headers can reach the upstream because none are ever copied.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import httpx

from app.errors import (
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamRejectedKey,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.observability import current_record

__all__ = ["MAX_UPSTREAM_BYTES", "UpstreamClient"]

log = logging.getLogger("app.upstream")

MAX_UPSTREAM_BYTES = 8 * 1024 * 1024
"""Larger upstream answers are refused rather than buffered."""

_RETRY_AFTER = re.compile(r"^[0-9A-Za-z ,:+-]{1,64}$")
_USER_AGENT = "podcast-plugin-proxy/0.1"


class UpstreamClient:
    """GET JSON from the upstream API. The `httpx.AsyncClient` is created on first use, so
    the client works whether or not an ASGI lifespan ever runs (e.g. on AWS Lambda)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            headers = {"Accept": "application/json", "User-Agent": _USER_AGENT}
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                transport=self._transport,
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def get_json(self, path: str, query: dict[str, str], *, key: str | None) -> Any:
        """The decoded JSON answer of `GET {base}{path}?{query}`; an `UpstreamError` otherwise.

        `key` is sent as `X-ListenAPI-Key`, the only credential that goes upstream. The
        whole exchange, body included, ends within `timeout` seconds.
        """
        try:
            async with asyncio.timeout(self.timeout):
                status, headers, body = await self._fetch(path, query, key)
        except (TimeoutError, httpx.TimeoutException):
            raise UpstreamTimeout(detail=f"no answer within {self.timeout}s") from None
        except httpx.HTTPError as error:
            raise UpstreamUnavailable(detail=f"transport: {type(error).__name__}") from None
        if status != 200:
            raise _status_error(status, headers)
        try:
            return json.loads(body)
        except ValueError:
            raise UpstreamUnavailable(status=status, detail="answer is not JSON") from None

    async def _fetch(
        self, path: str, query: dict[str, str], key: str | None
    ) -> tuple[int, httpx.Headers, bytes]:
        headers = {"X-ListenAPI-Key": key} if key is not None else None
        request = self._http().build_request("GET", path, params=query, headers=headers)
        response = await self._http().send(request, stream=True)
        current_record().upstream_status = response.status_code
        try:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_UPSTREAM_BYTES:
                raise UpstreamUnavailable(status=response.status_code, detail="answer too large")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_UPSTREAM_BYTES:
                    raise UpstreamUnavailable(
                        status=response.status_code, detail="answer too large"
                    )
                chunks.append(chunk)
        finally:
            await response.aclose()
        return response.status_code, response.headers, b"".join(chunks)


def _status_error(status: int, headers: httpx.Headers) -> UpstreamError:
    if status == 404:
        return UpstreamNotFound(status=404)
    if status == 429:
        retry_after = headers.get("retry-after")
        if retry_after is not None and not _RETRY_AFTER.match(retry_after):
            retry_after = None
        return UpstreamRateLimited(retry_after=retry_after)
    if status in (401, 403):
        log.error(
            "upstream refused the API key (HTTP %s): check LISTEN_API_KEY",
            status,
            extra={"fields": {"event": "upstream_key_rejected", "upstream_status": status}},
        )
        return UpstreamRejectedKey(status=status)
    return UpstreamUnavailable(status=status, detail=f"upstream answered HTTP {status}")
