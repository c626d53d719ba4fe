"""The text cleaner against hostile upstream text: linear time, and never live markup."""

from __future__ import annotations

import time

import httpx
import pytest
import respx
from starlette.testclient import TestClient

from app.text import plain_text
from tests import payloads
from tests.conftest import AUTH, PODCAST_ID

# Each was quadratic (or worse) for some pattern of the cleaner at some point: long white
# space after `<`, unclosed tags, scripts and comments, many `<`, nested entities.
HOSTILE = {
    "space after <": "<" + " " * 19_999,
    "nbsp after <": "<" + "\xa0" * 19_999,
    "slash and spaces": "< /" + " " * 19_997,
    "many <": "<" * 20_000,
    "< then spaces, repeated": ("<" + " " * 60) * 330,
    "< br then spaces, repeated": ("< br" + " " * 60) * 310,
    "unclosed tags": '<a href="' * 2_200,
    "unclosed scripts": "<script>" * 2_500,
    "unclosed styles": "<style x" * 2_500,
    "unclosed comments": "<!--" * 5_000,
    "closing tags only": "</p" * 6_600,
    "nested entities": "&amp;" * 2_000 + "&amp;lt;" * 1_000 + "&#x26;" * 1_000,
    "entity-like runs": "&" + "a" * 19_999,
    "tags in tags": "<<b>" * 5_000,
    "word run, then @": "a" * 19_999 + "@",
    "@ then word run": "@" + "a" * 19_999,
    "many short addresses": "a@" * 10_000,
    "dotted run before @": "a." * 10_000 + "@",
    "dotted domain": "x@" + "a." * 9_999,
    "escaped @ runs": "a&#64;" * 3_300,
}
BOUND_S = 0.5  # the linear cleaner takes a few ms; the quadratic one took 14 s on the first


@pytest.mark.parametrize("markup", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("limit", [200, 300, 2000])
def test_hostile_text_is_cleaned_in_linear_time(markup: str, limit: int) -> None:
    started = time.perf_counter()
    text = plain_text(markup, limit)
    elapsed = time.perf_counter() - started
    assert elapsed < BOUND_S, f"{elapsed:.2f}s"
    assert len(text) <= limit


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("Hi &lt;script&gt;alert(1)&lt;/script&gt;", "Hi ‹script>alert(1)‹/script>"),
        ("&lt;img src=x onerror=alert(1)&gt;", "‹img src=x onerror=alert(1)>"),
        (
            "&#60;iframe&#62; &#x3c;/a&#x3e; &lt;!-- x --&gt; &lt;?php",
            "‹iframe> ‹/a> ‹!-- x --> ‹?php",
        ),
        ("<b>a</b> <img src=x onerror=alert(1) <i>b</i>", "a ‹img src=x onerror=alert(1) b"),
        ("3 &lt; 4 and 5 > 2, a <= b", "3 < 4 and 5 > 2, a <= b"),
        ("&amp;lt;script&amp;gt;", "&lt;script&gt;"),  # decoded once: text, not a tag
    ],
)
def test_decoding_never_creates_markup(markup: str, text: str) -> None:
    assert plain_text(markup, 300) == text


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("Contact us at hello@example.com.", "Contact us at [email removed]."),
        (
            "<p>Mail <a href='mailto:a@b.co'>first.last+tag@mail.example.co.uk</a></p>",
            "Mail [email removed]",
        ),
        ("write to hello&#64;example.com today", "write to [email removed] today"),
        ("ops@localhost, then @handle and a @ b", "[email removed], then @handle and a @ b"),
    ],
)
def test_email_addresses_are_removed(markup: str, text: str) -> None:
    assert plain_text(markup, 300) == text


def test_no_email_reaches_a_caller_in_sample_answers(sample_client: TestClient) -> None:
    response = sample_client.get(f"/api/v2/podcasts/{PODCAST_ID}", headers=AUTH)
    assert response.status_code == 200
    assert "@" not in response.text.replace("[email removed]", "")
    assert "[email removed]" in response.text


def test_a_hostile_description_is_served_promptly(
    client: TestClient, upstream: respx.MockRouter
) -> None:
    description = "<" + " " * 19_999
    episode = {**payloads.EPISODE, "description": description}
    upstream.get(f"/episodes/{payloads.EPISODE_ID}").mock(
        return_value=httpx.Response(200, json=episode)
    )
    results = [{**payloads.SEARCH_EPISODE, "description_original": description}] * 40
    upstream.get("/search").mock(
        return_value=httpx.Response(200, json={"count": 40, "total": 40, "results": results})
    )
    started = time.perf_counter()
    one = client.get(f"/api/v2/episodes/{payloads.EPISODE_ID}", headers=AUTH)
    search = client.get("/api/v2/search_episodes?q=x", headers=AUTH)
    elapsed = time.perf_counter() - started
    assert one.status_code == 200 and search.status_code == 200
    assert len(search.json()["results"]) == 10
    assert elapsed < 2.0, f"{elapsed:.2f}s (was 13.6 s and 12.6 s before the fix)"


def test_only_the_records_kept_are_cleaned(
    client: TestClient, upstream: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.text

    cleaned: list[str] = []
    real = app.text.plain_text

    def counting(markup: str, limit: int) -> str:
        cleaned.append(markup)
        return real(markup, limit)

    monkeypatch.setattr("app.answers.plain_text", counting)
    results = [
        {**payloads.SEARCH_EPISODE, "description_original": f"<p>number {i}</p>"} for i in range(40)
    ]
    upstream.get("/search").mock(
        return_value=httpx.Response(200, json={"count": 40, "total": 40, "results": results})
    )
    body = client.get("/api/v2/search_episodes?q=x", headers=AUTH).json()
    assert [r["description"] for r in body["results"]] == [f"number {i}" for i in range(10)]
    descriptions = [markup for markup in cleaned if markup.startswith("<p>number")]
    assert descriptions == [f"<p>number {i}</p>" for i in range(10)]
