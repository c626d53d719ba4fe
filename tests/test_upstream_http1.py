"""The pooled HTTP/1.1 client (app/upstream_http1.py) against real servers on loopback: a scripted
asyncio server whose bytes on the wire each test chooses, and the aiohttp stub upstream
over https. What reached the server, what came back, and which connections were used."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from app.upstream_body import BodyTooLarge
from app.upstream_http1 import Http1Fetcher
from tests.stub_upstream import StubUpstream
from tests.tls_support import certificate, serving_context

Handler = Callable[[int, bytes], Awaitable[bytes | None]]
"""The script: (connection number, request head) -> bytes to answer (`Close`: and then
close the connection); None: close at once."""


class Close(bytes):
    """An answer after which the server closes the connection."""


class Scripted:
    """A loopback server that answers each request head with what `handler` returns, on
    the same connection until the handler closes it (None) or the client does."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.heads: list[bytes] = []
        self.connections = 0
        self.closed_by_client = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.closed_by_client += 1
                    return
                self.heads.append(head)
                answer = await self.handler(number, head)
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
                if isinstance(answer, Close):
                    return
        except asyncio.CancelledError:
            return  # the test is over
        finally:
            writer.close()


def ok(body: bytes = b"ok", *extra: str) -> bytes:
    fields = "".join(f"{line}\r\n" for line in extra)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{fields}\r\n".encode() + body


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


def fetcher(**options: object) -> Http1Fetcher:
    return Http1Fetcher(tls=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), **options)  # type: ignore[arg-type]


def test_one_connection_serves_sequential_requests_with_the_given_headers() -> None:
    async def scenario() -> None:
        async def answer(_: int, head: bytes) -> bytes:
            return ok(b'{"n": 1}', "Content-Type: application/json", "X-Twice: a", "x-twice: b")

        async with Scripted(answer) as server:
            client = fetcher()
            answers = [
                await client.fetch(f"{server.url}/api/v2/search?q=a%20b&n={n}", {"X-Key": "k"})
                for n in range(3)
            ]
            await client.aclose()
        assert [a.status for a in answers] == [200] * 3
        assert answers[0].body == b'{"n": 1}'
        assert answers[0].headers["CONTENT-TYPE"] == "application/json"
        assert answers[0].headers.get("x-twice") == "a, b"
        assert server.connections == 1
        port = server.url.rsplit(":", 1)[1]
        assert (
            server.heads[2]
            == (
                f"GET /api/v2/search?q=a%20b&n=2 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "X-Key: k\r\n\r\n"
            ).encode()
        )

    run(scenario)


