"""The OpenAI connector's settings: `OPENAI_*`."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from app.settings import SETTINGS_CONFIG, blank_is_absent, secret_reference

__all__ = ["DEFAULT_OPENAI_UPSTREAM", "OpenAISettings"]

DEFAULT_OPENAI_UPSTREAM = "https://api.openai.com/v1"


class OpenAISettings(BaseSettings):
    """The upstream key (or its AWS reference), base URL, organization, project, default
    model, timeout and JSON body cap of the OpenAI-compatible gateway."""

    model_config = SETTINGS_CONFIG

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
    openai_cache_embeddings: bool = Field(
        default=False,
        description="Serve repeated embeddings requests (same model, input and options) from "
        "the response cache.",
    )

    @field_validator("openai_api_key_ref")
    @classmethod
    def _valid_openai_ref(cls, value: str | None) -> str | None:
        return secret_reference(value)

    @field_validator("openai_api_key", "openai_organization", "openai_project", mode="before")
    @classmethod
    def _openai_blank_is_absent(cls, value: object) -> object:
        return blank_is_absent(value)

    @property
    def openai_sample_mode(self) -> bool:
        """True when no OpenAI key is set: the OpenAI routes answer from sample data."""
        return self.openai_api_key is None and self.openai_api_key_ref is None

    @property
    def openai_base(self) -> str:
        return str(self.openai_base_url).rstrip("/")
