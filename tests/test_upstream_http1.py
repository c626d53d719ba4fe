"""The pooled HTTP/1.1 client (app/upstream_http1.py) against real servers on loopback: a scripted
asyncio server whose bytes on the wire each test chooses, and the aiohttp stub upstream
over https. What reached the server, what came back, and which connections were used."""

from __future__ import annotations

import asyncio
import gc
import re
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from app.upstream_body import BodyTooLarge
from app.upstream_http1 import _HIGH_WATER, Http1Client
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
        self.bodies: list[bytes] = []  # each request's body (by its Content-Length)
        self.connections = 0
        self.closed_by_client = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self._handlers: set[asyncio.Task[None]] = set()
        self._writer: asyncio.StreamWriter | None = None

    def send_more(self, data: bytes) -> None:
        """More bytes on the connection of the last answer (the rest of a stream)."""
        assert self._writer is not None
        self._writer.write(data)

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
                length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
                self.bodies.append(await reader.readexactly(int(length[1])) if length else b"")
                self._writer = writer
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


FIRST_CHUNK_ONLY = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"
"""A streamed answer's head and first chunk; the rest comes later, if ever."""


async def first_chunk_only(number: int, head: bytes) -> bytes:
    return FIRST_CHUNK_ONLY


def ok(body: bytes = b"ok", *extra: str) -> bytes:
    fields = "".join(f"{line}\r\n" for line in extra)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{fields}\r\n".encode() + body


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait for `condition` (polled), at most `seconds`: the test then goes on and its own
    assertion says what did not happen. No fixed sleeps: CI machines are slow at times."""
    deadline = asyncio.get_running_loop().time() + seconds
    # A poll: the states waited for (a socket closed, bytes arrived) have no event.
    while not condition() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run `scenario`, failing (not hanging) if the client waits forever (a lost wake-up)."""
    asyncio.run(asyncio.wait_for(scenario(), 30))


def fetcher(**options: object) -> Http1Client:
    return Http1Client(tls=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), **options)  # type: ignore[arg-type]


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
            client = fetcher(max_connections=1)  # a connection left open would hold the slot
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await client.fetch(f"{server.url}/slow", {})
            async with asyncio.timeout(2):
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
            with pytest.raises(httpx.UnsupportedProtocol):
                await client.fetch(f"{server.url}/x\x00y", {})
            with pytest.raises(httpx.UnsupportedProtocol):
                await client.fetch("http://127.0.0.1:70000/x", {})
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
            good = Http1Client(tls=trusting)
            answer = await good.fetch(f"{stub.base_url}/genres", {"Accept": "application/json"})
            assert answer.status == 200 and b"Technology" in answer.body
            await good.aclose()
            with pytest.raises(httpx.ConnectError):  # a context that does not trust it
                await Http1Client(tls=ssl.create_default_context()).fetch(
                    f"{stub.base_url}/genres", {}
                )

        run(scenario)
    assert len(stub.seen) == 1
    assert stub.seen[0].headers["accept"] == "application/json"


def test_bytes_after_a_whole_answer_are_not_read_as_its_body_nor_the_next() -> None:
    """An answer followed, in the same read, by another: the first is the answer, whole and
    alone, and the connection is out of step: never reused."""
    twice = ok(b"ok") + b"HTTP/1.1 200 OK\r\nX-Stale: 1\r\nContent-Length: 5\r\n\r\nstale"

    async def scenario() -> None:
        async def answer(number: int, head: bytes) -> bytes:
            return twice if number == 1 else ok(b"fresh")

        async with Scripted(answer) as server:
            client = fetcher()
            first = await client.fetch(f"{server.url}/a", {})
            second = await client.fetch(f"{server.url}/b", {})
            await client.aclose()
        assert (first.body, "x-stale" in first.headers, first.headers["content-length"]) == (
            b"ok",
            False,
            "2",
        )
        assert second.body == b"fresh"
        assert server.connections == 2

    run(scenario)


def test_header_fields_are_bounded() -> None:
    """A flood of header fields ends the request at once, without holding the loop."""
    flood = b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 200_000

    async def scenario() -> None:
        async def answer(number: int, head: bytes) -> bytes:
            return flood

        async with Scripted(answer) as server:
            client = fetcher()
            with pytest.raises(httpx.RemoteProtocolError, match="too long"):
                async with asyncio.timeout(5):
                    await client.fetch(f"{server.url}/a", {})
            await client.aclose()

    run(scenario)


