"""Turning upstream markup into short plain text a model can quote.

This runs for every title and description of every answer (about 30 strings a search),
so it is written for speed: plain strings take a fast path of C-level checks, common
text skips the steps it needs none of (decoding the usual entities, folding single-spaced
lines), and long markup is cleaned a prefix at a time, since only `limit` characters
survive.

The prefix is sufficient, so the answer is exactly that of cleaning the whole text: once
what the cut may have split is left out (a comment, script or style still open; a `<`
still open once the breaks are gone; a trailing `&...` an entity could still extend) and
the last word is dropped (what follows could change it, e.g. an email address it starts),
cleaning a prefix yields a prefix of the whole text's cleaning, except its very last
character (a `<` that the next one would turn into `‹`). Once that holds `limit + 2`
characters, `truncate` reads only characters the whole text shares; shorter, the prefix
grows by half at least (to what its ratio of text to markup suggests), so the work stays
linear in the input. tests/test_text.py checks this against a straightforward
whole-text cleaner (hypothesis, and seeded realistic and hostile inputs).

Upstream text is untrusted, so every step is linear in its input: each pattern either
cannot backtrack (possessive quantifiers) or cannot cross a `<` (so the spans it scans
from successive `<` never overlap), and each block's end is searched for once, from its
opening on.
tests/test_text.py holds the adversarial inputs, with a time bound.

The result is plain text, never markup: entities are decoded once, and a `<` that would
open a tag in HTML or Markdown (before a letter, `/`, `!` or `?`) becomes `‹`, whether
it came from the upstream's markup or from decoding `&lt;`.
"""

from __future__ import annotations

import html
import re

__all__ = ["EMAIL_REMOVED", "plain_text", "truncate"]

# Tag names are matched ignoring ASCII case only (`(?ai:...)`), as browsers do: under
# Unicode rules `ſ` (U+017F) is an `s` and `ı` (U+0131) an `i`, so `<ſcript>` would open a
# block that no closer of that name is known for.
# Openings of blocks whose content is not text, and what ends each (searched from the
# opening on: a literal prefix, so the search is a scan).
_HIDDEN_OPEN = re.compile(r"<!--|<(?ai:script|style)\b")
_HIDDEN_CLOSE = {
    "<!--": re.compile("-->"),
    "<script": re.compile("</(?ai:script)"),
    "<style": re.compile("</(?ai:style)"),
}
_BREAK = re.compile(
    r"<\s*+/?+\s*+(?ai:p|br|li|div|ul|ol|h[1-6]|tr|table|blockquote|section|article)\b"
    r"[^<>]*+>"
)
_TAG = re.compile(r"<[^<>]*+>")
_TAG_OPENER = re.compile(r"<(?=[A-Za-z/!?])")
# Control characters vanish, except the white space ones (\t \n \v \f \r) that
# str.split() folds.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
# An email address: a local part that starts after a character it cannot contain (so a
# long run of word characters is tried once, not from each of its positions), `@`, and a
# domain; possessive, so nothing backtracks. Addresses are private: they never reach a model.
_DOMAIN = r"[\w-]++(?:\.[\w-]++)*+"
_EMAIL = re.compile(rf"(?<![\w.+%-])[\w.+%-]++@{_DOMAIN}")
# What follows the `@` of an address whose local part is one word (`_remove_emails`).
_EMAIL_DOMAIN = re.compile(_DOMAIN)
# Every character an address can hold: an address lies within one run of these, and the
# pattern matches a run alone exactly as it does in its text (`_remove_emails`).
_RUN = re.compile(r"[\w.+%@-]*+")
EMAIL_REMOVED = "[email removed]"
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


