"""Turning upstream markup into short plain text a model can quote.

This runs for every title and description of every answer (about 30 strings a search),
so it is written for speed: plain strings take a fast path of C-level checks, and long
markup is cut to a bound before it is cleaned, since only `limit` characters survive.

Upstream text is untrusted, so every step is linear in its input: each pattern either
cannot backtrack (possessive quantifiers) or cannot cross a `<` (so the spans it scans
from successive `<` never overlap), and unclosed blocks are found with `str.find`.
tests/test_text.py holds the adversarial inputs and a straightforward oracle.

The result is plain text, never markup: entities are decoded once, and a `<` that would
open a tag in HTML or Markdown (before a letter, `/`, `!` or `?`) becomes `‹`, whether
it came from the upstream's markup or from decoding `&lt;`.
"""

from __future__ import annotations

import html
import re

__all__ = ["EMAIL_REMOVED", "plain_text", "truncate"]

# Openings of blocks whose content is not text; their ends are found with str.find.
_HIDDEN_OPEN = re.compile(r"<!--|<(?:script|style)\b", re.IGNORECASE)
_HIDDEN_CLOSE = {"<!--": "-->", "<script": "</script", "<style": "</style"}
_BREAK = re.compile(
    r"<\s*+/?+\s*+(?:br|p|div|li|ul|ol|h[1-6]|tr|table|blockquote|section|article)\b[^<>]*+>",
    re.IGNORECASE,
)
_TAG = re.compile(r"<[^<>]*+>")
_TAG_OPENER = re.compile(r"<(?=[A-Za-z/!?])")
# Control characters vanish, except the white space ones (\t \n \v \f \r) that
# str.split() folds.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
# An email address: a local part that starts after a character it cannot contain (so a
# long run of word characters is tried once, not from each of its positions), `@`, and a
# domain; possessive, so nothing backtracks. Addresses are private: they never reach a model.
_EMAIL = re.compile(r"(?<![\w.+%-])[\w.+%-]++@[\w-]++(?:\.[\w-]++)*+")
EMAIL_REMOVED = "[email removed]"
_ELLIPSIS = "…"
_INERT_LT = "‹"
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


def _drop_hidden(markup: str) -> str:
    """Comments, scripts and styles removed; one left open runs to the end, as in a browser."""
    kept: list[str] = []
    lowered = markup.lower()
    position = 0
    while (found := _HIDDEN_OPEN.search(markup, position)) is not None:
        kept.append(markup[position : found.start()])
        closer = _HIDDEN_CLOSE[found.group().lower()]
        end = lowered.find(closer, found.end())
        if end < 0:
            return "".join(kept)
        position = end + len(closer)
        if closer != "-->":  # `</script ...>`: skip to the end of the closing tag
            gt = markup.find(">", position)
            position = len(markup) if gt < 0 else gt + 1
        kept.append(" ")
    kept.append(markup[position:])
    return "".join(kept)


def _drop_open_tag_at_end(markup: str) -> str:
    start = markup.rfind("<")
    return markup[:start] if start >= 0 and ">" not in markup[start:] else markup


def plain_text(markup: str, limit: int) -> str:
    """Markup, entities and email addresses removed (each address becomes `EMAIL_REMOVED`),
    white space folded, at most `limit` characters."""
    if len(markup) > limit * _SLACK:
        markup = _drop_open_tag_at_end(markup[: limit * _SLACK])
    if (
        markup.isprintable()
        and "<" not in markup
        and "&" not in markup
        and "  " not in markup
        and "@" not in markup
    ):
        return truncate(markup.strip(), limit)  # already plain: titles, names, most text
    if "<" in markup:
        markup = _drop_hidden(markup)
        markup = _BREAK.sub("\n", markup)
        markup = _TAG.sub("", markup)  # inline tags (b, a, span) sit inside words
    if "&" in markup:
        markup = html.unescape(markup)
    if "<" in markup:
        markup = _TAG_OPENER.sub(_INERT_LT, markup)
    if "@" in markup:  # after decoding, so `hello&#64;example.com` is caught too
        markup = _EMAIL.sub(EMAIL_REMOVED, markup)
    lines = _CONTROL.sub("", markup).replace("\r\n", "\n").split("\n")
    text = "\n".join(folded for line in lines if (folded := " ".join(line.split())))
    return truncate(text, limit)
