"""The DynamoDB client's HTTP/1.1 (app/stores/http1.py) refuses answers HTTP cannot be,
against a loopback server sending exactly the bytes given."""

from __future__ import annotations

import asyncio

import pytest

from app.stores import http1

BODY = b'{"ok":true}'


async def _post_to(answer: bytes) -> http1.Answer:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(reply, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    origin = http1.Origin(f"http://127.0.0.1:{port}", timeout=5, pool_timeout=5, max_connections=1)
    try:
        return await origin.post("/", {"Content-Type": "application/json"}, b"{}")
    finally:
        await origin.aclose()
        server.close()


def test_a_chunked_answer_is_read_whole() -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n" + BODY[:5]
    answer += b"\r\n6\r\n" + BODY[5:] + b"\r\n0\r\n\r\n"
    assert asyncio.run(_post_to(answer)).body == BODY


@pytest.mark.parametrize("size", [b"-5", b"+5", b"0x5", b"1_0", b" ", b"fffffffffffffffff"])
def test_a_chunk_size_that_is_not_hex_digits_is_refused(size: bytes) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + b"\r\nhello\r\n0\r\n\r\n"
    )
    with pytest.raises(http1.RemoteProtocolError, match="HTTP cannot be"):
        asyncio.run(_post_to(answer))


@pytest.mark.parametrize(
    "line", [b"HTTP/1.1 2000 OK", b"HTTP/1.1 20", b"HTTP/2 200 OK", b"HTTP/1.1 abc", b"junk"]
)
def test_a_status_line_that_is_not_http_1_is_refused(line: bytes) -> None:
    answer = line + b"\r\nContent-Length: 11\r\n\r\n" + BODY
    with pytest.raises(http1.RemoteProtocolError, match="HTTP cannot be"):
        asyncio.run(_post_to(answer))


def test_a_status_line_without_a_reason_is_read() -> None:
    answer = b"HTTP/1.1 200\r\nContent-Length: 11\r\n\r\n" + BODY
    got = asyncio.run(_post_to(answer))
    assert (got.status, got.body) == (200, BODY)


def test_a_header_http_cannot_carry_is_refused_before_anything_is_sent() -> None:
    async def scenario() -> None:
        origin = http1.Origin("http://127.0.0.1:9", timeout=1, pool_timeout=1, max_connections=1)
        await origin.post("/", {"X-Amz-Security-Token": "a\r\nInjected: yes"}, b"")

    with pytest.raises(http1.InvalidRequest) as caught:
        asyncio.run(scenario())
    assert "Injected" not in str(caught.value)
