"""The authorization server's routes. The `mcp` SDK's handlers answer /oauth/authorize,
/oauth/token, /oauth/register and /oauth/revoke; they are built, and the SDK imported (about
a second), on the first request of one of them, so a cold start that serves anything else
never pays for it. The metadata documents and the consent page need no SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ServiceError
from app.oauth.consent import CONSENT_PATH, consent_page, consent_submit
from app.oauth.discovery import (
    AS_METADATA_PATH,
    ENDPOINTS,
    OIDC_METADATA_PATH,
    PRM_PATH,
    SCOPES,
    authorization_server_metadata,
    protected_resource_metadata,
)
from app.oauth.server import OAuthServer
from app.store import StoreUnavailable

__all__ = ["oauth_routes"]

_MAX_BODY = 64 * 1024


def _build(server: OAuthServer) -> dict[str, ASGIApp]:
    """The SDK's handlers over our provider, by endpoint name."""
    from mcp.server.auth.handlers.authorize import AuthorizationHandler
    from mcp.server.auth.handlers.register import RegistrationHandler
    from mcp.server.auth.handlers.revoke import RevocationHandler
    from mcp.server.auth.handlers.token import TokenHandler
    from mcp.server.auth.middleware.client_auth import ClientAuthenticator
    from mcp.server.auth.settings import ClientRegistrationOptions

    from app.oauth.provider import OwnerProvider

    provider = OwnerProvider(server.grants, server.identities, server.redirects)
    authenticator = ClientAuthenticator(provider)
    options = ClientRegistrationOptions(enabled=True, valid_scopes=SCOPES, default_scopes=SCOPES)
    handlers: dict[str, Callable[[Request], Any]] = {
        "authorization_endpoint": AuthorizationHandler(provider).handle,
        "token_endpoint": TokenHandler(provider, authenticator).handle,
        "registration_endpoint": RegistrationHandler(provider, options=options).handle,
        "revocation_endpoint": RevocationHandler(provider, authenticator).handle,
    }
    return {name: request_response(handler) for name, handler in handlers.items()}


class _SDKEndpoint:
    """One authorization endpoint, answered by the SDK handler built on first use."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from app.oauth.provider import Endpoint, endpoint  # lazy: imports the SDK

        request = Request(scope)
        server: OAuthServer = request.app.state.oauth
        apps = await self._apps_for(server)
        here = Endpoint(server.public_issuer(request), server.public_resource(request))
        endpoint.set(here)
        body = await _body(receive)
        if body is None:
            await _error(413, "invalid_request", "The request is too large.")(scope, receive, send)
            return
        if self.name == "token_endpoint":
            resource = dict(parse_qsl(body.decode("utf-8", "replace"))).get("resource")
            if resource is not None and resource.rstrip("/") != here.resource.rstrip("/"):
                # RFC 8707 §2: a token for another resource is never issued here.
                refusal = _error(
                    400, "invalid_target", "This server issues tokens for its /mcp only."
                )
                await refusal(scope, receive, send)
                return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await apps[self.name](scope, _replay(body), watch)
        except (StoreUnavailable, ServiceError):  # the store, or a key, cannot be checked
            if started:
                raise
            busy = _error(503, "temporarily_unavailable", "Try again shortly.")
            await busy(scope, receive, send)

    @staticmethod
    async def _apps_for(server: OAuthServer) -> dict[str, ASGIApp]:
        # Built once per server; two first requests at once may both build (harmless).
        if server.sdk_handlers is None:
            server.sdk_handlers = _build(server)
        return server.sdk_handlers


async def _body(receive: Receive) -> bytes | None:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if len(body) > _MAX_BODY:
            return None
        if not message.get("more_body"):
            return body


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def oauth_routes(resource_path: str) -> list[BaseRoute]:
    """Metadata, consent and the SDK's authorization endpoints, for `resource_path`."""
    methods = {
        "authorization_endpoint": ["GET", "POST"],
        "token_endpoint": ["POST"],
        "registration_endpoint": ["POST"],
        "revocation_endpoint": ["POST"],
    }
    routes: list[BaseRoute] = [
        Route(PRM_PATH, protected_resource_metadata, methods=["GET"]),
        Route(PRM_PATH + resource_path, protected_resource_metadata, methods=["GET"]),
        Route(AS_METADATA_PATH, authorization_server_metadata, methods=["GET"]),
        Route(OIDC_METADATA_PATH, authorization_server_metadata, methods=["GET"]),
        Route(CONSENT_PATH, consent_page, methods=["GET"]),
        Route(CONSENT_PATH, consent_submit, methods=["POST"]),
    ]
    routes += [
        Route(path, _SDKEndpoint(name), methods=methods[name], include_in_schema=False)
        for name, path in ENDPOINTS.items()
    ]
    return routes
