"""CPU per GET of a whole upstream answer, by HTTP client: what the podcast connector's
network costs on a cache miss.

    python bench/http_clients.py [--requests 6000] [--rounds 3] [--body short]

This process runs on core 0 and the bench's nginx stub (bench/throughput.py) on core 1.
Each client makes `--requests` GETs of the 10-result search answer (`--body`: short or
realistic, bench/stub_bodies.py), 16 at once, on uvloop, over kept-alive connections:

- `aiohttp`: a session configured as app/aiohttp_transport.py configures it;
- `stores-http1`: the DynamoDB store's stream-based client (app/stores/http1.py), its
  exchange driven with a GET (it only sends POSTs itself);
- `upstream-http1`: app/upstream_http1.py, the podcast upstream's network.

Prints this process's CPU µs per request for each, median of `--rounds` interleaved
rounds. Run it under the bench lock (`flock /work/bench.lock ...`) on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import throughput  # noqa: E402 (after the path)

HEADERS = {"Accept": "application/json", "X-ListenAPI-Key": "bench-upstream-key"}
CONCURRENCY = 16
Get = Callable[[int], Awaitable[None]]


def _query(number: int) -> str:
    return urlencode({"q": f"bench {number}", "type": "episode", "offset": "0"})


async def _timed(get: Get, requests: int) -> float:
    """CPU µs per request of `requests` GETs, CONCURRENCY at once, after a warm-up."""
    for number in range(100):
        await get(number)

    async def worker(first: int) -> None:
        for number in range(first, requests, CONCURRENCY):
            await get(number)

    started = time.process_time()
    await asyncio.gather(*(worker(first) for first in range(CONCURRENCY)))
    return (time.process_time() - started) / requests * 1e6


async def aiohttp_client(url: str, requests: int) -> float:
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=30),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("Accept-Encoding", "User-Agent"),
        timeout=aiohttp.ClientTimeout(total=None),
    )

    async def get(number: int) -> None:
        async with session.get(f"{url}?{_query(number)}", headers=HEADERS) as answer:
            body = await answer.read()
            assert answer.status == 200 and body

    try:
        return await _timed(get, requests)
    finally:
        await session.close()


async def stores_http1(url: str, requests: int) -> float:
    from urllib.parse import urlsplit

    from app.stores import http1

    origin = http1.Origin(url, timeout=10, pool_timeout=10, max_connections=100)
    parts = urlsplit(url)
    lines = [f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in HEADERS.items())]
    head = "\r\n".join(lines) + "\r\n\r\n"

    async def get(number: int) -> None:
        request = f"GET {parts.path}?{_query(number)} HTTP/1.1\r\n{head}".encode()
        async with origin._slots:  # what `Origin.post` does around its exchange
            connection = origin._reuse() or await origin._connect()
            answer, keep = await origin._exchange(connection, request)
            if keep:
                connection.idle_since = asyncio.get_running_loop().time()
                origin._idle.append(connection)
            else:
                connection.close()
        assert answer.status == 200 and answer.body

    try:
        return await _timed(get, requests)
    finally:
        await origin.aclose()


async def upstream_http1(url: str, requests: int) -> float:
    from app.tls import context_for
    from app.upstream_http1 import Http1Client

    fetcher = Http1Client(tls=context_for(url))

    async def get(number: int) -> None:
        answer = await fetcher.fetch(f"{url}?{_query(number)}", HEADERS)
        assert answer.status == 200 and answer.body

    try:
        return await _timed(get, requests)
    finally:
        await fetcher.aclose()


CLIENTS = {
    "aiohttp": aiohttp_client,
    "stores-http1": stores_http1,
    "upstream-http1": upstream_http1,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--body", choices=["short", "realistic"], default="short")
    args = parser.parse_args()
    import os

    import uvloop

    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    results: dict[str, list[float]] = {name: [] for name in CLIENTS}
    with tempfile.TemporaryDirectory() as folder:
        with throughput.nginx(Path(folder), throughput.free_port()) as upstream:
            url = f"{upstream}/{args.body}/api/v2/search"
            for _ in range(args.rounds):
                for name, client in CLIENTS.items():
                    results[name].append(uvloop.run(client(url, args.requests)))
    print(f"{args.body} body, {args.requests} GETs, {CONCURRENCY} at once, CPU µs a request")
    for name, values in results.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"  {name:<16} {statistics.median(values):6.1f}   ({runs})")


if __name__ == "__main__":
    main()
