"""`search` and `fetch`: the two MCP tools deep-research clients (ChatGPT) look for."""

from __future__ import annotations

import json
from typing import Any

from app.connector import ResearchTool, Upstream
from app.connectors.podcasts.operations import operation_named
from app.errors import InvalidParameters, ParameterProblem
from app.proxy import call_operation

__all__ = ["RESEARCH_TOOLS"]

_FETCHABLE = {"episode": "getEpisode", "podcast": "getPodcast"}


async def _answer(name: str, arguments: dict[str, Any], upstream: Upstream) -> Any:
    operation = operation_named(name)
    served = await call_operation(operation, operation.validate(arguments), upstream)
    return json.loads(served.body)


async def search(upstream: Upstream, query: str) -> dict[str, Any]:
    """Episodes and podcasts for `query`, in the shape deep-research clients expect."""
    try:  # the searches' own checks of q, blamed on this tool's argument
        operation_named("searchEpisodes").validate({"q": query})
    except InvalidParameters as error:
        problems = [ParameterProblem("query", p.message) for p in error.problems if p.param == "q"]
        raise InvalidParameters(problems) from None
    results: list[dict[str, str]] = []
    for name, kind in (("searchEpisodes", "episode"), ("searchPodcasts", "podcast")):
        data = await _answer(name, {"q": query, "page_size": 5}, upstream)
        for item in data.get("results", []):
            if item.get("id") and item.get("listennotes_url"):
                results.append(
                    {
                        "id": f"{kind}:{item['id']}",
                        "title": item.get("title", ""),
                        "url": item["listennotes_url"],
                    }
                )
    return {"results": results}


async def fetch(upstream: Upstream, id: str) -> dict[str, Any]:
    """The full compact record for an id from `search` (episode:<hex> or podcast:<hex>)."""
    kind, _, raw_id = id.strip().partition(":")
    if kind not in _FETCHABLE:
        problem = "must be episode:<id> or podcast:<id>, as search returns it"
        raise InvalidParameters([ParameterProblem("id", problem)])
    record = await _answer(_FETCHABLE[kind], {"id": raw_id}, upstream)  # checks raw_id
    return {
        "id": id,
        "title": record.get("title", ""),
        "text": json.dumps(record, ensure_ascii=False),
        "url": record.get("listennotes_url", ""),
        "metadata": {
            "kind": kind,
            "publisher": record.get("publisher") or record.get("podcast", {}).get("publisher", ""),
        },
    }


RESEARCH_TOOLS = (
    ResearchTool(
        name="search",
        title="Search podcasts and episodes",
        description="Search podcast episodes and podcasts; each result has id, "
        "title and url. Pass an id to fetch for the full record.",
        argument="query",
        run=search,
    ),
    ResearchTool(
        name="fetch",
        title="Fetch a podcast or episode",
        description="The full record for an id returned by search.",
        argument="id",
        run=fetch,
    ),
)
