"""Real servers for the store tests, on loopback ports, one of each per test session.

- `redis_server`: Debian's `redis-server` (installed by `python3 dev.py test` when missing),
  no persistence, in a temporary folder; it can be stopped and restarted on the same port.
- `moto_server`: moto's DynamoDB in server mode (real HTTP on loopback, one request at a
  time, see `MotoServer`), also restartable on the same port; its tables live in this
  process, so they survive a restart. Clients need dummy credentials
  (`AWS_ACCESS_KEY_ID=testing`, set per test).

Import the fixtures into a test module (`from tests.servers import moto_server, redis_server`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["MotoServer", "RedisServer", "free_port", "moto_server", "redis_server"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, up: bool, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            reachable = s.connect_ex(("127.0.0.1", port)) == 0
        if reachable == up:
            return
        time.sleep(0.02)
    raise RuntimeError(f"port {port} still {'closed' if up else 'open'} after {timeout} s")


class RedisServer:
    """A throwaway `redis-server` on 127.0.0.1:`port`."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary, self.folder, self.port = binary, folder, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        with open(self.folder / "redis.log", "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        _wait_for_port(self.port, up=True)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
            _wait_for_port(self.port, up=False)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed: run the tests with `python3 dev.py test` "
            "(it installs Debian's redis-server as root) or `apt-get install redis-server`."
        )
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


class MotoServer:
    """moto's DynamoDB as a real HTTP server on 127.0.0.1:`port`, one request at a time.

    moto checks a condition and then writes, with no lock between the two; its threaded
    server can interleave two conditional updates of one item, which DynamoDB never does
    (its conditional writes are atomic per item). Under load, 100 concurrent admissions on
    one rate limit then granted 51-57 where the limit is 50. The server still takes many
    connections at once (a thread each) but runs moto for one request at a time."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server: Any = None
        self.thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        moto = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()

        def one_at_a_time(environ: dict[str, Any], start_response: Any) -> Any:
            with lock:  # moto answers with a finished body: the iterable holds no work
                return moto(environ, start_response)

        self.server = make_server(
            "127.0.0.1", self.port, one_at_a_time, threaded=True, request_handler=MotoRequestHandler
        )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        _wait_for_port(self.port, up=True)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            assert self.thread is not None
            self.thread.join()
            self.server = self.thread = None
            _wait_for_port(self.port, up=False)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    yield server
    server.stop()
