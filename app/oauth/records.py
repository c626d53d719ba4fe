"""What the OAuth state is made of: one approval (`Family`), a request awaiting consent,
and the grants behind a code, a refresh token and an access token. Stored as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.oauth.identity import Grantee

__all__ = ["AccessGrant", "CodeGrant", "Family", "Pending", "RefreshGrant", "TokenPair"]


@dataclass(frozen=True)
class Family:
    id: str
    subject: str
    proof: str
    client_id: str
    resource: str
    scopes: list[str]

    @property
    def grantee(self) -> Grantee:
        return Grantee(self.subject, self.proof)


@dataclass
class Pending:
    """An authorization request the SDK validated, awaiting the person's consent."""

    client_id: str
    client_name: str
    redirect_uri: str
    redirect_uri_provided_explicitly: bool
    state: str | None
    scopes: list[str]
    code_challenge: str
    resource: str
    csrf: str
    """Digest of the form's CSRF token."""
    failures: int = 0


@dataclass(frozen=True)
class CodeGrant:
    client_id: str
    redirect_uri: str
    redirect_uri_provided_explicitly: bool
    scopes: list[str]
    code_challenge: str
    resource: str
    expires_at: float
    family: str


@dataclass(frozen=True)
class RefreshGrant:
    client_id: str
    scopes: list[str]
    resource: str
    expires_at: float
    family: str


@dataclass(frozen=True)
class AccessGrant:
    client_id: str
    scopes: list[str]
    resource: str
    expires_at: float
    family: str


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    scopes: list[str] = field(default_factory=list)
