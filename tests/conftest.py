"""Shared fixtures: settings, apps wired to a respx upstream or to the sample data, logs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from starlette.testclient import TestClient

from app.main import create_app
from app.observability import JsonFormatter
from app.registry import Settings

# Session-scoped real servers for the store tests (redis_server, moto_server).
pytest_plugins = ["tests.servers"]

SECRET = "test-secret-3f9a7c1e5b2d4086"
OTHER_SECRET = "rotated-secret-8d6e4f2a0c1b3957"
UPSTREAM_KEY = "upstream-key-71c5e2a9d0b84f63"
OPENAI_KEY = "sk-proj-upstream-5e0b7c2d94a1f386"
UPSTREAM = "https://listen-api.example.test/api/v2"
AUTH = {"Authorization": f"Bearer {SECRET}"}

EPISODE_ID = "576c6e8a41f656ec9f62e8e46c94d409"  # in the bundled sample data
PODCAST_ID = "a1353f7fa859f49858975fff965b823f"
UNKNOWN_ID = "0" * 32

ENV_VARS = (
    "LISTEN_API_KEY",
    "LISTEN_API_BASE_URL",
    "CHATGPT_SECRET",
    "CHATGPT_VERIFICATION_TOKEN",
    "PUBLIC_BASE_URL",
    "UPSTREAM_TIMEOUT",
    "CORS_ORIGINS",
    "OPENAI_API_KEY",
    "OPENAI_API_KEY_REF",
    "OPENAI_BASE_URL",
    "OPENAI_ORGANIZATION",
    "OPENAI_PROJECT",
    "OPENAI_DEFAULT_MODEL",
    "OPENAI_TIMEOUT",
    "OPENAI_MAX_JSON_BYTES",
    "MAX_HEADER_BYTES",
    "HEADER_TIMEOUT",
    "STORE_URL",
    "DATA_DIR",
    "RATE_LIMIT_RPM",
    "KEY_CACHE_TTL",
    "KEY_PEPPER",
    "CACHE_ENABLED",
    "OPENAI_CACHE_EMBEDDINGS",
    "OAUTH_REDIRECT_URIS",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No setting leaks in from the machine running the tests (nor from a `.env`)."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "listen_api_key": UPSTREAM_KEY,
        "listen_api_base_url": UPSTREAM,
        "chatgpt_secret": SECRET,
        "chatgpt_verification_token": "verify-token-123",
        "upstream_timeout": 2.0,
        # Tests about other things send more than the default 100 requests a minute with
        # the shared secret; the tests about limits set their own.
        "rate_limit_rpm": 1_000_000,
        # Tests about other things count what reaches the upstream; the response cache's
        # tests (tests/test_cache.py) turn it on.
        "cache_enabled": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class LeakGuard:
    """Every app log line and every TestClient answer (headers and body) of one test."""

    SECRETS = (SECRET, OTHER_SECRET, UPSTREAM_KEY, OPENAI_KEY)

    def __init__(self) -> None:
        self.texts: list[str] = []

    def record_response(self, response: httpx.Response) -> None:
        response.read()
        self.texts.append(response.text)
        self.texts.extend(f"{name}: {value}" for name, value in response.headers.items())


@pytest.fixture(autouse=True)
def leak_guard() -> Iterator[LeakGuard]:
    """Across the whole suite: no secret or upstream key in any log line or answer."""
    guard = LeakGuard()
    with captured_logs() as capture:
        yield guard
    for text in (*guard.texts, *capture.lines):
        for secret in LeakGuard.SECRETS:
            assert secret not in text, f"a secret leaked into: {text[:200]}"


@pytest.fixture
def upstream() -> Iterator[respx.MockRouter]:
    """A respx router standing in for the upstream API; unmatched calls fail the test."""
    with respx.mock(base_url=UPSTREAM, assert_all_called=False) as router:
        yield router


AppFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(upstream: respx.MockRouter, leak_guard: LeakGuard) -> Iterator[AppFactory]:
    """`make_client(**settings)`: a TestClient on an app whose upstream is `upstream`."""
    clients: list[TestClient] = []

    def factory(
        *, transport: httpx.AsyncBaseTransport | None = None, **overrides: Any
    ) -> TestClient:
        settings = make_settings(**overrides)
        if transport is None and not settings.sample_mode:
            transport = httpx.MockTransport(upstream.async_handler)
        app: FastAPI = create_app(settings, transport=transport)
        client = TestClient(app, base_url="http://testserver")
        client.event_hooks["response"].append(leak_guard.record_response)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: AppFactory) -> TestClient:
    """The app in live mode against the respx upstream."""
    return make_client()


@pytest.fixture
def sample_client(make_client: AppFactory) -> TestClient:
    """The app in sample-data mode (no upstream key)."""
    return make_client(listen_api_key=None)


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [
            r.fields  # type: ignore[attr-defined]
            for r in self.records
            if isinstance(getattr(r, "fields", None), dict) and r.fields.get("event") == name  # type: ignore[attr-defined]
        ]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Every line the app's loggers write during the test, formatted as in production."""
    with captured_logs() as capture:
        yield capture


@contextlib.contextmanager
def captured_logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    logger = logging.getLogger("app")
    logger.addHandler(capture)
    try:
        yield capture
    finally:
        logger.removeHandler(capture)
