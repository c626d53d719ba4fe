"""The `mcp` SDK's `OAuthAuthorizationServerProvider` over our grants.

The SDK's handlers (`/authorize`, `/token`, `/register`, `/revoke`) parse and validate the
HTTP side: PKCE S256 only, exact redirect URI membership, client authentication, code
expiry, redirect URI equality at /token, the verifier. What they leave to a provider, and
this one adds: the redirect allowlist at registration, the resource binding (RFC 8707),
single-use codes, refresh rotation with reuse detection, the consent step, and storage that
survives processes. Imported on the first request of an authorization route only.
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    OAuthAuthorizationServerProvider,
    RefreshToken,
    RegistrationError,
    TokenError,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from app.errors import Forbidden, Unauthorized
from app.oauth.consent import CONSENT_PATH
from app.oauth.discovery import REQUIRED_SCOPE
from app.oauth.grants import Grants
from app.oauth.identity import Identities
from app.oauth.records import Family, Pending, TokenPair
from app.oauth.redirects import RedirectPolicy

__all__ = ["Endpoint", "OwnerProvider", "endpoint"]

log = logging.getLogger("app.oauth")


@dataclass(frozen=True)
class Endpoint:
    """This request's public URLs: the issuer (our base URL) and the resource (its /mcp)."""

    issuer: str
    resource: str


endpoint: contextvars.ContextVar[Endpoint] = contextvars.ContextVar("oauth_endpoint")


class _Code(AuthorizationCode):
    family: str


class _Refresh(RefreshToken):
    family: str


class _Access(AccessToken):
    family: str


def _same_resource(given: str, ours: str) -> bool:
    return given.rstrip("/") == ours.rstrip("/")


def _tokens(pair: TokenPair) -> OAuthToken:
    return OAuthToken(
        access_token=pair.access_token,
        token_type="Bearer",  # noqa: S106 - the scheme, not a secret
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        scope=" ".join(pair.scopes) or None,
    )


class OwnerProvider(OAuthAuthorizationServerProvider[_Code, _Refresh, _Access]):
    """An authorization server whose resource owners are the holders of this service's keys."""

    def __init__(self, grants: Grants, identities: Identities, redirects: RedirectPolicy) -> None:
        self.grants = grants
        self.identities = identities
        self.redirects = redirects

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        raw = await self.grants.client(client_id)
        return OAuthClientInformationFull.model_validate_json(raw) if raw is not None else None

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        uris = [str(uri) for uri in client_info.redirect_uris or []]
        refused = [uri for uri in uris if not self.redirects.allows(uri)]
        if not uris or refused:
            raise RegistrationError(
                "invalid_redirect_uri",
                "This server accepts only the redirect URIs on its allowlist (ChatGPT's and "
                "Claude's callbacks, and OAUTH_REDIRECT_URIS).",
            )
        await self._keep(client_info)
        log.info(
            "oauth client registered",
            extra={
                "fields": {"event": "oauth_client_registered", "client_id": client_info.client_id}
            },
        )

    async def authorize(
        self, client: OAuthClientInformationFull, params: AuthorizationParams
    ) -> str:
        here = endpoint.get()
        if params.resource is not None and not _same_resource(params.resource, here.resource):
            raise AuthorizeError("invalid_target", "This server issues tokens for its /mcp only.")
        pending = Pending(
            client_id=client.client_id or "",
            client_name=client.client_name or "",
            redirect_uri=str(params.redirect_uri),
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            state=params.state,
            # The resource's scope always: a client that asked for none (or only
            # offline_access) still gets a token /mcp accepts.
            scopes=sorted({*(params.scopes or []), REQUIRED_SCOPE}),
            code_challenge=params.code_challenge,
            resource=here.resource,
            csrf="",
        )
        handle, _ = await self.grants.open_consent(pending)
        return f"{here.issuer}{CONSENT_PATH}?request={handle}"

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> _Code | None:
        grant = await self.grants.code(authorization_code)
        if grant is None:
            return None
        return _Code(
            code=authorization_code,
            scopes=grant.scopes,
            expires_at=grant.expires_at,
            client_id=grant.client_id,
            code_challenge=grant.code_challenge,
            redirect_uri=grant.redirect_uri,
            redirect_uri_provided_explicitly=grant.redirect_uri_provided_explicitly,
            resource=grant.resource,
            family=grant.family,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: _Code
    ) -> OAuthToken:
        if not _same_resource(authorization_code.resource or "", endpoint.get().resource):
            raise TokenError("invalid_target", "This code was issued for another resource.")
        if await self.grants.redeem_code(authorization_code.code) is None:
            raise TokenError("invalid_grant", "authorization code does not exist")
        family = await self._live_family(authorization_code.family)
        await self._keep(client)
        return _tokens(await self.grants.issue(family, authorization_code.scopes))

    async def _keep(self, client: OAuthClientInformationFull) -> None:
        # A client in use is kept as long as its grants; an unused one expires (90 days).
        await self.grants.put_client(client.client_id or "", client.model_dump_json().encode())

    async def _live_family(self, family_id: str) -> Family:
        """The family while the key that approved it is still accepted; a family whose key
        is not is ended. Other failures (the store) propagate: the routes answer 503."""
        family = await self.grants.family(family_id)
        if family is None:
            raise TokenError("invalid_grant", "this grant has ended")
        try:
            await self.identities.caller(family.grantee)
        except (Unauthorized, Forbidden):
            await self.grants.end_family(family.id)
            raise TokenError(
                "invalid_grant", "the key that approved this is no longer accepted"
            ) from None
        return family

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> _Refresh | None:
        grant = await self.grants.refresh(refresh_token)
        if grant is None:
            return None
        return _Refresh(
            token=refresh_token,
            client_id=grant.client_id,
            scopes=grant.scopes,
            expires_at=int(grant.expires_at),
            resource=grant.resource,
            family=grant.family,
        )

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: _Refresh, scopes: list[str]
    ) -> OAuthToken:
        if not _same_resource(refresh_token.resource or "", endpoint.get().resource):
            raise TokenError("invalid_target", "This token was issued for another resource.")
        # The key first: a store outage must not burn the refresh token.
        family = await self._live_family(refresh_token.family)
        if not await self.grants.rotate(refresh_token.token, refresh_token.family):
            raise TokenError("invalid_grant", "refresh token does not exist")
        await self._keep(client)
        return _tokens(await self.grants.issue(family, scopes))

    async def load_access_token(self, token: str) -> _Access | None:
        grant = await self.grants.access(token)
        if grant is None:
            return None
        return _Access(
            token=token,
            client_id=grant.client_id,
            scopes=grant.scopes,
            expires_at=int(grant.expires_at),
            resource=grant.resource,
            family=grant.family,
        )

    async def revoke_token(self, token: _Access | _Refresh) -> None:
        # The whole approval, access and refresh alike, as the SDK's protocol asks.
        await self.grants.end_family(token.family)
