"""Request heads are bounded in size and time by the server users run (`python -m app serve`),
before any authentication: raw sockets against the real process on loopback.

Every loop here has a fixed count or a deadline, so a server without the bounds makes these
tests fail, not hang.
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import AUTH, SECRET
from tests.live import LiveServer, live_server

HEADER_TIMEOUT = 1.0
MB = 1024 * 1024
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"CHATGPT_SECRET": SECRET, "HEADER_TIMEOUT": str(HEADER_TIMEOUT)}
    with live_server(env, tmp_path_factory.mktemp("limits") / "server.log") as live:
        yield live
    assert SECRET not in live.log_text()


def connect(server: LiveServer) -> socket.socket:
    port = int(server.base_url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # pieces go out as sent
    return sock


def read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes (b"" on a reset after the answer)."""
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        except TimeoutError:
            break
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"connection still open at the deadline; received {received[:200]!r}")


def status_and_json(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """One keep-alive answer (content-length framed): its status and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(head.split(b" ", 2)[1]), body


def push(sock: socket.socket, data: bytes, chunk: int, until: float) -> int:
    """Send `data` in pieces until done, refused or past `until`; the bytes accepted."""
    sent = 0
    view = memoryview(data)
    sock.settimeout(0.5)
    while sent < len(data) and time.monotonic() < until:
        try:
            sent += sock.send(view[sent : sent + chunk])
        except TimeoutError:
            continue
        except OSError:  # reset or broken pipe: the server closed on us
            break
    return sent


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    current = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return current / 1024, peak / 1024


def test_a_20_mb_header_is_answered_431_unread_and_closed(server: LiveServer) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (20 * MB) + b"\r\n\r\n"
    sock = connect(server)
    accepted: list[int] = []
    sender = threading.Thread(
        target=lambda: accepted.append(push(sock, request, 256 * 1024, time.monotonic() + 20))
    )
    sender.start()
    answer = read_until_closed(sock, time.monotonic() + 20)
    sender.join()
    sock.close()
    status, body = status_and_json(answer)
    assert status == 431
    assert body["error"]["code"] == "headers_too_large"  # type: ignore[index]
    assert b"connection: close" in answer.lower()
    # The server stopped reading: the client could not hand over the whole request (what it
    # did hand over is bounded by the socket buffers, not by the request).
    assert accepted[0] < len(request)


def test_a_header_that_never_ends_is_cut_off_at_the_deadline(server: LiveServer) -> None:
    sock = connect(server)
    started = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Never: ends")
    answer = read_until_closed(sock, started + 5)
    sock.close()
    status, body = status_and_json(answer)
    assert status == 408
    assert body["error"]["code"] == "header_timeout"  # type: ignore[index]


def test_a_connection_that_says_nothing_is_closed_at_the_deadline(server: LiveServer) -> None:
    sock = connect(server)
    assert read_until_closed(sock, time.monotonic() + 5) == b""
    sock.close()


def test_a_slow_loris_is_closed_at_the_deadline(server: LiveServer) -> None:
    sock = connect(server)
    started = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    closed_after = None
    while time.monotonic() - started < 5:  # one header byte every 0.2 s
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            closed_after = time.monotonic() - started
            break
        try:
            sock.send(b"a")
        except OSError:
            closed_after = time.monotonic() - started
            break
    sock.close()
    assert closed_after is not None, "the slow connection was still open after 5 s"


def test_four_endless_200_mb_headers_do_not_grow_the_server(server: LiveServer) -> None:
    pid = server.process.pid
    before, _ = rss_mb(pid)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: "
    payload = head + b"a" * (200 * MB)
    sockets = [connect(server) for _ in range(4)]
    until = time.monotonic() + 20  # without a bound this would stream for minutes
    senders = [
        threading.Thread(target=push, args=(sock, payload, 256 * 1024, until)) for sock in sockets
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    after, peak = rss_mb(pid)
    for sock in sockets:
        sock.close()
    assert after - before < 60, (before, after)
    assert peak - before < 60, (before, peak)
    sock = connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_answer(sock)[0] == 200
    sock.close()


def test_12_kb_of_headers_are_served_and_kept_alive_17_kb_are_not(server: LiveServer) -> None:
    auth = f"Authorization: {AUTH['Authorization']}\r\n".encode()
    padding = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(13))
    request = b"GET /api/v2/genres HTTP/1.1\r\nHost: x\r\n" + auth + padding + b"\r\n"
    assert 12 * 1024 < len(request) < 16 * 1024
    sock = connect(server)
    sock.sendall(request)  # in one piece
    status, body = read_answer(sock)
    assert status == 200 and json.loads(body)["genres"]
    for offset in range(0, len(request), 1000):  # the same head over many reads
        sock.sendall(request[offset : offset + 1000])
        time.sleep(0.01)
    assert read_answer(sock)[0] == 200  # same connection: keep-alive still works
    sock.close()

    larger = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"p" * (17 * 1024) + b"\r\n\r\n"
    for pieces in (1, 20):  # in one read (measured when complete) and over many (counted)
        sock = connect(server)
        size = -(-len(larger) // pieces)
        for offset in range(0, len(larger), size):
            sock.sendall(larger[offset : offset + size])
            time.sleep(0.01)
        status, error = status_and_json(read_until_closed(sock, time.monotonic() + 5))
        sock.close()
        assert status == 431, pieces
        assert error["error"]["code"] == "headers_too_large"  # type: ignore[index]


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GET /api/v2/search_episodes?q=\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
        (b"GET /api/v2/ge nres HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, 400, "bad_request"),  # TLS
        (b"GET /api/v2/genres HTTP/1.1\r\nHost\x01: x\r\n\r\n", 400, "bad_request"),
        (b"GET /?q=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "url_too_long"),
        (b"GET /?q=" + b"a" * 9_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "url_too_long"),
    ],
    ids=["non-utf8 bytes", "space in path", "tls hello", "control in name", "100 KB", "9 KB"],
)
def test_malformed_and_overlong_requests_get_the_json_error_and_close(
    server: LiveServer, request_bytes: bytes, status: int, code: str
) -> None:
    with connect(server) as sock:
        sock.sendall(request_bytes)
        answer = read_until_closed(sock, time.monotonic() + 5)
    head, _, body = answer.partition(b"\r\n\r\n")
    answered, body_json = status_and_json(answer)
    assert answered == status
    assert set(body_json) == {"error"} and body_json["error"]["code"] == code  # type: ignore[index]
    assert b"content-type: application/json" in head
    assert f"content-length: {len(body)}".encode() in head
    assert b"connection: close" in head


def test_an_8_kb_url_is_still_served(server: LiveServer) -> None:
    target = b"/api/v2/search_episodes?q=" + b"a" * 200 + b"&x=" + b"b" * 7_700
    with connect(server) as sock:
        sock.sendall(
            b"GET "
            + target
            + b" HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + AUTH["Authorization"].encode()
            + b"\r\n\r\n"
        )
        status, _ = read_answer(sock)
    assert status == 200
