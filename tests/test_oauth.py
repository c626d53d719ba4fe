"""OAuth 2.1 for /mcp, against the real server (`python -m app serve` on loopback) and a
SQLite store: the `mcp` SDK's own OAuth client end to end, then each refusal the issue
lists, raw, so the test sees exactly what the server answered."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthMetadata,
    OAuthToken,
    ProtectedResourceMetadata,
)

from tests.conftest import OTHER_SECRET, SECRET
from tests.keys_support import keys_cli, usage_totals
from tests.live import LiveServer, live_server
from tests.oauth_flow import CALLBACK, Flow, form_fields, mcp_call, query_of

REDIRECTS = "http://127.0.0.1:*/callback"


def _env(store: Path, secret: str = SECRET) -> dict[str, str]:
    return {
        "CHATGPT_SECRET": secret,
        "STORE_URL": f"sqlite:///{store}",
        "OAUTH_REDIRECT_URIS": REDIRECTS,
        "KEY_CACHE_TTL": "0",  # a revocation takes effect at once (the bound is this setting)
    }


@pytest.fixture(scope="module")
def store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("oauth") / "state.db"


@pytest.fixture(scope="module")
def server(store_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("oauth-log") / "server.log"
    with live_server(_env(store_file), log) as running:
        yield running
    log_text = running.log_text()
    assert SECRET not in log_text
    assert "mcpat_" not in log_text and "mcprt_" not in log_text  # no token in any log line


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, follow_redirects=False) as client:
        yield client


@pytest.fixture
def flow(server: LiveServer, http: httpx.Client) -> Flow:
    return Flow(http, server.base_url)


# --- the whole flow with the SDK's client -----------------------------------------------


class MemoryTokens:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def test_the_sdk_client_connects_through_consent_and_calls_a_tool(server: LiveServer) -> None:
    storage = MemoryTokens()
    seen: dict[str, Any] = {}

    async def person(authorize_url: str) -> None:
        # The browser: our consent page, the secret pasted, the redirect read.
        async with httpx2.AsyncClient(follow_redirects=False) as browser:
            start = await browser.get(authorize_url)
            assert start.status_code == 302
            seen["consent_url"] = start.headers["location"]
            page = await browser.get(start.headers["location"])
            seen["page"] = page.text
            fields = form_fields(page.text)
            done = await browser.post(
                f"{server.base_url}/oauth/consent",
                data={**fields, "key": SECRET, "decision": "approve"},
            )
            assert done.status_code == 303
            seen["callback"] = done.headers["location"]

    async def callback() -> AuthorizationCodeResult:
        query = query_of(seen["callback"])
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"))

    async def run() -> Any:
        oauth = OAuthClientProvider(
            server_url=f"{server.base_url}/mcp",
            client_metadata=OAuthClientMetadata(
                redirect_uris=[CALLBACK],  # type: ignore[list-item]
                client_name="SDK test client",
                grant_types=["authorization_code", "refresh_token"],
            ),
            storage=storage,
            redirect_handler=person,
            callback_handler=callback,
        )
        async with httpx2.AsyncClient(auth=oauth, timeout=30) as http:
            transport = streamable_http_client(f"{server.base_url}/mcp", http_client=http)
            async with Client(transport, mode="auto") as client:
                return await client.call_tool("searchEpisodes", {"q": "compiler", "page_size": 2})

    result = asyncio.run(run())
    assert result.is_error is False
    assert result.structured_content["results"]
    assert "SDK test client" in seen["page"]
    assert SECRET not in seen["consent_url"] and SECRET not in seen["callback"]
    assert storage.tokens is not None and storage.tokens.refresh_token
    assert storage.tokens.access_token.startswith("mcpat_")
    with httpx.Client(base_url=server.base_url) as http:
        assert mcp_call(http, storage.tokens.access_token).status_code == 200
        # API-level clients keep their static secret on the same endpoint.
        assert mcp_call(http, SECRET).status_code == 200


# --- discovery --------------------------------------------------------------------------


def test_an_unauthenticated_mcp_call_says_where_to_sign_in(http: httpx.Client) -> None:
    answer = http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert answer.status_code == 401
    challenge = answer.headers["www-authenticate"]
    prm = f"{http.base_url}/.well-known/oauth-protected-resource/mcp"
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{prm}"' in challenge
    assert "error=" not in challenge  # no credential presented: no error code (RFC 6750)
    wrong = mcp_call(http, "mcpat_not-a-token")
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]
)
def test_protected_resource_metadata_names_the_public_mcp_url(
    http: httpx.Client, path: str
) -> None:
    answer = http.get(path)
    assert answer.status_code == 200
    metadata = ProtectedResourceMetadata.model_validate_json(answer.content)
    assert answer.json()["resource"] == f"{http.base_url}/mcp"
    assert metadata.bearer_methods_supported == ["header"]
    assert answer.json()["authorization_servers"] == [str(http.base_url)]
    # Behind a front: the public URL, from X-Forwarded-Proto and Host.
    behind = http.get(path, headers={"Host": "mcp.example.com", "X-Forwarded-Proto": "https"})
    assert behind.json()["resource"] == "https://mcp.example.com/mcp"


def test_authorization_server_metadata_offers_code_with_s256_and_refresh(
    http: httpx.Client,
) -> None:
    answer = http.get("/.well-known/oauth-authorization-server")
    assert answer.status_code == 200
    document = answer.json()
    OAuthMetadata.model_validate(document)
    base = str(http.base_url)
    assert document["issuer"] == base  # byte-exact: no trailing slash
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert document["response_types_supported"] == ["code"]
    assert document["registration_endpoint"] == f"{base}/oauth/register"
    assert document["revocation_endpoint"] == f"{base}/oauth/revoke"
    # At an origin's root the RFC 8414 URL works: no OpenID look-alike is served.
    assert http.get("/.well-known/openid-configuration").status_code == 404


# --- registration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example/cb",
        "https://chatgpt.com.evil.example/connector_platform_oauth_redirect",
        "https://chatgpt.com/connector/oauth/a/b",
        "javascript:alert(1)",
        "http://192.168.1.5:8080/callback",
    ],
)
def test_a_redirect_outside_the_allowlist_is_refused_at_registration(flow: Flow, uri: str) -> None:
    flow.redirect_uri = uri
    answer = flow.register()
    assert answer.status_code == 400
    assert answer.json()["error"] in ("invalid_redirect_uri", "invalid_client_metadata")
    assert "client_id" not in answer.json()


@pytest.mark.parametrize(
    "uri",
    [
        "https://claude.ai/api/mcp/auth_callback",
        "https://claude.com/api/mcp/auth_callback",
        "https://chatgpt.com/connector_platform_oauth_redirect",
        "https://chatgpt.com/connector/oauth/Abc_123-x",
    ],
)
def test_chatgpt_and_claude_callbacks_register(flow: Flow, uri: str) -> None:
    flow.redirect_uri = uri
    answer = flow.register(
        scope="mcp offline_access", token_endpoint_auth_method="client_secret_post"
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["redirect_uris"] == [uri]


# --- authorization and consent ----------------------------------------------------------


def test_plain_pkce_is_refused(flow: Flow) -> None:
    assert flow.register().status_code == 201
    answer = flow.authorize(code_challenge_method="plain")
    assert answer.status_code == 302
    query = query_of(answer.headers["location"])
    assert answer.headers["location"].startswith(CALLBACK)
    assert query["error"] == "invalid_request" and "code" not in query
    assert "/oauth/consent" not in answer.headers["location"]


def test_a_token_for_another_resource_is_never_issued(flow: Flow) -> None:
    assert flow.register().status_code == 201
    answer = flow.authorize(resource="https://other.example/mcp")
    assert query_of(answer.headers["location"])["error"] == "invalid_target"
    code = flow.code(SECRET)
    refused = flow.exchange(code, resource="https://other.example/mcp")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_target"


def test_a_token_issued_for_one_public_url_is_refused_at_another(
    flow: Flow, http: httpx.Client
) -> None:
    tokens = flow.tokens(SECRET)  # resource: http://127.0.0.1:PORT/mcp
    assert mcp_call(http, tokens["access_token"]).status_code == 200
    elsewhere = mcp_call(http, tokens["access_token"], Host="other.example.com")
    assert elsewhere.status_code == 401  # RFC 8707: this token's audience is another URL


def test_the_consent_page_names_the_client_and_host_and_is_safe(flow: Flow) -> None:
    assert flow.register(client_name='<script>alert("x")</script>').status_code == 201
    start = flow.authorize()
    consent_url = start.headers["location"]
    assert urlsplit(consent_url).path == "/oauth/consent"
    page = flow.http.get(consent_url)
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.text
    assert "127.0.0.1:43210" in page.text  # the host the answer goes back to
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    fields = form_fields(page.text)
    assert set(fields) == {"request", "csrf"}
    # A forged or stale CSRF token: 403, no code, no redirect.
    forged = flow.http.post(
        "/oauth/consent",
        data={**fields, "csrf": "forged", "key": SECRET, "decision": "approve"},
    )
    assert forged.status_code == 403 and "location" not in forged.headers


def test_a_wrong_key_gets_403_and_no_code(flow: Flow) -> None:
    assert flow.register().status_code == 201
    answer = flow.consent("not-the-secret-at-all-0123")
    assert answer.status_code == 403
    assert "location" not in answer.headers
    assert "not accepted" in answer.text
    assert "not-the-secret" not in answer.text  # nothing echoed
    # The same page (a fresh CSRF token) still takes the right key.
    retry = flow.http.post(
        "/oauth/consent", data={**form_fields(answer.text), "key": SECRET, "decision": "approve"}
    )
    assert retry.status_code == 303
    assert "code" in query_of(retry.headers["location"])


def test_deny_returns_access_denied(flow: Flow) -> None:
    assert flow.register().status_code == 201
    answer = flow.consent("", decision="deny")
    assert answer.status_code == 303
    query = query_of(answer.headers["location"])
    assert query == {"error": "access_denied", "state": flow.state}


# --- tokens -----------------------------------------------------------------------------


def test_a_reused_code_is_refused_and_ends_what_it_gave(flow: Flow, http: httpx.Client) -> None:
    assert flow.register().status_code == 201
    code = flow.code(SECRET)
    first = flow.exchange(code)
    assert first.status_code == 200
    access = first.json()["access_token"]
    assert mcp_call(http, access).status_code == 200
    again = flow.exchange(code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert mcp_call(http, access).status_code == 401  # the code was copied: grant ended


def test_a_refresh_token_rotates_and_its_reuse_revokes_the_family(
    flow: Flow, http: httpx.Client
) -> None:
    tokens = flow.tokens(SECRET)
    rotated = flow.refresh(tokens["refresh_token"])
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert mcp_call(http, new["access_token"]).status_code == 200
    reuse = flow.refresh(tokens["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    # The whole family is gone: the newest refresh token and access token too.
    assert flow.refresh(new["refresh_token"]).status_code == 400
    assert mcp_call(http, new["access_token"]).status_code == 401


def test_revocation_ends_the_grant(flow: Flow, http: httpx.Client) -> None:
    tokens = flow.tokens(SECRET)
    assert flow.revoke(tokens["refresh_token"]).status_code == 200
    assert mcp_call(http, tokens["access_token"]).status_code == 401
    assert flow.refresh(tokens["refresh_token"]).status_code == 400


def test_only_digests_are_stored(flow: Flow, store_file: Path) -> None:
    tokens = flow.tokens(SECRET)
    code_flow = Flow(flow.http, flow.base)
    assert code_flow.register().status_code == 201
    code = code_flow.code(SECRET)
    raw = store_file.read_bytes() + b"".join(
        p.read_bytes() for p in store_file.parent.glob("state.db-*")
    )
    for value in (tokens["access_token"], tokens["refresh_token"], code, SECRET):
        assert value.encode() not in raw


def test_tokens_work_in_another_process_and_end_with_their_secret(
    flow: Flow, store_file: Path, tmp_path: Path
) -> None:
    tokens = flow.tokens(SECRET)
    # A second server process on the same store accepts the token...
    with live_server(_env(store_file), tmp_path / "b.log") as other:
        with httpx.Client(base_url=other.base_url) as http:
            # The token names the first server's public URL; reach it under that name.
            host = urlsplit(flow.base).netloc
            assert mcp_call(http, tokens["access_token"], Host=host).status_code == 200
    # ...and once the secret that approved it is rotated away, it is refused everywhere.
    with live_server(_env(store_file, OTHER_SECRET), tmp_path / "c.log") as rotated:
        with httpx.Client(base_url=rotated.base_url) as http:
            host = urlsplit(flow.base).netloc
            answer = mcp_call(http, tokens["access_token"], Host=host)
            assert answer.status_code == 401
            static = mcp_call(http, OTHER_SECRET)
            assert static.status_code == 200
            other_flow = Flow(http, flow.base)
            other_flow.client_id, other_flow.client_secret = flow.client_id, flow.client_secret
            refused = other_flow.refresh(tokens["refresh_token"])
            assert refused.status_code == 400


def test_wrong_keys_are_rate_limited_per_address(tmp_path: Path) -> None:
    # A server of its own: the count is per address, and every test here is 127.0.0.1.
    with (
        live_server(_env(tmp_path / "state.db"), tmp_path / "server.log") as alone,
        httpx.Client(base_url=alone.base_url) as http,
    ):
        flow = Flow(http, alone.base_url)
        assert flow.register().status_code == 201
        statuses = []
        for _ in range(4):  # each consent allows 5 tries; 10 per address per window
            page = http.get(flow.authorize().headers["location"])
            fields = form_fields(page.text)
            for _ in range(3):
                wrong = {**fields, "key": "wrong-key-0123456789ab", "decision": "approve"}
                answer = http.post("/oauth/consent", data=wrong)
                statuses.append(answer.status_code)
                fields = form_fields(answer.text) or fields
        assert statuses == [403] * 10 + [429] * 2
        # Even the right key is refused from this address until the window ends.
        fields = form_fields(http.get(flow.authorize().headers["location"]).text)
        right = {**fields, "key": SECRET, "decision": "approve"}
        assert http.post("/oauth/consent", data=right).status_code == 429


# --- managed keys -----------------------------------------------------------------------


def test_a_managed_key_approves_and_its_identity_limits_and_usage_apply(
    flow: Flow, http: httpx.Client, store_file: Path
) -> None:
    store = f"sqlite:///{store_file}"
    made = keys_cli(store, "create", "--name", "connector", "--rpm", "3")
    tokens = flow.tokens(made["key"])
    answers = [mcp_call(http, tokens["access_token"]).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]  # the key's own rate, not the service default
    totals = usage_totals(store, made["id"], lambda t: t.get("refused", 0) > 0)
    assert (totals["requests"], totals["refused"]) == (3, 1)


def test_revoking_the_key_ends_the_connection(
    flow: Flow, http: httpx.Client, store_file: Path
) -> None:
    store = f"sqlite:///{store_file}"
    made = keys_cli(store, "create", "--name", "to-revoke")
    tokens = flow.tokens(made["key"])
    assert mcp_call(http, tokens["access_token"]).status_code == 200
    keys_cli(store, "revoke", made["id"])
    refused = mcp_call(http, tokens["access_token"])
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert flow.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    # And a revoked key approves nothing.
    again = Flow(http, flow.base)
    assert again.register().status_code == 201
    assert again.consent(made["key"]).status_code == 403


def test_a_key_without_the_mcp_connectors_cannot_approve(flow: Flow, store_file: Path) -> None:
    made = keys_cli(f"sqlite:///{store_file}", "create", "--name", "chat", "--scopes", "openai")
    assert flow.register().status_code == 201
    answer = flow.consent(made["key"])
    assert answer.status_code == 403
    assert "location" not in answer.headers


# --- races ------------------------------------------------------------------------------


def _at_once(calls: list[Any]) -> list[httpx.Response]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_two_approvals_of_one_request_give_one_code(flow: Flow, server: LiveServer) -> None:
    assert flow.register().status_code == 201
    page = flow.http.get(flow.authorize().headers["location"])
    form = {**form_fields(page.text), "key": SECRET, "decision": "approve"}

    def approve() -> httpx.Response:
        with httpx.Client(base_url=server.base_url) as own:
            return own.post("/oauth/consent", data=form)

    answers = _at_once([approve] * 4)
    assert sorted(a.status_code for a in answers) == [303, 400, 400, 400]


def test_two_redemptions_of_one_code_give_one_token(flow: Flow, server: LiveServer) -> None:
    assert flow.register().status_code == 201
    code = flow.code(SECRET)

    def redeem() -> httpx.Response:
        with httpx.Client(base_url=server.base_url) as own:
            return Flow(
                own,
                flow.base,
                client_id=flow.client_id,
                verifier=flow.verifier,
                client_secret=flow.client_secret,
            ).exchange(code)

    # At most one token. Zero is right too: a redemption that sees the code already used
    # ends its family (RFC 6749 4.1.2), which can happen while the winner is still issuing.
    answers = _at_once([redeem] * 4)
    statuses = sorted(a.status_code for a in answers)
    assert statuses in ([200, 400, 400, 400], [400, 400, 400, 400])
    assert all(a.json()["error"] == "invalid_grant" for a in answers if a.status_code == 400)


def test_an_unreadable_stored_secret_is_an_outage_not_a_wrong_key() -> None:
    # A connection approved with the static secret must survive an SSM outage: the check
    # raises (the routes answer 503) instead of finding no secret and ending the family.
    from types import SimpleNamespace

    from app.callers import STATIC_SUBJECT
    from app.errors import CredentialsUnavailable
    from app.oauth.identity import GateIdentities, Grantee

    async def unreadable() -> tuple[bytes, ...]:
        raise CredentialsUnavailable()

    gate = SimpleNamespace(credentials=SimpleNamespace(bearer_secrets=unreadable))
    identities = GateIdentities(gate, ["podcasts"])  # type: ignore[arg-type]
    with pytest.raises(CredentialsUnavailable):
        asyncio.run(identities.identify("a-static-secret-of-enough-length"))
    with pytest.raises(CredentialsUnavailable):
        asyncio.run(identities.caller(Grantee(STATIC_SUBJECT, "0" * 64)))
