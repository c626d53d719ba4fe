"""The authorization server of this service: its state, its policy, and the bearer check.

One `OAuthServer` per app (`app.state.oauth`). It is built at startup without importing
the `mcp` SDK; the SDK's handlers are built on the first request of an authorization route
(`routes.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable

from starlette.requests import Request
from starlette.types import ASGIApp

from app.callers import Caller
from app.errors import StoreDown
from app.oauth.attempts import WrongKeys
from app.oauth.discovery import REQUIRED_SCOPE, challenge
from app.oauth.grants import ACCESS_PREFIX, Grants, KeyValue
from app.oauth.identity import Identities
from app.oauth.redirects import RedirectPolicy
from app.public_url import public_base_url
from app.security import API_KEY_HEADER, presented_bearer
from app.settings import CoreSettings
from app.store import StoreUnavailable

__all__ = ["OAuthServer"]


class OAuthServer:
    """Clients, consents and tokens on `kv`; keys checked by `identities`; `resource_path`
    is the protected resource's path (e.g. "/mcp") under the public base URL."""

    def __init__(
        self,
        settings: CoreSettings,
        kv: KeyValue,
        identities: Identities,
        *,
        resource_path: str,
        redirect_uris: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.grants = Grants(kv, clock)
        self.identities = identities
        self.redirects = RedirectPolicy(redirect_uris)
        self.wrong_keys = WrongKeys(kv)
        self.resource_path = resource_path
        self.sdk_handlers: dict[str, ASGIApp] | None = None
        """The SDK's handlers, built on first use (`routes.py`)."""

    def public_issuer(self, request: Request) -> str:
        """The issuer: this service's public base URL (no trailing slash)."""
        return public_base_url(request, self.settings)

    def public_resource(self, request: Request) -> str:
        """The protected resource as its clients name it, e.g. https://host/mcp."""
        return self.public_issuer(request) + self.resource_path

    @staticmethod
    def is_access_token(credential: str) -> bool:
        """True when `credential` has the shape of our access tokens (not that it is one)."""
        return credential.startswith(ACCESS_PREFIX)

    async def bearer(self, request: Request, scopes: Collection[str] = ()) -> Caller | None:
        """The caller behind a live access token of ours, issued for this request's resource
        (RFC 8707) with the required scope: the key that approved it, as the gate knows it
        now (its scopes, limits and usage apply). None when the request presents no such
        token (it may hold a key or a secret instead). Raises `Unauthorized` once the key
        is revoked, and `StoreDown` when the store cannot be asked."""
        presented = presented_bearer(request.headers.getlist("authorization"))
        token = presented.decode("utf-8", "surrogateescape") if presented is not None else ""
        if not self.is_access_token(token):
            return None
        try:
            grant = await self.grants.access(token)
            if grant is None or grant.resource != self.public_resource(request):
                return None
            if REQUIRED_SCOPE not in grant.scopes:
                return None
            family = await self.grants.family(grant.family)
        except StoreUnavailable:
            raise StoreDown() from None
        if family is None:
            return None
        return await self.identities.caller(family.grantee)

    def challenge(self, request: Request) -> str:
        """`WWW-Authenticate` for a refused request (RFC 6750: `invalid_token` when it
        presented a credential)."""
        presented = "authorization" in request.headers or API_KEY_HEADER in request.headers
        return challenge(self, request, "invalid_token" if presented else None)
