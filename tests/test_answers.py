"""Compact answers: plain text, capped, and always under 100,000 characters."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field, ValidationError
from starlette.testclient import TestClient

from app import answers
from app.answers import MAX_ANSWER_CHARS, Answer, Link, encode_answer, read
from app.connectors.podcasts.answers import GenresAnswer
from app.connectors.podcasts.operations import OPERATIONS, operation_named
from app.text import plain_text, truncate
from tests import payloads
from tests.conftest import AUTH


def huge_podcast(i: int) -> dict[str, Any]:
    # Large in every field, yet the whole upstream answer stays under the 8 MB body cap.
    return {
        **payloads.SEARCH_PODCAST,
        "id": f"{i:032x}",
        "title_original": "T" * 2_000,
        "description_original": "<p>" + "word " * 5_000 + "</p>",
        "genre_ids": list(range(500)),
    }


@pytest.mark.parametrize(
    ("url", "path", "answer"),
    [
        (
            "/api/v2/search_podcasts?q=x",
            "/search",
            {"count": 10_000, "total": 10**9, "results": [huge_podcast(i) for i in range(100)]},
        ),
        (
            "/api/v2/genres",
            "/genres",
            {"genres": [{"id": i, "name": "G" * 500, "parent_id": i} for i in range(10_000)]},
        ),
        ("/api/v2/languages", "/languages", {"languages": ["L" * 500] * 10_000}),
        ("/api/v2/regions", "/regions", {"regions": {f"r{i}": "R" * 500 for i in range(5000)}}),
        (
            "/api/v2/best_podcasts",
            "/best_podcasts",
            {**payloads.BEST, "podcasts": [huge_podcast(i) for i in range(150)]},
        ),
        (
            f"/api/v2/podcasts/{payloads.PODCAST_ID}",
            f"/podcasts/{payloads.PODCAST_ID}",
            {
                **huge_podcast(1),
                "episodes": [{**payloads.EPISODE, "description": "x" * 10**4}] * 100,
            },
        ),
    ],
)
def test_every_answer_stays_under_100k_characters(
    client: TestClient, upstream: respx.MockRouter, url: str, path: str, answer: dict[str, Any]
) -> None:
    upstream.get(path).mock(return_value=httpx.Response(200, json=answer))
    response = client.get(url, headers=AUTH)
    assert response.status_code == 200
    assert len(response.text) < MAX_ANSWER_CHARS
    assert response.json()  # still valid JSON, not a cut string


def test_oversized_lists_are_shortened_not_dropped() -> None:
    genres = [{"id": i, "name": "n" * 90, "parent_id": 1} for i in range(2000)]
    answer = read(GenresAnswer, json.dumps({"genres": genres}).encode())
    encoded = encode_answer(answer, GenresAnswer)
    assert len(encoded) < MAX_ANSWER_CHARS
    kept = GenresAnswer.model_validate_json(encoded).genres
    assert 0 < len(kept) < 2000
    assert [g.id for g in kept] == list(range(len(kept)))  # the first ones, in order


def test_an_unusable_field_becomes_null_and_the_record_stays(
    client: TestClient, upstream: respx.MockRouter
) -> None:
    odd = [
        {**payloads.SEARCH_EPISODE, "id": "bad-link", "listennotes_url": "javascript:alert(1)"},
        {**payloads.SEARCH_EPISODE, "id": "bad-number", "audio_length_sec": "long"},
        {**payloads.SEARCH_EPISODE, "id": "bad-podcast", "podcast": "nope"},
        {**payloads.SEARCH_EPISODE, "id": "x" * 65},
    ]
    answer = {"count": 5, "total": 5, "results": [*odd, "not even an object"]}
    upstream.get("/search").mock(return_value=httpx.Response(200, json=answer))
    body = client.get("/api/v2/search_episodes?q=x", headers=AUTH).json()
    link, number, podcast, long_id = body["results"]  # the string is left out
    assert link["id"] == "bad-link" and "listennotes_url" not in link
    assert number["id"] == "bad-number" and "audio_length_sec" not in number
    assert podcast["id"] == "bad-podcast" and "podcast" not in podcast
    assert "id" not in long_id and long_id["title"] == "Compilers explained"
    assert "javascript" not in str(body)


@pytest.mark.parametrize("website", ["www.example.com", "HTTPS://EXAMPLE.COM", "ftp://x.test"])
def test_an_odd_website_does_not_lose_the_podcast(
    client: TestClient, upstream: respx.MockRouter, website: str
) -> None:
    podcast = {**payloads.PODCAST, "website": website}
    upstream.get(f"/podcasts/{payloads.PODCAST_ID}").mock(
        return_value=httpx.Response(200, json=podcast)
    )
    upstream.get("/search").mock(
        return_value=httpx.Response(200, json=payloads.search_answer(podcast))
    )
    response = client.get(f"/api/v2/podcasts/{payloads.PODCAST_ID}", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["id"] == payloads.PODCAST_ID and "website" not in response.json()
    [listed] = client.get("/api/v2/search_podcasts?q=x", headers=AUTH).json()["results"]
    assert listed["id"] == payloads.PODCAST_ID and "website" not in listed


def test_a_record_with_odd_fields_is_served_with_them_left_out(
    client: TestClient, upstream: respx.MockRouter
) -> None:
    weird = {**payloads.EPISODE, "listennotes_url": "javascript:alert(1)", "pub_date_ms": 1.5}
    upstream.get(f"/episodes/{payloads.EPISODE_ID}").mock(
        return_value=httpx.Response(200, json=weird)
    )
    response = client.get(f"/api/v2/episodes/{payloads.EPISODE_ID}", headers=AUTH)
    assert response.status_code == 200
    assert "javascript" not in response.text and "pub_date_ms" not in response.json()


@pytest.mark.parametrize("body", [b"[1, 2]", b"not json", b'"a string"'])
def test_an_answer_that_is_not_a_record_is_refused(
    client: TestClient, upstream: respx.MockRouter, logs: Any, body: bytes
) -> None:
    upstream.get(f"/episodes/{payloads.EPISODE_ID}").mock(
        return_value=httpx.Response(200, content=body)
    )
    response = client.get(f"/api/v2/episodes/{payloads.EPISODE_ID}", headers=AUTH)
    assert response.status_code == 502
    assert any("upstream answer" in line for line in logs.lines)


def test_escaped_markup_never_comes_back_live(
    client: TestClient, upstream: respx.MockRouter
) -> None:
    episode = {
        **payloads.EPISODE,
        "title": "Hi &lt;script&gt;alert(1)&lt;/script&gt;",
        "description": "&lt;img src=x onerror=alert(1)&gt; &amp;lt;b&amp;gt; 3 &lt; 4",
    }
    upstream.get(f"/episodes/{payloads.EPISODE_ID}").mock(
        return_value=httpx.Response(200, json=episode)
    )
    body = client.get(f"/api/v2/episodes/{payloads.EPISODE_ID}", headers=AUTH).json()
    assert body["title"] == "Hi ‹script>alert(1)‹/script>"
    assert body["description"] == "‹img src=x onerror=alert(1)> &lt;b&gt; 3 < 4"


def test_unrankable_scores_are_left_out_not_fatal(
    client: TestClient, upstream: respx.MockRouter
) -> None:
    upgrade = "Please upgrade to PRO or ENTERPRISE plan to see this field"
    podcast = {
        **payloads.SEARCH_PODCAST,
        "listen_score": upgrade,
        "listen_score_global_rank": upgrade,
    }
    upstream.get("/search").mock(
        return_value=httpx.Response(200, json=payloads.search_answer(podcast))
    )
    [result] = client.get("/api/v2/search_podcasts?q=x", headers=AUTH).json()["results"]
    assert "listen_score" not in result and "listen_score_global_rank" not in result
    assert result["title"] == "Signal & Noise"


@pytest.mark.parametrize(
    ("score", "rank", "kept"),
    [
        (81, "0.5%", {"listen_score": 81, "listen_score_global_rank": "0.5%"}),
        (True, "top", {}),  # a flag is no score; a word is no rank
        (4.0, "12345678901", {}),  # a float is no score; a rank is at most 10 characters
        ("81", "٣%", {}),  # a score is a number, a rank starts with a digit 0-9
    ],
)
def test_scores_and_ranks_are_kept_only_when_they_are_what_they_say(
    client: TestClient,
    upstream: respx.MockRouter,
    score: object,
    rank: object,
    kept: dict[str, object],
) -> None:
    podcast = {**payloads.SEARCH_PODCAST, "listen_score": score, "listen_score_global_rank": rank}
    upstream.get("/search").mock(
        return_value=httpx.Response(200, json=payloads.search_answer(podcast))
    )
    [result] = client.get("/api/v2/search_podcasts?q=x", headers=AUTH).json()["results"]
    assert {k: v for k, v in result.items() if k.startswith("listen_score")} == kept


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>One</p><p>Two</p>", "One\nTwo"),
        ("In <b>bold</b>: yes", "In bold: yes"),
        ("a&amp;b &lt;c&gt; &#39;d&#39;", "a&b ‹c> 'd'"),
        ("x<script>steal()</script>y<style>p{}</style>z", "x y z"),
        ("line<br>break<br/>again", "line\nbreak\nagain"),
        ("  lots   of\t\tspace  ", "lots of space"),
        ("ctrl\x00\x07chars", "ctrlchars"),
        ("<!-- hidden -->shown", "shown"),
    ],
)
def test_plain_text(markup: str, text: str) -> None:
    assert plain_text(markup, 300) == text


def test_truncate_cuts_at_a_word_and_marks_it() -> None:
    cut = truncate("alpha beta gamma delta epsilon", 20)
    assert cut == "alpha beta gamma…" and len(cut) <= 20
    assert truncate("short", 20) == "short"
    assert len(truncate("x" * 500, 100)) == 100


# -- the mirrors: what runs is what the models say ---------------------------------------

# Values an upstream may send in any field: right, wrong and borderline for each rule
# (types, bounds, link schemes, the score's strictness, the rank's first digit, markup).
_ODD = st.sampled_from(
    [
        None,
        True,
        0,
        -1,
        42,
        2**70,
        1.5,
        4.0,
        "",
        "7",
        "0.5%",
        "Please upgrade to PRO",
        "x" * 64,
        "x" * 65,
        "y" * 101,
        "http://example.com/a",
        "https://example.com/" + "a" * 2040,
        "javascript:alert(1)",
        "<p>Tom &amp; Jerry &mdash; hello@example.com</p>",
        [],
        [1, "a", None, 3],
        {},
        {"us": "United States", "fr": 3},
    ]
)


def _upstream_value(annotation: object, depth: int) -> st.SearchStrategy[Any]:
    """Values for a field of `annotation`: records for a record field (and lists of them,
    some odd), else any odd value."""
    record = answers._record_class(annotation)
    if record is None or depth > 2:
        return _ODD
    one = _upstream_record(record, depth + 1)
    return st.one_of(_ODD, one, st.lists(st.one_of(one, _ODD), max_size=4))


def _upstream_record(cls: type[Answer], depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Objects shaped like what `cls` reads: each field under one of the names it accepts
    (aliases and its own name: both at once too), or left out; plus a field it ignores."""
    entries = []
    for name, info in cls.model_fields.items():
        choices = getattr(info.validation_alias, "choices", [info.validation_alias])
        names = sorted({name, *(str(c) for c in choices if c is not None)})
        value = _upstream_value(info.annotation, depth)
        entries.append(st.dictionaries(st.sampled_from(names), value, max_size=len(names)))
    entries.append(st.fixed_dictionaries({}, optional={"email": _ODD}))
    return st.tuples(*entries).map(lambda parts: {k: v for part in parts for k, v in part.items()})


