"""The connector architecture: the generic core names no upstream, connectors stay apart."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.connector import Surface
from app.main import create_app
from app.registry import CONNECTORS
from tests.conftest import LogCapture, make_settings

APP = Path(__file__).resolve().parent.parent / "app"
# Where the core meets the connectors: the registry and the modules that build the app
# from it (the ASGI app, the command line, the Lambda handler).
COMPOSITION = {"registry.py", "main.py", "__main__.py", "lambda_handler.py"}


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


CORE = sorted(p for p in APP.glob("*.py") if p.name not in COMPOSITION)


@pytest.mark.parametrize("path", CORE, ids=[p.name for p in CORE])
def test_the_core_imports_no_connector(path: Path) -> None:
    reaching = {
        m for m in imported_modules(path) if m.startswith(("app.connectors", "app.registry"))
    }
    assert not reaching, f"{path.name} imports {sorted(reaching)}"


def test_the_core_is_really_checked() -> None:
    names = {p.name for p in CORE}
    assert {"proxy.py", "spec.py", "powerplatform.py", "mcp_tools.py", "security.py"} <= names
    assert {"upstream.py", "errors.py", "observability.py", "public_url.py"} <= names


@pytest.mark.parametrize("connector", CONNECTORS, ids=[c.name for c in CONNECTORS])
def test_connectors_do_not_import_each_other(connector: object) -> None:
    name = connector.name
    others = {c.name for c in CONNECTORS} - {name}
    for path in (APP / "connectors" / name).rglob("*.py"):
        for module in imported_modules(path):
            assert not any(module.startswith(f"app.connectors.{o}") for o in others), path


def test_the_registry_names_each_connector_once() -> None:
    names = [c.name for c in CONNECTORS]
    assert names == ["podcasts", "openai"] and len(set(names)) == len(names)
    assert sum(Surface.PLUGIN in c.surfaces for c in CONNECTORS) == 1


def test_one_startup_line_per_connector(logs: LogCapture) -> None:
    create_app(make_settings(openai_api_key="sk-test-key-for-startup-line-0001"))
    lines = [line for line in logs.lines if '"logger":"app.' in line]
    podcasts = [line for line in lines if '"msg":"podcasts: ' in line]
    openai = [line for line in lines if '"msg":"openai: ' in line]
    assert len(podcasts) == 1 and "live" in podcasts[0] and "LISTEN_API_KEY" in podcasts[0]
    assert len(openai) == 1 and "live" in openai[0] and "OPENAI_API_KEY" in openai[0]
    assert not any("sk-test-key" in line for line in logs.lines)


def test_sample_mode_is_said_per_connector(logs: LogCapture) -> None:
    create_app(make_settings(listen_api_key=None))
    assert any('"msg":"podcasts: sample-data mode' in line for line in logs.lines)
    assert any('"msg":"openai: sample data' in line for line in logs.lines)
