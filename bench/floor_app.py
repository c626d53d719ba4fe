"""The Python floor for bench/throughput.py: the same passthrough with nothing else.

Starlette, one shared aiohttp session, no auth, no validation, no compaction: what the
proxy's route costs beyond this is the price of its features.

    UPSTREAM=http://127.0.0.1:PORT/api/v2 uvicorn bench.floor_app:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

UPSTREAM = os.environ["UPSTREAM"]
session: aiohttp.ClientSession | None = None


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    global session
    session = aiohttp.ClientSession()
    yield
    await session.close()


async def search_episodes(request: Request) -> Response:
    assert session is not None
    params = dict(request.query_params) | {"type": "episode"}
    async with session.get(f"{UPSTREAM}/search", params=params) as upstream:
        body = await upstream.read()
        return Response(body, status_code=upstream.status, media_type="application/json")


app = Starlette(routes=[Route("/api/v2/search_episodes", search_episodes)], lifespan=lifespan)
