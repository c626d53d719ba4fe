"""Caller authentication on the OpenAI routes: the service's bearer secret, sent as
`Authorization: Bearer <secret>` (the SDKs' way) or bare in `api-key` (Azure-style clients,
Power Platform connectors), exactly one of the two.

`authenticate` is the one place a caller is admitted: per-caller keys replace its body.
"""

from __future__ import annotations

from starlette.datastructures import Headers

from app.credentials import Credentials
from app.security import authorize

__all__ = ["authenticate"]


async def authenticate(headers: Headers, credentials: Credentials) -> None:
    """Return if the caller presented an accepted credential; raise `Unauthorized`
    (`ServiceLocked` with none configured, `CredentialsUnavailable` if unreadable)."""
    secrets = await credentials.bearer_secrets()
    bearer = headers.getlist("authorization")
    api_key = headers.getlist("api-key")
    if bearer and api_key:
        authorize([], secrets)  # both: refused, with the same timing as any refusal
    elif api_key:
        # `Bearer <value>` goes through the same strict parser: one header, no white space.
        authorize([f"Bearer {value}" for value in api_key], secrets)
    else:
        authorize(bearer, secrets)
