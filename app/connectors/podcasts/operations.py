"""The podcast connector's nine operations, as the Listen Notes ChatGPT plugin offered them."""

from __future__ import annotations

from app.connectors.podcasts import answers, params
from app.operations import Operation, by_name

__all__ = ["OPERATIONS", "operation_named"]

# How long an answer is served from the response cache (app/cache.py): reference lists
# change rarely, episodes and podcasts gain new data within hours, search rankings move.
_DAY, _HOUR, _SEARCH = 86_400, 3_600, 300

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        name="searchEpisodes",
        title="Search episodes",
        description=(
            "Full-text search for podcast episodes by keywords, optionally filtered by "
            "language, region, genre, audio length or publication date. Use it when the "
            "user wants episodes about a topic, person or event."
        ),
        path="/search_episodes",
        upstream_path="/search",
        params=params.SearchEpisodesParams,
        answer=answers.SearchEpisodesAnswer,
        fixed={"type": "episode"},
        cache_ttl=_SEARCH,
    ),
    Operation(
        name="searchPodcasts",
        title="Search podcasts",
        description=(
            "Full-text search for podcasts (whole shows) by keywords, optionally filtered by "
            "language, region, genre or episode count. Use it when the user wants shows "
            "about a topic rather than single episodes."
        ),
        path="/search_podcasts",
        upstream_path="/search",
        params=params.SearchPodcastsParams,
        answer=answers.SearchPodcastsAnswer,
        fixed={"type": "podcast"},
        cache_ttl=_SEARCH,
    ),
    Operation(
        name="getBestPodcasts",
        title="Best podcasts",
        description=(
            "The most popular podcasts, overall or in one genre, region or language. Use it "
            "for recommendations; find genre ids with getGenres first."
        ),
        path="/best_podcasts",
        upstream_path="/best_podcasts",
        params=params.BestPodcastsParams,
        answer=answers.BestPodcastsAnswer,
        cache_ttl=_HOUR,
    ),
    Operation(
        name="justListen",
        title="Random episode",
        description="One random podcast episode, for a user who just wants something to hear.",
        path="/just_listen",
        upstream_path="/just_listen",
        params=params.NoParams,
        answer=answers.Episode,
        cache_ttl=None,  # random: never cached,
    ),
    Operation(
        name="getGenres",
        title="List genres",
        description=(
            "All podcast genres with their ids and parent ids. Use it to find the genre id "
            "for getBestPodcasts or the genre_ids filter of the searches."
        ),
        path="/genres",
        upstream_path="/genres",
        params=params.GenresParams,
        answer=answers.GenresAnswer,
        cache_ttl=_DAY,
    ),
    Operation(
        name="getLanguages",
        title="List languages",
        description="The language names accepted by the language filter of other operations.",
        path="/languages",
        upstream_path="/languages",
        params=params.NoParams,
        answer=answers.LanguagesAnswer,
        cache_ttl=_DAY,
    ),
    Operation(
        name="getRegions",
        title="List regions",
        description="The region codes and names accepted by the region filter of other operations.",
        path="/regions",
        upstream_path="/regions",
        params=params.NoParams,
        answer=answers.RegionsAnswer,
        cache_ttl=_DAY,
    ),
    Operation(
        name="getEpisode",
        title="Get an episode",
        description=(
            "One episode in full, by the id a search or listing returned: title, description, "
            "audio link, length, date and its podcast."
        ),
        path="/episodes/{id}",
        upstream_path="/episodes/{id}",
        params=params.IdParams,
        answer=answers.Episode,
        cache_ttl=_HOUR,
    ),
    Operation(
        name="getPodcast",
        title="Get a podcast",
        description=(
            "One podcast in full, by the id a search or listing returned, with its latest "
            "episodes (10 at a time; page with next_episode_pub_date)."
        ),
        path="/podcasts/{id}",
        upstream_path="/podcasts/{id}",
        params=params.PodcastParams,
        answer=answers.Podcast,
        cache_ttl=_HOUR,
    ),
)

_BY_NAME = by_name(OPERATIONS)


def operation_named(name: str) -> Operation:
    """The operation with that operationId; KeyError if there is none."""
    return _BY_NAME[name]
