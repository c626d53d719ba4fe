"""Caller keys: their format, their stored digest, and the record a new key gets.

A key looks like `lnp_` + 43 base62 characters (32 random bytes from `secrets`, 256
bits) + 6 base62 characters of CRC32 checksum over the body (GitHub's token format):

    lnp_3Xq...k9Z0aB1c

The prefix says what it is (secret scanners and people recognise it); the checksum lets
the service refuse a mistyped or invented key without asking the store, so a flood of
junk keys never reaches it. Only a digest of the key is ever stored:
HMAC-SHA256 keyed with `KEY_PEPPER` when it is set, else plain SHA-256. A fast hash is
enough for 256 random bits (no dictionary to try); the pepper adds that a stolen store
cannot even confirm a key guessed elsewhere. Changing or removing `KEY_PEPPER` makes
every existing key unknown (create new ones). `key_id` is public and is what the access
log, `keys list` and `keys revoke` name.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib
from dataclasses import dataclass

from app.store import KeyRecord

__all__ = ["KEY_PREFIX", "NewKey", "digest", "is_key_shaped", "new_key"]

KEY_PREFIX = "lnp_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY = 43  # 62**43 > 2**256
_CHECK = 6  # 62**6 > 2**32
_KEY_LENGTH = len(KEY_PREFIX) + _BODY + _CHECK
_SHOWN = len(KEY_PREFIX) + 4  # `keys list` shows `lnp_AbCd…wxyz`


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK)


def is_key_shaped(token: str) -> bool:
    """True when `token` has a key's prefix, length, alphabet and a correct checksum."""
    if len(token) != _KEY_LENGTH or not token.startswith(KEY_PREFIX):
        return False
    rest = token[len(KEY_PREFIX) :]
    if not all(ch in _ALPHABET for ch in rest):
        return False
    return hmac.compare_digest(_checksum(rest[:_BODY]), rest[_BODY:])


def digest(key: str, pepper: bytes | None) -> str:
    """The stored form of `key` (hex): HMAC-SHA256 with `pepper`, else SHA-256."""
    if pepper:
        return hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    """A key just made: `key` is shown once, `record` is what the store keeps."""

    key: str
    record: KeyRecord


def new_key(
    name: str,
    *,
    pepper: bytes | None,
    now: float,
    scopes: frozenset[str] = frozenset(),
    models: frozenset[str] = frozenset(),
    rpm: int | None = None,
    daily_requests: int | None = None,
    monthly_tokens: int | None = None,
    expires: float | None = None,
) -> NewKey:
    """A fresh random key and its record (a new public `key_id`, the key's digest)."""
    body = _base62(int.from_bytes(secrets.token_bytes(32)), _BODY)
    key = KEY_PREFIX + body + _checksum(body)
    record = KeyRecord(
        key_id="key_" + _base62(int.from_bytes(secrets.token_bytes(8)), 11),
        digest=digest(key, pepper),
        name=name,
        prefix=key[:_SHOWN],
        last4=key[-4:],
        created=now,
        scopes=scopes,
        models=models,
        rpm=rpm,
        daily_requests=daily_requests,
        monthly_tokens=monthly_tokens,
        expires=expires,
    )
    return NewKey(key, record)
