"""An OAuth client and a scripted person, over plain HTTP, for the authorization tests.

`Flow` registers a client, starts an authorization (PKCE S256), plays the person on the
consent page (reads the form, pastes a key) and redeems the code. Each step returns the
raw answer too, so tests can assert the refusals.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

__all__ = ["CALLBACK", "Flow", "form_fields", "pkce"]

CALLBACK = "http://127.0.0.1:43210/callback"  # allowed by OAUTH_REDIRECT_URIS in the tests
_FIELD = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def form_fields(page: str) -> dict[str, str]:
    """The hidden fields of the consent form."""
    return dict(_FIELD.findall(page))


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


@dataclass
class Flow:
    """One client of the server at `base` (an `httpx.Client` with `base_url` set)."""

    http: httpx.Client
    base: str
    redirect_uri: str = CALLBACK
    client_id: str = ""
    client_secret: str | None = None
    verifier: str = ""
    state: str = field(default_factory=lambda: secrets.token_urlsafe(8))

    def register(self, **metadata: Any) -> httpx.Response:
        body = {"redirect_uris": [self.redirect_uri], "client_name": "Test client", **metadata}
        answer = self.http.post("/oauth/register", json=body)
        if answer.status_code == 201:
            self.client_id = answer.json()["client_id"]
            self.client_secret = answer.json().get("client_secret")
        return answer

    def authorize(self, **overrides: str) -> httpx.Response:
        """GET /oauth/authorize; a good request answers 302 to the consent page."""
        self.verifier, challenge = pkce()
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": self.state,
            "resource": f"{self.base}/mcp",
            **overrides,
        }
        return self.http.get("/oauth/authorize", params=params)

    def consent(self, key: str, decision: str = "approve") -> httpx.Response:
        """The person: authorize, open the consent page, paste `key`, press a button."""
        start = self.authorize()
        assert start.status_code == 302, start.text
        page = self.http.get(start.headers["location"])
        assert page.status_code == 200, page.text
        fields = form_fields(page.text)
        return self.http.post("/oauth/consent", data={**fields, "key": key, "decision": decision})

    def code(self, key: str) -> str:
        answer = self.consent(key)
        assert answer.status_code == 303, answer.text
        query = query_of(answer.headers["location"])
        assert query["state"] == self.state
        return query["code"]

    def _client_auth(self) -> dict[str, str]:
        auth = {"client_id": self.client_id}
        if self.client_secret:
            auth["client_secret"] = self.client_secret
        return auth

    def exchange(self, code: str, **extra: str) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.verifier,
            **self._client_auth(),
            **extra,
        }
        return self.http.post("/oauth/token", data=form)

    def refresh(self, refresh_token: str, **extra: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self.http.post("/oauth/token", data={**form, **self._client_auth(), **extra})

    def revoke(self, token: str) -> httpx.Response:
        return self.http.post("/oauth/revoke", data={"token": token, **self._client_auth()})

    def tokens(self, key: str) -> dict[str, Any]:
        """Register if needed, consent with `key`, redeem: the token answer."""
        if not self.client_id:
            assert self.register().status_code == 201
        answer = self.exchange(self.code(key))
        assert answer.status_code == 200, answer.text
        tokens: dict[str, Any] = answer.json()
        return tokens


def mcp_call(http: httpx.Client, token: str, **headers: str) -> httpx.Response:
    """A `tools/list` on /mcp with `token` (stateless 2026-07-28 style, one POST)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    return http.post(
        "/mcp",
        json=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
            **headers,
        },
    )
