"""What a caller may send to each podcast operation: typed, bounded, described for the model.

Fields carry the upstream's parameter names, so a validated model is forwarded as it is;
anything not declared here is never forwarded.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from app.params import (
    ASCII_DIGITS,
    MAX_ITEMS,
    NoParams,
    Params,
    comma_list_pattern,
    explained,
    without_spaces,
)

__all__ = [
    "BestPodcastsParams",
    "GenresParams",
    "IdParams",
    "NoParams",
    "PodcastParams",
    "SearchEpisodesParams",
    "SearchPodcastsParams",
]

Switch = Annotated[int, Field(ge=0, le=1), ASCII_DIGITS]
Hours = Annotated[int, Field(ge=0, le=24 * 365), ASCII_DIGITS]
Minutes = Annotated[int, Field(ge=0, le=24 * 60), ASCII_DIGITS]
EpochMs = Annotated[int, Field(ge=0, le=10**14), ASCII_DIGITS]
Offset = Annotated[int, Field(ge=0, le=10_000), ASCII_DIGITS]
PageSize = Annotated[int, Field(ge=1, le=10), ASCII_DIGITS]
Page = Annotated[int, Field(ge=1, le=100), ASCII_DIGITS]
EpisodeCount = Annotated[int, Field(ge=0, le=100_000), ASCII_DIGITS]
GenreId = Annotated[int, Field(ge=0, le=999_999), ASCII_DIGITS]

# The `pattern` is exactly what the code accepts, and what the spec publishes.
GenreIds = Annotated[
    str,
    Field(max_length=200, pattern=comma_list_pattern("[0-9]{1,6}")),
    explained(f"must be 1 to {MAX_ITEMS} comma-separated genre ids (digits 0-9), e.g. 68,82"),
    AfterValidator(without_spaces),
]
SearchFields = Annotated[
    str,
    Field(max_length=60, pattern=comma_list_pattern("title|description|author|audio")),
    explained("must be comma-separated names among title, description, author, audio"),
    AfterValidator(without_spaces),
]
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


# The upstream requires `q`: blank (only spaces) counts as missing, a 422 here rather
# than a query that matches everything. The leading spaces and the first character are
# disjoint, so the pattern is linear in any regex engine.
SearchTerms = Annotated[
    str,
    Field(min_length=1, max_length=200, pattern=r"^ *[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"),
    explained("must contain a search term (not only spaces) and no control characters"),
]


class _Search(Params):
    q: SearchTerms = Field(
        description=(
            "Search terms. Put a phrase in double quotes for an exact match; "
            "prefix a term with - to exclude it."
        ),
    )
    sort_by_date: Switch | None = Field(
        None, description="1 to sort newest first, 0 (default) to sort by relevance."
    )
    offset: Offset | None = Field(
        None, description="Offset for pagination: next_offset of the last page."
    )
    len_min: Minutes | None = Field(None, description="Minimum audio length, in minutes.")
    len_max: Minutes | None = Field(None, description="Maximum audio length, in minutes.")
    published_before: EpochMs | None = Field(
        None, description="Only items published before this time, in ms since the epoch."
    )
    published_after: EpochMs | None = Field(
        None, description="Only items published after this time, in ms since the epoch."
    )
    only_in: SearchFields | None = Field(
        None, description="Comma-separated fields to search in: title, description, author, audio."
    )
    language: Language | None = None
    region: Region | None = None
    genre_ids: GenreIds | None = Field(
        None, description="Comma-separated genre ids from getGenres, e.g. 68,82."
    )
    page_size: PageSize | None = Field(None, description="Results per page, 1 to 10.")
    safe_mode: Switch | None = Field(None, description="1 to exclude explicit content.")


class SearchEpisodesParams(_Search):
    unique_podcasts: Switch | None = Field(
        None, description="1 to return at most one episode per podcast."
    )


class SearchPodcastsParams(_Search):
    episode_count_min: EpisodeCount | None = Field(None, description="Minimum episodes.")
    episode_count_max: EpisodeCount | None = Field(None, description="Maximum episodes.")
    update_freq_min: Hours | None = Field(
        None, description="Minimum hours between episodes (publishing frequency)."
    )
    update_freq_max: Hours | None = Field(
        None, description="Maximum hours between episodes (publishing frequency)."
    )


class BestPodcastsParams(Params):
    genre_id: GenreId | None = Field(
        None, description="Genre id from getGenres. Omit for all genres."
    )
    page: Page | None = Field(None, description="Page number, from 1.")
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
