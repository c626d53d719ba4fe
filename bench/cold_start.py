"""Cold start on AWS Lambda, approximated: a fresh Python process imports a handler and
answers one API Gateway (HTTP API) event. The service's handler is measured side by side
with a minimal FastAPI + Mangum hello-world, alternating runs so that noise hits both.

    python3 bench/cold_start.py [--runs 21] [--bundle build/lambda-host]

Both handlers are imported from the Lambda bundle (what deploys: no dev tools, no
site-packages), built first by `python3 dev.py test` or infra/bundle.py.
Target (issue 3): the service within 1.25x of the hello-world.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENT = json.loads((ROOT / "tests" / "events" / "http-api.json").read_text())
SECRET = "bench-secret-0123456789abcdef"

PROBE = """
import json, sys, time
started = time.perf_counter()
from {module} import handler
imported = time.perf_counter()
answer = handler(json.loads(sys.argv[1]), None)
done = time.perf_counter()
assert answer["statusCode"] == 200, answer
print(json.dumps({{"import_ms": (imported - started) * 1e3, "total_ms": (done - started) * 1e3}}))
"""


def event_for(path: str, query: str = "") -> str:
    event = dict(EVENT)
    event.update(
        rawPath=path,
        rawQueryString=query,
        cookies=[],
        headers={
            "host": "abc.execute-api.eu-west-1.amazonaws.com",
            "authorization": f"Bearer {SECRET}",
        },
    )
    event["requestContext"] = {
        **EVENT["requestContext"],
        "http": {**EVENT["requestContext"]["http"], "method": "GET", "path": path},
    }
    return json.dumps(event)


CASES = {
    "hello-world (FastAPI+Mangum)": ("hello_lambda", event_for("/hello")),
    "service: searchEpisodes": (
        "app.lambda_handler",
        event_for("/api/v2/search_episodes", "q=compiler"),
    ),
    "service: manifest": ("app.lambda_handler", event_for("/.well-known/ai-plugin.json")),
}


def run_once(bundle: Path, module: str, event: str) -> dict[str, float]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CHATGPT_SECRET": SECRET,
        "PYTHONPATH": f"{bundle}{os.pathsep}{ROOT / 'bench'}",
    }
    started = time.perf_counter()
    # -S: no site-packages, as on Lambda, where only the bundle is on the path.
    out = subprocess.run(
        [sys.executable, "-S", "-c", PROBE.format(module=module), event],
        capture_output=True,
        text=True,
        env=env,
        cwd=bundle,
        check=True,
    )
    wall = (time.perf_counter() - started) * 1e3
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_ms"] = wall
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--bundle", type=Path, default=ROOT / "build" / "lambda-host")
    args = parser.parse_args()
    bundle = args.bundle.resolve()
    if not (bundle / "app" / "lambda_handler.py").exists():
        sys.exit(f"no bundle at {bundle}: run python3 dev.py test, or infra/bundle.py {bundle}")
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in CASES}
    for module, event in CASES.values():  # warm the OS file cache, not measured
        run_once(bundle, module, event)
    for _ in range(args.runs):
        for name, (module, event) in CASES.items():
            samples[name].append(run_once(bundle, module, event))

    def median(name: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[name])

    base = "hello-world (FastAPI+Mangum)"
    print(f"cold start, median of {args.runs} fresh processes (Python {sys.version.split()[0]})")
    print(f"{'case':32} {'import ms':>10} {'import+event ms':>16} {'process ms':>11} {'ratio':>6}")
    for name in CASES:
        ratio = median(name, "process_ms") / median(base, "process_ms")
        print(
            f"{name:32} {median(name, 'import_ms'):10.1f} {median(name, 'total_ms'):16.1f}"
            f" {median(name, 'process_ms'):11.1f} {ratio:6.2f}x"
        )
    worst = max(median(n, "process_ms") for n in CASES) / median(base, "process_ms")
    print(f"target: within 1.25x of the hello-world; worst case here {worst:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
