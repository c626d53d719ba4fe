"""Throughput, latency and memory of the proxy, side by side with the Python floor.

    python3 dev.py bench throughput [--duration 10] [--plain-httptools]

On loopback, in one run, on the same upstream stub (nginx serving a realistic 10-result
search answer built from the bundled sample data, as fast as it can):
  1. the proxy: `python -m app serve` (uvicorn, one worker, request heads bounded), as the
     Dockerfile runs it in production; with --plain-httptools also the same app under
     uvicorn's own httptools protocol (no head bounds), to price the bounds;
  2. the floor: bench/floor_app.py, Starlette + one aiohttp session, no validation;
  3. the upstream stub directly.
wrk loads each at 1 and 16 connections (req/s, p50, p99). Then the proxy's RSS is read
after 10,000 and 20,000 more requests. nginx and wrk come from Debian's packages and are
installed when missing (as root).

Noise control: the machine has 2 cores, shared. The server under test is pinned to
core 0 and nginx and wrk to core 1 (taskset), so the server's own cost is what is
measured; proxy and floor runs alternate over --rounds and medians are reported.

Targets (issue 4): proxy/floor throughput at 16 connections >= 0.5; p50 at 1 connection
<= 2x the floor's; RSS after 20,000 requests <= 100 MB and not growing from 10,000.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef"
QUERY = "/api/v2/search_episodes?q=the&page_size=10"


def ensure_tools() -> None:
    missing = [
        tool
        for tool in ("nginx", "wrk")
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()
    ]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing {', '.join(missing)}: apt-get install nginx-light wrk (as root)")
    print(f"installing {', '.join(missing)} from Debian's packages", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light", "wrk"], check=True, env=env)


def _pin(core: int) -> list[str]:
    return (
        ["taskset", "-c", str(core)]
        if shutil.which("taskset") and (os.cpu_count() or 1) > 1
        else []
    )


SERVER_CORE = _pin(0)
LOAD_CORE = _pin(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def search_answer() -> bytes:
    """A real upstream-shaped 10-result episode search, from the bundled sample data."""
    sys.path.insert(0, str(ROOT))
    import httpx

    from app.connectors.podcasts.sample import SampleTransport

    async def fetch() -> bytes:
        transport = SampleTransport()
        request = httpx.Request("GET", "http://x/search?q=the&type=episode&page_size=10")
        response = await transport.handle_async_request(request)
        return await response.aread()

    body = asyncio.run(fetch())
    assert len(json.loads(body)["results"]) == 10
    return body


@contextlib.contextmanager
def nginx(workdir: Path, port: int) -> Iterator[str]:
    (workdir / "search.json").write_bytes(search_answer())
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {workdir}; proxy_temp_path {workdir}; fastcgi_temp_path {workdir};
  uwsgi_temp_path {workdir}; scgi_temp_path {workdir};
  server {{
    listen 127.0.0.1:{port};
    location = /api/v2/search {{ default_type application/json; alias {workdir}/search.json; }}
    location = /api/v2/search_episodes {{ default_type application/json;
                                          alias {workdir}/search.json; }}
  }}
}}
""")
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    process = subprocess.Popen([*LOAD_CORE, nginx_bin, "-c", str(conf), "-p", str(workdir)])
    try:
        wait_until_up(f"http://127.0.0.1:{port}/api/v2/search")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


# How each server is started (then --host, --port and --log-level are added).
SERVE = [sys.executable, "-m", "app", "serve"]  # the proxy, as production starts it


def plain_uvicorn(app: str) -> list[str]:
    """uvicorn's own httptools protocol, no bounds on request heads."""
    return [sys.executable, "-m", "uvicorn", app, "--http", "httptools", "--no-access-log"]


