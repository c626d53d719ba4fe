#!/usr/bin/env python3
"""Project entry points that bootstrap themselves.

    python3 dev.py serve    serve on http://127.0.0.1:8000 (sample data unless LISTEN_API_KEY)
    python3 dev.py test     lint, type-check and test, exactly as CI does (installs Debian's
                            redis-server first when it is missing: the store tests start one)
    python3 dev.py build-lambda [--arch arm64|x86_64] [--python 3.12]
                            the AWS Lambda zip, dist/lambda.zip (no Docker needed)
    python3 dev.py bench cold-start|throughput   benchmarks (see bench/)

Standard library only: it creates `.venv/`, installs the pinned dependencies
(`constraints.txt`) the first time and again whenever `pyproject.toml` or the
constraints change, then runs the command inside that environment.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".bootstrap-stamp"
EXTRAS = "server,dev"


def _log(message: str) -> None:
    print(f"[dev] {message}", file=sys.stderr, flush=True)


def _fingerprint() -> str:
    digest = hashlib.sha256(EXTRAS.encode())
    for name in ("pyproject.toml", "constraints.txt"):
        path = ROOT / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def bootstrap() -> None:
    """Create the virtualenv and install dependencies when they are missing or stale."""
    if sys.version_info < (3, 11):
        sys.exit(f"Python 3.11+ is required; this is {sys.version.split()[0]}.")
    if not PYTHON.exists():
        _log(f"creating virtualenv in {VENV.relative_to(ROOT)}/")
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = _fingerprint()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    _log("installing dependencies (first run or pyproject/constraints changed)")
    pip = [str(PYTHON), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    install = [*pip, "install", "--editable", f".[{EXTRAS}]"]
    if (ROOT / "constraints.txt").exists():
        install += ["--constraint", "constraints.txt"]
    subprocess.run(install, check=True, cwd=ROOT)
    STAMP.write_text(wanted)
    _log("dependencies ready")


def _run(step: str, argv: list[str]) -> int:
    _log(f"{step}: {' '.join(argv)}")
    return subprocess.run(argv, cwd=ROOT).returncode


def serve(args: list[str]) -> int:
    # `python -m app serve` (HOST, PORT; --host, --port): uvicorn with bounded request heads,
    # exactly as the container runs it.
    argv = [str(PYTHON), "-m", "app", "serve", *args]
    os.chdir(ROOT)
    os.execv(argv[0], argv)  # replaces this process with the server


def _host_arch() -> str:
    return "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"


def _host_bundle(zip_to: str | None = None) -> list[str]:
    """infra/bundle.py for this machine's architecture and Python, into build/lambda-host."""
    host_python = f"{sys.version_info.major}.{sys.version_info.minor}"
    command = [
        str(PYTHON),
        "infra/bundle.py",
        "build/lambda-host",
        "--arch",
        _host_arch(),
        "--python",
        host_python,
    ]
    return [*command, "--zip", zip_to] if zip_to else command


# What the tests start, by the command they run and the Debian package that has it.
TEST_PROGRAMS = {
    "redis-server": "redis-server",  # the store's conformance tests (tests/servers.py)
    "chromium": "chromium",  # the consent page in a real browser (tests/test_consent_browser.py)
}


def ensure_test_services() -> None:
    """Make sure the programs the tests start are installed (`TEST_PROGRAMS`: Debian's
    `redis-server` and `chromium`). Idempotent; installs with apt-get as root, and
    otherwise says what to install."""
    missing = [package for command, package in TEST_PROGRAMS.items() if not shutil.which(command)]
    if not missing:
        return
    names = " ".join(missing)
    if not shutil.which("apt-get"):
        sys.exit(f"[dev] the tests need {names} on PATH; please install them.")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        sys.exit(
            f"[dev] the tests need {names} on PATH; install them once with "
            f"`sudo apt-get install -y {names}` and run again."
        )
    _log(f"installing {names} for the tests (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)
    still = [command for command in TEST_PROGRAMS if not shutil.which(command)]
    if still:
        sys.exit(f"[dev] apt-get ran, but {' '.join(still)} is still not on PATH.")


def test(args: list[str]) -> int:
    ensure_test_services()
    sources = [p for p in ("app", "tests", "bench", "infra", "dev.py") if (ROOT / p).exists()]
    steps: list[tuple[str, list[str]]] = [
        ("lint", [str(BIN / "ruff"), "check", *sources]),
        ("format", [str(BIN / "ruff"), "format", "--check", *sources]),
        ("types", [str(BIN / "mypy")]),
        ("template", [str(BIN / "cfn-lint"), "infra/template.yaml"]),
        ("dockerfile", [str(BIN / "hadolint"), "Dockerfile"]),
        # The deploy build's path (pip --platform --only-binary), for this machine, so
        # that tests/test_lambda_zip.py can import the handler from the zip.
        ("lambda zip", _host_bundle(zip_to="build/lambda-host.zip")),
        ("tests", [str(PYTHON), "-m", "pytest", *args]),
    ]
    failed = [name for name, argv in steps if _run(name, argv) != 0]
    if failed:
        _log(f"FAILED: {', '.join(failed)}")
        return 1
    _log("all checks passed")
    return 0


def build_lambda(args: list[str]) -> int:
    """The deployment zip for infra/template.yaml: dist/lambda.zip (arm64, Python 3.12)."""
    wanted = args or ["--arch", "arm64", "--python", "3.12"]
    build = [str(PYTHON), "infra/bundle.py", "build/lambda", "--zip", "dist/lambda.zip"]
    return _run("build-lambda", [*build, *wanted])


def bench(args: list[str]) -> int:
    """Run a benchmark of bench/: `cold-start` or `throughput`."""
    scripts = {"cold-start": "cold_start.py", "throughput": "throughput.py"}
    if not args or args[0] not in scripts:
        print(f"usage: python3 dev.py bench {{{','.join(scripts)}}} [options]", file=sys.stderr)
        return 2
    if args[0] == "cold-start" and not (ROOT / "build/lambda-host/app").exists():
        built = _run("bundle", _host_bundle())
        if built != 0:
            return built
    return _run("bench", [str(PYTHON), f"bench/{scripts[args[0]]}", *args[1:]])


COMMANDS = {"serve": serve, "test": test, "build-lambda": build_lambda, "bench": bench}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap()
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
