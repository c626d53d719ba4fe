"""Starting the service as a user does (`python -m app serve`, which `dev.py serve` and the
container run, and uvicorn's own command): a mistake is one clear line, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live import ROOT

_SETTINGS = ("LISTEN_", "CHATGPT_", "PUBLIC_", "UPSTREAM_", "OPENAI_", "MAX_HEADER", "HEADER_")
_WEAK = "changeme"


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS)}
    clean.pop("LOG_LEVEL", None)
    clean.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, *args], env=clean, cwd=cwd, capture_output=True, text=True, timeout=60
    )


BAD = {
    "CHATGPT_SECRET": _WEAK,
    "LOG_LEVEL": "bogus",
    "PUBLIC_BASE_URL": "podcasts.example.com",
    "UPSTREAM_TIMEOUT": "999",
}


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "app", "serve", "--port", "1"],
        ["-m", "uvicorn", "app.main:app", "--port", "1"],
    ],
    ids=["python -m app serve", "uvicorn app.main:app"],
)
@pytest.mark.parametrize("bad", [*BAD, "all at once"])
def test_a_bad_setting_is_one_line_naming_the_variable(
    tmp_path: Path, command: list[str], bad: str
) -> None:
    env = BAD if bad == "all at once" else {bad: BAD[bad]}
    done = run(command, env, tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("Bad setting ")]
    assert sorted(line.split(":")[0].removeprefix("Bad setting ") for line in lines) == sorted(env)
    for line in lines:
        assert len(line) < 200
        for value in env.values():
            assert value not in line.split(":", 1)[1].replace("https://podcasts.example.com", "")
    assert "chatgpt_secret" not in done.stderr  # the variable, not the field
    if "app" in command:  # ours: nothing but those lines
        assert done.stderr.splitlines() == lines and done.stdout == ""


def test_log_level_is_checked_case_insensitively(tmp_path: Path) -> None:
    code = "from app.registry import Settings; print(Settings().log_level)"
    done = run(["-c", code], {"LOG_LEVEL": "debug"}, tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "DEBUG"


def test_a_taken_port_is_one_line_before_any_secret_is_printed(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(["-m", "app", "serve"], {"HOST": "127.0.0.1", "PORT": str(port)}, tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert f"127.0.0.1:{port}" in line and "HOST" in line and "PORT" in line
    assert "Bearer" not in done.stderr  # no generated secret that no server accepts
