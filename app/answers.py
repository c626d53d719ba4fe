"""The compact answers the service returns, and how upstream JSON becomes one.

Each model is both the published JSON schema of an answer and its transformation:
validation aliases rename the upstream's `_original` fields, undeclared upstream fields
(`email`, `rss`, `transcript`, ...) are dropped, text is made plain and capped, lists are
capped. They validate the upstream's JSON bytes directly (pydantic-core, in Rust): a
record that breaks the contract is left out of its list, or refused if it is the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    OnErrorOmit,
    StringConstraints,
)
from pydantic_core import core_schema, to_json

from app.text import plain_text

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
    "finish",
    "halve_longest_list",
]

MAX_ANSWER_CHARS = 100_000
"""ChatGPT fails on answers of 100,000 characters or more; every answer stays below."""


@dataclass(frozen=True, slots=True)
class _Finish:
    """Field metadata: a Python step applied after validation, to the items an answer keeps.

    Validation itself runs in Rust and only checks types, so a list of any length costs
    little; cleaning text (the expensive part) and checking links then run on the at most
    `limit` items each list keeps, never on the ones it drops.
    """

    apply: Callable[[Any], Any]


def _text(limit: int) -> _Finish:
    return _Finish(lambda value: plain_text(value, limit))


class _NullOnError:
    """Annotation: a value of the wrong type or out of bounds becomes null, in Rust.

    For optional fields: one odd value (a link without a scheme, an over-long id, a
    sentence where a number belongs) costs that field, not the whole record.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_default_schema(handler(source), default=None, on_error="default")


_OR_NULL = _NullOnError()


def _score(value: object) -> int | None:
    # Free plans get a sentence ("Please upgrade ...") instead of a number: leave it out.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else None


def _rank(value: object) -> str | None:
    if isinstance(value, str) and len(value) <= 10 and value[:1].isdigit():
        return value  # e.g. "0.5%"
    return None


def _first(limit: int) -> AfterValidator:
    return AfterValidator(lambda items: items[:limit])


def _either(name: str) -> AliasChoices:
    # Search results say `title_original`; records say `title`. Accept both, publish one.
    return AliasChoices(f"{name}_original", name)


# Checked by pydantic-core (Rust): this runs for every field of every upstream record.
# An unusable optional value becomes null (`_OR_NULL`) and the record stays; a record that
# is not an object is left out of a list (OnErrorOmit) or, as the whole answer, refused
# (502). Python runs only in `finish` (text, on the records kept) and for the scores.
Title = Annotated[str | None, _text(200)]
Blurb = Annotated[str | None, _text(300)]
LongText = Annotated[str | None, _text(2000)]
Link = Annotated[
    Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2048)] | None, _OR_NULL
]
Id = Annotated[Annotated[str, StringConstraints(max_length=64)] | None, _OR_NULL]
Short = Annotated[Annotated[str, StringConstraints(max_length=100)] | None, _OR_NULL]
Int = Annotated[int | None, _OR_NULL]
Flag = Annotated[bool | None, _OR_NULL]
Score = Annotated[int | None, BeforeValidator(_score)]
Rank = Annotated[str | None, BeforeValidator(_rank)]


