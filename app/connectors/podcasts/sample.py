"""Sample-data mode: an in-process httpx transport that answers like the upstream API.

With no `LISTEN_API_KEY` the upstream client gets this transport instead of the network,
so every operation runs its real path (parameters, key handling, compaction, errors)
against bundled data, offline. It answers in the upstream's shapes, `_original` fields,
emails and transcripts included, so the compaction is exercised too.
"""

from __future__ import annotations

import json
import random
import re
from functools import cache
from importlib import resources
from typing import Any

import httpx

__all__ = ["SampleTransport", "load_catalog"]

JSON = dict[str, Any]
_RECORD = re.compile(r"^/(episodes|podcasts)/([0-9a-f]{32})$")
_PER_PAGE = 10


@cache
def load_catalog() -> JSON:
    """The bundled catalog: genres, languages, regions, podcasts and episodes."""
    text = (
        resources.files("app.connectors.podcasts.sample_data")
        .joinpath("catalog.json")
        .read_text("utf-8")
    )
    catalog: JSON = json.loads(text)
    return catalog


class SampleTransport(httpx.AsyncBaseTransport):
    """Serves the nine upstream endpoints from `load_catalog()`; 404 for anything else."""

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix.rstrip("/")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(self._prefix)
        query = dict(request.url.params)
        status, body = _answer(path, query)
        return httpx.Response(status, json=body, request=request)


def _answer(path: str, query: dict[str, str]) -> tuple[int, JSON]:
    catalog = load_catalog()
    if path == "/search":
        return 200, _search(catalog, query)
    if path == "/best_podcasts":
        return _best(catalog, query)
    if path == "/just_listen":
        return 200, _episode(catalog, random.choice(catalog["episodes"]))  # noqa: S311
    if path == "/genres":
        genres = catalog["genres"]
        if query.get("top_level_only") == "1":
            genres = [g for g in genres if g["parent_id"] is None]
        return 200, {"genres": genres}
    if path == "/languages":
        return 200, {"languages": catalog["languages"]}
    if path == "/regions":
        return 200, {"regions": catalog["regions"]}
    match = _RECORD.match(path)
    if match:
        kind, wanted = match.groups()
        found = next((r for r in catalog[kind] if r["id"] == wanted), None)
        if found is None:
            return 404, {"error": f"no {kind[:-1]} with that id"}
        if kind == "episodes":
            return 200, _episode(catalog, found)
        return 200, _podcast(catalog, found, query)
    return 404, {"error": "no such endpoint"}


def _podcast_of(catalog: JSON, episode: JSON) -> JSON:
    return next(p for p in catalog["podcasts"] if p["id"] == episode["podcast_id"])


def _episode(catalog: JSON, episode: JSON) -> JSON:
    return {**episode, "podcast": _podcast_of(catalog, episode)}


_TERM = re.compile(r'(-?)"([^"]*)"?|(-?)(\S+)')
_WORD = re.compile(r"\w+")
_MARKUP = re.compile(r"<[^<>]*>")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _parse_query(q: str) -> tuple[list[list[str]], list[list[str]]]:
    """The wanted and the excluded terms of `q`, each a run of words: a bare word is a run
    of one, `"exact phrase"` a run of several; a leading `-` excludes it."""
    wanted: list[list[str]] = []
    excluded: list[list[str]] = []
    for match in _TERM.finditer(q):
        minus, phrase, bare_minus, bare = match.groups()
        if phrase is not None:
            words = _words(phrase)
            target = excluded if minus else wanted
            if words:
                target.append(words)
        else:
            words = _words(bare)
            target = excluded if bare_minus else wanted
            target.extend([word] for word in words)  # `e-mail` is the words e and mail
    return wanted, excluded


def _has(run: list[str], haystack: list[str]) -> bool:
    # Whole words only ("ai" is not in "stadium"), case-insensitive, a plural `s` either way.
    def same(word: str, other: str) -> bool:
        return word == other or word == other + "s" or other == word + "s"

    width = len(run)
    return any(
        all(same(haystack[start + i], run[i]) for i in range(width))
        for start in range(len(haystack) - width + 1)
    )


