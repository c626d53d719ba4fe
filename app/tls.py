"""The process's one TLS client context, built on first use and only for https URLs.

Loading certifi's CA bundle into a context costs about 15 ms (measured on a Lambda-sized
process, bench/cold_start.py), once per context. Every client of the process (DynamoDB,
the upstreams) shares this one, and a plain-http URL (a local DynamoDB, a loopback test
server) never builds it. Trust is what httpx's default was: certifi's bundle, no
`SSL_CERT_FILE` or other environment (the clients run with `trust_env=False`).
"""

from __future__ import annotations

import ssl
import threading

__all__ = ["client_context", "context_for"]

_lock = threading.Lock()
_context: ssl.SSLContext | None = None


def client_context() -> ssl.SSLContext:
    """The shared verifying context (certifi's CAs, host names checked), built once."""
    global _context
    with _lock:  # the CLI and tests may build clients from several threads
        if _context is None:
            import certifi  # lazy: only a process that makes a TLS connection needs it

            _context = ssl.create_default_context(cafile=certifi.where())
        return _context


def context_for(url: str) -> ssl.SSLContext:
    """The context for a client of `url`: the shared one for https; for any other scheme
    one that trusts no certificate at all (it is never used for plain http, and fails
    closed should it ever be), without loading the CA bundle."""
    if url.lower().startswith("https:"):
        return client_context()
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, against no CA: refuses all
