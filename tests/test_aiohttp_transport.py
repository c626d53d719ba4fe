"""The aiohttp transport as a plain httpx transport (its other face, beside `fetch`)."""

from __future__ import annotations

import asyncio
import gzip
import json

import httpx
import pytest

from app.aiohttp_transport import AiohttpTransport, BodyTooLarge
from app.tls import client_context
from tests.stub_upstream import Reply, StubUpstream


def get(stub: StubUpstream, transport: AiohttpTransport) -> httpx.Response:
    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(f"{stub.base_url}/genres", headers={"X-Test": "1"})
            await response.aread()
            return response

    return asyncio.run(call())


def test_serves_an_httpx_client_and_httpx_decodes_gzip() -> None:
    body = gzip.compress(json.dumps({"genres": []}).encode())
    with StubUpstream(lambda seen: Reply(body=body, headers={"Content-Encoding": "gzip"})) as stub:
        response = get(stub, AiohttpTransport(tls=client_context()))
        assert response.status_code == 200
        assert response.json() == {"genres": []}  # decoded once, by httpx
        assert stub.seen[0].headers["x-test"] == "1"


def test_maps_a_dropped_connection_to_a_protocol_error_not_a_timeout() -> None:
    with (
        StubUpstream(lambda seen: Reply(drop=True)) as stub,
        pytest.raises(httpx.TransportError) as caught,
    ):
        get(stub, AiohttpTransport(tls=client_context()))
    assert not isinstance(caught.value, httpx.TimeoutException)


def test_refuses_bodies_over_the_cap() -> None:
    with StubUpstream(lambda seen: Reply(body=b"x" * 5000)) as stub, pytest.raises(BodyTooLarge):
        get(stub, AiohttpTransport(tls=client_context(), max_body=1000))


def test_maps_a_refused_connection_to_connect_error() -> None:
    async def call() -> None:
        transport = AiohttpTransport(tls=client_context())
        try:
            await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:9/x"))
        finally:
            await transport.aclose()

    with pytest.raises(httpx.ConnectError):
        asyncio.run(call())
