"""A real HTTP upstream on loopback for tests: records what reached it, answers as told.

It runs aiohttp's server on 127.0.0.1 in a thread with its own event loop, so the proxy
under test talks to it over real sockets with its real transports.
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

from tests import payloads


@dataclass
class Seen:
    """One request as the upstream saw it."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    peer: tuple[str, int]


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay: float = 0.0
    drop: bool = False  # close the connection without answering


def default_reply(seen: Seen) -> Reply:
    if seen.path.endswith("/search"):
        body = payloads.search_answer(payloads.SEARCH_EPISODE, 10)
    elif "/episodes/" in seen.path or seen.path.endswith("/just_listen"):
        body = payloads.EPISODE
    elif "/podcasts/" in seen.path:
        body = payloads.PODCAST
    else:
        body = {"genres": [{"id": 67, "name": "Technology", "parent_id": None}]}
    return Reply(body=json.dumps(body).encode())


class StubUpstream:
    def __init__(
        self,
        answer: Callable[[Seen], Reply] = default_reply,
        *,
        ssl_context: ssl.SSLContext | None = None,  # serve https (tests/tls_support.py)
    ) -> None:
        self.answer = answer
        self.ssl_context = ssl_context
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}/api/v2"

    def __enter__(self) -> StubUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("stub upstream did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        self._loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._ready.set()
        self._loop.run_forever()
        # Stalled handlers (delayed replies) are cancelled and awaited, not abandoned.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else ("?", 0)
        seen = Seen(
            request.method,
            request.path,
            list(request.query.items()),
            {k.lower(): v for k, v in request.headers.items()},
            (peer[0], peer[1]),
        )
        with self._lock:
            self.seen.append(seen)
        reply = self.answer(seen)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never sent: the connection is gone
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)

    def connections(self) -> set[tuple[str, int]]:
        with self._lock:
            return {seen.peer for seen in self.seen}