def _hidden_blocks(markup: str) -> list[tuple[int, int]]:
    """Where comments, scripts and styles lie, as (start, end) spans; one left open (no
    closer, or a closing tag with no `>`) runs to the end, as in a browser."""
    found = _HIDDEN_OPEN.search(markup)
    spans: list[tuple[int, int]] = []
    while found is not None:
        opening = found.group().lower()  # ASCII: the pattern matched ASCII letters only
        closer = _HIDDEN_CLOSE[opening].search(markup, found.end())
        if closer is None:
            spans.append((found.start(), len(markup)))
            break
        position = closer.end()
        if opening != "<!--":  # `</script ...>`: skip to the end of the closing tag
            gt = markup.find(">", position)
            if gt < 0:
                spans.append((found.start(), len(markup)))
                break
            position = gt + 1
        spans.append((found.start(), position))
        found = _HIDDEN_OPEN.search(markup, position)
    return spans


def _drop_hidden(markup: str, spans: list[tuple[int, int]]) -> str:
    """`markup` with the `spans` of `_hidden_blocks` replaced by a space (none left open)."""
    kept: list[str] = []
    position = 0
    for start, end in spans:
        kept.append(markup[position:start])
        if end < len(markup):
            kept.append(" ")
        position = end
    kept.append(markup[position:])
    return "".join(kept)


def _remove_emails(text: str) -> str:
    """`_EMAIL.sub(EMAIL_REMOVED, text)`, applied only to the runs of address characters
    around each `@`: a text's other words cost nothing, where the pattern alone tries each
    of their positions. Exact: a match never leaves its run, and the character before a
    run (none, or one outside it) passes the look-behind alike.

    The common address, a one-word local part after a space with no other `@` before the
    next space, skips finding its run: the pattern can only match from the word's start,
    so matching the domain after the `@` decides it (1.2 -> 0.7 us for a 180-character
    description with one address). Any other `@` takes its whole run, found forwards in
    `text` and backwards in the reverse of only what lies between it and the text done."""
    at = text.find("@")
    if at < 0:
        return text
    kept: list[str] = []
    position = 0  # text[:position] is done; the run around `at` starts at or after it
    while at >= 0:
        following = text.find("@", at + 1)
        space = text.rfind(" ", position, at)
        # One word (\w but `_`, at least one character) after a space or at the text's start
        # (with no space, `text[:at]` holds the `@` of any earlier address, so it fails).
        if text[space + 1 : at].isalnum() and (following < 0 or text.find(" ", at, following) >= 0):
            # The run holds no other `@`, and each of its positions after the word's start
            # fails the look-behind or lacks an `@` ahead.
            domain = _EMAIL_DOMAIN.match(text, at + 1)
            if domain is None:
                at = following
                continue
            if following < 0 and not kept:  # the text's one address: no list
                return text[: space + 1] + EMAIL_REMOVED + text[domain.end() :]
            kept += (text[position : space + 1], EMAIL_REMOVED)
            position = domain.end()
            at = following
            continue
        after = max(space + 1, position)  # the run starts after the space, if any
        start = at - _run_end(text[after:at][::-1], 0)
        end = _run_end(text, at)
        kept += (text[position:start], _EMAIL.sub(EMAIL_REMOVED, text[start:end]))
        position = end
        at = text.find("@", end)
    kept.append(text[position:])
    return "".join(kept)


def _run_end(text: str, position: int) -> int:
    found = _RUN.match(text, position)  # always matches (maybe nothing)
    return found.end() if found is not None else position


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


# The character references show notes use most, decoded by `html.unescape` itself.
_COMMON_REFERENCES = {
    name: html.unescape(f"&{name};")
    for name in (
        *("amp", "quot", "lt", "gt", "nbsp", "#39", "#x27", "#8217"),
        *("mdash", "ndash", "rsquo", "lsquo", "rdquo", "ldquo", "hellip"),
    )
}


def _only_bare_ampersands(text: str) -> bool:
    """True when every `&` of `text` (if any) is bare, before a space (`Signal & Noise`):
    such an `&` starts no reference, so nothing in `text` decodes."""
    return text.count("&") == text.count("& ")


