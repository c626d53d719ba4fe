"""The nine operations: the one definition every surface is generated from.

A REST route, its OpenAPI operation, an MCP tool, a Power Platform action and a benchmark
case are all read off an `Operation`. Nothing about an operation is written anywhere else.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from app import answers, params
from app.errors import InvalidParameters, ParameterProblem, UpstreamUnavailable
from app.params import Params

__all__ = ["OPERATIONS", "Operation", "operation_named"]


@dataclass(frozen=True)
class Operation:
    """One upstream call, as callers see it."""

    name: str
    """operationId and tool name: unique, `^[A-Za-z0-9_-]{1,64}$`."""
    title: str
    """A few words for people (Power Platform summary, MCP tool title)."""
    description: str
    """For the model: what it does and when to use it (at most 300 characters)."""
    path: str
    """Path on this service, relative to the API prefix, e.g. `/episodes/{id}`."""
    upstream_path: str
    """Path on the upstream, relative to its base URL. Only validated ids fill it."""
    params: type[Params]
    answer: type[answers.Answer]
    fixed: Mapping[str, str] = field(default_factory=dict)
    """Upstream parameters set by the operation itself; callers cannot override them."""

    @property
    def path_params(self) -> frozenset[str]:
        return frozenset(
            name for _, name, _, _ in string.Formatter().parse(self.path) if name is not None
        )

    def parse(self, query: Iterable[tuple[str, str]], path: Mapping[str, str]) -> Params:
        """Validated parameters from the query items and path values, or `InvalidParameters`.

        Undeclared query parameters are ignored (they are never forwarded); a declared one
        given twice is an error rather than a silent pick; an empty value counts as absent.
        """
        declared = self.params.model_fields
        in_path = self.path_params
        values: dict[str, str] = {}
        problems: list[ParameterProblem] = []
        for key, value in query:
            if key not in declared or key in in_path or value == "":
                continue
            if key in values:
                problems.append(ParameterProblem(key, "given more than once"))
            values[key] = value
        values.update(path)
        if problems:
            raise InvalidParameters(problems)
        return self.validate(values)

    def validate(self, values: Mapping[str, Any]) -> Params:
        """Validated parameters from already-typed values (an MCP tool call's arguments)."""
        try:
            return self.params.model_validate(values)
        except ValidationError as error:
            raise InvalidParameters(_problems(error)) from None

    def upstream_request(self, parsed: Params) -> tuple[str, dict[str, str]]:
        """The upstream path and query for validated parameters, fixed parameters last."""
        query = {
            key: str(value)
            for key, value in parsed.model_dump(exclude_none=True).items()
            if key not in self.path_params
        }
        path = self.upstream_path.format(**{key: getattr(parsed, key) for key in self.path_params})
        return path, query | dict(self.fixed)

    def compact(self, upstream_body: bytes) -> answers.Answer:
        """The compact answer for the upstream's JSON body, or `UpstreamUnavailable`."""
        try:
            return answers.finish(self.answer.model_validate_json(upstream_body))
        except ValidationError as error:
            kinds = {item["type"] for item in error.errors(include_url=False)}
            what = "is not JSON" if "json_invalid" in kinds else "has another shape"
            detail = f"{self.name}: upstream answer {what} ({', '.join(sorted(kinds))})"
            raise UpstreamUnavailable(detail=detail) from None


_SAFE = re.compile(r"[^\w .,:;'()/=<>+-]")


def _problems(error: ValidationError) -> list[ParameterProblem]:
    found = []
    for item in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "query"
        found.append(ParameterProblem(where, _SAFE.sub("", item["msg"])[:200]))
    return found


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
    ),
    Operation(
        name="justListen",
        title="Random episode",
        description="One random podcast episode, for a user who just wants something to hear.",
        path="/just_listen",
        upstream_path="/just_listen",
        params=params.NoParams,
        answer=answers.Episode,
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
    ),
    Operation(
        name="getLanguages",
        title="List languages",
        description="The language names accepted by the language filter of other operations.",
        path="/languages",
        upstream_path="/languages",
        params=params.NoParams,
        answer=answers.LanguagesAnswer,
    ),
    Operation(
        name="getRegions",
        title="List regions",
        description="The region codes and names accepted by the region filter of other operations.",
        path="/regions",
        upstream_path="/regions",
        params=params.NoParams,
        answer=answers.RegionsAnswer,
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
    ),
)

_BY_NAME = {operation.name: operation for operation in OPERATIONS}


def operation_named(name: str) -> Operation:
    """The operation with that operationId; KeyError if there is none."""
    return _BY_NAME[name]
