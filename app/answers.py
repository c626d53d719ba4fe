"""The compact answers the service returns, and how upstream JSON becomes one.

Each model is both the published JSON schema of an answer and its transformation:
validation aliases rename the upstream's `_original` fields, undeclared upstream fields
(`email`, `rss`, `transcript`, ...) are dropped, text is made plain and capped, lists are
capped. Upstream values of an unexpected type become absent rather than failing the call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import to_json

from app.text import plain_text, truncate

__all__ = [
    "MAX_ANSWER_CHARS",
    "Answer",
    "BestPodcastsAnswer",
    "Episode",
    "GenresAnswer",
    "LanguagesAnswer",
    "Podcast",
    "RegionsAnswer",
    "SearchEpisodesAnswer",
    "SearchPodcastsAnswer",
    "encode_answer",
]

MAX_ANSWER_CHARS = 100_000
"""ChatGPT fails on answers of 100,000 characters or more; every answer stays below."""


def _text(limit: int) -> BeforeValidator:
    def clean(value: object) -> str | None:
        return plain_text(value, limit) if isinstance(value, str) else None

    return BeforeValidator(clean)


def _link(value: object) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) < 2048:
        return value
    return None


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _boolean(value: object) -> bool | None:
    return bool(value) if isinstance(value, bool | int) else None


def _short(value: object) -> str | None:
    return truncate(value, 100) if isinstance(value, str) else None


def _is_object(value: object) -> bool:
    return isinstance(value, dict)


def _object(value: object) -> object:
    return value if isinstance(value, dict) else None


def _capped_list(
    limit: int,
    keep: Callable[[Any], bool] = _is_object,
    convert: Callable[[Any], Any] = lambda item: item,
) -> BeforeValidator:
    def cap(value: object) -> list[Any]:
        if not isinstance(value, list):
            return []
        return [convert(item) for item in value if keep(item)][:limit]

    return BeforeValidator(cap)


Title = Annotated[str | None, _text(200)]
Blurb = Annotated[str | None, _text(300)]
LongText = Annotated[str | None, _text(2000)]
Link = Annotated[str | None, BeforeValidator(_link)]
Integer = Annotated[int | None, BeforeValidator(_integer)]
Flag = Annotated[bool | None, BeforeValidator(_boolean)]
Short = Annotated[str | None, BeforeValidator(_short)]


def _either(name: str) -> AliasChoices:
    # Search results say `title_original`; records say `title`. Accept both, publish one.
    return AliasChoices(f"{name}_original", name)


class Answer(BaseModel):
    """Base of every compact answer: unknown upstream fields are ignored, i.e. dropped."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)


class PodcastRef(Answer):
    id: Short = Field(None, description="Podcast id (32 hex characters), for getPodcast.")
    title: Title = Field(None, validation_alias=_either("title"))
    publisher: Title = Field(None, validation_alias=_either("publisher"))
    image: Link = None
    listennotes_url: Link = Field(None, description="The page to link to. Never invent links.")
    listen_score: Integer = None
    listen_score_global_rank: Short = None


class EpisodeBrief(Answer):
    id: Short = Field(None, description="Episode id (32 hex characters), for getEpisode.")
    title: Title = Field(None, validation_alias=_either("title"))
    description: Blurb = Field(None, validation_alias=_either("description"))
    audio: Link = Field(None, description="Direct link to the audio file.")
    audio_length_sec: Integer = None
    pub_date_ms: Integer = Field(None, description="Publication time, ms since the epoch.")
    explicit_content: Flag = None
    listennotes_url: Link = Field(None, description="The page to link to. Never invent links.")


class EpisodeSummary(EpisodeBrief):
    image: Link = None
    podcast: Annotated[PodcastRef | None, BeforeValidator(_object)] = None


class Episode(EpisodeSummary):
    """One episode in full (justListen, getEpisode). No transcript: it is bulky."""

    description: LongText = Field(None, validation_alias=_either("description"))
    link: Link = Field(None, description="The episode's page on the publisher's site.")


