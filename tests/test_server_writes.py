"""The server's writes (app/server.py `_Coalescing`): what one turn of the event loop writes
leaves in one system call, in order, and nothing is lost or sent after closing."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from app.server import _Coalescing
from tests.conftest import SECRET
from tests.live import LiveServer, live_server


class _Recording(asyncio.Transport):
    """A transport that records each write it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def test_one_turns_writes_are_one_write_and_later_ones_another() -> None:
    async def scenario() -> list[bytes]:
        real = _Recording()
        transport = _Coalescing(real, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(memoryview(b"body"))
        assert real.writes == []  # not yet: the turn is not over
        await asyncio.sleep(0)
        transport.write(b"chunk")  # a stream's next chunk: its own turn, its own write
        await asyncio.sleep(0)
        return real.writes

    assert asyncio.run(scenario()) == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"chunk"]


def test_a_large_write_goes_out_at_once() -> None:
    """A producer that never yields keeps the transport's flow control: past 64 KiB
    pending, writes are not held for the end of the turn."""

    async def scenario() -> list[int]:
        real = _Recording()
        transport = _Coalescing(real, asyncio.get_running_loop())
        transport.write(b"head")
        transport.write(b"x" * 70_000)
        sizes = [len(w) for w in real.writes]
        transport.write(b"tail")
        await asyncio.sleep(0)
        return sizes + [len(w) for w in real.writes[len(sizes) :]]

    assert asyncio.run(scenario()) == [70_004, 4]


def test_closing_sends_what_is_pending_first_and_nothing_after() -> None:
    async def scenario() -> _Recording:
        real = _Recording()
        transport = _Coalescing(real, asyncio.get_running_loop())
        transport.write(b"431 answer")
        transport.close()
        transport.write(b"late")
        await asyncio.sleep(0)
        return real

    real = asyncio.run(scenario())
    assert real.writes == [b"431 answer"] and real.closed


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("writes") / "server.log"
    with live_server({"CHATGPT_SECRET": SECRET}, log) as running:
        yield running


def test_pipelined_requests_get_whole_answers_in_order(server: LiveServer) -> None:
    host, port = server.base_url.removeprefix("http://").split(":")
    paths = ["/healthz", "/api/v2/genres", "/healthz"]
    request = b"".join(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n\r\n".encode()
        for path in paths
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while received.count(b"HTTP/1.1 ") < len(paths) or not _complete(received, len(paths)):
            part = sock.recv(65536)
            assert part, received
            received += part
    answers = _split(received)
    assert [status for status, _ in answers] == [200, 200, 200]
    assert "genres" in json.loads(answers[1][1])
    assert b"\r\nserver:" not in received.lower()  # no `Server: uvicorn` advertised


def _split(data: bytes) -> list[tuple[int, bytes]]:
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        fields = dict(line.lower().split(b": ", 1) for line in lines[1:])
        size = int(fields[b"content-length"])
        if len(rest) < size:
            raise ValueError("incomplete")
        answers.append((int(lines[0].split()[1]), rest[:size]))
        data = rest[size:]
    return answers


def _complete(data: bytes, count: int) -> bool:
    try:
        return len(_split(data)) == count
    except (ValueError, KeyError, IndexError):
        return False
