"""The consent page in a real headless Chromium: it renders under its own CSP, the form
submits, and the browser lands on the client's callback with a code that redeems.
A screenshot is kept at build/consent-page.png."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser import chromium, open_page
from tests.conftest import SECRET
from tests.live import ROOT, LiveServer, live_server
from tests.oauth_flow import Flow, query_of
from tests.servers import free_port

SHOT = ROOT / "build" / "consent-page.png"


class Callback:
    """The client's redirect target, on loopback: records each request's path and query."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                body = b"<!doctype html><title>Connected</title><p>Connected."
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"


@pytest.fixture
def callback() -> Iterator[Callback]:
    target = Callback()
    target.thread.start()
    yield target
    target.server.shutdown()
    target.server.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    env = {
        "CHATGPT_SECRET": SECRET,
        "STORE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "OAUTH_REDIRECT_URIS": "http://127.0.0.1:*/callback",
    }
    with live_server(env, tmp_path / "server.log") as running:
        yield running


def test_the_consent_page_in_chromium(
    server: LiveServer, callback: Callback, tmp_path: Path
) -> None:
    with httpx.Client(base_url=server.base_url) as http:
        flow = Flow(http, server.base_url, redirect_uri=callback.uri)
        assert flow.register(client_name="Claude <b>not bold</b>").status_code == 201
        start = flow.authorize()
        assert start.status_code == 302
        consent_url = start.headers["location"]

        async def drive(devtools: str) -> dict[str, object]:
            async with open_page(devtools) as page:
                await page.goto(consent_url)
                seen: dict[str, object] = {
                    "title": await page.evaluate("document.title"),
                    "heading": await page.evaluate("document.querySelector('h1').innerText"),
                    "text": await page.evaluate("document.body.innerText"),
                    "bold": await page.evaluate("document.querySelectorAll('b').length"),
                    # The inline style ran (its nonce matched the CSP): 34rem wide, centred.
                    "width": await page.evaluate("getComputedStyle(document.body).maxWidth"),
                    "key_type": await page.evaluate("document.getElementById('key').type"),
                }
                await page.evaluate("document.getElementById('key').focus()")
                await page.call("Input.insertText", text=SECRET)
                seen["png"] = await page.screenshot()
                await page.evaluate("document.querySelector('button[value=approve]').click()")
                await page.wait_for("Page.loadEventFired")
                seen["landed"] = await page.evaluate("location.href")
                seen["landed_title"] = await page.evaluate("document.title")
                return seen

        with chromium(tmp_path / "profile") as devtools:
            seen = asyncio.run(drive(devtools))
        SHOT.parent.mkdir(parents=True, exist_ok=True)
        SHOT.write_bytes(bytes(seen["png"]))  # type: ignore[arg-type]
        assert seen["title"] == seen["heading"] == "Approve a connection?"
        text = str(seen["text"])
        assert "Claude <b>not bold</b>" in text  # shown as text, not markup
        assert seen["bold"] == 0
        assert f"127.0.0.1:{callback.port}" in text  # the host the answer goes back to
        assert seen["width"] == "544px"
        assert seen["key_type"] == "password"
        # The form submitted, and the browser followed the redirect to the client's callback.
        assert str(seen["landed"]).startswith(callback.uri + "?")
        assert seen["landed_title"] == "Connected"
        arrived = [path for path in callback.seen if path.startswith("/callback")]
        assert len(arrived) == 1
        query = query_of(arrived[0])
        assert query["state"] == flow.state and SECRET not in arrived[0]
        tokens = flow.exchange(query["code"])
        assert tokens.status_code == 200
        assert tokens.json()["access_token"].startswith("mcpat_")
    assert SHOT.stat().st_size > 10_000
