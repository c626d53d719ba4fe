"""The deployment zip is self-contained and small: unpacked alone, its handler answers every
kind of request it can get on Lambda, so an exclusion in infra/bundle.py that goes too far
fails here.

`python3 dev.py test` builds `build/lambda-host.zip` first with infra/bundle.py, the same
`pip --platform ... --only-binary=:all:` path as the deploy build, for this machine's
architecture and Python so that it can be imported here. The handler runs in a separate
`python -I -S` process (tests/lambda_probe.py): only the zip's files, plus boto3 where the
Lambda runtime provides it, can be imported, and with `-B`: nothing is written, as
/var/task is read-only, so a module without a usable `.pyc` in the zip is compiled at
every cold start (the probe lists those).
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OPENAI_KEY, SECRET, UPSTREAM_KEY
from tests.fake_openai import Answer, FakeOpenAI, Seen, json_answer
from tests.keys_support import keys_cli
from tests.servers import MotoServer, moto_server  # noqa: F401
from tests.store_backends import create_table
from tests.stub_upstream import Reply, StubUpstream, default_reply
from tests.stub_upstream import Seen as PodcastSeen

ROOT = Path(__file__).resolve().parent.parent
ZIP = Path(os.environ.get("LAMBDA_TEST_ZIP", ROOT / "build" / "lambda-host.zip"))
# The README's figure (about 9.1 MB for arm64, 9.4 MB for x86_64, 3.8 MB of it the modules'
# bytecode, 0.9 MB lz4's libraries) with room for patch releases of the dependencies; the
# zip was 10.3 MB without bytecode when it shipped cryptography, uvicorn and click.
MAX_ZIP_BYTES = 10_000_000
# What the Lambda Python runtime provides next to the handler (/var/runtime): boto3 and
# what it needs. The bundle leaves these out (pyproject.toml: the `aws` extra).
RUNTIME = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")
EPISODE_ID = "576c6e8a41f656ec9f62e8e46c94d409"


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not ZIP.exists():
        pytest.fail(f"{ZIP} is missing: run 'python3 dev.py test' (it builds the zip first)")
    target = tmp_path_factory.mktemp("lambda")
    with zipfile.ZipFile(ZIP) as archive:
        archive.extractall(target)
    return target


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder standing for the Lambda runtime's own packages (links into this venv's)."""
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    folder = tmp_path_factory.mktemp("runtime")
    for name in RUNTIME:
        (folder / name).symlink_to(site / name)
    return folder


def test_zip_is_small_and_holds_the_service_and_no_dev_tools(unpacked: Path) -> None:
    assert ZIP.stat().st_size < MAX_ZIP_BYTES, f"{ZIP.stat().st_size / 1e6:.2f} MB"
    assert (unpacked / "app" / "lambda_handler.py").is_file()
    assert (unpacked / "well_known" / "logo.png").is_file()
    assert (unpacked / "app" / "connectors" / "podcasts" / "sample_data" / "catalog.json").is_file()
    for unwanted in ("tests", "pytest", "respx", "ruff", "mypy", "moto", "boto3", "aiohttp"):
        assert not (unpacked / unwanted).exists(), unwanted
    # Never imported on Lambda (infra/bundle.py says why for each).
    excluded_names = (
        "cryptography",
        "cffi",
        "_cffi_backend",
        "uvicorn",
        "click",
        "jwt",
        "httpcore2",
    )
    for excluded in excluded_names:
        assert not list(unpacked.glob(f"{excluded}*")), excluded
    assert (unpacked / "lz4" / "block").is_dir() and not (unpacked / "lz4" / "frame").exists()


