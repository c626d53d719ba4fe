"""Caller authentication: one `Authorization: Bearer <secret>` header, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from functools import lru_cache

from app.errors import ServiceLocked, Unauthorized

__all__ = ["authorize", "presented_bearer"]

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