class PodcastSummary(Answer):
    id: Short = Field(None, description="Podcast id (32 hex characters), for getPodcast.")
    title: Title = Field(None, validation_alias=_either("title"))
    publisher: Title = Field(None, validation_alias=_either("publisher"))
    description: Blurb = Field(None, validation_alias=_either("description"))
    image: Link = None
    listennotes_url: Link = Field(None, description="The page to link to. Never invent links.")
    website: Link = None
    language: Short = None
    country: Short = None
    genre_ids: Annotated[list[int], _capped_list(20, lambda g: type(g) is int)] = Field(
        default_factory=list
    )
    total_episodes: Integer = None
    latest_episode_id: Short = None
    latest_pub_date_ms: Integer = None
    earliest_pub_date_ms: Integer = None
    update_frequency_hours: Integer = None
    audio_length_sec: Integer = Field(None, description="Average episode length, in seconds.")
    listen_score: Integer = None
    listen_score_global_rank: Short = None
    explicit_content: Flag = None


class Podcast(PodcastSummary):
    """One podcast in full with a page of its episodes (getPodcast)."""

    description: LongText = Field(None, validation_alias=_either("description"))
    episodes: Annotated[list[EpisodeBrief], _capped_list(10)] = Field(default_factory=list)
    next_episode_pub_date: Integer = Field(
        None, description="Pass as next_episode_pub_date to getPodcast for the next episodes."
    )


class SearchEpisodesAnswer(Answer):
    count: Integer = Field(None, description="Results on this page.")
    total: Integer = Field(None, description="Results in all.")
    next_offset: Integer = Field(None, description="Pass as offset for the next page.")
    results: Annotated[list[EpisodeSummary], _capped_list(10)] = Field(default_factory=list)


class SearchPodcastsAnswer(Answer):
    count: Integer = Field(None, description="Results on this page.")
    total: Integer = Field(None, description="Results in all.")
    next_offset: Integer = Field(None, description="Pass as offset for the next page.")
    results: Annotated[list[PodcastSummary], _capped_list(10)] = Field(default_factory=list)


class BestPodcastsAnswer(Answer):
    genre_id: Integer = Field(None, validation_alias="id")
    genre_name: Short = Field(None, validation_alias="name")
    total: Integer = None
    has_next: Flag = None
    has_previous: Flag = None
    page_number: Integer = None
    podcasts: Annotated[list[PodcastSummary], _capped_list(50)] = Field(default_factory=list)


class Genre(Answer):
    id: Integer = None
    name: Short = None
    parent_id: Integer = None


class GenresAnswer(Answer):
    genres: Annotated[list[Genre], _capped_list(2000)] = Field(default_factory=list)


class LanguagesAnswer(Answer):
    languages: Annotated[
        list[str], _capped_list(1000, lambda v: isinstance(v, str), lambda v: truncate(v, 100))
    ] = Field(default_factory=list)


class Region(Answer):
    code: Short = None
    name: Short = None


def _regions(value: object) -> list[dict[str, object]]:
    # Upstream: {"us": "United States", ...}. A list of objects has fixed properties,
    # which GPT Actions require of every object schema.
    if isinstance(value, list):  # already in our shape (an answer being re-read)
        return [item for item in value if isinstance(item, dict)][:1000]
    if not isinstance(value, dict):
        return []
    return [{"code": code, "name": name} for code, name in list(value.items())[:1000]]


class RegionsAnswer(Answer):
    regions: Annotated[list[Region], BeforeValidator(_regions)] = Field(default_factory=list)


def encode_answer(answer: Answer, limit: int = MAX_ANSWER_CHARS) -> bytes:
    """`answer` as compact JSON, at most `limit` characters whatever the upstream sent.

    Capped fields keep almost every answer far below the limit; if one is still too large,
    the longest list in it is halved until it fits (a shorter page beats a failed call).
    """
    body = answer.model_dump_json(exclude_none=True).encode()
    if len(body) < limit:  # byte length >= character length, so this is conservative
        return body
    data = answer.model_dump(mode="json", exclude_none=True)
    while len(body) >= limit and _halve_longest_list(data):
        body = to_json(data)
    return body


def _halve_longest_list(data: Any) -> bool:
    longest: list[Any] | None = None
    stack = [data]
    while stack:
        node = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if isinstance(node, list) and node and (longest is None or len(node) > len(longest)):
            longest = node
        if isinstance(node, dict | list):
            stack.extend(child for child in children if isinstance(child, dict | list))
    if not longest:
        return False
    del longest[len(longest) // 2 :]
    return True