def _unescape(text: str) -> str:
    """`html.unescape(text)`, without its per-reference Python call when every `&` is bare
    (`& `) or starts one of `_COMMON_REFERENCES` with its `;`. Exact: a reference never
    spans an `&` (so each decodes alone), `&name;` decodes as a whole, and an `&` before a
    space starts none; any other `&` leaves the text to `html.unescape`."""
    if _only_bare_ampersands(text):  # nothing to decode, without splitting
        return text
    first, *parts = text.split("&")
    kept = [first]
    for part in parts:
        if part[:1] == " ":
            kept += ("&", part)
            continue
        name, semicolon, rest = part.partition(";")
        character = _COMMON_REFERENCES.get(name) if semicolon else None
        if character is None:
            return html.unescape(text)
        kept += (character, rest)
    return "".join(kept)


def _folded(text: str) -> str:
    """`text` without control characters, each line's white space folded to single spaces,
    blank lines dropped: the common text (single spaces, printable) in C-level passes."""
    lines = text.split("\n")
    if "  " not in text and "".join(lines).isprintable():
        # Printable: no control character and no white space but " " (\t \r \xa0 and
        # the like are not printable), so stripping each line folds it.
        return "\n".join(filter(None, map(str.strip, lines)))
    lines = _CONTROL.sub("", text).replace("\r\n", "\n").split("\n")
    return "\n".join(folded for line in lines if (folded := " ".join(line.split())))


def _clean(markup: str, *, prefix: bool) -> str:
    """`markup` as plain text, folded, not truncated. `prefix`: markup is a cut of a longer
    text, so a tag or an entity the cut may have split is left out."""
    spans = _hidden_blocks(markup) if "<" in markup else []
    if prefix:
        # A block still open at the cut may close beyond it, and what precedes it (a `<`
        # whose `>` lies beyond the block) too: clean only what comes before it.
        if spans and spans[-1][1] == len(markup):
            markup, spans = markup[: spans[-1][0]], spans[:-1]
        markup = _drop_open_tag_at_end(markup)
        spans = [(start, end) for start, end in spans if end <= len(markup)]
    if "<" in markup:
        if spans:
            markup = _drop_hidden(markup, spans)
        markup = _BREAK.sub("\n", markup)
        if prefix:  # a `<` left open once the breaks are gone may close beyond the cut
            markup = _drop_open_tag_at_end(markup)
        markup = _TAG.sub("", markup)  # inline tags (b, a, span) sit inside words
    if "&" in markup:
        if prefix:
            markup = _drop_open_entity_at_end(markup)
        markup = _unescape(markup)
    if "<" in markup:
        markup = _TAG_OPENER.sub(_INERT_LT, markup)
    if "@" in markup:  # after decoding, so `hello&#64;example.com` is caught too
        markup = _remove_emails(markup)
    text = _folded(markup)
    if prefix:
        # Its last word may go on beyond the cut, and what follows can change it (a tag
        # or an entity that ends it, an email address it starts): keep whole words only.
        text = text[: max(text.rfind(" "), text.rfind("\n"), 0)]
    return text


def plain_text(markup: str, limit: int) -> str:
    """Markup, entities and email addresses removed (each address becomes `EMAIL_REMOVED`),
    white space folded, at most `limit` characters."""
    if (
        "<" not in markup
        and ("&" not in markup or _only_bare_ampersands(markup))
        and "  " not in markup
        and "@" not in markup
        and markup.isprintable()
    ):
        text = markup.strip()  # already plain: titles, names, most text
        return text if len(text) <= limit else truncate(text, limit)
    size = limit + limit // 2 + 64  # enough for most show notes' markup at once
    while size < len(markup):
        text = _clean(markup[:size], prefix=True)
        if len(text) >= limit + 1 + _UNSTABLE_TAIL:
            return truncate(text, limit)
        # Grow by half at least (linear work), or to what this much text per markup needs.
        size = max(size + size // 2, size * (limit + 64) // (len(text) + 1))
    text = _clean(markup, prefix=False)
    return text if len(text) <= limit else truncate(text, limit)
