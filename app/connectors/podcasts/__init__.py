"""The podcast connector: the Listen Notes Podcast API, as the Listen Notes ChatGPT plugin
offered it (nine operations, compact answers), on every surface: plugin manifest and GPT
Action spec, MCP tools, Power Platform export."""

from __future__ import annotations

from app.connector import Connector, Surface
from app.connectors.podcasts.operations import OPERATIONS
from app.connectors.podcasts.plugin import API_PREFIX, PLUGIN
from app.connectors.podcasts.research import RESEARCH_TOOLS
from app.connectors.podcasts.settings import PodcastSettings
from app.connectors.podcasts.start import start

__all__ = ["API_PREFIX", "CONNECTOR", "PLUGIN"]

CONNECTOR = Connector(
    name="podcasts",
    title="Podcasts (Listen Notes)",
    settings=PodcastSettings,
    surfaces=frozenset(Surface) - {Surface.OPENAI_COMPATIBLE},
    start=start,
    sample_mode=lambda settings: isinstance(settings, PodcastSettings) and settings.sample_mode,
    operations=OPERATIONS,
    api_prefix=API_PREFIX,
    plugin=PLUGIN,
    research=RESEARCH_TOOLS,
    powerplatform="app.connectors.podcasts.powerplatform",
)
