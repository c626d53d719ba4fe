"""Settings come from the environment and an optional `.env`."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.connectors.podcasts.settings import DEFAULT_UPSTREAM
from app.registry import Settings
from tests.conftest import OTHER_SECRET, SECRET, UPSTREAM_KEY


def test_defaults_are_sample_mode_and_closed() -> None:
    settings = Settings()
    assert settings.sample_mode
    assert settings.bearer_secrets == ()
    assert settings.upstream_base == DEFAULT_UPSTREAM
    assert 0 < settings.upstream_timeout < 45
    assert settings.cors_origins == ["https://chat.openai.com", "https://chatgpt.com"]


def test_environment_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_API_KEY", UPSTREAM_KEY)
    monkeypatch.setenv("CHATGPT_SECRET", f" {SECRET} ,{OTHER_SECRET},")
    monkeypatch.setenv("LISTEN_API_BASE_URL", "http://127.0.0.1:9999/api/v2/")
    monkeypatch.setenv("UPSTREAM_TIMEOUT", "3.5")
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    settings = Settings()
    assert not settings.sample_mode
    assert settings.bearer_secrets == (SECRET.encode(), OTHER_SECRET.encode())
    assert settings.upstream_base == "http://127.0.0.1:9999/api/v2"
    assert settings.upstream_timeout == 3.5
    assert settings.cors_origins == ["https://a.example", "https://b.example"]


def test_blank_key_means_sample_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_API_KEY", "  ")
    assert Settings().sample_mode


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"CHATGPT_SECRET={SECRET}\nLISTEN_API_KEY={UPSTREAM_KEY}\n")
    settings = Settings()  # the tests run in tmp_path
    assert settings.bearer_secrets == (SECRET.encode(),)
    assert not settings.sample_mode


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("UPSTREAM_TIMEOUT", "0"),
        ("UPSTREAM_TIMEOUT", "60"),
        ("LISTEN_API_BASE_URL", "not a url"),
        ("PUBLIC_BASE_URL", "ftp://x"),
        ("CHATGPT_SECRET", "changeme"),
        ("CHATGPT_SECRET", "aaaaaaaaaaaaaaaa"),
        ("CHATGPT_SECRET", "abababababababab"),
        ("CHATGPT_SECRET", "1234567890123456"),
        ("CHATGPT_SECRET", "test-secret-3f9a7c1e5b2d4086,1234567890123456"),
    ],
)
def test_bad_values_are_refused_at_startup(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
