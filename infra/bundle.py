#!/usr/bin/env python3
"""Assemble the deployable service in a folder, and optionally zip it for AWS Lambda.

    python3 infra/bundle.py build/bundle                       # for this machine
    python3 infra/bundle.py build/lambda --arch arm64 --python 3.12 --zip dist/lambda.zip

The folder holds the runtime dependencies from pyproject.toml (pinned by constraints.txt),
`app/` and `well_known/`, and nothing else: no tests, dev tools, caches or scripts. With
--arch/--python the dependencies are wheels for that Lambda platform, fetched with
`pip --platform ... --only-binary=:all:`, so no Docker is needed. Standard library only:
the container build runs it before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
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
    args = parser.parse_args(argv)

    target: Path = args.target.resolve()
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    extras = [e for e in args.extras.split(",") if e]
    where = f"{args.arch}, Python {args.python or '3.12'}" if args.arch else "this machine"
    print(f"bundle: installing dependencies for {where} into {target}", flush=True)
    install(target, extras, args.arch, args.python)
    prune(target)
    copy_service(target)
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
