"""Property-based fuzzing: Schemathesis against the running service's own served spec.

With a valid bearer secret and the sample-data upstream, every generated request (valid
and invalid ones, in every phase) must pass every check the installed Schemathesis has
(`--checks all`): no server error, answers as documented, and also schema-valid requests
accepted and schema-violating ones refused, so the spec says exactly what the code
accepts. A failure here means the code or the spec is wrong; the checks are never
loosened. FUZZ_EXAMPLES (default 50) and FUZZ_SEED (default 1) tune the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SECRET
from tests.live import live_server


def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    env = {"CHATGPT_SECRET": SECRET}  # no LISTEN_API_KEY: the sample-data upstream
    with live_server(env, tmp_path / "server.log") as server:
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{server.base_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {SECRET}",
            "--checks",
            "all",
            "--max-examples",
            os.environ.get("FUZZ_EXAMPLES", "50"),
            "--seed",
            os.environ.get("FUZZ_SEED", "1"),
            "--request-timeout",
            "10",
            "--no-color",
        ]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
    summary = result.stdout[-3000:]
    assert result.returncode == 0, f"{summary}\n{result.stderr[-2000:]}"
    assert "No issues found" in result.stdout, summary
    assert SECRET not in server.log_text()
