"""Every client of the process verifies https against one TLS context (app/tls.py):
certifi's CAs, built once, and only when an https URL is used. Through the app, against
loopback upstreams that speak https with a self-signed certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app import tls
from app.main import create_app
from tests.conftest import AUTH, OPENAI_KEY, make_settings
from tests.fake_openai import FakeOpenAI
from tests.stub_upstream import StubUpstream
from tests.tls_support import certificate, serving_context


def test_both_upstreams_trust_exactly_what_the_process_context_trusts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_file, key_file = certificate(tmp_path)
    serving = serving_context(cert_file, key_file)
    with StubUpstream(ssl_context=serving) as podcasts, FakeOpenAI(ssl_context=serving) as openai:
        settings = make_settings(
            listen_api_base_url=podcasts.base_url,
            openai_api_key=OPENAI_KEY,
            openai_base_url=openai.base_url,
        )

        def statuses() -> tuple[int, int]:
            with TestClient(create_app(settings, network="httpx")) as client:
                genres = client.get("/api/v2/genres", headers=AUTH)
                models = client.get("/openai/v1/models", headers=AUTH)
            return genres.status_code, models.status_code

        # certifi's CAs never signed this certificate: refused before any request is sent.
        refused = statuses()
        assert refused[0] >= 500 and refused[1] >= 500
        assert podcasts.seen == [] and openai.seen == []

        # A context that trusts it, as if a CA of the bundle had signed it: both use it.
        monkeypatch.setattr(tls, "_context", ssl.create_default_context(cafile=cert_file))
        assert statuses() == (200, 200)
        assert len(podcasts.seen) == 1 and len(openai.seen) == 1


def test_a_plain_http_url_gets_a_context_that_trusts_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tls, "_context", None)
    context = tls.context_for("http://127.0.0.1:8000")
    assert tls._context is None  # the CA bundle was not loaded for it
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs() == []  # were it ever used for TLS, it would refuse
    assert tls.context_for("HTTPS://dynamodb.eu-west-1.amazonaws.com") is tls.client_context()
    assert tls.client_context().get_ca_certs()  # certifi's
