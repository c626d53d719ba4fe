"""Helpers for the key tests: the `keys` command as a subprocess, and the app under uvicorn
on loopback (in a thread) in front of recording upstreams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import OPENAI_KEY, make_settings
from tests.fake_openai import FakeOpenAI
from tests.live import ROOT, InThreadServer
from tests.stub_upstream import StubUpstream

_SETTINGS = ("STORE_", "DATA_DIR", "RATE_", "KEY_", "CHATGPT_", "LISTEN_", "OPENAI_")


def usage_totals(
    store_url: str, key_id: str, until: Callable[[dict[str, int]], bool] = lambda _: True
) -> dict[str, int]:
    """The key's usage summed over its days, as `keys usage` shows it, once `until` holds:
    a running service writes usage in batches, about a second late (app/usage_batch.py),
    so this reads again for up to 10 s (then returns what it has, for the test to judge)."""
    deadline = time.monotonic() + 10
    while True:
        totals: dict[str, int] = {}
        for day in keys_cli(store_url, "usage", key_id):
            for name, value in day.items():
                if isinstance(value, int):
                    totals[name] = totals.get(name, 0) + value
        if until(totals) or time.monotonic() > deadline:
            return totals
        time.sleep(0.2)


def keys_cli(store_url: str, *args: str, check: bool = True) -> Any:
    """`python -m app keys ARGS --json` against `store_url`: its JSON document."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS)}
    done = subprocess.run(
        [sys.executable, "-m", "app", "keys", *args, "--json"],
        env={**env, "STORE_URL": store_url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    return done


class Served(InThreadServer):
    """The app (one process, this one) under uvicorn on loopback, its podcast upstream
    `stub` and its OpenAI upstream `fake`, with `overrides` to the settings."""

    def __init__(self, stub: StubUpstream, fake: FakeOpenAI, **overrides: Any) -> None:
        settings = make_settings(
            listen_api_base_url=stub.base_url,
            openai_api_key=OPENAI_KEY,
            openai_base_url=fake.base_url,
            openai_timeout=3.0,
            **overrides,
        )
        super().__init__(settings)


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder.absolute() / 'state.db'}"


def store_bytes(folder: Path) -> bytes:
    """Every byte of the SQLite store (the database, its WAL and shared memory files)."""
    return b"".join(path.read_bytes() for path in sorted(folder.glob("state.db*")))
