"""The consent page: the person approving a connector pastes a key of theirs.

GET shows who is asking (the client's self-chosen name, marked as such, and the host the
answer goes back to, which the allowlist vouches for), what it gets, and a form for a key.
POST checks the form's CSRF token and the key; a right key ends the pending request and
sends the browser back to the client with a single-use code; a wrong one answers 403 with
no code, and counts against the address (`attempts.py`) and the request (5 tries).

Every answer carries `Cache-Control: no-store`, `frame-ancestors 'none'` (and
`X-Frame-Options: DENY`), no referrer, and a CSP allowing only its own inline style (by
nonce) and form posts to itself and to the client's callback. Nothing the client chose is
shown unescaped; the key is only ever in a POST body, never in a URL or a log.
"""

from __future__ import annotations

import functools
import hmac
import html
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from app.errors import ServiceError
from app.oauth.grants import digest
from app.oauth.records import Pending
from app.store import StoreUnavailable

if TYPE_CHECKING:
    from app.oauth.server import OAuthServer

__all__ = ["CONSENT_PATH", "consent_page", "consent_submit"]

log = logging.getLogger("app.oauth")

CONSENT_PATH = "/oauth/consent"
MAX_FAILURES = 5
_MAX_FORM = 16 * 1024
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")
_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}.host{font-weight:600;font-family:monospace;background:#f3f3f3;padding:0 .3rem}
.error{color:#a00;font-weight:600}input[type=password]{width:100%;padding:.5rem;font-size:1rem}
button{padding:.5rem 1.2rem;font-size:1rem;margin:1rem .5rem 0 0}small{color:#666}
"""


def _server(request: Request) -> OAuthServer:
    server: OAuthServer = request.app.state.oauth
    return server


def _headers(nonce: str, redirect_uri: str | None) -> dict[str, str]:
    target = ""
    if redirect_uri:
        parts = urlsplit(redirect_uri)
        origin = f"{parts.scheme}://{parts.netloc}"
        target = f" {origin}" if _ORIGIN.match(origin) else ""
    return {
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'{target}; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
    }


def _page(status: int, title: str, body: str, redirect_uri: str | None = None) -> Response:
    nonce = secrets.token_urlsafe(16)
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<title>{html.escape(title)}</title><style nonce="{nonce}">{_STYLE}</style></head>'
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=_headers(nonce, redirect_uri))


def _gone() -> Response:
    return _page(
        400,
        "This request has expired",
        "<p>This approval request has expired or was already used. Start again from the "
        "app that sent you here.</p>",
    )


def _form(handle: str, csrf: str, pending: Pending, host: str, error: str = "") -> str:
    client = urlsplit(pending.redirect_uri)
    name = html.escape(pending.client_name or "An unnamed client")
    scopes = html.escape(" ".join(pending.scopes) or "mcp")
    notice = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return (
        f"<p><strong>{name}</strong> <small>(the name it gave itself)</small> asks to use "
        f'the tools of <span class="host">{html.escape(host)}</span> on your behalf.</p>'
        f'<p>If you approve, you go back to <span class="host">'
        f"{html.escape(client.netloc)}</span>. Approve only if you started this there.</p>"
        f"<p><small>Access: {scopes}. Its calls count against the key you paste, and "
        "revoking that key ends this access.</small></p>"
        f"{notice}"
        '<form method="post" autocomplete="off">'
        f'<input type="hidden" name="request" value="{html.escape(handle)}">'
        f'<input type="hidden" name="csrf" value="{html.escape(csrf)}">'
        '<label for="key">Your key for this service (a managed key, or the service '
        "secret). It is checked here and never sent to the client.</label>"
        '<input type="password" id="key" name="key" autofocus>'
        '<button type="submit" name="decision" value="approve">Approve</button>'
        '<button type="submit" name="decision" value="deny">Deny</button>'
        "</form>"
    )


def _with_query(uri: str, **params: str | None) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(name, value) for name, value in params.items() if value is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _host(request: Request) -> str:
    return urlsplit(_server(request).public_issuer(request)).netloc


def _unavailable(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    # The store (or the key check) cannot answer: a page saying so, never a half decision.
    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except (StoreUnavailable, ServiceError):
            return _page(503, "Try again shortly", "<p>This service cannot check keys now.</p>")

    return guarded


@_unavailable
async def consent_page(request: Request) -> Response:
    """GET: the form for the pending request named by `?request=`."""
    server = _server(request)
    handle = request.query_params.get("request", "")
    # Taken and put back: while one request holds it, no other can act on it (and none can
    # bring back a request that was just approved).
    pending = await server.grants.close_consent(handle) if handle else None
    if pending is None:
        return _gone()
    csrf = secrets.token_urlsafe(32)
    pending.csrf = digest(csrf)
    await server.grants.save_pending(handle, pending)
    body = _form(handle, csrf, pending, _host(request))
    return _page(200, "Approve a connection?", body, pending.redirect_uri)


async def _fields(request: Request) -> dict[str, str] | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            return None
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


@_unavailable
async def consent_submit(request: Request) -> Response:
    """POST: approve with a key, or deny."""
    server = _server(request)
    fields = await _fields(request)
    if fields is None:
        return _page(413, "Too large", "<p>That form was too large.</p>")
    address = request.client.host if request.client else "unknown"
    now = server.grants.clock()
    if await server.wrong_keys.blocked(address, now):
        return _page(429, "Too many wrong keys", "<p>Too many wrong keys. Try again later.</p>")
    handle = fields.get("request", "")
    # Taken for the time of this decision: a concurrent submission finds nothing to act on.
    pending = await server.grants.close_consent(handle) if handle else None
    if pending is None:
        return _gone()
    presented = digest(fields.get("csrf", ""))
    if not pending.csrf or not hmac.compare_digest(presented, pending.csrf):
        await server.grants.save_pending(handle, pending)
        return _page(403, "This form is stale", "<p>Reload the page and try again.</p>")
    if fields.get("decision") == "deny":
        target = _with_query(pending.redirect_uri, error="access_denied", state=pending.state)
        return RedirectResponse(
            target, status_code=303, headers=_headers("x", pending.redirect_uri)
        )
    grantee = await server.identities.identify(fields.get("key", ""))
    if grantee is None:
        await server.wrong_keys.record(address, now)
        pending.failures += 1
        log.warning(
            "oauth consent refused: wrong key",
            extra={"fields": {"event": "oauth_consent_refused", "client_id": pending.client_id}},
        )
        if pending.failures >= MAX_FAILURES:  # not put back: this request is over
            return _page(403, "Not approved", "<p>Too many wrong keys. Start again.</p>")
        csrf = secrets.token_urlsafe(32)
        pending.csrf = digest(csrf)
        await server.grants.save_pending(handle, pending)
        body = _form(handle, csrf, pending, _host(request), "That key is not accepted here.")
        return _page(403, "Approve a connection?", body, pending.redirect_uri)
    code = await server.grants.approve(pending, grantee)
    log.info(
        "oauth consent approved",
        extra={
            "fields": {
                "event": "oauth_consent_approved",
                "client_id": pending.client_id,
                "key_id": grantee.subject,
                "redirect_host": urlsplit(pending.redirect_uri).netloc,
            }
        },
    )
    target = _with_query(pending.redirect_uri, code=code, state=pending.state)
    return RedirectResponse(target, status_code=303, headers=_headers("x", pending.redirect_uri))
