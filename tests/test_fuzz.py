"""Property-based fuzzing: Schemathesis against the running service's own served spec.

With a valid bearer secret and the sample-data upstream, every generated request must
pass not_a_server_error, response_schema_conformance, status_code_conformance and
content_type_conformance. A failure here means the code or the spec is wrong; the
checks are never loosened. FUZZ_EXAMPLES and FUZZ_SEED (default 1) tune the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SECRET
from tests.live import live_server

CHECKS = ",".join(
    [
        "not_a_server_error",
        "response_schema_conformance",
        "status_code_conformance",
        "content_type_conformance",
    ]
)


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
            CHECKS,
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