def _matches(terms: tuple[list[list[str]], list[list[str]]], *texts: str) -> bool:
    """Like the upstream: every wanted term, and no excluded one; nothing wanted, no match."""
    wanted, excluded = terms
    haystack = _words(_MARKUP.sub(" ", " ".join(texts)))
    return (
        bool(wanted)
        and all(_has(run, haystack) for run in wanted)
        and not any(_has(run, haystack) for run in excluded)
    )


def _search(catalog: JSON, query: dict[str, str]) -> JSON:
    terms = _parse_query(query.get("q", ""))
    language = query.get("language")
    genres = {int(g) for g in query.get("genre_ids", "").split(",") if g}
    if query.get("type") == "podcast":
        pool = [
            (p, p)
            for p in catalog["podcasts"]
            if _matches(terms, p["title"], p["description"], p["publisher"])
        ]
    else:
        pool = [
            (e, _podcast_of(catalog, e))
            for e in catalog["episodes"]
            if _matches(terms, e["title"], e["description"], _podcast_of(catalog, e)["title"])
        ]
    pool = [
        (item, show)
        for item, show in pool
        if (not language or show["language"] == language)
        and (not genres or genres & set(show["genre_ids"]))
    ]
    if query.get("sort_by_date") == "1":
        pool.sort(key=lambda pair: -pair[0].get("pub_date_ms", pair[0].get("latest_pub_date_ms")))
    offset = int(query.get("offset", "0"))
    size = int(query.get("page_size", str(_PER_PAGE)))
    page = pool[offset : offset + size]
    results = [_search_result(item, show, query.get("type") == "podcast") for item, show in page]
    return {
        "took": 0.042,
        "count": len(results),
        "total": len(pool),
        "next_offset": offset + len(results),
        "results": results,
    }


def _original(record: JSON, *names: str) -> JSON:
    # Search results spell text fields with an `_original` suffix (plus highlighted copies).
    renamed = dict(record)
    for name in names:
        renamed[f"{name}_original"] = renamed.pop(name)
        renamed[f"{name}_highlighted"] = (
            f"<span class='ln-search-highlight'>{renamed[f'{name}_original']}</span>"
        )
    return renamed


def _search_result(item: JSON, show: JSON, is_podcast: bool) -> JSON:
    if is_podcast:
        return _original(item, "title", "description", "publisher")
    episode = _original(item, "title", "description")
    episode.pop("transcript", None)
    episode["podcast"] = _original(show, "title", "publisher")
    return episode


def _best(catalog: JSON, query: dict[str, str]) -> tuple[int, JSON]:
    genre_id = int(query.get("genre_id", "0") or 0)
    genre = next((g for g in catalog["genres"] if g["id"] == genre_id), None)
    if genre_id and genre is None:
        return 404, {"error": "no genre with that id"}
    podcasts = [
        p
        for p in catalog["podcasts"]
        if (not genre_id or genre_id in p["genre_ids"])
        and (not query.get("region") or p["region"] == query["region"])
        and (not query.get("language") or p["language"] == query["language"])
    ]
    podcasts.sort(key=lambda p: -p["listen_score"])
    page = int(query.get("page", "1"))
    chunk = podcasts[(page - 1) * _PER_PAGE : page * _PER_PAGE]
    return 200, {
        "id": genre_id,
        "name": genre["name"] if genre else "Podcasts",
        "parent_id": genre["parent_id"] if genre else None,
        "total": len(podcasts),
        "has_next": page * _PER_PAGE < len(podcasts),
        "has_previous": page > 1,
        "page_number": page,
        "podcasts": chunk,
    }


def _podcast(catalog: JSON, podcast: JSON, query: dict[str, str]) -> JSON:
    episodes = [e for e in catalog["episodes"] if e["podcast_id"] == podcast["id"]]
    oldest_first = query.get("sort") == "oldest_first"
    episodes.sort(key=lambda e: e["pub_date_ms"], reverse=not oldest_first)
    before = query.get("next_episode_pub_date")
    if before:
        cut = int(before)
        episodes = [
            e
            for e in episodes
            if (e["pub_date_ms"] > cut if oldest_first else e["pub_date_ms"] < cut)
        ]
    page = episodes[:_PER_PAGE]
    return {
        **podcast,
        "episodes": page,
        "next_episode_pub_date": page[-1]["pub_date_ms"] if page else None,
    }
