"""Compressed upstream answers, through the served API on both network transports, against
a real upstream on loopback: decoded when valid, refused (502) when corrupt, in an unknown
encoding, or over the cap once inflated, and a gzip bomb never inflated whole."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from tests.conftest import AUTH, SECRET, UPSTREAM_KEY, make_settings
from tests.stub_upstream import Reply, StubUpstream

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = ["httpx", "aiohttp", "http1"]
LANGUAGES = {"languages": ["English", "Français"]}
PLAIN = json.dumps(LANGUAGES).encode()
MB = 1024 * 1024


def bomb(megabytes: int) -> bytes:
    """`megabytes` MiB of spaces, gzipped (about 1,000:1), built without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * MB
    return b"".join([*(packer.compress(block) for _ in range(megabytes)), packer.flush()])


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return bomb(256)  # 256 MiB inflated, about 260 KB on the wire; the cap is 8 MB


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def served(body: bytes, encoding: str) -> Reply:
    return Reply(
        body=body, headers={"Content-Type": "application/json", "Content-Encoding": encoding}
    )


@pytest.fixture
def stub() -> Iterator[StubUpstream]:
    with StubUpstream() as upstream:
        yield upstream


def ask(stub: StubUpstream, network: str, reply: Reply) -> Any:
    stub.answer = lambda seen: reply
    app = create_app(make_settings(listen_api_base_url=stub.base_url), network=network)
    with TestClient(app) as client:
        response = client.get("/api/v2/languages", headers=AUTH)
    assert stub.seen[-1].headers["accept-encoding"] == "gzip"
    return response


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (gzip.compress(PLAIN), "gzip"),
        (gzip.compress(PLAIN), "x-gzip"),
        (zlib.compress(PLAIN), "deflate"),
        (raw_deflate(PLAIN), "deflate"),  # what some servers send as "deflate"
        (PLAIN, "identity"),
    ],
)
def test_valid_encodings_are_decoded(
    stub: StubUpstream, network: str, body: bytes, encoding: str
) -> None:
    response = ask(stub, network, served(body, encoding))
    assert response.status_code == 200
    assert response.json() == LANGUAGES


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (PLAIN, "compress"),  # not an encoding the proxy asked for or can decode
        (PLAIN, "gzip, br"),
        (b"\x1f\x8b\x08\x00garbage-not-gzip", "gzip"),
        (b"garbage-not-deflate", "deflate"),
    ],
)
def test_unknown_or_corrupt_encodings_are_502(
    stub: StubUpstream, network: str, body: bytes, encoding: str
) -> None:
    response = ask(stub, network, served(body, encoding))
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unavailable"


@pytest.mark.parametrize("network", NETWORKS)
def test_gzip_bomb_is_502(stub: StubUpstream, network: str, gzip_bomb: bytes) -> None:
    response = ask(stub, network, served(gzip_bomb, "gzip"))
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {
            "code": "upstream_unavailable",
            "message": "The podcast service is temporarily unavailable. Try again shortly.",
        }
    }


def peak(stub: StubUpstream, network: str) -> dict[str, Any]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "LISTEN_API_KEY": UPSTREAM_KEY,
        "CHATGPT_SECRET": SECRET,
        "DATA_DIR": tempfile.mkdtemp(),  # its store, never in the working tree
        "CACHE_ENABLED": "false",  # each run must reach the upstream
    }
    run = subprocess.run(
        [sys.executable, "-m", "tests.peak_memory", stub.base_url, network, "/api/v2/languages"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(run.stdout.splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("network", NETWORKS)
def test_gzip_bomb_peak_memory_stays_near_a_normal_request(
    stub: StubUpstream, network: str, gzip_bomb: bytes
) -> None:
    stub.answer = lambda seen: served(gzip.compress(PLAIN), "gzip")
    baseline = peak(stub, network)
    assert baseline["status"] == 200 and baseline["body"] == LANGUAGES
    stub.answer = lambda seen: served(gzip_bomb, "gzip")
    attacked = peak(stub, network)
    assert attacked["status"] == 502
    assert attacked["body"]["error"]["code"] == "upstream_unavailable"
    # The cap is 8 MB: inflating in bounded steps holds about two copies of it at most.
    # Inflating a whole network read first holds about 64 MB per 64 KB of this bomb.
    grown_mb = (attacked["peak_kb"] - baseline["peak_kb"]) / 1024
    assert grown_mb < 40, f"peak memory grew by {grown_mb:.0f} MB"