class Answer(BaseModel):
    """Base of every compact answer: unknown upstream fields are ignored, i.e. dropped."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)


class PodcastRef(Answer):
    id: Id = Field(None, description="Podcast id (32 hex characters), for getPodcast.")
    title: Title = Field(None, validation_alias=_either("title"))
    publisher: Title = Field(None, validation_alias=_either("publisher"))
    image: Link = None
    listennotes_url: Link = Field(None, description="The page to link to. Never invent links.")
    listen_score: Score = None
    listen_score_global_rank: Rank = None


class EpisodeBrief(Answer):
    id: Id = Field(None, description="Episode id (32 hex characters), for getEpisode.")
    title: Title = Field(None, validation_alias=_either("title"))
    description: Blurb = Field(None, validation_alias=_either("description"))
    audio: Link = Field(None, description="Direct link to the audio file.")
    audio_length_sec: Int = None
    pub_date_ms: Int = Field(None, description="Publication time, ms since the epoch.")
    explicit_content: Flag = None
    listennotes_url: Link = Field(None, description="The page to link to. Never invent links.")


class EpisodeSummary(EpisodeBrief):
    image: Link = None
    podcast: Annotated[PodcastRef | None, _OR_NULL] = None


class Episode(EpisodeSummary):
    """One episode in full (justListen, getEpisode). No transcript: it is bulky."""

    description: LongText = Field(None, validation_alias=_either("description"))
    link: Link = Field(None, description="The episode's page on the publisher's site.")


class PodcastSummary(Answer):
    id: Id = Field(None, description="Podcast id (32 hex characters), for getPodcast.")
    title: Title = Field(None, validation_alias=_either("title"))
    publisher: Title = Field(None, validation_alias=_either("publisher"))
    description: Blurb = Field(None, validation_alias=_either("description"))
    image: Link = None
    listennotes_url: Link = Field(None, description="The page to link to. Never invent links.")
    website: Link = None
    language: Short = None
    country: Short = None
    genre_ids: Annotated[list[OnErrorOmit[int]], _first(20)] = Field(default_factory=list)
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

    description: LongText = Field(None, validation_alias=_either("description"))
    episodes: Annotated[list[OnErrorOmit[EpisodeBrief]], _first(10)] = Field(default_factory=list)
    next_episode_pub_date: Int = Field(
        None, description="Pass as next_episode_pub_date to getPodcast for the next episodes."
    )


class SearchEpisodesAnswer(Answer):
    count: Int = Field(None, description="Results on this page.")
    total: Int = Field(None, description="Results in all.")
    next_offset: Int = Field(None, description="Pass as offset for the next page.")
    results: Annotated[list[OnErrorOmit[EpisodeSummary]], _first(10)] = Field(default_factory=list)


class SearchPodcastsAnswer(Answer):
    count: Int = Field(None, description="Results on this page.")
    total: Int = Field(None, description="Results in all.")
    next_offset: Int = Field(None, description="Pass as offset for the next page.")
    results: Annotated[list[OnErrorOmit[PodcastSummary]], _first(10)] = Field(default_factory=list)


class BestPodcastsAnswer(Answer):
    genre_id: Int = Field(None, validation_alias="id")
    genre_name: Short = Field(None, validation_alias="name")
    total: Int = None
    has_next: Flag = None
    has_previous: Flag = None
    page_number: Int = None
    podcasts: Annotated[list[OnErrorOmit[PodcastSummary]], _first(50)] = Field(default_factory=list)


class Genre(Answer):
    id: Int = None
    name: Short = None
    parent_id: Int = None


class GenresAnswer(Answer):
    genres: Annotated[list[OnErrorOmit[Genre]], _first(2000)] = Field(default_factory=list)


class LanguagesAnswer(Answer):
    languages: Annotated[
        list[OnErrorOmit[Annotated[str, StringConstraints(max_length=100)]]], _first(1000)
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
    regions: Annotated[list[OnErrorOmit[Region]], BeforeValidator(_regions)] = Field(
        default_factory=list
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    """What `finish` does to one answer class: steps on its own fields, then its records."""

    steps: tuple[tuple[str, Callable[[Any], Any]], ...]
    records: tuple[str, ...]


_PLANS: dict[type[Answer], _Plan] = {}


def _holds_answers(annotation: object) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, Answer):
        return True
    return any(_holds_answers(arg) for arg in get_args(annotation))


def _plan_of(cls: type[Answer]) -> _Plan:
    steps: list[tuple[str, Callable[[Any], Any]]] = []
    records: list[str] = []
    for name, info in cls.model_fields.items():
        step = next((m for m in info.metadata if isinstance(m, _Finish)), None)
        if step is not None:
            steps.append((name, step.apply))
        elif _holds_answers(info.annotation):
            records.append(name)  # a nested record, or a list of them
    plan = _PLANS[cls] = _Plan(tuple(steps), tuple(records))
    return plan


def finish(answer: Answer) -> Answer:
    """`answer` with its `_Finish` steps applied, in place, to what it kept (see `_Finish`)."""
    plan = _PLANS.get(type(answer)) or _plan_of(type(answer))
    values = answer.__dict__
    for name, apply in plan.steps:
        value = values[name]
        if value is not None:
            values[name] = apply(value)
    for name in plan.records:
        value = values[name]
        if isinstance(value, list):
            for item in value:
                finish(item)
        elif value is not None:
            finish(value)
    return answer


def encode_answer(answer: Answer, limit: int = MAX_ANSWER_CHARS) -> bytes:
    """`answer` as compact JSON, at most `limit` characters whatever the upstream sent.

    Capped fields keep almost every answer far below the limit; if one is still too large,
    the longest list in it is halved until it fits (a shorter page beats a failed call).
    """
    body = answer.model_dump_json(exclude_none=True).encode()
    if len(body) < limit:  # byte length >= character length, so this is conservative
        return body
    data = answer.model_dump(mode="json", exclude_none=True)
    while len(body) >= limit and halve_longest_list(data):
        body = to_json(data)
    return body


def halve_longest_list(data: Any) -> bool:
    """Halve the longest list anywhere in `data` (JSON-like, in place); False if none is left."""
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
