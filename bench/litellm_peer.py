"""LiteLLM's proxy as a peer for bench/throughput.py, in a throwaway virtualenv under build/.

It is never a project dependency: `ensure()` builds build/litellm-venv/ once (pinned
version below) and `config()` writes the proxy's YAML for the bench's stub upstream.

Why not `pip install 'litellm[proxy]'`: for 1.110.x that extra requires `litellm-proxy`
(and for 1.108.x a `litellm-proxy-extras` post-release) that the package index does not
serve, so the extra cannot be resolved. The proxy's code ships in the `litellm` wheel itself;
the bench installs that wheel plus the rest of the extra's requirements.

What is measured, and how it compares with the project's routes:
- podcast search: a LiteLLM *pass-through endpoint* (`general_settings.pass_through_endpoints`)
  with `auth: true` (the caller must present LiteLLM's master key; free since 1.110, it was
  enterprise-only before) and the upstream key injected as a header (`headers:`). Query
  parameters are forwarded as sent. No validation, no compaction: a raw pass-through.
- chat completions: the OpenAI proxy (`model_list`), one model per stub answer kind
  (`bench-json` on JSON answers, `bench-sse` on SSE ones), master-key auth, no database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "build" / "litellm-venv"
VERSION = "1.110.2"
MASTER_KEY = "sk-bench-master-0123456789abcdef"
# The `proxy` extra of litellm 1.110.2 minus what the index lacks (litellm-proxy);
# litellm-enterprise and litellm-proxy-extras at the newest it serves.
REQUIREMENTS = [
    f"litellm=={VERSION}",
    "fastapi>=0.136.3,<1",
    "uvicorn>=0.33,<1",
    "uvloop>=0.22.1,<1",
    "backoff>=2.2.1,<3",
    "orjson>=3.11.6,<4",
    "apscheduler>=3.11.2,<4",
    "fastapi-sso>=0.19,<1",
    "pyjwt>=2.13,<3",
    "python-multipart>=0.0.27,<1",
    "cryptography>=49,<51",
    "pynacl>=1.6.2,<2",
    "websockets>=15.0.1,<16",
    "rq>=2.7,<3",
    "litellm-enterprise",
    "litellm-proxy-extras",
    "rich>=13.9.4,<14",
    "semver>=3.0.4,<4",
    "expression>=5.6,<6",
    "backports-zstd>=1,<2",
    "tomlkit>=0.13.3,<1",
    "restrictedpython>=8.5,<9",
    "mcp>=2.3,<3",
    "inquirerpy>=0.3.4,<1",
    "hiredis>=3,<4",
    "soundfile>=0.12.1,<1",
    "polars>=1.38.1,<2",
    "gunicorn>=23,<24",
    "granian>=2.7.4,<3",
    "pyroscope-io>=0.8.16,<1",
    "azure-identity>=1.25.2,<2",
    "azure-storage-blob>=12.28,<13",
    "httpx2>=2.10,<3",
]


def python() -> Path:
    return VENV / "bin" / "python"


def installed_version() -> str | None:
    if not python().exists():
        return None
    probe = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run([python(), "-c", probe], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def ensure() -> str | None:
    """The pinned LiteLLM installed in its own venv; its version, or None (with why, printed)
    when it cannot be installed here (the bench then runs without this peer)."""
    stamp = VENV / ".bench-requirements"
    wanted = "\n".join(REQUIREMENTS)
    if installed_version() == VERSION and stamp.exists() and stamp.read_text() == wanted:
        return VERSION
    print(f"installing LiteLLM {VERSION} into {VENV.relative_to(ROOT)} (once)", flush=True)
    try:
        if not python().exists():
            subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run(
            [python(), "-m", "pip", "install", "-q", "--disable-pip-version-check", *REQUIREMENTS],
            check=True,
        )
    except subprocess.CalledProcessError as error:
        print(f"LiteLLM could not be installed ({error}); it is left out", flush=True)
        return None
    stamp.write_text(wanted)
    return installed_version()


def config(workdir: Path, search_targets: dict[str, str], chat_bases: dict[str, str]) -> Path:
    """The proxy's config: a pass-through route per search target (path -> upstream URL) and
    one OpenAI model per chat base (model name -> upstream base URL with /v1)."""
    lines = ["model_list:"]
    for model, base in chat_bases.items():
        lines += [
            f"  - model_name: {model}",
            "    litellm_params:",
            "      model: openai/gpt-4o-mini",
            f"      api_base: {base}",
            "      api_key: bench-upstream-key",
        ]
    lines += [
        "litellm_settings:",
        "  telemetry: false",
        "  drop_params: true",
        "general_settings:",
        f"  master_key: {MASTER_KEY}",
        "  pass_through_endpoints:",
    ]
    for path, target in search_targets.items():
        lines += [
            f'    - path: "{path}"',
            f'      target: "{target}"',
            "      auth: true",
            '      methods: ["GET"]',
            "      headers:",
            '        X-ListenAPI-Key: "bench-upstream-key"',
        ]
    path = workdir / "litellm.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def command(config_path: Path) -> list[str]:
    """The proxy's launch command (then --host and --port are added): one worker."""
    return [str(VENV / "bin" / "litellm"), "--config", str(config_path), "--num_workers", "1"]


def environment() -> dict[str, str]:
    """No network at startup (bundled model prices), no telemetry, quiet logs."""
    return {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
        "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '')}",
    }