def test_a_close_delimited_body_cut_by_a_reset_is_an_error() -> None:
    async def scenario() -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + b'{"results": [1, 2')
            await writer.drain()
            await asyncio.sleep(0.05)
            linger = struct.pack("ii", 1, 0)
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            writer.transport.abort()  # an RST, not a FIN

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(httpx.RemoteProtocolError):
            await fetcher().fetch(f"http://127.0.0.1:{port}/x", {})
        server.close()

    run(scenario)


def test_a_stale_retry_takes_a_new_connection_not_an_older_idle_one() -> None:
    async def scenario() -> None:
        served: dict[int, int] = {}

        async def answer(number: int, head: bytes) -> bytes | None:
            served[number] = served.get(number, 0) + 1
            if number <= 2 and served[number] == 2:
                return None  # both first connections were dropped by the server
            await asyncio.sleep(0.02)
            return ok(b"fine")

        async with Scripted(answer) as server:
            client = fetcher()
            await asyncio.gather(*(client.fetch(f"{server.url}/{n}", {}) for n in range(2)))
            assert (await client.fetch(f"{server.url}/again", {})).body == b"fine"
            await client.aclose()
        assert server.connections == 3

    run(scenario)


def test_aclose_fails_busy_requests_and_opens_nothing_after() -> None:
    async def scenario() -> None:
        async def answer(number: int, head: bytes) -> bytes:
            await asyncio.sleep(0.01 if b"/first" in head else 0.3)
            return ok(b"fine")

        async with Scripted(answer) as server:
            client = fetcher()
            await client.fetch(f"{server.url}/first", {})
            busy = asyncio.create_task(client.fetch(f"{server.url}/busy", {}))
            await until(lambda: len(server.heads) == 2)  # the busy request is in the server
            await client.aclose()
            with pytest.raises(httpx.TransportError):
                await busy
            assert server.connections == 1 and client._count() == 0

    run(scenario)


def test_idle_connections_of_another_origin_do_not_block_a_request() -> None:
    async def scenario() -> None:
        async def answer(number: int, head: bytes) -> bytes:
            return ok(b"fine")

        async with Scripted(answer) as server:
            client = fetcher(max_connections=1)
            await client.fetch(f"{server.url}/a", {})  # idle, to 127.0.0.1
            async with asyncio.timeout(2):
                other = await client.fetch(f"http://localhost:{server.port}/b", {})
            assert other.body == b"fine"
            await client.aclose()

    run(scenario)


def test_a_stream_whole_while_reading_is_paused_leaves_reading_on_in_the_pool() -> None:
    # One byte past the high-water mark: reading pauses on the read that ends the body.
    # Pooled still paused, the connection would never see the server close it while idle,
    # and the next request (never sent twice) would fail on it.
    async def scenario() -> None:
        async def answer(number: int, head: bytes) -> bytes:
            return Close(ok(b"x" * (_HIGH_WATER + 1)))  # and closed while idle

        async with Scripted(answer) as server:
            client = fetcher(max_connections=None)
            first = await client.stream("GET", f"{server.url}/a", {}, None, read_timeout=2)
            await until(lambda: all(c.complete for c in client._busy))  # all in, unread
            body = first.received()
            assert body is not None and len(body) == _HIGH_WATER + 1
            await first.aclose()
            # The server closed it: a connection reading sees that (one paused never does).
            await until(lambda: all(c.closed for idle in client._idle.values() for c in idle))
            second = await client.stream("GET", f"{server.url}/b", {}, None, read_timeout=2)
            assert second.status_code == 200 and server.connections == 2
            await second.aclose()
            await client.aclose()

    run(scenario)


def test_a_stream_that_cannot_connect_in_time_is_a_connect_timeout() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def unanswered(*args: object, **kwargs: object) -> None:
            await asyncio.sleep(10)

        loop.create_connection = unanswered  # type: ignore[method-assign,assignment]
        client = fetcher(max_connections=None)
        with pytest.raises(httpx.ConnectTimeout):
            await client.stream("GET", "http://127.0.0.1:9/", {}, None, read_timeout=0.1)
        assert client._count() == 0

    run(scenario)


