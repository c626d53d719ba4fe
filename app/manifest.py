"""The ChatGPT plugin manifest (`/.well-known/ai-plugin.json`) and the assets it points to."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from app.settings import Settings

__all__ = [
    "DESCRIPTION_FOR_MODEL",
    "LEGAL_PATH",
    "LOGO_PATH",
    "NAME_FOR_HUMAN",
    "SPEC_PATH",
    "plugin_manifest",
    "well_known_asset",
]

SPEC_PATH = "/openapi.json"
LOGO_PATH = "/logo.png"
LEGAL_PATH = "/legal"
WELL_KNOWN_DIR = Path(__file__).resolve().parent.parent / "well_known"

NAME_FOR_HUMAN = "Podcast Finder"
NAME_FOR_MODEL = "podcasts"
DESCRIPTION_FOR_HUMAN = (
    "Search podcasts and episodes, get recommendations, and find something to hear."
)
DESCRIPTION_FOR_MODEL = (
    "Finds podcasts and podcast episodes from a large podcast database. "
    "Use searchEpisodes or searchPodcasts to look up a topic, person or event; "
    "getBestPodcasts for recommendations (call getGenres first to find a genre id); "
    "justListen when the user just wants something to hear. "
    "Show at most 5 results, each with a one-sentence description. "
    "Always link to an item with its listennotes_url and never invent links or ids."
)


def plugin_manifest(base_url: str, settings: Settings) -> dict[str, Any]:
    """The manifest, with every URL absolute on `base_url` (scheme, host, prefix)."""
    return {
        "schema_version": "v1",
        "name_for_human": NAME_FOR_HUMAN,
        "name_for_model": NAME_FOR_MODEL,
        "description_for_human": DESCRIPTION_FOR_HUMAN,
        "description_for_model": DESCRIPTION_FOR_MODEL,
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
