#!/usr/bin/env python3
"""Assemble the deployable service in a folder, and optionally zip it for AWS Lambda.

    python3 infra/bundle.py build/bundle                       # for this machine
    python3 infra/bundle.py build/lambda --arch arm64 --python 3.12 --zip dist/lambda.zip

The folder holds the runtime dependencies from pyproject.toml (pinned by constraints.txt),
`app/` and `well_known/`, and nothing else: no tests, dev tools, caches or scripts. Without
the `server` extra it is a Lambda bundle, and leaves out the distributions of EXCLUDED. With
--arch/--python the dependencies are wheels for that Lambda platform, fetched with
`pip --platform ... --only-binary=:all:`, so no Docker is needed. Standard library only:
the container build runs it before any virtualenv exists.

Every bundle also ships each module compiled to bytecode, by a CPython of exactly the version
that will run it (with --arch: --python's, found as --compile-with, $BUNDLE_PYTHON, this
interpreter, `pythonX.Y` on PATH or pyenv's; otherwise this interpreter): on Lambda /var/task
is read-only, and the container images' folders are not the service's to write, so without
`.pyc` every start compiles every module it imports. Without such an interpreter it builds
without them and says so.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
# Distributions that pip installs as dependencies of the MCP SDK (`mcp`) but that the
# handler never imports on Lambda: checked empirically (tests/test_lambda_zip.py runs the
# unpacked zip under `python -I -S` on every kind of event the handler can get, and fails
# if one of these is missing) and by reading the import statements. Removed by the file
# list of each one's RECORD, so its metadata goes with it.
EXCLUDED = {
    # mcp.server.request_state imports it at module level for the SDK's AES-GCM sealing
    # of `requestState`; app/mcp_request_state.py gives the SDK a codec that needs no
    # cryptography and stands in for the four names while the SDK is imported. 14 MB.
    "cryptography": "AES-GCM for the SDK's requestState, replaced (app/mcp_request_state.py)",
    "cffi": "only for cryptography",
    "pycparser": "only for cffi",
    # The SDK's OAuth *client* (mcp.client.auth.extensions) signs JWTs; servers never do.
    "PyJWT": "only the SDK's OAuth client",
    # sse_starlette patches uvicorn's shutdown when it can import it (try/except
    # ImportError); mcp.server.mcpserver imports it only in run(). Lambda runs neither.
    "uvicorn": "only to run a server (try/except ImportError in sse_starlette)",
    "click": "only uvicorn's command line",
    # The SDK's client validates tool output schemas with jsonschema (lazy imports in
    # mcp.client.session); the server never does.
    "jsonschema": "only the SDK's client",
    "jsonschema-specifications": "only for jsonschema",
    "referencing": "only for jsonschema",
    "rpds-py": "only for referencing",
    "attrs": "only for jsonschema and referencing",
    # httpx2 is imported (mcp.client at `import mcp`), but its transport core and TLS
    # trust store only when an httpx2 client sends a request, which the server never does.
    "httpcore2": "only when an httpx2 client sends (the SDK's client side)",
    "truststore": "only when an httpx2 client makes a TLS context",
}
# Parts of a shipped distribution that the service never imports (the unpacked Lambda zip
# runs without them: tests/test_lambda_zip.py). Removed from every bundle.
UNUSED_PARTS = {
    "lz4/frame": "LZ4's frame format (2.4 MB of the 5.7 the wheel installs): the response "
    "cache uses the block format only (app/cache.py)",
}
# Shipped by the Lambda runtime, or only useful on a developer's machine.
PRUNE_DIRS = {"__pycache__", "tests", "test", "bin"}
PRUNE_SUFFIXES = (".pyc", ".pyo", ".pyi")
ZIP_EPOCH = (2020, 1, 1, 0, 0, 0)  # fixed timestamps: the same inputs give the same zip


def requirements(extras: list[str]) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    return wanted


def install(target: Path, extras: list[str], arch: str | None, python: str | None) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
        "--upgrade",
    ]
    if (ROOT / "constraints.txt").exists():
        command += ["--constraint", str(ROOT / "constraints.txt")]
    if arch is not None:
        command += [
            "--platform",
            PLATFORMS[arch],
            "--implementation",
            "cp",
            "--python-version",
            python or "3.12",
            "--only-binary=:all:",
        ]
    subprocess.run([*command, *requirements(extras)], check=True)


def _normalized(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def exclude(target: Path, distributions: dict[str, str]) -> list[str]:
    """Remove each installed distribution of `distributions` (every file its RECORD
    lists, then the folders left empty); the names of those that were installed."""
    wanted = {_normalized(name) for name in distributions}
    removed = []
    for info in sorted(target.glob("*.dist-info")):
        name = info.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        if _normalized(name) not in wanted:
            continue
        folders = set()
        for line in (info / "RECORD").read_text().splitlines():
            relative = line.rsplit(",", 2)[0]
            path = (target / relative).resolve()
            if not line or not path.is_relative_to(target):
                continue
            path.unlink(missing_ok=True)
            folders.update(p for p in path.parents if p.is_relative_to(target) and p != target)
        shutil.rmtree(info, ignore_errors=True)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        removed.append(name)
    return removed


def prune(target: Path) -> None:
    for path in sorted(target.rglob("*"), reverse=True):
        if path.is_dir() and path.name in PRUNE_DIRS and path.parent.name != "app":
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.name.endswith(PRUNE_SUFFIXES):
            path.unlink()


def copy_service(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("app", "well_known"):
        shutil.rmtree(target / name, ignore_errors=True)
        shutil.copytree(ROOT / name, target / name, ignore=ignore)


def _cache_tag(python: str) -> str | None:
    """The import cache tag of `python` (`cpython-312`), or None if it doesn't run."""
    probe = "import sys; print(sys.implementation.cache_tag)"
    try:
        ran = subprocess.run(
            [python, "-c", probe], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return ran.stdout.strip() if ran.returncode == 0 else None


def find_compiler(version: str, override: str | None = None) -> str | None:
    """A CPython interpreter of exactly `version` ("3.12") to compile the bundle with:
    `override` if given (one of another version is refused: SystemExit), else this
    interpreter, `pythonX.Y` on PATH or pyenv's; None when there is none. Bytecode of
    another minor version would be useless: the import system ignores a `.pyc` whose
    cache tag or magic number is not its own."""
    wanted = "cpython-" + version.replace(".", "")
    if override:
        found = _cache_tag(override)
        if found != wanted:
            sys.exit(f"bundle: {override} is {found or 'not a Python'}, not CPython {version}")
        return override
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    installed = glob.glob(str(pyenv / f"{version}.*" / "bin" / f"python{version}"))
    # A pyenv shim on PATH may answer "command not found": each candidate is run, not trusted.
    candidates = [sys.executable, shutil.which(f"python{version}"), *sorted(installed)[::-1]]
    for candidate in candidates:
        if candidate and _cache_tag(candidate) == wanted:
            return candidate
    return None


def compile_bytecode(target: Path, python: str) -> int:
    """Compile every `.py` of `target` with `python` next to its source (`__pycache__`), as
    unchecked-hash pycs; the number of pycs written. The sources stay, for tracebacks."""
    # Unchecked-hash pycs are used without looking at the source. Timestamp pycs (the
    # default) would be compared with the source's mtime and size, which a zip does not
    # keep exactly (2-second resolution, our fixed ZIP_EPOCH): judged stale, they would be
    # recompiled at every cold start, and never written back, as /var/task is read-only.
    # -s: file names relative to the bundle, not this build's folder. PYTHONHASHSEED: the
    # same inputs give the same bytes (set constants are marshalled in hash order).
    command = [python, "-m", "compileall", "-q", "-j", "0", "-s", str(target)]
    command += ["--invalidation-mode", "unchecked-hash", str(target)]
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"bundle: compiling with {python} failed:\n{done.stdout}{done.stderr}")
    return sum(1 for _ in target.rglob("__pycache__/*.pyc"))


