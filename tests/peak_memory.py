"""One proxied request in a fresh process; prints its answer and the process's peak memory.

    python -m tests.peak_memory UPSTREAM_BASE_URL NETWORK PATH

Run by tests/test_upstream_body.py (with LISTEN_API_KEY and CHATGPT_SECRET in the
environment) so that the peak of one request is measured alone, and against a baseline
run of the same script. Imports only the app, so both runs carry the same imports.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys

import httpx

from app.main import create_app
from app.registry import Settings


async def main(base_url: str, network: str, path: str) -> None:
    settings = Settings(_env_file=None, listen_api_base_url=base_url)  # type: ignore[call-arg]
    app = create_app(settings, network=network)
    headers = {"Authorization": f"Bearer {os.environ['CHATGPT_SECRET']}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://proxy.test"
    ) as client:
        response = await client.get(path, headers=headers)
    for _connector, started in app.state.services.connectors.values():
        await started.aclose()
    print(
        json.dumps({"status": response.status_code, "body": response.json(), "peak_kb": peak_kb()})
    )


def peak_kb() -> int:
    """This process's peak resident memory, in KB. Linux's VmHWM, not `ru_maxrss`: the latter
    survives exec, so a child started by a large parent (pytest) would report the parent's."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
