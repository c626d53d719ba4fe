"""A real headless Chromium (Debian's, installed by `python3 dev.py test`), driven over its
DevTools protocol: navigate, read the DOM, type, click, screenshot. Nothing else is needed
(the protocol is JSON over a WebSocket; `websockets` comes with uvicorn[standard])."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.servers import free_port

__all__ = ["Page", "chromium", "open_page"]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=900,900",
)


class Page:
    """One tab: `call` sends a DevTools command; events are kept for `wait_for`."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        await self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), 20))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    async def wait_for(self, event: str, seconds: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            for index, message in enumerate(self.events):
                if message.get("method") == event:
                    return self.events.pop(index)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(event)
            self.events.append(json.loads(await asyncio.wait_for(self.socket.recv(), remaining)))

    async def evaluate(self, expression: str) -> Any:
        answer = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return answer["result"].get("value")

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", url=url)
        await self.wait_for("Page.loadEventFired")

    async def screenshot(self) -> bytes:
        """The tab as a PNG."""
        shot = await self.call("Page.captureScreenshot", format="png")
        return base64.b64decode(shot["data"])


def _binary() -> str:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail(
            "chromium is not installed: run the tests with `python3 dev.py test` "
            "(it installs Debian's chromium as root) or `apt-get install chromium`."
        )
    return binary


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[str]:
    """A fresh headless Chromium (its own profile folder); the DevTools URL of its tab."""
    port = free_port()
    argv = [_binary(), *FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={port}"]
    process = subprocess.Popen(
        [*argv, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        targets: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not targets:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=1) as a:
                    targets = [t for t in json.load(a) if t.get("type") == "page"]
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("chromium did not start") from None
                time.sleep(0.1)
        yield str(targets[0]["webSocketDebuggerUrl"])
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.asynccontextmanager
async def open_page(devtools_url: str) -> AsyncIterator[Page]:
    """The tab behind `devtools_url` (from `chromium`), with page events on."""
    async with websockets.connect(devtools_url, max_size=None) as socket:
        page = Page(socket)
        await page.call("Page.enable")
        yield page