def write_zip(source: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", type=Path, help="folder to fill (emptied first)")
    parser.add_argument("--extras", default="", help="comma-separated extras, e.g. server")
    parser.add_argument("--arch", choices=sorted(PLATFORMS), help="Lambda architecture")
    parser.add_argument("--python", help="Lambda Python version, e.g. 3.12 (with --arch)")
    parser.add_argument("--zip", type=Path, help="also write the folder as this zip")
    parser.add_argument(
        "--compile-with",
        default=os.environ.get("BUNDLE_PYTHON"),
        help="CPython of the Lambda's version to compile the bundle with ($BUNDLE_PYTHON)",
    )
    args = parser.parse_args(argv)

    # Every bundle ships its modules compiled: for a Lambda platform (--arch) by the
    # Lambda's Python if one is found, else by this one, which the container images run
    # (their /srv and /var/task are not writable by the service either).
    if args.arch:
        version = args.python or "3.12"
    else:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
    compiler = find_compiler(version, args.compile_with)
    if compiler is None:
        print(
            f"bundle: no Python {version} found to compile with (--compile-with, "
            f"python{version} on PATH, pyenv): no .pyc shipped, so each cold start "
            "compiles every module it imports (~0.35 s more)",
            flush=True,
        )
    target: Path = args.target.resolve()
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    extras = [e for e in args.extras.split(",") if e]
    where = f"{args.arch}, Python {args.python or '3.12'}" if args.arch else "this machine"
    print(f"bundle: installing dependencies for {where} into {target}", flush=True)
    install(target, extras, args.arch, args.python)
    if "server" not in extras:  # a Lambda bundle (a server runs uvicorn, so keeps it all)
        removed = exclude(target, EXCLUDED)
        print(f"bundle: left out (never imported on Lambda): {', '.join(removed)}", flush=True)
    for part in UNUSED_PARTS:
        shutil.rmtree(target / part, ignore_errors=True)
    prune(target)
    copy_service(target)
    if compiler is not None:
        pycs = compile_bytecode(target, compiler)
        print(f"bundle: {pycs} modules compiled (unchecked-hash) by {compiler}", flush=True)
    files = sum(1 for p in target.rglob("*") if p.is_file())
    unpacked = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"bundle: {files} files, {unpacked / 1e6:.1f} MB unpacked", flush=True)
    if args.zip is not None:
        write_zip(target, args.zip)
        size = os.path.getsize(args.zip)
        print(f"bundle: wrote {args.zip} ({size / 1e6:.2f} MB; Lambda's limit is 50 MB zipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
