"""What a caller may send to each operation: typed, bounded, described for the model.

A parameter model is the whole contract of an operation's input. Fields carry the upstream
parameter names, so a validated model is forwarded as it is; anything not declared here
is never forwarded. Bounds are checked before any upstream call.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "BestPodcastsParams",
    "GenresParams",
    "IdParams",
    "NoParams",
    "Params",
    "PodcastParams",
    "SearchEpisodesParams",
    "SearchPodcastsParams",
]

_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"


def _id_list(allowed: frozenset[str] | None = None, numeric: bool = False) -> AfterValidator:
    def check(value: str) -> str:
        items = [item.strip() for item in value.split(",")]
        if not all(items):
            raise ValueError("must be a comma-separated list with no empty items")
        if numeric and not all(item.isdigit() and len(item) <= 6 for item in items):
            raise ValueError("must be comma-separated genre ids, e.g. 68,82")
        if allowed is not None and not set(items) <= allowed:
            raise ValueError(f"items must be among {', '.join(sorted(allowed))}")
        if len(items) > 20:
            raise ValueError("at most 20 items")
        return ",".join(items)

    return AfterValidator(check)


Switch = Annotated[int, Field(ge=0, le=1)]
Hours = Annotated[int, Field(ge=0, le=24 * 365)]
Minutes = Annotated[int, Field(ge=0, le=24 * 60)]
EpochMs = Annotated[int, Field(ge=0, le=10**14)]
Language = Annotated[
    str,
    Field(
        min_length=1,
        max_length=50,
        pattern=r"^[^\W\d_][\w ()'.-]*$",
        description="Language name as getLanguages lists it, e.g. English. Omit for all.",
    ),
]
Region = Annotated[
    str,
    Field(
        pattern=r"^[a-z]{2}$",
        description="Two-letter lowercase region code as getRegions lists it, e.g. us.",
    ),
]
PodcastOrEpisodeId = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-f]{32}$",
        description="The 32-character lowercase hex id from a search or listing result.",
    ),
]


class Params(BaseModel):
    """Base of every parameter model: undeclared input is ignored, never forwarded."""

    # defer_build: a model's validator is built on first use, so a cold start pays only
    # for the operation it serves, not for all nine.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class NoParams(Params):
    """Operations that take no parameters."""


class _Search(Params):
    q: str = Field(
        min_length=1,
        max_length=200,
        pattern=_NO_CONTROL,
        description=(
            "Search terms. Put a phrase in double quotes for an exact match; "
            "prefix a term with - to exclude it."
        ),
    )
    sort_by_date: Switch | None = Field(
        None, description="1 to sort newest first, 0 (default) to sort by relevance."
    )
    offset: int | None = Field(
        None, ge=0, le=10_000, description="Offset for pagination: next_offset of the last page."
    )
    len_min: Minutes | None = Field(None, description="Minimum audio length, in minutes.")
    len_max: Minutes | None = Field(None, description="Maximum audio length, in minutes.")
    published_before: EpochMs | None = Field(
        None, description="Only items published before this time, in ms since the epoch."
    )
    published_after: EpochMs | None = Field(
        None, description="Only items published after this time, in ms since the epoch."
    )
    only_in: (
        Annotated[str, _id_list(frozenset({"title", "description", "author", "audio"}))] | None
    ) = Field(
        None,
        max_length=60,
        description="Comma-separated fields to search in: title, description, author, audio.",
    )
    language: Language | None = None
    region: Region | None = None
    genre_ids: Annotated[str, _id_list(numeric=True)] | None = Field(
        None,
        max_length=200,
        description="Comma-separated genre ids from getGenres, e.g. 68,82.",
    )
    page_size: int | None = Field(None, ge=1, le=10, description="Results per page, 1 to 10.")
    safe_mode: Switch | None = Field(None, description="1 to exclude explicit content.")


class SearchEpisodesParams(_Search):
    unique_podcasts: Switch | None = Field(
        None, description="1 to return at most one episode per podcast."
    )


class SearchPodcastsParams(_Search):
    episode_count_min: int | None = Field(None, ge=0, le=100_000, description="Minimum episodes.")
    episode_count_max: int | None = Field(None, ge=0, le=100_000, description="Maximum episodes.")
    update_freq_min: Hours | None = Field(
        None, description="Minimum hours between episodes (publishing frequency)."
    )
    update_freq_max: Hours | None = Field(
        None, description="Maximum hours between episodes (publishing frequency)."
    )


class BestPodcastsParams(Params):
    genre_id: int | None = Field(
        None, ge=0, le=999_999, description="Genre id from getGenres. Omit for all genres."
    )
    page: int | None = Field(None, ge=1, le=100, description="Page number, from 1.")
    region: Region | None = None
    publisher_region: Region | None = Field(
        None, description="Two-letter lowercase code of the publisher's region, e.g. gb."
    )
    language: Language | None = None
    sort: (
        Literal[
            "recent_added_first",
            "oldest_added_first",
            "recent_published_first",
            "oldest_published_first",
            "listen_score",
        ]
        | None
    ) = Field(None, description="Order of the list; listen_score (popularity) by default.")
    safe_mode: Switch | None = Field(None, description="1 to exclude explicit content.")


class GenresParams(Params):
    top_level_only: Switch | None = Field(
        None, description="1 to list only top-level genres, 0 (default) for all."
    )


class IdParams(Params):
    """Operations on one record, addressed by its id in the path."""

    id: PodcastOrEpisodeId


class PodcastParams(IdParams):
    next_episode_pub_date: EpochMs | None = Field(
        None, description="For more episodes: next_episode_pub_date from the previous answer."
    )
    sort: Literal["recent_first", "oldest_first"] | None = Field(
        None, description="Episode order: recent_first (default) or oldest_first."
    )
