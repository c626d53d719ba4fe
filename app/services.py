"""The long-lived objects a request uses, built once per app and shared."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request

from app.callers import Gate
from app.connector import Connector, Started
from app.settings import CoreSettings

__all__ = ["Services", "services_of"]


@dataclass(frozen=True)
class Services:
    settings: CoreSettings
    gate: Gate
    """Who may call, and their limits (app/callers.py)."""
    connectors: Mapping[str, tuple[Connector, Started]]
    """Every hosted connector by name, as declared and as started."""


def services_of(request: Request) -> Services:
    """The services of the app serving `request`."""
    services: Services = request.app.state.services
    return services
