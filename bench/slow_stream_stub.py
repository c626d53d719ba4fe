"""A slow OpenAI-shaped upstream for bench/throughput.py: one SSE chunk a second.

POST /v1/chat/completions with `"stream": true` answers `text/event-stream` with CHUNKS
chunks (default 20), one per second, then `[DONE]`: what a long generation looks like to a
proxy holding many streams open at once. Without it, a chat completion at once.

    python bench/slow_stream_stub.py PORT [CHUNKS]
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web
from stub_bodies import chat_json, sse_chunk  # run as a script from bench/


async def chat_completions(request: web.Request) -> web.StreamResponse:
    if not (await request.json()).get("stream"):
        return web.Response(body=chat_json(), content_type="application/json")
    answer = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await answer.prepare(request)
    for number in range(int(request.app["chunks"])):
        await answer.write(sse_chunk(f" word{number}"))
        await asyncio.sleep(1)
    await answer.write(sse_chunk(None, "stop") + b"data: [DONE]\n\n")
    await answer.write_eof()
    return answer


def main() -> None:
    app = web.Application()
    app["chunks"] = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    app.router.add_post("/v1/chat/completions", chat_completions)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, backlog=4096)


if __name__ == "__main__":
    main()
