"""The podcast connector's compact answers: what each operation returns, read off the
upstream's JSON. Aliases rename the `_original` fields; undeclared upstream fields
(`email`, `rss`, `transcript`, ...) are dropped; text is made plain and capped; lists
are capped before their records are cleaned. Each answer requires the field that defines
its shape (`results`, `podcasts`, `genres`, `languages`, `regions`, a record's `id`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, OnErrorOmit, Strict, StringConstraints

from app.answers import (
    OR_NULL,
    Answer,
    Blurb,
    Flag,
    Id,
    Int,
    Link,
    LongText,
    Short,
    Title,
    either,
    first,
)

__all__ = [
    "BestPodcastsAnswer",
    "Episode",
    "GenresAnswer",
    "LanguagesAnswer",
    "Podcast",
    "RegionsAnswer",
    "SearchEpisodesAnswer",
    "SearchPodcastsAnswer",
]


# Free plans get a sentence ("Please upgrade ...") instead of the score and the rank: left
# out (null), in Rust. A score is a JSON integer (not `true`, not `4.0`); a rank is short and
# starts with a digit (e.g. "0.5%").
Score = Annotated[Annotated[int, Strict()] | None, OR_NULL]
Rank = Annotated[
    Annotated[str, StringConstraints(max_length=10, pattern=r"^[0-9]")] | None, OR_NULL
]
# The field that makes an upstream answer the answer asked for is required: without it
# (another endpoint's answer, `{"weird": true}`) the answer is refused, 502, rather than
# served as an empty 200. Optional fields stay forgiving (`OR_NULL`, `OnErrorOmit`).
RecordId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class PodcastRef(Answer):
    id: Id = Field(None, description="Podcast id (32 hex characters), for getPodcast.")
    title: Title = Field(None, validation_alias=either("title"))
    publisher: Title = Field(None, validation_alias=either("publisher"))
    image: Link = None
    listennotes_url: Link = Field(None, description="The page to link to. Never invent links.")
    listen_score: Score = None
    listen_score_global_rank: Rank = None


class EpisodeBrief(Answer):
    id: Id = Field(None, description="Episode id (32 hex characters), for getEpisode.")
    title: Title = Field(None, validation_alias=either("title"))
    description: Blurb = Field(None, validation_alias=either("description"))
    audio: Link = Field(None, description="Direct link to the audio file.")
    audio_length_sec: Int = None
    pub_date_ms: Int = Field(None, description="Publication time, ms since the epoch.")
    explicit_content: Flag = None
    listennotes_url: Link = Field(None, description="The page to link to. Never invent links.")


class EpisodeSummary(EpisodeBrief):
    image: Link = None
    podcast: Annotated[PodcastRef | None, OR_NULL] = None


class Episode(EpisodeSummary):
    """One episode in full (justListen, getEpisode). No transcript: it is bulky."""

    id: RecordId = Field(description="Episode id (32 hex characters), for getEpisode.")
    description: LongText = Field(None, validation_alias=either("description"))
    link: Link = Field(None, description="The episode's page on the publisher's site.")


class PodcastSummary(Answer):
    id: Id = Field(None, description="Podcast id (32 hex characters), for getPodcast.")
    title: Title = Field(None, validation_alias=either("title"))
    publisher: Title = Field(None, validation_alias=either("publisher"))
    description: Blurb = Field(None, validation_alias=either("description"))
    image: Link = None
    listennotes_url: Link = Field(None, description="The page to link to. Never invent links.")
    website: Link = None
    language: Short = None
    country: Short = None
    genre_ids: Annotated[list[OnErrorOmit[int]], first(20)] = Field(default_factory=list)
    total_episodes: Int = None
    latest_episode_id: Id = None
    latest_pub_date_ms: Int = None
    earliest_pub_date_ms: Int = None
    update_frequency_hours: Int = None
    audio_length_sec: Int = Field(None, description="Average episode length, in seconds.")
    listen_score: Score = None
    listen_score_global_rank: Rank = None
    explicit_content: Flag = None


class Podcast(PodcastSummary):
    """One podcast in full with a page of its episodes (getPodcast)."""

    id: RecordId = Field(description="Podcast id (32 hex characters), for getPodcast.")
    description: LongText = Field(None, validation_alias=either("description"))
    episodes: Annotated[list[OnErrorOmit[EpisodeBrief]], first(10)] = Field(default_factory=list)
    next_episode_pub_date: Int = Field(
        None, description="Pass as next_episode_pub_date to getPodcast for the next episodes."
    )


class SearchEpisodesAnswer(Answer):
    count: Int = Field(None, description="Results on this page.")
    total: Int = Field(None, description="Results in all.")
    next_offset: Int = Field(None, description="Pass as offset for the next page.")
    results: Annotated[list[OnErrorOmit[EpisodeSummary]], first(10)]


class SearchPodcastsAnswer(Answer):
    count: Int = Field(None, description="Results on this page.")
    total: Int = Field(None, description="Results in all.")
    next_offset: Int = Field(None, description="Pass as offset for the next page.")
    results: Annotated[list[OnErrorOmit[PodcastSummary]], first(10)]


class BestPodcastsAnswer(Answer):
    genre_id: Int = Field(None, validation_alias="id")
    genre_name: Short = Field(None, validation_alias="name")
    total: Int = None
    has_next: Flag = None
    has_previous: Flag = None
    page_number: Int = None
    podcasts: Annotated[list[OnErrorOmit[PodcastSummary]], first(50)]


class Genre(Answer):
    id: Int = None
    name: Short = None
    parent_id: Int = None


class GenresAnswer(Answer):
    genres: Annotated[list[OnErrorOmit[Genre]], first(2000)]


class LanguagesAnswer(Answer):
    languages: Annotated[
        list[OnErrorOmit[Annotated[str, StringConstraints(max_length=100)]]], first(1000)
    ]


class Region(Answer):
    code: Short = None
    name: Short = None


def _regions(value: object) -> list[dict[str, object]]:
    # Upstream: {"us": "United States", ...}. A list of objects has fixed properties,
    # which GPT Actions require of every object schema.
    if isinstance(value, list):  # already in our shape (an answer being re-read)
        return [item for item in value if isinstance(item, dict)][:1000]
    if not isinstance(value, dict):
        raise ValueError("regions is not an object")  # another shape: the answer is refused
    return [{"code": code, "name": name} for code, name in list(value.items())[:1000]]


class RegionsAnswer(Answer):
    regions: Annotated[list[OnErrorOmit[Region]], BeforeValidator(_regions)]
