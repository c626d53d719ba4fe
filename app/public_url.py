"""The public base URL of this service, for every absolute URL it publishes."""

from __future__ import annotations

import re

from starlette.requests import Request

from app.settings import CoreSettings as Settings

__all__ = ["public_base_url"]

_HOST = re.compile(
    r"^(?:[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$"
)


def public_base_url(request: Request, settings: Settings) -> str:
    """`PUBLIC_BASE_URL` when set; otherwise scheme, host and mount prefix of this request.

    The scheme comes from `X-Forwarded-Proto` (first value, http or https only) since TLS
    usually ends at a proxy; the host from `Host`, ignored unless it is a well-formed host;
    the prefix from the ASGI `root_path` (e.g. an API Gateway stage). No trailing slash.
    """
    if settings.public_base_url is not None:
        return str(settings.public_base_url).rstrip("/")
    scheme = request.url.scheme
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if forwarded in ("http", "https"):
        scheme = forwarded
    host = request.headers.get("host", "")
    if not _HOST.match(host):
        host = _server_address(request)
    if (scheme, host.rpartition(":")[2]) in (("https", "443"), ("http", "80")):
        host = host.rpartition(":")[0]
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return f"{scheme}://{host}{root}"


def _server_address(request: Request) -> str:
    # No usable Host: the socket's own address, its port dropped when it is the default
    # for the connection's scheme (a TLS proxy in front makes it meaningless anyway).
    server = request.scope.get("server")
    if not server:
        return "localhost"
    name, port = server[0], server[1]
    default = 443 if request.url.scheme == "https" else 80
    return str(name) if port in (None, default) else f"{name}:{port}"
