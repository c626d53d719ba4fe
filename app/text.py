"""Turning upstream markup into short plain text a model can quote.

This runs for every title and description of every answer (about 30 strings a search),
so it is written for speed: plain strings take a fast path of C-level checks, and long
markup is cut to a bound before it is cleaned, since only `limit` characters survive.
"""

from __future__ import annotations

import html
import re

__all__ = ["plain_text", "truncate"]

_INVISIBLE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(
    r"<\s*/?\s*(?:br|p|div|li|ul|ol|h[1-6]|tr|table|blockquote|section|article)\b[^>]*>",
    re.IGNORECASE,
)
_TAG = re.compile(r"<!--.*?-->|<[^>]*>", re.DOTALL)
_OPEN_TAG_AT_END = re.compile(r"<[^>]*$")
# Control characters vanish, except the white space ones (\t \n \v \f \r) that
# str.split() folds.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_ELLIPSIS = "…"
_SLACK = 10  # markup kept before cleaning, in multiples of `limit`


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
    if len(markup) > limit * _SLACK:
        markup = _OPEN_TAG_AT_END.sub("", markup[: limit * _SLACK])
    if markup.isprintable() and "<" not in markup and "&" not in markup and "  " not in markup:
        return truncate(markup.strip(), limit)  # already plain: titles, names, most text
    if "<" in markup:
        markup = _INVISIBLE.sub(" ", markup)
        markup = _BREAK.sub("\n", markup)
        markup = _TAG.sub("", markup)  # inline tags (b, a, span) sit inside words
    if "&" in markup:
        markup = html.unescape(markup)
    lines = _CONTROL.sub("", markup).replace("\r\n", "\n").split("\n")
    text = "\n".join(folded for line in lines if (folded := " ".join(line.split())))
    return truncate(text, limit)
