"""Caller authentication: one credential, checked in constant time, against secrets strong
enough to guard the API (`is_strong_secret`, one rule for every source).

The credential comes as `Authorization: Bearer <secret>` or bare as `api-key: <secret>`
(Azure-style clients, and the Power Platform connectors, whose makers paste it as is).
Exactly one of the two headers, once: both, or either twice, is refused.
"""

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
    "API_KEY_HEADER",
    "MIN_SECRET_LENGTH",
    "SECRET_ADVICE",
    "authenticate",
    "authorize",
    "is_strong_secret",
    "presented_bearer",
    "presented_credential",
]

API_KEY_HEADER = "api-key"

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
    if not sep or scheme.lower() != "bearer" or _has_space(token):
        return None
    return token.encode("utf-8", "surrogateescape")


def presented_credential(authorization: Sequence[str], api_key: Sequence[str]) -> bytes | None:
    """The credential from exactly one header, `Authorization: Bearer <token>` (as strict
    as `presented_bearer`) or `api-key: <token>` (one value, no white space), else None."""
    if authorization and api_key:
        return None
    if not api_key:
        return presented_bearer(authorization)
    if len(api_key) != 1:
        return None
    token = api_key[0]
    if len(token) > _MAX_HEADER or _has_space(token):
        return None
    return token.encode("utf-8", "surrogateescape")


def _has_space(token: str) -> bool:
    """True when `token` is empty or holds any white space (str.isspace's, in C: a per-
    character generator cost ~10 us a request)."""
    return token.split() != [token]


def _digest(value: bytes) -> bytes:
    # Comparing fixed-size digests keeps the comparison's time independent of both lengths.
    return hashlib.sha256(value).digest()


# The configured secrets' digests are computed once (a few of them, rotated rarely);
# the presented token's is computed per request and never cached.
_secret_digest = lru_cache(maxsize=32)(_digest)


def authorize(
    header_values: Sequence[str], secrets: Sequence[bytes], api_key_values: Sequence[str] = ()
) -> None:
    """Return if the caller presented one of `secrets` (`header_values` are the request's
    `Authorization` values, `api_key_values` its `api-key` values); raise otherwise.

    Every configured secret is compared, whatever matched, so timing tells nothing about
    which secret (or how much of one) was right. With no secret configured the service
    is closed: `ServiceLocked`, never open.
    """
    if not secrets:
        raise ServiceLocked()
    token = presented_credential(header_values, api_key_values)
    presented = _digest(token if token is not None else b"")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(presented, _secret_digest(secret))
    if token is None or not matched:
        raise Unauthorized()


class _Secrets(Protocol):
    async def bearer_secrets(self) -> tuple[bytes, ...]: ...


async def authenticate(headers: Headers, credentials: _Secrets) -> None:
    """Admit a caller who sent an accepted secret (see the module docstring); raise
    `Unauthorized` otherwise (`ServiceLocked` with none configured, `CredentialsUnavailable`
    when a stored one cannot be read)."""
    secrets = await credentials.bearer_secrets()
    authorize(headers.getlist("authorization"), secrets, headers.getlist(API_KEY_HEADER))
