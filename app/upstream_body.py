"""An upstream answer's body: read whole with a size cap, inflated in bounded steps.

Both network transports hand the body over as it came on the wire (httpx's `aiter_raw()`,
aiohttp with `auto_decompress=False`) and `read_capped` decodes `Content-Encoding`
itself, counting inflated bytes against the cap as they are made. A small gzip body of a
gigabyte of spaces therefore stops at the cap (a few MB of memory), where inflating it
first and measuring after would hold all of it.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, AsyncIterator

import httpx

__all__ = ["BodyTooLarge", "decoded", "read_capped"]

_STEP = 64 * 1024  # inflated bytes made at a time by `decoded`


class BodyTooLarge(httpx.ReadError):
    """The upstream's answer was larger than the cap (`MAX_UPSTREAM_BYTES` by default)."""


async def read_capped(
    chunks: AsyncIterable[bytes],
    declared: int | None,
    max_body: int,
    encoding: str | None = None,
) -> bytes:
    """The whole body from `chunks`, decoded, or `BodyTooLarge` as soon as it exceeds
    `max_body`.

    `declared` (Content-Length, of the bytes on the wire) refuses early. `encoding` is the
    answer's Content-Encoding: absent or `identity`, the chunks are the body; `gzip` or
    `deflate`, they are inflated here and the cap counts inflated bytes; anything else
    (or a corrupt stream) raises `httpx.DecodingError`.
    """
    if declared is not None and declared > max_body:
        raise BodyTooLarge(f"declared {declared} bytes, more than {max_body}")
    inflated = (encoding or "identity").strip().lower() != "identity"
    kept: list[bytes] = []
    size = 0
    async for piece in decoded(chunks, encoding):  # inflated at most 64 KiB at a time
        size += len(piece)
        if size > max_body:
            raise BodyTooLarge(f"more than {max_body} bytes" + (" once inflated" * inflated))
        kept.append(piece)
    return b"".join(kept)


def _inflater(coding: str) -> zlib._Decompress:
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise httpx.DecodingError(f"unsupported Content-Encoding {coding[:40]!r}")


async def decoded(chunks: AsyncIterable[bytes], encoding: str | None) -> AsyncIterator[bytes]:
    """`chunks` as they come, with `encoding` (Content-Encoding) undone: for a relay, which
    has no cap on the whole body. `gzip` and `deflate` are inflated at most 64 KiB at a time,
    so whoever stops reading early (a cap of its own) never holds a bomb's inflated whole;
    absent or `identity`, the chunks pass as they are; anything else raises
    `httpx.DecodingError`."""
    coding = (encoding or "identity").strip().lower()
    if coding == "identity":
        async for chunk in chunks:
            yield chunk
        return
    inflater = _inflater(coding)
    started = False
    async for chunk in chunks:
        data = chunk
        while data:
            try:
                piece = inflater.decompress(data, _STEP)
            except zlib.error as error:
                if coding != "deflate" or started:
                    raise httpx.DecodingError(f"corrupt {coding} body") from error
                # "deflate" is zlib-wrapped by the standard; some servers send it raw.
                inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                started = True
                continue
            started = True
            data = inflater.unconsumed_tail
            if piece:
                yield piece
