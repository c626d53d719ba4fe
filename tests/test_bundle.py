"""infra/bundle.py compiles a Lambda bundle only with an interpreter whose bytecode the
Lambda's Python will use: of exactly its minor version, or not at all."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
THIS = f"{sys.version_info.major}.{sys.version_info.minor}"


def load_bundle() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bundle", ROOT / "infra" / "bundle.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_compiler_is_of_exactly_the_lambda_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = load_bundle()
    assert bundle.find_compiler(THIS) == sys.executable
    # A pyenv install of that version is found when nothing else is.
    fake = tmp_path / "versions" / f"{THIS}.99" / "bin"
    fake.mkdir(parents=True)
    (fake / f"python{THIS}").symlink_to(sys.executable)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(bundle.sys, "executable", "/nonexistent/python")
    assert bundle.find_compiler(THIS) == str(fake / f"python{THIS}")
    # No interpreter of that version: None (the bundle ships no bytecode, and says so).
    assert bundle.find_compiler("3.99") is None


def test_an_interpreter_of_another_version_is_refused() -> None:
    bundle = load_bundle()
    with pytest.raises(SystemExit) as refused:
        bundle.find_compiler("3.99", override=sys.executable)
    assert "not CPython 3.99" in str(refused.value)
    assert bundle.find_compiler(THIS, override=sys.executable) == sys.executable
