"""OAuth state in the store's key-value space: clients, pending consents, codes, tokens.

Everything a grant needs lives under `oauth:` keys with an expiry, so any process or Lambda
instance sharing the store sees the same state. Codes, tokens and consent handles are
stored under the SHA-256 digest of their value, never the value itself. The atomic
`kv_take` makes codes and refresh tokens single-use: of two concurrent redeemers exactly
one wins.

A *family* is one approval: the grantee (whose key approved it), the client and the
resource. Each access and refresh token names its family and is only good while the
family exists, so ending a family (revocation, or a code or refresh token used twice,
OAuth 2.1 §4.3.1) ends every token of that approval at once.

    oauth:client:<client_id>      the registered client (JSON of the SDK's model)     90 d
    oauth:pending:<sha>           an authorization request awaiting consent            10 min
    oauth:code:<sha>              an authorization code                                 5 min
    oauth:code-used:<sha>         a redeemed code, to recognise a second redemption    5 min
    oauth:at:<sha>                an access token                                       1 h
    oauth:rt:<sha>                a refresh token                                       30 d
    oauth:rt-used:<sha>           a rotated refresh token, to recognise reuse          30 d
    oauth:family:<id>             an approval: grantee, client, resource               30 d
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol

from app.oauth.identity import Grantee
from app.oauth.records import AccessGrant, CodeGrant, Family, Pending, RefreshGrant, TokenPair

__all__ = ["ACCESS_TTL", "CODE_TTL", "PENDING_TTL", "REFRESH_TTL", "Grants", "KeyValue", "digest"]

CLIENT_TTL = 90 * 86_400.0
PENDING_TTL = 600.0
CODE_TTL = 300.0
ACCESS_TTL = 3600.0
REFRESH_TTL = 30 * 86_400.0
ACCESS_PREFIX = "mcpat_"  # says what a leaked token is (secret scanners, people)
REFRESH_PREFIX = "mcprt_"


class KeyValue(Protocol):
    """The store's key-value space with expiry (`app.store.Store`)."""

    async def kv_put(self, key: str, value: bytes, ttl: float, now: float) -> None: ...

    async def kv_add(self, key: str, value: bytes, ttl: float, now: float) -> bool: ...

    async def kv_get(self, key: str, now: float) -> bytes | None: ...

    async def kv_take(self, key: str, now: float) -> bytes | None: ...

    async def kv_delete(self, key: str) -> None: ...


def digest(value: str) -> str:
    """The SHA-256 of a code or token (hex): what it is stored under. A fast hash is enough
    for 256 random bits."""
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def _dump(value: Any) -> bytes:
    return json.dumps(asdict(value) if hasattr(value, "__dataclass_fields__") else value).encode()


