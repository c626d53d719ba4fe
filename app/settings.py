"""Settings, read from the environment (and an optional `.env`) once per process."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.credentials import SecretRef
from app.oauth.redirects import check_redirect_pattern
from app.security import SECRET_ADVICE, is_strong_secret

__all__ = ["SETTINGS_CONFIG", "CoreSettings", "blank_is_absent", "secret_reference"]

SETTINGS_CONFIG = SettingsConfigDict(
    env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True
)


def secret_reference(value: str | None) -> str | None:
    """A `*_REF` setting checked (`ssm:/name`, `secretsmanager:name` or an ARN); blank is None."""
    if value is None or not value.strip():
        return None
    SecretRef.parse(value)  # raises ValueError with the accepted forms
    return value.strip()


def blank_is_absent(value: object) -> object:
    """For optional settings: an empty or blank value counts as unset."""
    return None if isinstance(value, str) and not value.strip() else value


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class CoreSettings(BaseSettings):
    """What the service is told whatever it hosts: caller secrets, public URL, server limits,
    logging. Each connector adds its own settings class; `app.registry.Settings` is all of
    them. Secrets are `SecretStr`: never in a repr, a log line or a validation error."""

    model_config = SETTINGS_CONFIG

    chatgpt_secret: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Accepted bearer secrets, comma-separated (rotation without downtime).",
    )
    chatgpt_secret_ref: str | None = Field(
        default=None, description="AWS reference to the bearer secret(s): ssm:/name or an ARN."
    )
    secret_ttl: float = Field(
        default=300.0, ge=0, le=86_400, description="Seconds a stored secret is cached."
    )
    chatgpt_verification_token: str = Field(
        default="", description="Token ChatGPT issues on plugin registration; public."
    )
    public_base_url: AnyHttpUrl | None = Field(
        default=None, description="Public origin (and prefix) of this service; else per request."
    )
    # Served by `python -m app serve` (app/server.py) only: on Lambda, API Gateway and ALBs
    # bound request heads themselves.
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=4 * 1024,
        le=1024 * 1024,
        description="Largest request line + header fields accepted; larger answers 431.",
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds a request's headers may take to arrive; then 408 and closed.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["https://chat.openai.com", "https://chatgpt.com"]
    )
    otel_enabled: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry (spans, metrics) when a provider is set up.",
    )
    contact_email: str = "support@example.com"
    log_level: Annotated[
        Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"], BeforeValidator(_upper)
    ] = "INFO"
    # Caller keys, limits and usage (app/callers.py, app/store.py).
    store_url: str | None = Field(
        default=None,
        description="sqlite:///path, redis://host:port/db or dynamodb://TABLE?region=R; "
        "unset: sqlite:///<DATA_DIR>/state.db.",
    )
    data_dir: Path = Field(
        default=Path("data"),
        description="Where the default SQLite store lives (relative: to the working directory).",
    )
    rate_limit_rpm: int = Field(
        default=100,
        ge=1,
        le=1_000_000,
        description="Requests per minute for CHATGPT_SECRET callers and keys without --rpm.",
    )
    key_cache_ttl: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description="Seconds a key lookup is cached: the bound on a revocation taking effect.",
    )
    key_pepper: SecretStr | None = Field(
        default=None,
        description="Secret mixed into the stored key hashes (HMAC-SHA256); unset: SHA-256.",
    )
    # The response cache (app/cache.py).
    cache_enabled: bool = Field(
        default=True,
        description="Serve cacheable upstream answers from the response cache (two levels: "
        "in process, then the store).",
    )
    # OAuth for /mcp (app/oauth/): ChatGPT's and Claude's callbacks are always allowed.
    oauth_redirect_uris: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="More redirect URIs clients may register (comma-separated; * for a port "
        "or one path segment), e.g. http://127.0.0.1:*/callback for Claude Code.",
    )

    @field_validator("chatgpt_secret", "cors_origins", "oauth_redirect_uris", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("store_url", "key_pepper", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return blank_is_absent(value)

    @field_validator("key_pepper")
    @classmethod
    def _strong_pepper(cls, pepper: SecretStr | None) -> SecretStr | None:
        if pepper is not None and not is_strong_secret(pepper.get_secret_value()):
            raise ValueError(f"KEY_PEPPER is too weak: {SECRET_ADVICE}")
        return pepper

    @property
    def pepper(self) -> bytes | None:
        """`KEY_PEPPER` as the bytes the key digests are keyed with (None: plain SHA-256)."""
        return self.key_pepper.get_secret_value().encode() if self.key_pepper else None

    @property
    def store(self) -> str:
        """The store's URL: `STORE_URL`, else the SQLite file in `DATA_DIR`."""
        if self.store_url is not None:
            return self.store_url
        return f"sqlite:///{self.data_dir.expanduser().absolute() / 'state.db'}"

    @field_validator("oauth_redirect_uris")
    @classmethod
    def _redirect_patterns(cls, entries: list[str]) -> list[str]:
        return [check_redirect_pattern(entry) for entry in entries]

    @field_validator("chatgpt_secret_ref")
    @classmethod
    def _valid_secret_ref(cls, value: str | None) -> str | None:
        return secret_reference(value)

    @field_validator("chatgpt_secret")
    @classmethod
    def _strong_secrets(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        for index, secret in enumerate(secrets, start=1):
            if not is_strong_secret(secret.get_secret_value()):
                raise ValueError(f"secret #{index} is too weak: {SECRET_ADVICE}")
        return secrets

    @property
    def has_bearer_secret(self) -> bool:
        return bool(self.chatgpt_secret) or self.chatgpt_secret_ref is not None

    @cached_property
    def bearer_secrets(self) -> tuple[bytes, ...]:
        """The accepted secrets as bytes, ready for constant-time comparison."""
        return tuple(s.get_secret_value().encode() for s in self.chatgpt_secret)
