"""The chat floor for bench/throughput.py: POST /v1/chat/completions passed through, no more.

Starlette and one shared aiohttp session; the body is sent upstream as received with the
upstream key injected, the answer relayed chunk by chunk as it arrives (so a streamed
answer streams). No auth, no checks: what the proxy's OpenAI route costs beyond this is
the price of its features.

    UPSTREAM=http://127.0.0.1:PORT/v1 uvicorn bench.floor_chat_app:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM = os.environ["UPSTREAM"]
session: aiohttp.ClientSession | None = None


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    global session
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)
    )
    yield
    await session.close()


async def chat_completions(request: Request) -> Response:
    assert session is not None
    headers = {
        "Authorization": "Bearer bench-upstream-key",
        "Content-Type": "application/json",
        "Accept": request.headers.get("accept", "application/json"),
    }
    upstream = await session.post(
        f"{UPSTREAM}/chat/completions", data=await request.body(), headers=headers
    )
    media_type = upstream.headers.get("content-type", "application/json")
    if media_type.startswith("text/event-stream"):
        return StreamingResponse(
            upstream.content.iter_any(),
            status_code=upstream.status,
            media_type=media_type,
            background=BackgroundTask(upstream.release),
        )
    body = await upstream.read()
    upstream.release()
    return Response(body, status_code=upstream.status, media_type=media_type)


app = Starlette(
    routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])], lifespan=lifespan
)
