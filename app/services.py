"""The long-lived objects a request uses, built once per process and shared."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from app.credentials import Credentials
from app.settings import Settings
from app.upstream import UpstreamClient

__all__ = ["Services", "services_of"]


@dataclass(frozen=True)
class Services:
    settings: Settings
    credentials: Credentials
    upstream: UpstreamClient


def services_of(request: Request) -> Services:
    """The services of the app serving `request`."""
    services: Services = request.app.state.services
    return services
