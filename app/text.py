"""Turning upstream markup into short plain text a model can quote.

This runs for every title and description of every answer (about 30 strings a search),
so it is written for speed: plain strings take a fast path of C-level checks, and long
markup is cleaned a prefix at a time, since only `limit` characters survive.

The prefix is provably sufficient, so the answer is exactly that of cleaning the whole
text: cut where no tag and no entity is split (an open tag at the cut is dropped, and so
is a trailing `&...` an entity could still extend), cleaning a prefix yields a prefix of
the whole text's cleaning, except its very last character (a `<` that the next one would
turn into `‹`). Once that holds `limit + 2` characters, `truncate` reads only characters
the whole text shares; shorter, the prefix doubles, so the work stays linear in the input.

Upstream text is untrusted, so every step is linear in its input: each pattern either
cannot backtrack (possessive quantifiers) or cannot cross a `<` (so the spans it scans
from successive `<` never overlap), and unclosed blocks are found with `str.find`.
tests/test_text.py holds the adversarial inputs and a straightforward oracle, against
which this cleaner is fuzzed.

The result is plain text, never markup: entities are decoded once, and a `<` that would
open a tag in HTML or Markdown (before a letter, `/`, `!` or `?`) becomes `‹`, whether
it came from the upstream's markup or from decoding `&lt;`.
"""

from __future__ import annotations

import html
import re

__all__ = ["plain_text", "truncate"]

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
_ELLIPSIS = "…"
_INERT_LT = "‹"
# Cleaning a prefix gives a prefix of the whole text's cleaning but for this many last
# characters (see the module docstring). A step whose effect at the cut reaches further
# back (e.g. one that removes whole words) must raise it.
_UNSTABLE_TAIL = 1


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
    found = _HIDDEN_OPEN.search(markup)
    if found is None:  # the common case: no copy, no lower-casing
        return markup
    kept: list[str] = []
    lowered = markup.lower()
    position = 0
    while found is not None:
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
        found = _HIDDEN_OPEN.search(markup, position)
    kept.append(markup[position:])
    return "".join(kept)


def _drop_open_tag_at_end(markup: str) -> str:
    start = markup.rfind("<")
    return markup[:start] if start >= 0 and ">" not in markup[start:] else markup


# What ends an entity reference for html.unescape: after the last `&` of a prefix, none of
# these means the entity may go on past the cut.
_ENTITY_END = re.compile(r"[\t\n\f <&;]")


def _drop_open_entity_at_end(text: str) -> str:
    start = text.rfind("&")
    if start < 0 or _ENTITY_END.search(text, start + 1) is not None:
        return text
    return text[:start]


def _clean(markup: str, *, prefix: bool) -> str:
    """`markup` as plain text, folded, not truncated. `prefix`: markup is a cut of a longer
    text, so a tag or an entity the cut may have split is left out."""
    if prefix:
        markup = _drop_open_tag_at_end(markup)
    if "<" in markup:
        markup = _drop_hidden(markup)
        markup = _BREAK.sub("\n", markup)
        markup = _TAG.sub("", markup)  # inline tags (b, a, span) sit inside words
    if "&" in markup:
        if prefix:
            markup = _drop_open_entity_at_end(markup)
        markup = html.unescape(markup)
    # Decoded text: a step on it (such as removing e-mail addresses) goes here.
    if "<" in markup:
        markup = _TAG_OPENER.sub(_INERT_LT, markup)
    markup = _CONTROL.sub("", markup)
    if "\n" not in markup:
        return " ".join(markup.split())
    lines = markup.replace("\r\n", "\n").split("\n")
    return "\n".join(folded for line in lines if (folded := " ".join(line.split())))


def plain_text(markup: str, limit: int) -> str:
    """Markup and entities removed, white space folded, at most `limit` characters."""
    if "<" not in markup and "&" not in markup and "  " not in markup and markup.isprintable():
        return truncate(markup.strip(), limit)  # already plain: titles, names, most text
    size = 2 * limit + 64  # enough for most descriptions' markup at once
    while size < len(markup):
        text = _clean(markup[:size], prefix=True)
        if len(text) >= limit + 1 + _UNSTABLE_TAIL:
            return truncate(text, limit)
        size *= 2
    return truncate(_clean(markup, prefix=False), limit)