def test_zip_ships_bytecode_the_lambda_python_uses_without_checking_the_source(
    unpacked: Path,
) -> None:
    # The host zip is built for this interpreter: its cache tag and magic number. The
    # header's flags say hash-based, unchecked (0b01): never judged stale against a
    # source mtime, which the zip does not keep; the hash is the shipped source's.
    sources = sorted(unpacked.rglob("*.py"))
    assert (unpacked / "app" / "lambda_handler.py") in sources
    for source in sources:
        cached = Path(importlib.util.cache_from_source(str(source)))
        assert cached.is_file(), source.relative_to(unpacked)
        header = cached.read_bytes()[:16]
        assert header[:4] == importlib.util.MAGIC_NUMBER, cached
        assert int.from_bytes(header[4:8], "little") == 0b01, cached
        assert header[8:] == importlib.util.source_hash(source.read_bytes()), cached
    # Nothing else: no pycs of another Python, nothing stale from the build machine.
    shipped = set(unpacked.rglob("*.pyc"))
    assert shipped == {Path(importlib.util.cache_from_source(str(s))) for s in sources}


# --- every kind of event the handler can get on Lambda -------------------------------------


def event(
    method: str,
    path: str,
    query: str = "",
    *,
    token: str | None = SECRET,
    headers: dict[str, str] | None = None,
    body: bytes | str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (v2) event."""
    base = json.loads((ROOT / "tests" / "events" / "http-api.json").read_text())
    event = copy.deepcopy(base)
    names = {"host": "abc.execute-api.eu-west-1.amazonaws.com", "x-forwarded-proto": "https"}
    if token is not None:
        names["authorization"] = f"Bearer {token}"
    names.update(headers or {})
    event.update(rawPath=path, rawQueryString=query, cookies=[], headers=names)
    event.pop("queryStringParameters")
    event["requestContext"]["http"].update(method=method, path=path)
    if body is None:
        event.update(body=None, isBase64Encoded=False)
    else:
        raw = body.encode() if isinstance(body, str) else body
        event.update(body=base64.b64encode(raw).decode(), isBase64Encoded=True)
    return event


JSONRPC = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-protocol-version": "2025-06-18",
}
JSON = {"content-type": "application/json"}


def mcp(id_: int, method: str, params: dict[str, Any], token: str | None = SECRET) -> Any:
    message = {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}
    return event("POST", "/mcp", token=token, headers=JSONRPC, body=json.dumps(message))


def chat(stream: bool = False, model: str = "gpt-4o-mini") -> str:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return json.dumps(body)


def multipart() -> tuple[dict[str, str], bytes]:
    boundary = "probe-boundary-1234"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n'
            f"Content-Type: audio/mpeg\r\n\r\n"
        ).encode()
        + bytes(range(256))
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return {"content-type": f"multipart/form-data; boundary={boundary}"}, body


def podcast_upstream(seen: PodcastSeen) -> Reply:
    query = dict(seen.query)
    if query.get("q") == "broken":
        return Reply(body=b'{"weird": true}')  # the wrong shape: 502
    if query.get("q") == "slow":
        return Reply(body=b"{}", delay=3.0)  # past UPSTREAM_TIMEOUT: 504
    return default_reply(seen)


def openai_upstream(seen: Seen) -> Answer:
    body = json.loads(seen.body) if seen.body.startswith(b"{") else {}
    if body.get("model") == "overloaded":
        return json_answer({"error": {"message": "busy", "type": "server_error"}}, 503)
    if body.get("stream"):
        chunks = [
            b'data: {"choices":[{"index":0,"delta":{"content":"he"}}]}\n\n',
            b'data: {"choices":[{"index":0,"delta":{"content":"llo"}}]}\n\n',
            b"data: [DONE]\n\n",
        ]
        return Answer(headers={"Content-Type": "text/event-stream"}, chunks=chunks)
    if seen.path.endswith("/chat/completions"):
        message = {"role": "assistant", "content": "hello"}
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        return json_answer(
            {
                "id": "c1",
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": usage,
            }
        )
    if seen.path.endswith("/models"):
        return json_answer({"object": "list", "data": [{"id": "gpt-4o-mini"}]})
    return json_answer({"text": "transcribed"})


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[StubUpstream, FakeOpenAI]]:
    with StubUpstream(podcast_upstream) as stub, FakeOpenAI() as fake:
        fake.answer = openai_upstream
        yield stub, fake


def run_probe(
    unpacked: Path, runtime: Path, events: list[dict[str, Any]], env: dict[str, str]
) -> dict[str, Any]:
    events_file = unpacked.parent / f"events-{uuid.uuid4().hex[:8]}.json"
    events_file.write_text(json.dumps(events))
    # -B: nothing written, as on Lambda's read-only /var/task.
    argv = [sys.executable, "-I", "-S", "-B", str(ROOT / "tests" / "lambda_probe.py")]
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(unpacked)}
    # -I -S: no site-packages and no PYTHON* variables, so only the zip's files can be used.
    result = subprocess.run(
        [*argv, str(unpacked), str(events_file), str(runtime)],
        capture_output=True,
        text=True,
        env={**base, **env},
        cwd=unpacked,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    if os.environ.get("LAMBDA_PROBE_DUMP"):  # the module lists, to study (not a setting)
        with open(os.environ["LAMBDA_PROBE_DUMP"], "a") as dump:
            dump.write(json.dumps(report["modules"]) + "\n")
    outside = {name: where for name, where in report["modules"].items() if "outside" in where}
    assert outside == {}  # nothing was imported from outside the zip and the runtime
    # Every module of the zip came from its shipped bytecode: none compiled at import.
    assert [path for path in report["compiled"] if path.startswith(str(unpacked))] == []
    return report


def body_of(answer: dict[str, Any]) -> bytes:
    raw = answer.get("body") or ""
    return base64.b64decode(raw) if answer.get("isBase64Encoded") else raw.encode()


def test_handler_imported_from_the_zip_answers_every_kind_of_event(
    unpacked: Path,
    runtime: Path,
    upstreams: tuple[StubUpstream, FakeOpenAI],
    moto_server: MotoServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stub, fake = upstreams
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    table = f"zip-{uuid.uuid4().hex[:8]}"
    create_table(moto_server.endpoint, table)
    store = f"dynamodb://{table}?region=us-east-1&endpoint={moto_server.endpoint}"
    podcasts = keys_cli(store, "create", "--name", "p", "--rpm", "2", "--scopes", "podcasts")
    openai_only = keys_cli(store, "create", "--name", "o", "--scopes", "openai")["key"]
    key = podcasts["key"]
    env = {
        **aws,
        "CHATGPT_SECRET": SECRET,
        "LISTEN_API_KEY": UPSTREAM_KEY,
        "LISTEN_API_BASE_URL": stub.base_url,
        "UPSTREAM_TIMEOUT": "1",
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "STORE_URL": store,
        "RATE_LIMIT_RPM": "1000",
    }
    headers, upload = multipart()
    completions = "/openai/v1/chat/completions"
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("REST search", event("GET", "/api/v2/search_episodes", "q=compiler"), 200),
        ("REST episode", event("GET", f"/api/v2/episodes/{EPISODE_ID}"), 200),
        ("manifest", event("GET", "/.well-known/ai-plugin.json", token=None), 200),
        ("spec", event("GET", "/openapi.json", token=None), 200),
        ("openai spec", event("GET", "/openai/openapi.json", token=None), 200),
        ("logo", event("GET", "/logo.png", token=None), 200),
        ("health", event("GET", "/healthz", token=None), 200),
        ("mcp initialize", mcp(1, "initialize", INITIALIZE), 200),
        ("mcp tools/list", mcp(2, "tools/list", {}), 200),
        ("mcp tools/call", mcp(3, "tools/call", GENRES_CALL), 200),
        ("mcp search", mcp(4, "tools/call", {"name": "search", "arguments": {"query": "ai"}}), 200),
        (
            "mcp echoed requestState",
            mcp(6, "tools/call", {**GENRES_CALL, "requestState": "v1.forged"}),
            200,
        ),
        ("mcp 401", mcp(5, "initialize", INITIALIZE, token="wrong-wrong-wrong-wrong"), 401),
        ("openai models", event("GET", "/openai/v1/models"), 200),
        ("openai JSON", event("POST", completions, headers=JSON, body=chat()), 200),
        (
            "openai streamed",
            event("POST", completions, headers=JSON, body=chat(stream=True)),
            200,
        ),
        (
            "openai multipart",
            event("POST", "/openai/v1/audio/transcriptions", headers=headers, body=upload),
            200,
        ),
        (
            "openai 503 relayed",
            event("POST", completions, headers=JSON, body=chat(model="overloaded")),
            503,
        ),
        ("openai 404", event("GET", "/openai/v1/nothing/here"), 404),
        ("openai chat", event("POST", "/openai/chat", headers=JSON, body='{"prompt":"hi"}'), 200),
        ("openai chat 422", event("POST", "/openai/chat", headers=JSON, body='{"prompt":""}'), 422),
        ("key on DynamoDB", event("GET", "/api/v2/genres", token=key), 200),
        ("key 2nd", event("GET", "/api/v2/genres", token=key), 200),
        ("key over its rate: 429", event("GET", "/api/v2/genres", token=key), 429),
        ("key without the scope: 403", event("GET", "/api/v2/genres", token=openai_only), 403),
        ("unknown key: 401", event("GET", "/api/v2/genres", token="lnp_" + "x" * 49), 401),
        ("no credential: 401", event("GET", "/api/v2/genres", token=None), 401),
        ("bad parameter: 422", event("GET", "/api/v2/search_episodes", "q=x&page_size=99"), 422),
        ("wrong shape: 502", event("GET", "/api/v2/search_episodes", "q=broken"), 502),
        ("slow upstream: 504", event("GET", "/api/v2/search_episodes", "q=slow"), 504),
        ("no route: 404", event("GET", "/nothing"), 404),
        ("wrong method: 405", event("DELETE", "/mcp"), 405),
    ]
    report = run_probe(unpacked, runtime, [e for _, e, _ in cases], env)
    answers = dict(zip([name for name, _, _ in cases], report["answers"], strict=True))
    statuses = {name: answer["statusCode"] for name, answer in answers.items()}
    assert statuses == {name: status for name, _, status in cases}
    assert json.loads(body_of(answers["REST search"]))["results"]
    assert b'"tools"' in body_of(answers["mcp tools/list"])
    # Not ours (the service never asks for input): refused, without cryptography.
    refused = json.loads(body_of(answers["mcp echoed requestState"]))
    assert refused["error"]["code"] == -32602, refused
    assert body_of(answers["openai streamed"]).endswith(b"data: [DONE]\n\n")
    assert json.loads(body_of(answers["openai chat"]))["text"] == "hello"
    assert any(s.path.endswith("/audio/transcriptions") for s in fake.seen)
    # Keys on DynamoDB without boto3 (the runtime offers it; its import costs ~150 ms);
    # the SDK's optional parts stayed out.
    modules = report["modules"]
    assert not {m for m in modules if m.split(".")[0] in ("boto3", "botocore")}
    assert not {m for m in modules if m.split(".")[0] in ("uvicorn", "click", "jwt", "cffi")}
    # The SDK's cryptography names are app.mcp_request_state's stand-ins (no file behind).
    crypto = {m: where for m, where in modules.items() if m.startswith("cryptography")}
    assert crypto and set(crypto.values()) == {"builtin"}

    # 503: the store of keys cannot be reached (a closed port), in a process of its own.
    down = {**env, "STORE_URL": f"dynamodb://{table}?region=us-east-1&endpoint=http://127.0.0.1:9"}
    report = run_probe(unpacked, runtime, [event("GET", "/api/v2/genres", token=key)], down)
    assert report["answers"][0]["statusCode"] == 503
    assert json.loads(body_of(report["answers"][0]))["error"]["code"] == "store_unavailable"


INITIALIZE = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "zip-test", "version": "1"},
}
GENRES_CALL = {"name": "getGenres", "arguments": {"top_level_only": 1}}