def test_chunked_close_delimited_and_interim_answers_are_read_whole() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    interim = b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n" + ok(b"after")
    until_close = Close(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end")

    async def scenario() -> None:
        async def answer(number: int, head: bytes) -> bytes:
            if b"chunked" in head:
                return chunked
            return interim if b"interim" in head else until_close

        async with Scripted(answer) as server:
            client = fetcher()
            first = await client.fetch(f"{server.url}/chunked", {})
            second = await client.fetch(f"{server.url}/interim", {})
            third = await client.fetch(f"{server.url}/close", {})
            fourth = await client.fetch(f"{server.url}/chunked", {})
            await client.aclose()
        assert first.body == b"hello world"
        assert second.status == 200 and second.body == b"after"
        assert "link" not in second.headers  # the interim answer's fields are not the answer's
        assert third.body == b"to the end"
        assert fourth.body == b"hello world"
        # chunked and interim reused one connection; the close-delimited one ended it
        assert server.connections == 2

    run(scenario)


def test_a_connection_the_server_closed_while_idle_is_replaced_once() -> None:
    async def scenario() -> None:
        async def answer(number: int, head: bytes) -> bytes | None:
            if number == 1 and b"/second" in head:
                return None  # the server had dropped it: closed, nothing answered
            return ok(b"fine")

        async with Scripted(answer) as server:
            client = fetcher()
            assert (await client.fetch(f"{server.url}/first", {})).body == b"fine"
            assert (await client.fetch(f"{server.url}/second", {})).body == b"fine"
            await client.aclose()
        assert server.connections == 2
        assert [h.split(b" ")[1] for h in server.heads] == [b"/first", b"/second", b"/second"]

    run(scenario)


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        (None, httpx.RemoteProtocolError),  # a new connection closed without an answer
        (Close(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"), httpx.RemoteProtocolError),
        (b"HTTP/1.1 2x0 What\r\n\r\n", httpx.RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", BodyTooLarge),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"400\r\n"
            + b"x" * 1024
            + b"\r\n"
            + b"400\r\n"
            + b"x" * 1024
            + b"\r\n0\r\n\r\n",
            BodyTooLarge,
        ),
    ],
    ids=["no-answer", "cut-short", "malformed", "declared-too-large", "chunks-too-large"],
)
def test_broken_answers_raise_the_transport_errors_the_upstream_client_maps(
    wire: bytes | None, error: type[Exception]
) -> None:
    async def scenario() -> None:
        async def answer(number: int, head: bytes) -> bytes | None:
            if wire is None:
                return None
            return wire if number == 1 else ok(b"next")

        async with Scripted(answer) as server:
            client = fetcher(max_body=1500)
            with pytest.raises(error):
                await client.fetch(f"{server.url}/x", {})
            if wire is not None:  # the broken connection is not reused
                assert (await client.fetch(f"{server.url}/x", {})).body == b"next"
                assert server.connections == 2
            else:
                assert server.connections == 1  # a new connection is not retried
            await client.aclose()

    run(scenario)


def test_a_request_given_up_closes_its_connection() -> None:
    async def scenario() -> None:
        async def answer(number: int, head: bytes) -> bytes:
            if number == 1:
                await asyncio.sleep(30)  # stalls until the client leaves
            return ok(b"later")

        async with Scripted(answer) as server:
            client = fetcher()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await client.fetch(f"{server.url}/slow", {})
            assert (await client.fetch(f"{server.url}/fast", {})).body == b"later"
            await client.aclose()
        assert server.connections == 2

    run(scenario)


def test_connections_are_bounded_and_waiting_requests_get_them() -> None:
    async def scenario() -> None:
        async def answer(number: int, head: bytes) -> bytes:
            await asyncio.sleep(0.02)
            return ok(head.split(b" ")[1])

        async with Scripted(answer) as server:
            client = fetcher(max_connections=2)
            paths = [f"/{n}" for n in range(8)]
            answers = await asyncio.gather(*(client.fetch(server.url + p, {}) for p in paths))
            await client.aclose()
        assert [a.body.decode() for a in answers] == paths
        assert server.connections == 2

    run(scenario)


def test_an_answer_saying_close_ends_its_connection() -> None:
    async def scenario() -> None:
        async def answer(number: int, head: bytes) -> bytes:
            return ok(b"bye", "Connection: close")

        async with Scripted(answer) as server:
            client = fetcher()
            for _ in range(2):
                assert (await client.fetch(f"{server.url}/x", {})).body == b"bye"
            await client.aclose()
        assert server.connections == 2

    run(scenario)


def test_control_characters_in_headers_are_refused_before_anything_is_sent() -> None:
    async def scenario() -> None:
        async def answer(number: int, head: bytes) -> bytes:
            return ok()

        async with Scripted(answer) as server:
            client = fetcher()
            with pytest.raises(httpx.LocalProtocolError):
                await client.fetch(f"{server.url}/x", {"X-Key": "k\r\nInjected: 1"})
            with pytest.raises(httpx.UnsupportedProtocol):
                await client.fetch("ftp://127.0.0.1/x", {})
            await client.aclose()
        assert server.heads == []

    run(scenario)


def test_a_refused_connection_is_a_connect_error() -> None:
    async def scenario() -> None:
        with pytest.raises(httpx.ConnectError):
            await fetcher().fetch("http://127.0.0.1:9/x", {})

    run(scenario)


def test_https_verifies_the_server_certificate(tmp_path: Path) -> None:
    cert_file, key_file = certificate(tmp_path)
    trusting = ssl.create_default_context(cafile=str(cert_file))
    with StubUpstream(ssl_context=serving_context(cert_file, key_file)) as stub:

        async def scenario() -> None:
            good = Http1Fetcher(tls=trusting)
            answer = await good.fetch(f"{stub.base_url}/genres", {"Accept": "application/json"})
            assert answer.status == 200 and b"Technology" in answer.body
            await good.aclose()
            with pytest.raises(httpx.ConnectError):  # a context that does not trust it
                await Http1Fetcher(tls=ssl.create_default_context()).fetch(
                    f"{stub.base_url}/genres", {}
                )

        run(scenario)
    assert len(stub.seen) == 1
    assert stub.seen[0].headers["accept"] == "application/json"
