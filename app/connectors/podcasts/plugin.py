"""What the podcast connector says about itself: the plugin texts and its API prefix."""

from __future__ import annotations

from app.connector import Plugin

__all__ = ["API_PREFIX", "PLUGIN"]

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
