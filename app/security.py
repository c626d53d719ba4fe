"""Caller authentication: `Authorization: Bearer <secret>` or `api-key: <secret>`, checked in
constant time, against secrets strong enough to guard the API (`is_strong_secret`, one rule
for every source)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise
from typing import Protocol

from starlette.datastructures import Headers

from app.errors import ServiceLocked, Unauthorized

__all__ = [
    "MIN_SECRET_LENGTH",
    "SECRET_ADVICE",
    "authenticate",
    "authorize",
    "is_strong_secret",
    "presented_bearer",
]

_MAX_HEADER = 4096
MIN_SECRET_LENGTH = 16
_MIN_VARIETY = 6
_PLACEHOLDERS = frozenset({"changeme", "change-me", "secret", "your-secret", "xxx", "todo"})
SECRET_ADVICE = (
    f"use at least {MIN_SECRET_LENGTH} random characters, "
    "e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
)


def is_strong_secret(secret: str) -> bool:
    """True when `secret` may guard the API: the one rule for `CHATGPT_SECRET` and for a
    stored secret (`CHATGPT_SECRET_REF`) alike.

    It catches mistakes, not every weak choice; a secret is refused when it is
    - shorter than `MIN_SECRET_LENGTH` (16) characters, or a known placeholder (`changeme`);
    - made of fewer than 6 distinct characters (`aaaaaaaaaaaaaaaa`, `abababababababab`);
    - mostly a run: fewer than 6 of its characters differ from the one before by more than
      one code point, so repeats and counting (`aaaa`, `abab`, `1234567890123456`) count once.
    Random output passes: never seen to fail for `secrets.token_urlsafe(12)` (16 characters),
    about 1 in 25,000 for `secrets.token_hex(8)`. (6, not 8: at 8 distinct characters one
    random 16-digit hex string in 100 would be refused, and a rotation that stored one
    would lock the API.)
    """
    if len(secret) < MIN_SECRET_LENGTH or secret.lower() in _PLACEHOLDERS:
        return False
    if len(set(secret)) < _MIN_VARIETY:
        return False
    jumps = sum(abs(ord(a) - ord(b)) > 1 for a, b in pairwise(secret))
    return 1 + jumps >= _MIN_VARIETY


def presented_bearer(values: Sequence[str]) -> bytes | None:
    """The token from exactly one well-formed `Bearer <token>` header value, else None.

    Strict on purpose: one header, the scheme in any case, one space, a token with no
    white space. Anything looser (two headers, padding, other schemes) is refused.
    """
    if len(values) != 1:
        return None
    value = values[0]
    if len(value) > _MAX_HEADER:
        return None
    scheme, sep, token = value.partition(" ")
    if not sep or scheme.lower() != "bearer" or not token or token != token.strip():
        return None
    if any(ch.isspace() for ch in token):
        return None
    return token.encode("utf-8", "surrogateescape")


def _digest(value: bytes) -> bytes:
    # Comparing fixed-size digests keeps the comparison's time independent of both lengths.
    return hashlib.sha256(value).digest()


# The configured secrets' digests are computed once (a few of them, rotated rarely);
# the presented token's is computed per request and never cached.
_secret_digest = lru_cache(maxsize=32)(_digest)


def authorize(header_values: Sequence[str], secrets: Sequence[bytes]) -> None:
    """Return if the caller presented one of `secrets`; raise otherwise.

    Every configured secret is compared, whatever matched, so timing tells nothing about
    which secret (or how much of one) was right. With no secret configured the service
    is closed: `ServiceLocked`, never open.
    """
    if not secrets:
        raise ServiceLocked()
    token = presented_bearer(header_values)
    presented = _digest(token if token is not None else b"")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(presented, _secret_digest(secret))
    if token is None or not matched:
        raise Unauthorized()


class _Secrets(Protocol):
    async def bearer_secrets(self) -> tuple[bytes, ...]: ...


async def authenticate(headers: Headers, credentials: _Secrets) -> None:
    """Admit a caller who sent an accepted secret as `Authorization: Bearer <secret>` (the
    SDKs' way) or bare in `api-key` (Azure-style clients, Power Platform connectors imported
    from the swagger file alone), exactly one of the two; raise otherwise (see `authorize`)."""
    secrets = await credentials.bearer_secrets()
    bearer = headers.getlist("authorization")
    api_key = headers.getlist("api-key")
    if bearer and api_key:
        authorize([], secrets)  # both: refused, with the same work as any refusal
    elif api_key:
        # `Bearer <value>` goes through the same strict parser: one header, no white space.
        authorize([f"Bearer {value}" for value in api_key], secrets)
    else:
        authorize(bearer, secrets)
