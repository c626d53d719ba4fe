"""How a client finds the authorization server: the 401 challenge and the two metadata documents.

    401 from the resource   WWW-Authenticate: Bearer resource_metadata="<base>/.well-known/
                            oauth-protected-resource<resource path>", scope="mcp"
    RFC 9728 metadata       at /.well-known/oauth-protected-resource and at that path with the
                            resource path appended; `resource` is the public resource URL
    RFC 8414 metadata       at /.well-known/oauth-authorization-server; the issuer is the
                            public base URL. Behind a path prefix (an API Gateway stage) the
                            RFC 8414 path-inserted URL (`https://host/.well-known/oauth-
                            authorization-server/prod`) never reaches this app, so the same
                            document is also served where clients try next and the prefix
                            does reach: `<base>/.well-known/openid-configuration`.

The documents are written here rather than built with the SDK's builders: those cost the
SDK's import (about a second) on a cold start, for two small dictionaries. The tests parse
both with the SDK's own models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from app.oauth.server import OAuthServer

__all__ = [
    "AS_METADATA_PATH",
    "OIDC_METADATA_PATH",
    "PRM_PATH",
    "SCOPES",
    "authorization_server_metadata",
    "challenge",
    "protected_resource_metadata",
]

PRM_PATH = "/.well-known/oauth-protected-resource"
AS_METADATA_PATH = "/.well-known/oauth-authorization-server"
OIDC_METADATA_PATH = "/.well-known/openid-configuration"
SCOPES = ["mcp", "offline_access"]
"""What clients may register and ask for. `offline_access` is listed because claude.ai
registers with every scope the server lists and Claude Code asks for it at /authorize."""
REQUIRED_SCOPE = "mcp"
ENDPOINTS = {
    "authorization_endpoint": "/oauth/authorize",
    "token_endpoint": "/oauth/token",
    "registration_endpoint": "/oauth/register",
    "revocation_endpoint": "/oauth/revoke",
}
_CLIENT_AUTH = ["client_secret_post", "client_secret_basic", "none"]


def _server(request: Request) -> OAuthServer:
    server: OAuthServer = request.app.state.oauth
    return server


def challenge(server: OAuthServer, request: Request, error: str | None = None) -> str:
    """The `WWW-Authenticate` value for a 401 from the protected resource."""
    issuer = server.public_issuer(request)
    parts = [f'resource_metadata="{issuer}{PRM_PATH}{server.resource_path}"']
    parts.append(f'scope="{REQUIRED_SCOPE}"')
    if error:
        parts.insert(0, f'error="{error}"')
    return "Bearer " + ", ".join(parts)


def _json(request: Request, document: dict[str, Any]) -> Response:
    server = _server(request)
    headers = {"Access-Control-Allow-Origin": "*"}  # public documents, read by browser clients
    if server.settings.public_base_url is not None:
        headers["Cache-Control"] = "public, max-age=300"
    else:  # built from this request's Host: no shared cache may hand it to another
        headers["Cache-Control"] = "private, max-age=300"
        headers["Vary"] = "Host, X-Forwarded-Proto"
    return Response(to_json(document), media_type="application/json", headers=headers)


async def protected_resource_metadata(request: Request) -> Response:
    """RFC 9728: the resource (exactly the public /mcp URL) and its one authorization server."""
    server = _server(request)
    document = {
        "resource": server.public_resource(request),
        "authorization_servers": [server.public_issuer(request)],
        "scopes_supported": [REQUIRED_SCOPE],
        "bearer_methods_supported": ["header"],
    }
    return _json(request, document)


async def authorization_server_metadata(request: Request) -> Response:
    """RFC 8414: authorization code with PKCE S256 only, refresh tokens, open registration."""
    issuer = _server(request).public_issuer(request)
    if request.url.path.endswith(OIDC_METADATA_PATH) and not urlsplit(issuer).path:
        # Only needed behind a path prefix; at an origin's root the RFC 8414 URL works and
        # an OpenID document that is not one would only mislead OpenID clients.
        return Response(status_code=404)
    document: dict[str, Any] = {"issuer": issuer}
    document.update({name: issuer + path for name, path in ENDPOINTS.items()})
    document.update(
        scopes_supported=SCOPES,
        response_types_supported=["code"],
        grant_types_supported=["authorization_code", "refresh_token"],
        token_endpoint_auth_methods_supported=_CLIENT_AUTH,
        revocation_endpoint_auth_methods_supported=_CLIENT_AUTH,
        code_challenge_methods_supported=["S256"],
    )
    return _json(request, document)