def test_a_stream_method_must_be_an_ascii_token() -> None:
    async def scenario() -> None:
        async with Scripted(lambda number, head: asyncio.sleep(0, ok())) as server:
            client = fetcher(max_connections=None)
            with pytest.raises(httpx.LocalProtocolError):
                await client.stream("GÉT", server.url, {}, None, read_timeout=1)
            assert server.connections == 0

    run(scenario)


def test_a_stream_hands_chunks_over_as_they_arrive_and_then_reuses_its_connection() -> None:
    async def scenario() -> None:
        async def answer(number: int, head: bytes) -> bytes:
            if b"/v1/y" in head:
                return ok()
            return FIRST_CHUNK_ONLY

        async with Scripted(answer) as server:
            client = fetcher(max_connections=None)
            opened = await client.stream(
                "POST", f"{server.url}/v1/x", {"Content-Type": "a/b"}, b"abc", read_timeout=2
            )
            chunks = opened.aiter_bytes()
            assert await anext(chunks) == b"first"  # before the rest exists
            assert opened.received() is None  # not whole yet
            server.send_more(b"6\r\nsecond\r\n0\r\n\r\n")
            assert [c async for c in chunks] == [b"second"]
            await opened.aclose()
            again = await client.stream("GET", f"{server.url}/v1/y", {}, None, read_timeout=2)
            assert again.status_code == 200
            await again.aclose()
            await client.aclose()
        assert server.connections == 1
        assert server.heads[0].startswith(b"POST /v1/x HTTP/1.1\r\n")
        assert b"\r\nContent-Length: 3\r\n" in server.heads[0]
        assert server.bodies[0] == b"abc"

    run(scenario)


def test_a_stream_closed_before_its_end_closes_its_connection() -> None:
    async def scenario() -> None:
        async with Scripted(first_chunk_only) as server:
            client = fetcher(max_connections=None)
            opened = await client.stream("GET", f"{server.url}/a", {}, None, read_timeout=2)
            assert await anext(opened.aiter_bytes()) == b"first"
            await opened.aclose()
            await opened.aclose()  # twice: nothing more
            await until(lambda: server.closed_by_client == 1)
            assert server.closed_by_client == 1 and client._count() == 0
            await client.aclose()

    run(scenario)


def test_a_stream_whose_answer_does_not_start_in_time_is_a_read_timeout() -> None:
    async def scenario() -> None:
        async def answer(number: int, head: bytes) -> bytes:
            await asyncio.sleep(30)
            return ok()

        async with Scripted(answer) as server:
            client = fetcher(max_connections=None)
            with pytest.raises(httpx.ReadTimeout):
                await client.stream("GET", f"{server.url}/a", {}, None, read_timeout=0.2)
            assert client._count() == 0
            await client.aclose()

    run(scenario)


def test_a_stream_dropped_without_aclose_gives_its_connection_back() -> None:
    async def scenario() -> None:
        async with Scripted(first_chunk_only) as server:
            client = fetcher(max_connections=None)
            opened = await client.stream("GET", f"{server.url}/a", {}, None, read_timeout=2)
            assert client._count() == 1
            del opened
            gc.collect()
            assert client._count() == 0
            await client.aclose()

    run(scenario)


def test_idle_connections_past_keepalive_are_closed_when_another_comes_back() -> None:
    async def scenario() -> None:
        async def answer(number: int, head: bytes) -> bytes:
            await asyncio.sleep(1.2 if b"/later" in head else 0.05)
            return ok()

        async with Scripted(answer) as server:
            client = fetcher(max_connections=None, keepalive=1.0)
            await asyncio.gather(*(client.fetch(f"{server.url}/{n}", {}) for n in range(3)))
            assert client._count() == 3  # a burst: three idle connections
            # Takes the newest (well within keepalive), gives it back 1.2 s later: the two
            # others have been idle past keepalive by then.
            await client.fetch(f"{server.url}/later", {})
            await until(lambda: server.closed_by_client == 2)
            assert client._count() == 1
            assert server.closed_by_client == 2
            await client.aclose()

    run(scenario)
