"""Turning upstream markup into short plain text a model can quote."""

from __future__ import annotations

import html
import re

__all__ = ["plain_text", "truncate"]

_INVISIBLE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(
    r"<\s*/?\s*(?:br|p|div|li|ul|ol|h[1-6]|tr|table|blockquote|section|article)\b[^>]*>",
    re.IGNORECASE,
)
_TAG = re.compile(r"<[^>]*>|<!--.*?-->", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_NEWLINES = re.compile(r"\s*\n\s*")
_ELLIPSIS = "…"


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a word boundary when one is near, with '…'."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + _ELLIPSIS


def plain_text(markup: str, limit: int) -> str:
    """Markup and entities removed, white space folded, at most `limit` characters."""
    if "<" in markup:
        markup = _INVISIBLE.sub(" ", markup)
        markup = _BREAK.sub("\n", markup)
        markup = _TAG.sub("", markup)  # inline tags (b, a, span) sit inside words
    if "&" in markup:
        markup = html.unescape(markup)
    text = _CONTROL.sub("", markup)
    text = _SPACES.sub(" ", text)
    text = _NEWLINES.sub("\n", text).strip()
    return truncate(text, limit)
