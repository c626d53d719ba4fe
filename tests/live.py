"""The real service as a subprocess on loopback, started as production starts it
(`python -m app serve`: uvicorn with bounded request heads)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
_SETTINGS = (
    "LISTEN_",
    "CHATGPT_",
    "PUBLIC_",
    "UPSTREAM_",
    "OPENAI_",
    "MAX_HEADER",
    "HEADER_",
    "STORE_",
    "DATA_DIR",
    "RATE_",
    "KEY_",
    "CACHE_",
    "OAUTH_",
)


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def live_server(env: dict[str, str], log: Path) -> Iterator[LiveServer]:
    """`python -m app serve` with `env` (and nothing of the caller's settings)."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS)}
    command = [
        sys.executable,
        "-m",
        "app",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    # The store lives beside the log unless `env` says otherwise.
    # A high rate for the shared secret unless the test sets one (limits have their tests).
    env = {"DATA_DIR": str(log.parent / "data"), "RATE_LIMIT_RPM": "1000000", **env}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            env={**clean, "DATA_DIR": str(log.parent / "data"), **env},
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{base_url}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield LiveServer(base_url, log, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


class InThreadServer:
    """`create_app(settings)` under uvicorn on a loopback port, in a thread of this process
    (so a test can reach into the app, and a failing app shows its traceback here)."""

    def __init__(self, settings: Any, *, network: str = "auto", **options: Any) -> None:
        import threading

        import uvicorn

        from app.main import create_app

        self.port = free_port()
        config = uvicorn.Config(
            create_app(settings, network=network, **options),  # options: create_app's
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)