def _via_model(cls: type[Answer], body: bytes) -> tuple[str, Any]:
    try:
        model = cls.model_validate_json(body)
    except ValidationError as error:
        return "refused", sorted({e["type"] for e in error.errors(include_url=False)})
    return "read", cls.__pydantic_serializer__.to_json(model, exclude_none=True)


def _via_mirror(cls: type[Answer], body: bytes) -> tuple[str, Any]:
    adapter = (answers._READERS.get(cls) or answers._reader_of(cls)).adapter
    try:
        values = adapter.validate_json(body)
    except ValidationError as error:
        # The same refusal, named for a dict: "not an object" (the 502's log detail).
        kinds = {e["type"].replace("dict_type", "model_type") for e in error.errors()}
        return "refused", sorted(kinds)
    return "read", adapter.serializer.to_json(values, exclude_none=True)


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: o.name)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_answer_reads_through_its_mirror_exactly_as_through_its_model(
    operation: Any, data: st.DataObject
) -> None:
    cls = operation.answer
    document = data.draw(st.one_of(_upstream_record(cls), _ODD))
    body = json.dumps(document).encode()
    assert _via_mirror(cls, body) == _via_model(cls, body)


def test_the_mirror_of_a_search_keeps_the_upstream_records_whole() -> None:
    # What the generated bodies seldom hold all at once: a full, valid search answer.
    body = json.dumps(payloads.search_answer(payloads.SEARCH_EPISODE)).encode()
    cls = operation_named("searchEpisodes").answer
    kind, encoded = _via_mirror(cls, body)
    assert (kind, encoded) == _via_model(cls, body) and kind == "read"
    [episode] = json.loads(encoded)["results"]
    assert episode["id"] == payloads.EPISODE_ID and episode["podcast"]["id"]


def test_a_field_with_an_output_alias_has_no_mirror() -> None:
    # A mirror publishes the model's field names: a model that renames its output would
    # encode otherwise than its schema says.
    class Renamed(Answer):
        link: Annotated[Link, Field(serialization_alias="url")] = None

    with pytest.raises(TypeError, match="alias"):
        read(Renamed, b"{}")
