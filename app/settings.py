"""Settings, read from the environment (and an optional `.env`) once per process."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.credentials import SecretRef
from app.security import SECRET_ADVICE, is_strong_secret

__all__ = ["DEFAULT_OPENAI_UPSTREAM", "DEFAULT_UPSTREAM", "Settings"]

DEFAULT_UPSTREAM = "https://listen-api.listennotes.com/api/v2"
DEFAULT_OPENAI_UPSTREAM = "https://api.openai.com/v1"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything the service can be told. Secrets are `SecretStr`: they never appear in a repr,
    a log line or a validation error."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    listen_api_key: SecretStr | None = Field(
        default=None, description="Upstream key. Absent: sample-data mode, no network at all."
    )
    listen_api_key_ref: str | None = Field(
        default=None, description="AWS reference to the upstream key: ssm:/name or an ARN."
    )
    listen_api_base_url: AnyHttpUrl = Field(default=AnyHttpUrl(DEFAULT_UPSTREAM))
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
    upstream_timeout: float = Field(default=10.0, gt=0, le=40)
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
    log_level: str = "INFO"

    # --- OpenAI connector (app/connectors/openai/). Kept apart: moves into the connector. ---
    openai_api_key: SecretStr | None = Field(
        default=None, description="OpenAI key. Absent (and no reference): sample data."
    )
    openai_api_key_ref: str | None = Field(
        default=None, description="AWS reference to the OpenAI key: ssm:/name or an ARN."
    )
    openai_base_url: AnyHttpUrl = Field(
        default=AnyHttpUrl(DEFAULT_OPENAI_UPSTREAM),
        description="Any OpenAI-compatible API (Azure OpenAI v1, Ollama, vLLM), with its /v1.",
    )
    openai_organization: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,128}$")
    openai_project: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,128}$")
    openai_default_model: str = Field(
        default="gpt-4o-mini",
        min_length=1,
        max_length=128,
        description="For /openai/chat, and for a JSON request that needs a model and has none.",
    )
    openai_timeout: float = Field(
        default=60.0, gt=0, le=110, description="Seconds; under Power Platform's 120 s."
    )
    openai_max_json_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="Largest JSON body."
    )

    @field_validator("chatgpt_secret", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("listen_api_key_ref", "chatgpt_secret_ref", "openai_api_key_ref")
    @classmethod
    def _valid_ref(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        SecretRef.parse(value)  # raises ValueError with the accepted forms
        return value.strip()

    @field_validator(
        "listen_api_key", "openai_api_key", "openai_organization", "openai_project", mode="before"
    )
    @classmethod
    def _blank_is_absent(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("chatgpt_secret")
    @classmethod
    def _strong_secrets(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        for index, secret in enumerate(secrets, start=1):
            if not is_strong_secret(secret.get_secret_value()):
                raise ValueError(f"secret #{index} is too weak: {SECRET_ADVICE}")
        return secrets

    @property
    def sample_mode(self) -> bool:
        """True when no upstream key is set: answers come from bundled sample data."""
        return self.listen_api_key is None and self.listen_api_key_ref is None

    @property
    def has_bearer_secret(self) -> bool:
        return bool(self.chatgpt_secret) or self.chatgpt_secret_ref is not None

    @cached_property
    def bearer_secrets(self) -> tuple[bytes, ...]:
        """The accepted secrets as bytes, ready for constant-time comparison."""
        return tuple(s.get_secret_value().encode() for s in self.chatgpt_secret)

    @property
    def upstream_base(self) -> str:
        return str(self.listen_api_base_url).rstrip("/")

    @property
    def openai_sample_mode(self) -> bool:
        """True when no OpenAI key is set: the OpenAI routes answer from sample data."""
        return self.openai_api_key is None and self.openai_api_key_ref is None

    @property
    def openai_base(self) -> str:
        return str(self.openai_base_url).rstrip("/")