class Grants:
    """The OAuth state of the service, on `kv`; `clock` gives epoch seconds."""

    def __init__(self, kv: KeyValue, clock: Callable[[], float]) -> None:
        self.kv = kv
        self.clock = clock

    # --- clients ----------------------------------------------------------------------

    async def put_client(self, client_id: str, record: bytes) -> None:
        await self.kv.kv_put(f"oauth:client:{client_id}", record, CLIENT_TTL, self.clock())

    async def client(self, client_id: str) -> bytes | None:
        return await self.kv.kv_get(f"oauth:client:{client_id}", self.clock())

    # --- consent ----------------------------------------------------------------------

    async def open_consent(self, pending: Pending) -> tuple[str, str]:
        """Store `pending` (its `csrf` is replaced); the handle for the consent page's URL
        and the CSRF token for its form."""
        handle, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        pending.csrf = digest(csrf)
        await self.kv.kv_put(
            f"oauth:pending:{digest(handle)}", _dump(pending), PENDING_TTL, self.clock()
        )
        return handle, csrf

    async def save_pending(self, handle: str, pending: Pending) -> None:
        await self.kv.kv_put(
            f"oauth:pending:{digest(handle)}", _dump(pending), PENDING_TTL, self.clock()
        )

    async def close_consent(self, handle: str) -> Pending | None:
        """Take the pending request (of concurrent takers one gets it); `save_pending`
        puts it back when it is not decided yet."""
        raw = await self.kv.kv_take(f"oauth:pending:{digest(handle)}", self.clock())
        return Pending(**json.loads(raw)) if raw is not None else None

    async def approve(self, pending: Pending, grantee: Grantee) -> str:
        """A new family for this approval and its authorization code."""
        now = self.clock()
        family = Family(
            id=secrets.token_urlsafe(16),
            subject=grantee.subject,
            proof=grantee.proof,
            client_id=pending.client_id,
            resource=pending.resource,
            scopes=pending.scopes,
        )
        await self.kv.kv_put(f"oauth:family:{family.id}", _dump(family), REFRESH_TTL, now)
        code = secrets.token_urlsafe(32)
        grant = CodeGrant(
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            redirect_uri_provided_explicitly=pending.redirect_uri_provided_explicitly,
            scopes=pending.scopes,
            code_challenge=pending.code_challenge,
            resource=pending.resource,
            expires_at=now + CODE_TTL,
            family=family.id,
        )
        await self.kv.kv_put(f"oauth:code:{digest(code)}", _dump(grant), CODE_TTL, now)
        return code

    # --- codes ------------------------------------------------------------------------

    async def code(self, code: str) -> CodeGrant | None:
        """The code's grant, or None. A code already redeemed ends its family: whoever
        presents it again holds a copy (RFC 6749 §4.1.2)."""
        now = self.clock()
        raw = await self.kv.kv_get(f"oauth:code:{digest(code)}", now)
        if raw is not None:
            return CodeGrant(**json.loads(raw))
        used = await self.kv.kv_get(f"oauth:code-used:{digest(code)}", now)
        if used is not None:
            await self.end_family(used.decode())
        return None

    async def redeem_code(self, code: str) -> CodeGrant | None:
        """Take the code (single use); None when another redemption won."""
        now = self.clock()
        raw = await self.kv.kv_take(f"oauth:code:{digest(code)}", now)
        if raw is None:
            return None
        grant = CodeGrant(**json.loads(raw))
        await self.kv.kv_put(
            f"oauth:code-used:{digest(code)}", grant.family.encode(), CODE_TTL, now
        )
        return grant

    # --- tokens -----------------------------------------------------------------------

    async def family(self, family_id: str) -> Family | None:
        raw = await self.kv.kv_get(f"oauth:family:{family_id}", self.clock())
        return Family(**json.loads(raw)) if raw is not None else None

    async def issue(self, family: Family, scopes: list[str]) -> TokenPair:
        """A new access token and refresh token of `family` (whose life is extended)."""
        now = self.clock()
        access = ACCESS_PREFIX + secrets.token_urlsafe(32)
        refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
        client, resource = family.client_id, family.resource
        at = AccessGrant(client, scopes, resource, now + ACCESS_TTL, family.id)
        rt = RefreshGrant(client, scopes, resource, now + REFRESH_TTL, family.id)
        await self.kv.kv_put(f"oauth:family:{family.id}", _dump(family), REFRESH_TTL, now)
        await self.kv.kv_put(f"oauth:rt:{digest(refresh)}", _dump(rt), REFRESH_TTL, now)
        await self.kv.kv_put(f"oauth:at:{digest(access)}", _dump(at), ACCESS_TTL, now)
        return TokenPair(access, refresh, int(ACCESS_TTL), scopes)

    async def access(self, token: str) -> AccessGrant | None:
        """The access token's grant until it expires, else None (its family is checked by
        the caller: `OAuthServer.verify`)."""
        now = self.clock()
        raw = await self.kv.kv_get(f"oauth:at:{digest(token)}", now)
        if raw is None:
            return None
        grant = AccessGrant(**json.loads(raw))
        return grant if grant.expires_at > now else None

    async def refresh(self, token: str) -> RefreshGrant | None:
        """The refresh token's grant while it and its family are live, else None. A token
        already rotated away ends its family: one of two parties holds a stolen copy."""
        now = self.clock()
        raw = await self.kv.kv_get(f"oauth:rt:{digest(token)}", now)
        if raw is None:
            used = await self.kv.kv_get(f"oauth:rt-used:{digest(token)}", now)
            if used is not None:
                await self.end_family(used.decode())
            return None
        grant = RefreshGrant(**json.loads(raw))
        if await self.family(grant.family) is None:
            return None
        return grant

    async def rotate(self, token: str, family_id: str) -> bool:
        """Take the refresh token (single use) and remember it as used; False when it was
        already taken, which ends the family (two parties used the same token)."""
        now = self.clock()
        raw = await self.kv.kv_take(f"oauth:rt:{digest(token)}", now)
        if raw is None:
            await self.end_family(family_id)
            return False
        await self.kv.kv_put(f"oauth:rt-used:{digest(token)}", family_id.encode(), REFRESH_TTL, now)
        return True

    async def end_family(self, family_id: str) -> None:
        """End an approval: every access and refresh token of it stops working at once."""
        await self.kv.kv_delete(f"oauth:family:{family_id}")
