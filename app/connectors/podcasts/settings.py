"""The podcast connector's settings: the Listen Notes key, where it lives, and the upstream."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from app.settings import SETTINGS_CONFIG, blank_is_absent, secret_reference

__all__ = ["DEFAULT_UPSTREAM", "PodcastSettings"]

DEFAULT_UPSTREAM = "https://listen-api.listennotes.com/api/v2"


class PodcastSettings(BaseSettings):
    """`LISTEN_API_KEY`, `LISTEN_API_KEY_REF`, `LISTEN_API_BASE_URL`, `UPSTREAM_TIMEOUT`."""

    model_config = SETTINGS_CONFIG

    listen_api_key: SecretStr | None = Field(
        default=None, description="Upstream key. Absent: sample-data mode, no network at all."
    )
    listen_api_key_ref: str | None = Field(
        default=None, description="AWS reference to the upstream key: ssm:/name or an ARN."
    )
    listen_api_base_url: AnyHttpUrl = Field(default=AnyHttpUrl(DEFAULT_UPSTREAM))
    upstream_timeout: float = Field(default=10.0, gt=0, le=40)

    @field_validator("listen_api_key_ref")
    @classmethod
    def _valid_listen_ref(cls, value: str | None) -> str | None:
        return secret_reference(value)

    @field_validator("listen_api_key", mode="before")
    @classmethod
    def _listen_blank_is_absent(cls, value: object) -> object:
        return blank_is_absent(value)

    @property
    def sample_mode(self) -> bool:
        """True when no upstream key is set: answers come from bundled sample data."""
        return self.listen_api_key is None and self.listen_api_key_ref is None

    @property
    def upstream_base(self) -> str:
        return str(self.listen_api_base_url).rstrip("/")
