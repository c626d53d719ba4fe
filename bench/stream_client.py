"""Streamed chat clients for bench/throughput.py (wrk cannot time a first chunk).

    python bench/stream_client.py ttfb URL CONNECTIONS SECONDS AUTH MODEL
        CONNECTIONS loops, each POSTing streamed chat completions back to back for SECONDS;
        prints JSON: time to the first body chunk (p50, p99 in ms), whole streams a second,
        errors (not 200, or no `[DONE]`).
    python bench/stream_client.py hold URL STREAMS SECONDS AUTH MODEL
        STREAMS streamed requests opened at once and read to their end (SECONDS bounds the
        wait); prints JSON: completed, errors and the first error seen.

AUTH is the whole Authorization header value.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

import aiohttp


def _request(model: str) -> bytes:
    message = {"role": "user", "content": "Say hello"}
    return json.dumps({"model": model, "stream": True, "messages": [message]}).encode()


async def _one(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes
) -> float:
    """Seconds to the first body chunk of one stream read to its end; raises on failure."""
    started = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as answer:
        if answer.status != 200:
            raise RuntimeError(f"status {answer.status}: {(await answer.read())[:200]!r}")
        first = await answer.content.readany()
        ttfb = time.perf_counter() - started
        rest = first + await answer.content.read()
        if b"[DONE]" not in rest:
            raise RuntimeError(f"stream ended without [DONE]: {rest[-200:]!r}")
        return ttfb


def _headers(auth: str) -> dict[str, str]:
    return {
        "Authorization": auth,
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
    }


async def ttfb(url: str, connections: int, seconds: float, auth: str, model: str) -> dict:
    samples: list[float] = []
    errors: list[str] = []
    body, headers = _request(model), _headers(auth)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def loop() -> None:
            while time.perf_counter() < deadline:
                try:
                    samples.append(await _one(session, url, headers, body))
                except Exception as error:  # counted, not fatal: the bench reports it
                    errors.append(repr(error)[:200])

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    samples.sort()
    return {
        "p50_ms": statistics.median(samples) * 1000 if samples else 0.0,
        "p99_ms": samples[int(len(samples) * 0.99)] * 1000 if samples else 0.0,
        "rps": len(samples) / elapsed,
        "requests": float(len(samples)),
        "errors": float(len(errors)),
        "first_error": errors[0] if errors else "",
    }


async def hold(url: str, streams: int, seconds: float, auth: str, model: str) -> dict:
    body, headers = _request(model), _headers(auth)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=seconds)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        results = await asyncio.gather(
            *(_one(session, url, headers, body) for _ in range(streams)), return_exceptions=True
        )
    errors = [repr(r)[:200] for r in results if isinstance(r, BaseException)]
    return {
        "completed": float(streams - len(errors)),
        "errors": float(len(errors)),
        "first_error": errors[0] if errors else "",
    }


def main() -> None:
    mode, url, count, seconds, auth, model = sys.argv[1:7]
    run = ttfb if mode == "ttfb" else hold
    print(json.dumps(asyncio.run(run(url, int(count), float(seconds), auth, model))))


if __name__ == "__main__":
    main()
