"""`Connector`: what an upstream package declares so that the generic core can host it.

A connector names, once: its settings (a pydantic-settings class mixed into `Settings`),
its operations (each one a REST route, a GPT Action operation, an MCP tool and a Power
Platform action), the surfaces it is offered on, and how it starts: its upstream client,
where its key comes from, the sample data it answers from without one, and any routes of
its own (the OpenAI-compatible routes). The core reads connectors only through the
registry (`app.registry`); it never imports one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import httpx
from pydantic_settings import BaseSettings
from starlette.routing import BaseRoute

from app.cache import ResponseCache
from app.callers import Gate
from app.operations import Operation
from app.upstream import UpstreamClient

__all__ = ["Connector", "Plugin", "ResearchTool", "Started", "Surface", "Upstream"]


class Surface(StrEnum):
    """Where a connector is offered."""

    PLUGIN = "plugin"
    """The ChatGPT plugin manifest and the GPT Action spec at /openapi.json (one connector)."""
    MCP = "mcp"
    """Its operations as tools of the MCP server at /mcp."""
    POWER_PLATFORM = "powerplatform"
    """`python -m app export powerplatform --connector NAME`."""
    OPENAI_COMPATIBLE = "openai-compatible"
    """Routes that official OpenAI SDKs call with only `base_url` changed."""


@dataclass(frozen=True)
class Plugin:
    """The texts of a ChatGPT plugin manifest (and of the MCP server that offers it)."""

    name_for_human: str
    name_for_model: str
    description_for_human: str
    description_for_model: str


@dataclass(frozen=True)
class Upstream:
    """A connector's upstream at run time: the pooled client and the key to send."""

    client: UpstreamClient
    key: Callable[[], Awaitable[str | None]]
    service: str = "upstream service"
    """How error messages name it, e.g. "podcast service"."""
    cache: ResponseCache | None = None
    """The response cache its operations' answers go through (set by the app, scoped to
    this connector and mode); None: every call goes upstream."""


@dataclass(frozen=True)
class ResearchTool:
    """An MCP tool that is not one operation (e.g. deep research's `search` and `fetch`).

    `run(upstream, argument)` returns the structured result, or raises a `ServiceError`
    whose message becomes the tool error.
    """

    name: str
    title: str
    description: str
    argument: str
    run: Callable[[Upstream, str], Awaitable[dict[str, Any]]]


@dataclass
class Started:
    """A connector started for one app."""

    mode: Literal["live", "sample"]
    upstream: Upstream | None = None
    """For its operations; None when it has none (or cannot reach its upstream)."""
    routes: Sequence[BaseRoute] = ()
    """Its own routes. Like its operation routes, they are the connector's: a request one of
    them would be routed to is sent to it straight from the request layer (app/dispatch.py)."""
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in self.closers:
            await close()


StartFunction = Callable[[BaseSettings, Gate, "httpx.AsyncBaseTransport | None", str], Started]
"""`start(settings, gate, transport, network)`: the connector, running. `gate` identifies
and limits callers (its routes call it with the connector's name as the scope);
`transport` replaces its network (tests); `network` picks the network transport."""


@dataclass(frozen=True)
class Connector:
    """One upstream, declared once (see the module docstring)."""

    name: str
    """Its scope and its name in logs: lowercase, e.g. `podcasts`."""
    title: str
    settings: type[BaseSettings]
    surfaces: frozenset[Surface]
    start: StartFunction
    sample_mode: Callable[[BaseSettings], bool]
    """Whether these settings leave it on its bundled sample data (no upstream key)."""
    operations: tuple[Operation, ...] = ()
    api_prefix: str = ""
    """Where its operations' REST routes live, e.g. `/api/v2`."""
    plugin: Plugin | None = None
    research: tuple[ResearchTool, ...] = ()
    powerplatform: str | None = None
    """The module whose `connector(contact_email)` describes its Power Platform export;
    imported only by the export command (it is large, and serving never needs it)."""