@contextlib.contextmanager
def uvicorn(
    launch: list[str], port: int, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    where = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    command = [*SERVER_CORE, *launch, *where]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=full_env, cwd=ROOT, stdout=sink, stderr=sink)
        try:
            wait_until_up(f"http://127.0.0.1:{port}{QUERY}", {"Authorization": f"Bearer {SECRET}"})
            yield process
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_until_up(url: str, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def wrk(url: str, connections: int, duration: float) -> dict[str, float]:
    threads = 1 if connections == 1 else 2
    command = [
        *LOAD_CORE,
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "-H",
        f"Authorization: Bearer {SECRET}",
        url,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _latency(out, "50%"),
        "p99_ms": _latency(out, "99%"),
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def _latency(out: str, percentile: str) -> float:
    match = re.search(rf"^\s+{re.escape(percentile)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    assert match, out
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def _median(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    current = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return current / 1024, peak / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians)")
    parser.add_argument(
        "--plain-httptools",
        action="store_true",
        help="also run the proxy under uvicorn's plain httptools protocol (no head bounds)",
    )
    args = parser.parse_args()
    ensure_tools()
    results: dict[str, dict[str, dict[str, float]]] = {}
    memory: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with nginx(work, free_port()) as upstream:
            base = f"{upstream}/api/v2"
            proxy_env = {
                "LISTEN_API_KEY": "bench-upstream-key",
                "LISTEN_API_BASE_URL": base,
                "CHATGPT_SECRET": SECRET,
            }
            targets = {"proxy": (SERVE, proxy_env)}
            if args.plain_httptools:
                targets["httptools"] = (plain_uvicorn("app.main:app"), proxy_env)
            targets["floor"] = (plain_uvicorn("bench.floor_app:app"), {"UPSTREAM": base})
            runs: dict[str, dict[str, list[dict[str, float]]]] = {
                name: {"c1": [], "c16": []} for name in (*targets, "upstream")
            }
            with contextlib.ExitStack() as servers:
                urls: dict[str, str] = {}
                pids: dict[str, int] = {}
                for name, (launch, env) in targets.items():
                    port = free_port()
                    process = servers.enter_context(
                        uvicorn(launch, port, env, work / f"{name}.log")
                    )
                    urls[name], pids[name] = f"http://127.0.0.1:{port}{QUERY}", process.pid
                    wrk(urls[name], 16, 2)  # warm-up: connections, caches, first-use builds
                urls["upstream"] = f"{upstream}{QUERY}"
                for round_number in range(args.rounds):
                    print(f"round {round_number + 1}/{args.rounds}", flush=True)
                    for name, url in urls.items():
                        for conns in (1, 16):
                            runs[name][f"c{conns}"].append(wrk(url, conns, args.duration))
                served = 0
                for count in (10_000, 20_000):
                    while served < count:  # short runs until the count is reached
                        served += int(wrk(urls["proxy"], 16, 2)["requests"])
                    memory[f"rss_after_{count}"], memory["peak"] = rss_mb(pids["proxy"])
            results = {
                name: {conns: _median(samples) for conns, samples in by_conns.items()}
                for name, by_conns in runs.items()
            }

    report(results, memory, args.duration)
    per_run = ", ".join(
        f"{name} {[round(r['rps']) for r in runs[name]['c16']]}" for name in targets
    )
    print(f"rounds: {args.rounds}; per-run req/s at 16 connections: {per_run}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "throughput.json").write_text(
        json.dumps({"results": results, "memory": memory}, indent=1)
    )
    return 0


def report(
    results: dict[str, dict[str, dict[str, float]]], memory: dict[str, float], duration: float
) -> None:
    pinned = "server on core 0, nginx+wrk on core 1" if SERVER_CORE else "unpinned"
    print(
        f"\nloopback, {os.cpu_count()} cores ({pinned}), {duration:.0f} s per run, "
        f"medians; wrk GET {QUERY} (10 results)"
    )
    print(f"{'target':10} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, runs in results.items():
        for conns, r in runs.items():
            print(
                f"{name:10} {conns[1:]:>5} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}"
                f" {r['errors']:8.0f}"
            )
    proxy, floor = results["proxy"], results["floor"]
    if "httptools" in results:  # what bounding request heads costs, same run
        plain = results["httptools"]
        print(
            "\nproxy (bounded heads) / plain httptools: req/s "
            f"{proxy['c1']['rps'] / plain['c1']['rps']:.3f}x at 1 connection, "
            f"{proxy['c16']['rps'] / plain['c16']['rps']:.3f}x at 16; p50 "
            f"{proxy['c1']['p50_ms'] / plain['c1']['p50_ms']:.3f}x at 1, "
            f"{proxy['c16']['p50_ms'] / plain['c16']['p50_ms']:.3f}x at 16"
        )
    throughput = proxy["c16"]["rps"] / floor["c16"]["rps"]
    latency = proxy["c1"]["p50_ms"] / floor["c1"]["p50_ms"]
    growth = memory["rss_after_20000"] - memory["rss_after_10000"]
    print(f"\nproxy/floor throughput at 16 connections: {throughput:.2f}x (target >= 0.50x)")
    print(f"proxy/floor p50 latency at 1 connection:  {latency:.2f}x (target <= 2.00x)")
    print(
        f"proxy RSS after 10,000 / 20,000 requests: {memory['rss_after_10000']:.1f} / "
        f"{memory['rss_after_20000']:.1f} MB (growth {growth:+.1f} MB); peak "
        f"{memory['peak']:.1f} MB (target <= 100 MB, not growing)"
    )


if __name__ == "__main__":
    sys.exit(main())
