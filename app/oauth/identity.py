"""Who grants a connector access: the key pasted on the consent page, and whether it still holds.

A grant is made by a person holding a credential of this service: a managed caller key
(`python -m app keys create`) or a static secret (`CHATGPT_SECRET`). The grant records
*which* credential (`Grantee`: its subject and a digest, never the credential), and every
later use of the grant's tokens asks the gate again for that credential's `Caller`: its
scopes, limits, quotas and usage apply to the connector's calls, and revoking the key (or
removing the secret) ends every connector it approved, within the gate's key-cache bound.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from app.callers import STATIC_SUBJECT, Caller, Gate
from app.errors import Forbidden, Unauthorized
from app.keys import is_key_shaped

__all__ = ["GateIdentities", "Grantee", "Identities"]


@dataclass(frozen=True)
class Grantee:
    """The credential behind a grant: `subject` is what limits and usage are kept under (a
    key id, or "static"); `proof` is a digest of the credential, checked again on each use."""

    subject: str
    proof: str


class Identities(Protocol):
    """Where the consent page and the token checks learn who a credential is."""

    async def identify(self, credential: str) -> Grantee | None:
        """The grantee for a pasted credential, or None when it is not accepted here."""

    async def caller(self, grantee: Grantee) -> Caller:
        """The grantee's caller now; raises `Unauthorized` once its credential is no longer
        accepted (revoked, expired, removed), `Forbidden` when it may not use the resource,
        and another `ServiceError` when that cannot be checked right now."""


def _sha256(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


class GateIdentities:
    """Identities as the gate (`app.callers.Gate`) knows them, for a resource whose
    connectors are `scopes` (a key needs one of them)."""

    def __init__(self, gate: Gate, scopes: Collection[str]) -> None:
        self.gate = gate
        self.scopes = tuple(scopes)

    async def _static_digests(self) -> tuple[str, ...]:
        # A stored secret that cannot be read raises (CredentialsUnavailable): the routes
        # answer 503, never "wrong key", and no connection is ended over an outage.
        return tuple(_sha256(s) for s in await self.gate.credentials.bearer_secrets())

    async def identify(self, credential: str) -> Grantee | None:
        if is_key_shaped(credential):
            proof = self.gate.key_digest(credential)
            try:
                caller = await self.gate.identify_key(proof, self.scopes)
            except (Unauthorized, Forbidden):
                return None
            return Grantee(caller.subject, proof)
        presented = _sha256(credential.encode("utf-8", "surrogateescape"))
        found: str | None = None
        for known in await self._static_digests():  # each compared: timing tells nothing
            if hmac.compare_digest(presented, known):
                found = known
        return Grantee(STATIC_SUBJECT, found) if found is not None else None

    async def caller(self, grantee: Grantee) -> Caller:
        if grantee.subject != STATIC_SUBJECT:
            caller = await self.gate.identify_key(grantee.proof, self.scopes)
            if caller.subject != grantee.subject:
                raise Unauthorized()
            return caller
        matched = False
        for known in await self._static_digests():
            matched |= hmac.compare_digest(grantee.proof, known)
        if not matched:
            raise Unauthorized("The secret that approved this connection is no longer accepted.")
        return self.gate.static_caller()
