"""Cold start on AWS Lambda, approximated: a fresh Python process imports a handler and
answers one API Gateway (HTTP API) event. The service's handler is measured side by side
with a minimal FastAPI + Mangum hello-world, alternating runs so that noise hits both.

    python3 bench/cold_start.py [--runs 15] [--bundle build/lambda-host]
    python3 bench/cold_start.py --zip build/lambda-312.zip --python python3.12

Both handlers are imported from the Lambda bundle (what deploys: no dev tools, no
site-packages), built first by `python3 dev.py test` or infra/bundle.py. With --zip, as
Lambda sees it: the zip freshly unpacked, run with PYTHONDONTWRITEBYTECODE=1 (/var/task is
read-only: no `__pycache__` is ever written), twice side by side, as shipped (with its
`.pyc`) and with its `.pyc` removed, by --python, which must be the Python the zip was built
for (its bytecode is ignored by any other). The service runs
plain (sample data, the bearer secret), and as deployed: the OpenAI connector configured
(a dummy key: the first request is a REST one, nothing goes out) and keys on DynamoDB
(moto's server, started here on loopback, a key created first, the request made with it;
boto3 comes from this virtualenv, standing for the Lambda runtime's /var/runtime).
Target (issue 11): the service within 1.1x of the hello-world.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
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
    bundle: Path,
    runtime: Path,
    module: str,
    event: str,
    extra: dict[str, str],
    python: str = sys.executable,
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
        [python, "-S", "-c", PROBE.format(module=module), event],
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


@contextmanager
def unpacked(archive: Path) -> Iterator[dict[str, Path]]:
    """The zip unpacked twice, fresh: as shipped, and with its bytecode removed."""
    with tempfile.TemporaryDirectory() as folder:
        bundles = {"with .pyc": Path(folder) / "pyc", "without .pyc": Path(folder) / "source"}
        for target in bundles.values():
            with zipfile.ZipFile(archive) as opened:
                opened.extractall(target)
        for cache in bundles["without .pyc"].rglob("__pycache__"):
            for pyc in cache.iterdir():
                pyc.unlink()
            cache.rmdir()
        yield bundles


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--bundle", type=Path, default=ROOT / "build" / "lambda-host")
    parser.add_argument("--zip", type=Path, help="measure this Lambda zip as Lambda runs it")
    parser.add_argument("--python", default=sys.executable, help="the zip's Python (--zip)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        bundles = {"": args.bundle.resolve()}
        read_only: dict[str, str] = {}
        if args.zip is not None:
            bundles = stack.enter_context(unpacked(args.zip.resolve()))
            read_only = {"PYTHONDONTWRITEBYTECODE": "1"}
        for bundle in bundles.values():
            if not (bundle / "app" / "lambda_handler.py").exists():
                sys.exit(f"no bundle at {bundle}: run python3 dev.py test, or infra/bundle.py")
        env, key = stack.enter_context(keys_on_dynamodb())
        runtime = stack.enter_context(lambda_runtime())
        # Every case of every bundle, each run in turn, so that noise hits them all.
        table = {
            (label, name): (bundle, module, event, {**extra, **read_only})
            for label, bundle in bundles.items()
            for name, (module, event, extra) in cases(env, key).items()
        }
        samples: dict[tuple[str, str], list[dict[str, float]]] = {case: [] for case in table}
        for bundle, module, event, extra in table.values():  # warm the OS file cache only
            run_once(bundle, runtime, module, event, extra, args.python)
        for _ in range(args.runs):
            for case, (bundle, module, event, extra) in table.items():
                samples[case].append(run_once(bundle, runtime, module, event, extra, args.python))

    def median(case: tuple[str, str], key: str) -> float:
        return statistics.median(s[key] for s in samples[case])

    version = subprocess.run(
        [args.python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    where = f", {args.zip} unpacked, PYTHONDONTWRITEBYTECODE=1" if args.zip else ""
    print(f"cold start, median of {args.runs} fresh processes (Python {version}{where})")
    width = 34 + max(len(label) for label in bundles) + 1
    heads = f"{'import ms':>10} {'import+event ms':>16} {'process ms':>11} {'ratio':>6}"
    print(f"{'case':{width}} {heads}")
    worst = 0.0
    for label, name in table:
        base = median((label, BASE), "process_ms")
        ratio = median((label, name), "process_ms") / base
        worst = max(worst, ratio)
        title = f"{label}: {name}" if label else name
        print(
            f"{title:{width}} {median((label, name), 'import_ms'):10.1f}"
            f" {median((label, name), 'total_ms'):16.1f}"
            f" {median((label, name), 'process_ms'):11.1f} {ratio:6.2f}x"
        )
    print(f"target: within 1.1x of the hello-world; worst case here {worst:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
