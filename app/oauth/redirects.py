"""Which redirect URIs a client may register: an allowlist, checked at registration.

Dynamic client registration is open (ChatGPT and Claude register themselves), so the
redirect URI is what keeps a code from reaching a stranger: PKCE does not help when the
stranger registered the client and holds the verifier. By default only the callbacks of
ChatGPT and Claude are allowed; `OAUTH_REDIRECT_URIS` adds more (e.g. a loopback callback
for Claude Code or the MCP Inspector). An entry matches exactly, except that `*` may stand
for a port (`http://127.0.0.1:*/callback`) or for one whole path segment
(`https://chatgpt.com/connector/oauth/*`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["DEFAULT_REDIRECT_URIS", "RedirectPolicy", "check_redirect_pattern"]

DEFAULT_REDIRECT_URIS = (
    "https://claude.ai/api/mcp/auth_callback",
    "https://claude.com/api/mcp/auth_callback",
    "https://chatgpt.com/connector_platform_oauth_redirect",
    "https://chatgpt.com/connector/oauth/*",
)
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_SEGMENT = r"[A-Za-z0-9._~-]{1,128}"


def check_redirect_pattern(entry: str) -> str:
    """`entry` if it may be an allowlist entry (HTTPS, or HTTP on a loopback host; no query,
    fragment or user info; `*` only as a port or a whole path segment); ValueError if not."""
    probe = entry.replace(":*/", ":1/").replace("/*", "/x")
    parts = urlsplit(probe)
    host = (parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc).lower()
    if parts.scheme not in ("https", "http") or not parts.netloc or "@" in parts.netloc:
        raise ValueError("redirect URIs must be https:// (or http:// on a loopback host)")
    if parts.scheme == "http" and host not in _LOOPBACK:
        raise ValueError("an http:// redirect URI must be on 127.0.0.1, localhost or [::1]")
    if parts.query or parts.fragment or "*" in probe:
        raise ValueError("a redirect URI has no query or fragment; * stands for a port or segment")
    return entry


def _pattern(entry: str) -> re.Pattern[str]:
    scheme, _, rest = entry.partition("://")
    netloc, slash, path = rest.partition("/")
    any_port = netloc.endswith(":*")
    origin = re.escape(f"{scheme}://{netloc.removesuffix(':*')}") + (
        r":\d{1,5}" if any_port else ""
    )
    segments = "/".join(_SEGMENT if part == "*" else re.escape(part) for part in path.split("/"))
    return re.compile(origin + re.escape(slash) + segments)


class RedirectPolicy:
    """The allowlist: the defaults plus `extra` (each checked by `check_redirect_pattern`)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.entries = tuple(DEFAULT_REDIRECT_URIS) + tuple(
            check_redirect_pattern(e) for e in extra
        )
        self._patterns = tuple(_pattern(entry) for entry in self.entries)

    def allows(self, uri: str) -> bool:
        """True when `uri` matches an entry in full (nothing before or after it)."""
        return any(pattern.fullmatch(uri) for pattern in self._patterns)
