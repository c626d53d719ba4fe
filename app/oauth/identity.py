"""Who grants a connector access: the key pasted on the consent page, and whether it still holds.

A grant is made by a person holding a credential of this service (a static secret, or a
managed caller key). The grant records *which* credential (`Grantee`: its subject and a
digest, never the credential), so that every later use of the grant's tokens can ask again
whether that credential is still accepted: removing a static secret, or revoking a key,
ends every connector it approved.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Protocol

from app.errors import ServiceError

__all__ = ["STATIC_SUBJECT", "Grantee", "Identities", "StaticSecrets"]

STATIC_SUBJECT = "static"


@dataclass(frozen=True)
class Grantee:
    """The credential behind a grant: `subject` is what limits and usage are kept under (a
    key id, or "static"); `proof` is a digest of the credential, checked again on each use."""

    subject: str
    proof: str


class Identities(Protocol):
    """Where the consent page and the token checks learn who a credential is."""

    async def identify(self, credential: str) -> Grantee | None:
        """The grantee for a pasted credential, or None when it is not accepted."""

    async def still_valid(self, grantee: Grantee) -> bool:
        """True while the grantee's credential is accepted (bounded by the key cache)."""


class _Secrets(Protocol):
    async def bearer_secrets(self) -> tuple[bytes, ...]: ...


def _digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


class StaticSecrets:
    """The static secrets (`CHATGPT_SECRET`, `CHATGPT_SECRET_REF`) as grantees: a grant made
    with one lasts while that secret is configured."""

    def __init__(self, secrets: _Secrets) -> None:
        self._secrets = secrets

    async def _digests(self) -> tuple[str, ...]:
        try:
            return tuple(_digest(secret) for secret in await self._secrets.bearer_secrets())
        except ServiceError:  # none configured, or unreadable: nobody is accepted
            return ()

    async def identify(self, credential: str) -> Grantee | None:
        presented = _digest(credential.encode("utf-8", "surrogateescape"))
        found: str | None = None
        for known in await self._digests():  # every one compared: timing says nothing
            if hmac.compare_digest(presented, known):
                found = known
        return Grantee(STATIC_SUBJECT, found) if found is not None else None

    async def still_valid(self, grantee: Grantee) -> bool:
        if grantee.subject != STATIC_SUBJECT:
            return False
        matched = False
        for known in await self._digests():
            matched |= hmac.compare_digest(grantee.proof, known)
        return matched
