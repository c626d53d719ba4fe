"""The podcast connector at run time: its upstream client, its key, its sample data."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import httpx
from pydantic_settings import BaseSettings

from app.callers import Gate
from app.connector import Started, Upstream
from app.connectors.podcasts.sample import SampleTransport
from app.connectors.podcasts.settings import PodcastSettings
from app.credentials import Credentials, SecretRef, StoredSecret
from app.settings import CoreSettings
from app.upstream import UpstreamClient

__all__ = ["start"]

log = logging.getLogger("app.podcasts")


def start(
    settings: BaseSettings,
    gate: Gate,
    transport: httpx.AsyncBaseTransport | None,
    network: str,
) -> Started:
    """The connector for `settings`: sample data without a key, else the Listen Notes API."""
    assert isinstance(settings, PodcastSettings) and isinstance(settings, CoreSettings)  # noqa: S101
    key = settings.listen_api_key
    ref = settings.listen_api_key_ref
    upstream_key = Credentials(
        upstream_key=key.get_secret_value() if key is not None else None,
        upstream_key_ref=StoredSecret(SecretRef.parse(ref), settings.secret_ttl) if ref else None,
    )
    if settings.sample_mode:
        log.warning("podcasts: sample-data mode (no LISTEN_API_KEY): answers are bundled data")
        if transport is None:
            transport = SampleTransport(prefix=urlsplit(settings.upstream_base).path)
    else:
        where = f"the reference {SecretRef.parse(ref)}" if ref else "LISTEN_API_KEY"
        log.info("podcasts: live, %s, key from %s", settings.upstream_base, where)
    client = UpstreamClient(
        settings.upstream_base,
        timeout=settings.upstream_timeout,
        key_header="X-ListenAPI-Key",
        key_setting="LISTEN_API_KEY",
        transport=transport,
        prefer=network,
    )
    return Started(
        mode="sample" if settings.sample_mode else "live",
        upstream=Upstream(client=client, key=upstream_key.upstream_key, service="podcast service"),
        closers=[client.aclose],
    )
