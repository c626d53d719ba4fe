"""The podcast connector: the Listen Notes Podcast API, as the Listen Notes ChatGPT plugin
offered it (nine operations, compact answers), on every surface: plugin manifest and GPT
Action spec, MCP tools, Power Platform export."""

from __future__ import annotations

from app.connector import Connector, Plugin, Surface
from app.connectors.podcasts.operations import OPERATIONS
from app.connectors.podcasts.research import RESEARCH_TOOLS
from app.connectors.podcasts.settings import PodcastSettings
from app.connectors.podcasts.start import start

__all__ = ["API_PREFIX", "CONNECTOR", "PLUGIN"]

API_PREFIX = "/api/v2"

PLUGIN = Plugin(
    name_for_human="Podcast Finder",
    name_for_model="podcasts",
    description_for_human=(
        "Search podcasts and episodes, get recommendations, and find something to hear."
    ),
    description_for_model=(
        "Finds podcasts and podcast episodes from a large podcast database. "
        "Use searchEpisodes or searchPodcasts to look up a topic, person or event; "
        "getBestPodcasts for recommendations (call getGenres first to find a genre id); "
        "justListen when the user just wants something to hear. "
        "Show at most 5 results, each with a one-sentence description. "
        "Always link to an item with its listennotes_url and never invent links or ids."
    ),
)

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
)
