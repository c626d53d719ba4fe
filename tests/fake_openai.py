"""A fake OpenAI upstream on loopback: records every request (headers and exact body
bytes) and answers as the test says, streaming with pauses or breaking off when asked.

aiohttp's server in a thread with its own event loop, so the gateway under test talks
to it over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Seen:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    peer: int = 0  # the gateway's port: one per upstream connection


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    chunks: list[bytes] | None = None  # streamed, one write each, `pause` seconds apart
    pause: float = 0.0
    drop_after: int | None = None  # streamed: close the connection after this many chunks
    delay: float = 0.0  # before answering at all


def json_answer(value: Any, status: int = 200, **headers: str) -> Answer:
    return Answer(
        status, json.dumps(value).encode(), {"Content-Type": "application/json", **headers}
    )


def error_answer(status: int, message: str, type_: str, code: str | None, **headers: str) -> Answer:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return json_answer(body, status, **headers)


class FakeOpenAI:
    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.answer: Callable[[Seen], Answer] = lambda seen: json_answer({"ok": True})
        self.ssl_context = ssl_context  # serve https (tests/tls_support.py)
        self.seen: list[Seen] = []
        self.hung_up = threading.Event()  # a streamed write found the caller gone
        self.chunks_sent = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}/v1"

    def reset(self, answer: Callable[[Seen], Answer] | None = None) -> None:
        self.seen.clear()
        self.hung_up.clear()
        self.chunks_sent = 0
        self.answer = answer or (lambda seen: json_answer({"ok": True}))

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake upstream did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        self._loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._ready.set()
        self._loop.run_forever()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(
            request.method,
            request.path,
            list(request.query.items()),
            {k.lower(): v for k, v in request.headers.items()},
            await request.read(),
            request.transport.get_extra_info("peername")[1] if request.transport else 0,
        )
        self.seen.append(seen)
        answer = self.answer(seen)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.chunks is None:
            return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        await response.prepare(request)
        try:
            for index, chunk in enumerate(answer.chunks):
                if answer.drop_after is not None and index == answer.drop_after:
                    assert request.transport is not None
                    request.transport.close()
                    return response
                if request.transport is None or request.transport.is_closing():
                    raise ConnectionResetError
                await response.write(chunk)
                self.chunks_sent += 1
                await asyncio.sleep(answer.pause)
            await response.write_eof()
        except (ConnectionResetError, OSError):
            self.hung_up.set()
        return response
