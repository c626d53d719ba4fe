"""The public, unauthenticated routes: manifest, spec, logo, legal text and health."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app import __version__
from app.connector import Connector, Surface
from app.errors import NotOffered
from app.manifest import LEGAL_PATH, LOGO_PATH, SPEC_PATH, plugin_manifest, well_known_asset
from app.proxy import OperationRoute
from app.public_url import public_base_url
from app.services import services_of
from app.spec import build_spec

__all__ = ["connector_spec_route", "public_routes", "spec_for"]

_CACHE = {"Cache-Control": "public, max-age=300"}
# Without PUBLIC_BASE_URL the manifest and spec name the host the request named, so a
# shared cache must not store them (it would serve one caller's `Host` to the next);
# browsers and the caller itself may keep them.
_CACHE_PER_REQUEST = {
    "Cache-Control": "private, max-age=300",
    "Vary": "Host, X-Forwarded-Proto",
}


def _cache_for(request: Request) -> dict[str, str]:
    """Cache headers for an answer that names this service's public URL."""
    if services_of(request).settings.public_base_url is not None:
        return _CACHE
    return _CACHE_PER_REQUEST


def _json(data: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(to_json(data), media_type="application/json", headers=headers)


def _plugin_connector(request: Request) -> Connector:
    """The connector offered as the ChatGPT plugin and GPT Action (`Surface.PLUGIN`)."""
    for connector, _ in services_of(request).connectors.values():
        if Surface.PLUGIN in connector.surfaces and connector.plugin is not None:
            return connector
    raise NotOffered()


def spec_for(request: Request) -> dict[str, Any]:
    """The plugin connector's OpenAPI document, its one server this request's public base URL."""
    state = request.app.state
    template = getattr(state, "spec_template", None)
    if template is None:
        connector = _plugin_connector(request)
        assert connector.plugin is not None  # noqa: S101 - checked by _plugin_connector
        template = build_spec(
            (
                (route.path, route.operation)
                for route in request.app.routes
                if isinstance(route, OperationRoute) and route.operation in connector.operations
            ),
            title=connector.plugin.name_for_human,
            version=__version__,
            description=connector.plugin.description_for_model,
        )
        state.spec_template = template
    base = public_base_url(request, services_of(request).settings)
    return {**template, "servers": [{"url": base}]}


async def manifest(request: Request) -> Response:
    settings = services_of(request).settings
    plugin = _plugin_connector(request).plugin
    assert plugin is not None  # noqa: S101 - checked by _plugin_connector
    base = public_base_url(request, settings)
    return _json(plugin_manifest(base, settings, plugin), _cache_for(request))


async def openapi(request: Request) -> Response:
    return _json(spec_for(request), _cache_for(request))


async def logo(request: Request) -> Response:
    return Response(well_known_asset("logo.png"), media_type="image/png", headers=_CACHE)


async def legal(request: Request) -> Response:
    return Response(
        well_known_asset("legal.html"), media_type="text/html; charset=utf-8", headers=_CACHE
    )


async def healthz(request: Request) -> Response:
    modes = {name: started.mode for name, (_, started) in services_of(request).connectors.items()}
    # "sample" when nothing is live: the whole service is then a demonstration.
    mode = "sample" if all(m == "sample" for m in modes.values()) else "live"
    return _json({"status": "ok", "mode": mode, "connectors": modes, "version": __version__})


def public_routes() -> list[BaseRoute]:
    return [
        Route("/.well-known/ai-plugin.json", manifest, methods=["GET"]),
        Route(SPEC_PATH, openapi, methods=["GET"]),
        Route(LOGO_PATH, logo, methods=["GET"]),
        Route(LEGAL_PATH, legal, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]


def connector_spec_route(connector: Connector) -> Route:
    """`{prefix}/openapi.json`: the spec of a connector that is not the plugin (a GPT Action
    on its own operations), built from its operations like the plugin's, on first request
    (not at startup: a cold start builds no model it does not use)."""

    @cache
    def template() -> dict[str, Any]:
        return build_spec(
            ((connector.api_prefix + op.path, op) for op in connector.operations),
            title=connector.title,
            version=__version__,
            description=" ".join(op.description for op in connector.operations),
        )

    async def spec(request: Request) -> Response:
        base = public_base_url(request, services_of(request).settings)
        return _json({**template(), "servers": [{"url": base}]}, _cache_for(request))

    return Route(connector.api_prefix + SPEC_PATH, spec, methods=["GET"])
