"""Where the bearer secrets and the upstream key come from, at run time.

Locally they are plain settings (`CHATGPT_SECRET`, a connector's key). On AWS the settings
name them instead (`CHATGPT_SECRET_REF`, a connector's `*_KEY_REF`): an SSM SecureString or a
Secrets Manager secret, read on first use, cached per container, and read again once the
cache is older than `SECRET_TTL` seconds, so a rotated value is picked up within that bound.
If a refresh fails the last good value keeps serving (and the failure is logged); with no
good value at all the service answers 503 rather than guessing. A stored bearer secret
obeys the same strength rule as `CHATGPT_SECRET` (`app.security.is_strong_secret`): each
weak one is refused, logged by reference and position once per read, never by value.

boto3 is imported only when a reference is configured: the REST routes' cold start never
pays for it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from app.errors import CredentialsUnavailable
from app.security import is_strong_secret

__all__ = ["Credentials", "SecretRef", "StoredSecret", "strong_bearer_secrets"]

log = logging.getLogger("app.credentials")

_SSM_ARN = re.compile(r"^arn:aws[\w-]*:ssm:[\w-]+:\d{12}:parameter(/.+)$")
_SM_ARN = re.compile(r"^arn:aws[\w-]*:secretsmanager:[\w-]+:\d{12}:secret:.+$")
_RETRY_AFTER_FAILURE = 30.0


@dataclass(frozen=True)
class SecretRef:
    """A secret held by an AWS service: `ssm:/name`, an SSM parameter ARN,
    `secretsmanager:name` or a Secrets Manager secret ARN."""

    service: Literal["ssm", "secretsmanager"]
    name: str

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        text = text.strip()
        if match := _SSM_ARN.match(text):
            return cls("ssm", match.group(1))
        if _SM_ARN.match(text):
            return cls("secretsmanager", text)
        kind, sep, name = text.partition(":")
        if sep and name and kind in ("ssm", "secretsmanager"):
            return cls(kind, name)  # type: ignore[arg-type]
        raise ValueError(
            "expected ssm:/parameter/name, secretsmanager:name, or the parameter's or secret's ARN"
        )

    def __str__(self) -> str:
        return f"{self.service}:{self.name}"


_clients: dict[str, Any] = {}


def read_from_aws(ref: SecretRef) -> str:
    """The current value of `ref` (blocking: call it off the event loop)."""
    client = _clients.get(ref.service)
    if client is None:
        import boto3  # lazy: only deployments that use references pay for the import

        client = _clients[ref.service] = boto3.client(ref.service)
    if ref.service == "ssm":
        answer = client.get_parameter(Name=ref.name, WithDecryption=True)
        return str(answer["Parameter"]["Value"])
    return str(client.get_secret_value(SecretId=ref.name)["SecretString"])


class StoredSecret:
    """A secret read through `fetch`, cached for `ttl` seconds, stale-while-failing."""

    def __init__(
        self,
        ref: SecretRef,
        ttl: float,
        *,
        fetch: Callable[[SecretRef], str] = read_from_aws,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ref = ref
        self.ttl = ttl
        self._fetch = fetch
        self._clock = clock
        self._value: str | None = None
        self._expires = 0.0
        self.reads = 0
        """How many times a value was read successfully: what was derived from an older
        read is out of date."""
        self._lock = asyncio.Lock()

    async def value(self) -> str:
        if self._value is not None and self._clock() < self._expires:
            return self._value
        async with self._lock:
            if self._value is None or self._clock() >= self._expires:
                await self._refresh()
        if self._value is None:
            raise CredentialsUnavailable()
        return self._value

    async def _refresh(self) -> None:
        try:
            value = (await asyncio.to_thread(self._fetch, self.ref)).strip()
            if not value:
                raise ValueError("the stored value is empty")
        except Exception as error:
            self._expires = self._clock() + _RETRY_AFTER_FAILURE
            log.error(
                "cannot read %s (%s); %s",
                self.ref,
                type(error).__name__,
                "keeping the last good value" if self._value else "no value to serve",
                extra={"fields": {"event": "secret_unreadable", "ref": str(self.ref)}},
            )
            return
        if self._value is not None and value != self._value:
            log.info("%s changed; the new value is in use", self.ref)
        self._value = value
        self._expires = self._clock() + self.ttl
        self.reads += 1


def strong_bearer_secrets(stored: str, ref: SecretRef) -> tuple[bytes, ...]:
    """The strong secrets among a stored comma-separated value, as bytes. Each weak one is
    dropped and logged with `ref` and its position; neither the value nor a part of it is
    logged. None left: the API stays closed (`ServiceLocked`, from `authorize`)."""
    parts = [part.strip() for part in stored.split(",") if part.strip()]
    weak = [index for index, part in enumerate(parts, start=1) if not is_strong_secret(part)]
    if weak:
        log.error(
            "%s holds %d of %d bearer secrets too weak to use (#%s), refused%s; "
            "store secrets of at least 16 random characters",
            ref,
            len(weak),
            len(parts),
            ", #".join(map(str, weak)),
            ": the API is closed" if len(weak) == len(parts) else "",
            extra={"fields": {"event": "secret_too_weak", "ref": str(ref), "refused": weak}},
        )
    return tuple(part.encode() for part in parts if is_strong_secret(part))


class Credentials:
    """The accepted bearer secrets and the upstream key, from settings or from AWS."""

    def __init__(
        self,
        *,
        bearer_secrets: tuple[bytes, ...] = (),
        bearer_ref: StoredSecret | None = None,
        upstream_key: str | None = None,
        upstream_key_ref: StoredSecret | None = None,
    ) -> None:
        self._bearer_secrets = bearer_secrets
        self._bearer_ref = bearer_ref
        self._upstream_key = upstream_key
        self._upstream_key_ref = upstream_key_ref
        self._checked: tuple[int, tuple[bytes, ...]] = (0, ())  # (reads, strong secrets)

    @property
    def has_bearer_secrets(self) -> bool:
        return bool(self._bearer_secrets) or self._bearer_ref is not None

    async def bearer_secrets(self) -> tuple[bytes, ...]:
        """The accepted secrets; a stored value may hold several, comma-separated, and only
        its strong ones are accepted (checked once per read of the stored value)."""
        if self._bearer_ref is None:
            return self._bearer_secrets
        stored = await self._bearer_ref.value()
        if self._checked[0] != self._bearer_ref.reads:
            self._checked = (
                self._bearer_ref.reads,
                strong_bearer_secrets(stored, self._bearer_ref.ref),
            )
        return self._checked[1]

    async def upstream_key(self) -> str | None:
        if self._upstream_key_ref is None:
            return self._upstream_key
        return await self._upstream_key_ref.value()
