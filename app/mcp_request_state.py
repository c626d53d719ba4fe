"""The MCP SDK's `requestState` protection, without the `cryptography` package.

`requestState` (MCP 2026-07-28) is the opaque value a server hands back with an
`input_required` result, for the client to echo on its next call. Our tools never ask for
input, so this service never mints one, and any echoed value is not ours. The SDK still
builds an AES-GCM codec under a per-process key when it is given none, and its module
`mcp.server.request_state` imports `cryptography` (14 MB, most of the Lambda zip) at the top.

So where `cryptography` is not installed (the Lambda bundle leaves it out, see
infra/bundle.py), `stand_in_for_cryptography()` registers stand-ins for the four names that
module takes, before anything imports the SDK; and `refusing_policy()` gives the server a
codec that refuses every echoed value (the SDK answers -32602 "Invalid or expired
requestState") and never seals, so the stand-ins are never used. A per-process key would
be wrong on Lambda anyway: another instance could not read the state it sealed.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any, NoReturn

__all__ = ["refusing_policy", "stand_in_for_cryptography"]

# What mcp.server.request_state imports from cryptography, by module.
_NAMES = {
    "cryptography.exceptions": ("InvalidTag",),
    "cryptography.hazmat.primitives.ciphers.aead": ("AESGCM",),
    "cryptography.hazmat.primitives.hashes": ("SHA256",),
    "cryptography.hazmat.primitives.kdf.hkdf": ("HKDF",),
}


class _Missing:
    """Stands in for a cryptography class: using it is a bug, and says so."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            "cryptography is not installed (the Lambda bundle leaves it out); the MCP "
            "server must be built with app.mcp_request_state.refusing_policy()"
        )


class _InvalidTag(Exception):
    """Stands in for cryptography.exceptions.InvalidTag (only ever caught, never raised)."""


def stand_in_for_cryptography() -> bool:
    """If `cryptography` is not installed, register stand-ins for the names the SDK's
    `mcp.server.request_state` imports from it (only those modules: `import cryptography`
    still fails plainly). Call it before anything imports the SDK. True if it did."""
    if importlib.util.find_spec("cryptography") is not None:
        return False
    for module_name, names in _NAMES.items():
        if module_name in sys.modules:
            continue
        module = ModuleType(module_name, "stand-in: app.mcp_request_state")
        for name in names:
            setattr(module, name, _InvalidTag if name == "InvalidTag" else _Missing)
        sys.modules[module_name] = module
    return True


class _RefusingCodec:
    """A `RequestStateCodec` for a server that never asks for input: nothing echoed back
    can be its own, so every value is refused; sealing is a bug and fails closed."""

    def seal(self, payload: bytes) -> NoReturn:
        raise RuntimeError("this server never returns input_required, so never seals state")

    def unseal(self, token: str) -> NoReturn:
        from mcp.server.request_state import InvalidRequestState

        raise InvalidRequestState("this server never issues requestState")


def refusing_policy() -> Any:
    """The SDK's `RequestStateSecurity` with the codec that refuses every echoed value."""
    from mcp.server.request_state import RequestStateSecurity

    return RequestStateSecurity(codec=_RefusingCodec())
