"""The ChatGPT plugin manifest (`/.well-known/ai-plugin.json`) and the assets it points to.

Its texts are the plugin connector's (`Connector.plugin`)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from app.connector import Plugin
from app.settings import CoreSettings

__all__ = [
    "LEGAL_PATH",
    "LOGO_PATH",
    "SPEC_PATH",
    "plugin_manifest",
    "well_known_asset",
]

SPEC_PATH = "/openapi.json"
LOGO_PATH = "/logo.png"
LEGAL_PATH = "/legal"
WELL_KNOWN_DIR = Path(__file__).resolve().parent.parent / "well_known"


def plugin_manifest(base_url: str, settings: CoreSettings, plugin: Plugin) -> dict[str, Any]:
    """The manifest, with every URL absolute on `base_url` (scheme, host, prefix)."""
    return {
        "schema_version": "v1",
        "name_for_human": plugin.name_for_human,
        "name_for_model": plugin.name_for_model,
        "description_for_human": plugin.description_for_human,
        "description_for_model": plugin.description_for_model,
        "auth": {
            "type": "service_http",
            "authorization_type": "bearer",
            "verification_tokens": {"openai": settings.chatgpt_verification_token},
        },
        "api": {"type": "openapi", "url": base_url + SPEC_PATH},
        "logo_url": base_url + LOGO_PATH,
        "contact_email": settings.contact_email,
        "legal_info_url": base_url + LEGAL_PATH,
    }


@cache
def well_known_asset(name: str) -> bytes:
    """A file of `well_known/` (logo, legal text), read once per process."""
    return (WELL_KNOWN_DIR / name).read_bytes()
