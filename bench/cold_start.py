"""Cold start on AWS Lambda, approximated: a fresh Python process imports a handler and
answers one API Gateway (HTTP API) event. The service's handler is measured side by side
with a minimal FastAPI + Mangum hello-world, alternating runs so that noise hits both.

    python3 bench/cold_start.py [--runs 15] [--bundle build/lambda-host]

Both handlers are imported from the Lambda bundle (what deploys: no dev tools, no
site-packages), built first by `python3 dev.py test` or infra/bundle.py. The service runs
plain (sample data, the bearer secret), and as deployed: the OpenAI connector configured
(a dummy key: the first request is a REST one, nothing goes out) and keys on DynamoDB
(moto's server, started here on loopback, a key created first, the request made with it;
boto3 comes from this virtualenv, standing for the Lambda runtime's /var/runtime).
Target (issue 11): the service within 1.1x of the hello-world.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


def event_for(path: str, query: str = "", token: str = SECRET) -> str:
    event = dict(EVENT)
    event.update(
        rawPath=path,
        rawQueryString=query,
        cookies=[],
        headers={
            "host": "abc.execute-api.eu-west-1.amazonaws.com",
            "authorization": f"Bearer {token}",
        },
    )
    event["requestContext"] = {
        **EVENT["requestContext"],
        "http": {**EVENT["requestContext"]["http"], "method": "GET", "path": path},
    }
    return json.dumps(event)


BASE = "hello-world (FastAPI+Mangum)"
# What the Lambda Python runtime provides next to the handler: boto3 and what it needs.
RUNTIME = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")
TABLE = "bench-keys"


@contextmanager
def keys_on_dynamodb() -> Iterator[tuple[dict[str, str], str]]:
    """moto's DynamoDB on loopback with the table and one key: (environment, the key)."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        aws = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
        os.environ.update(aws)
        client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
        keys = [{"AttributeName": n, "KeyType": t} for n, t in (("pk", "HASH"), ("sk", "RANGE"))]
        client.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
            KeySchema=keys,
        )
        store = f"dynamodb://{TABLE}?region=us-east-1&endpoint={endpoint}"
        made = subprocess.run(
            [sys.executable, "-m", "app", "keys", "create", "--name", "bench", "--json"],
            env={**os.environ, "STORE_URL": store},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        yield (
            {**aws, "STORE_URL": store, "OPENAI_API_KEY": "sk-bench-dummy"},
            json.loads(made.stdout)["key"],
        )
    finally:
        server.stop()


@contextmanager
def lambda_runtime() -> Iterator[Path]:
    """A folder standing for /var/runtime: links to boto3 and its needs in this venv."""
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as folder:
        for name in RUNTIME:
            (Path(folder) / name).symlink_to(site / name)
        yield Path(folder)


def cases(env: dict[str, str], key: str) -> dict[str, tuple[str, str, dict[str, str]]]:
    search = ("/api/v2/search_episodes", "q=compiler")
    return {
        BASE: ("hello_lambda", event_for("/hello"), {}),
        "REST plain: searchEpisodes": ("app.lambda_handler", event_for(*search), {}),
        "REST, OpenAI + keys on DynamoDB": (
            "app.lambda_handler",
            event_for(*search, token=key),
            env,
        ),
        "manifest": ("app.lambda_handler", event_for("/.well-known/ai-plugin.json"), {}),
    }


def run_once(
    bundle: Path, runtime: Path, module: str, event: str, extra: dict[str, str]
) -> dict[str, float]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CHATGPT_SECRET": SECRET,
        # The bundle first, then the Lambda runtime's packages, as on Lambda.
        "PYTHONPATH": os.pathsep.join((str(bundle), str(ROOT / "bench"), str(runtime))),
        **extra,
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
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--bundle", type=Path, default=ROOT / "build" / "lambda-host")
    args = parser.parse_args()
    bundle = args.bundle.resolve()
    if not (bundle / "app" / "lambda_handler.py").exists():
        sys.exit(f"no bundle at {bundle}: run python3 dev.py test, or infra/bundle.py {bundle}")
    with keys_on_dynamodb() as (env, key), lambda_runtime() as runtime:
        table = cases(env, key)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in table}
        for module, event, extra in table.values():  # warm the OS file cache, not measured
            run_once(bundle, runtime, module, event, extra)
        for _ in range(args.runs):
            for name, (module, event, extra) in table.items():
                samples[name].append(run_once(bundle, runtime, module, event, extra))

    def median(name: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[name])

    print(f"cold start, median of {args.runs} fresh processes (Python {sys.version.split()[0]})")
    print(f"{'case':34} {'import ms':>10} {'import+event ms':>16} {'process ms':>11} {'ratio':>6}")
    for name in table:
        ratio = median(name, "process_ms") / median(BASE, "process_ms")
        print(
            f"{name:34} {median(name, 'import_ms'):10.1f} {median(name, 'total_ms'):16.1f}"
            f" {median(name, 'process_ms'):11.1f} {ratio:6.2f}x"
        )
    worst = max(median(n, "process_ms") for n in table) / median(BASE, "process_ms")
    print(f"target: within 1.1x of the hello-world; worst case here {worst:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
