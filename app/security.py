"""Caller authentication: one credential, checked in constant time.

The credential comes as `Authorization: Bearer <secret>` or bare as `api-key: <secret>`
(Azure-style clients, and the Power Platform connectors, whose makers paste it as is).
Exactly one of the two headers, once: both, or either twice, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from functools import lru_cache

from app.errors import ServiceLocked, Unauthorized

__all__ = ["API_KEY_HEADER", "authorize", "presented_bearer", "presented_credential"]

API_KEY_HEADER = "api-key"

_MAX_HEADER = 4096


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
    if not token or len(token) > _MAX_HEADER or any(ch.isspace() for ch in token):
        return None
    return token.encode("utf-8", "surrogateescape")


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
