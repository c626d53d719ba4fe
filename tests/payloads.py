"""Upstream-shaped answers, private and bulky fields included, as the real API sends them."""

from __future__ import annotations

from typing import Any

EPISODE_ID = "aa" * 16
PODCAST_ID = "bb" * 16

PODCAST_REF: dict[str, Any] = {
    "id": PODCAST_ID,
    "title_original": "Signal &amp; Noise",
    "publisher_original": "Hollow Pine Media",
    "image": "https://cdn.example.test/p.jpg",
    "thumbnail": "https://cdn.example.test/p-thumb.jpg",
    "listen_score": 81,
    "listen_score_global_rank": "0.5%",
    "listennotes_url": f"https://www.listennotes.com/c/{PODCAST_ID}/",
}

SEARCH_EPISODE: dict[str, Any] = {
    "id": EPISODE_ID,
    "title_original": "Compilers <b>explained</b>",
    "title_highlighted": "<span class='ln-search-highlight'>Compilers</span>",
    "description_original": "<p>How a compiler works.</p><p>Mail hello@example.test</p>",
    "audio": f"https://www.listennotes.com/e/p/{EPISODE_ID}/",
    "audio_length_sec": 1800,
    "pub_date_ms": 1_700_000_000_000,
    "image": "https://cdn.example.test/e.jpg",
    "listennotes_url": f"https://www.listennotes.com/e/{EPISODE_ID}/",
    "transcript_highlighted": "...",
    "podcast": {**PODCAST_REF, "email": "producer@example.test"},
}

SEARCH_PODCAST: dict[str, Any] = {
    "id": PODCAST_ID,
    "title_original": "Signal & Noise",
    "description_original": "<p>Infrastructure <i>talk</i>.</p>",
    "publisher_original": "Hollow Pine Media",
    "image": "https://cdn.example.test/p.jpg",
    "listennotes_url": f"https://www.listennotes.com/c/{PODCAST_ID}/",
    "email": "producer@example.test",
    "rss": "https://feeds.example.test/p.xml",
    "latest_episode_id": EPISODE_ID,
    "latest_pub_date_ms": 1_700_000_000_000,
    "earliest_pub_date_ms": 1_500_000_000_000,
    "total_episodes": 120,
    "audio_length_sec": 2400,
    "update_frequency_hours": 168,
    "listen_score": 81,
    "listen_score_global_rank": "0.5%",
    "extra": {"twitter_handle": "x"},
}


def search_answer(result: dict[str, Any], count: int = 1, total: int = 42) -> dict[str, Any]:
    return {
        "took": 0.1,
        "count": count,
        "total": total,
        "next_offset": 10,
        "results": [result] * count,
    }


PODCAST: dict[str, Any] = {
    "id": PODCAST_ID,
    "title": "Signal & Noise",
    "publisher": "Hollow Pine Media",
    "description": "<p>Long description.</p>",
    "email": "producer@example.test",
    "rss": "https://feeds.example.test/p.xml",
    "image": "https://cdn.example.test/p.jpg",
    "listennotes_url": f"https://www.listennotes.com/c/{PODCAST_ID}/",
    "genre_ids": [67, 107],
    "total_episodes": 120,
    "looking_for": {"guests": True},
}

EPISODE: dict[str, Any] = {
    "id": EPISODE_ID,
    "title": "Compilers explained",
    "description": "<p>How a compiler works.</p>",
    "audio": f"https://www.listennotes.com/e/p/{EPISODE_ID}/",
    "audio_length_sec": 1800,
    "pub_date_ms": 1_700_000_000_000,
    "listennotes_url": f"https://www.listennotes.com/e/{EPISODE_ID}/",
    "transcript": "Every word of the episode. " * 2000,
    "maybe_audio_invalid": False,
    "podcast": PODCAST,
}

BEST: dict[str, Any] = {
    "id": 67,
    "name": "Technology",
    "parent_id": None,
    "total": 300,
    "has_next": True,
    "has_previous": False,
    "page_number": 1,
    "podcasts": [PODCAST, PODCAST],
}
