"""/install over real HTTP: the redirect to Vercel's install page with a signed state, and
the cookie that binds the state to the browser; no KV is touched (issue 11, invariant 7).
That a state completes an install once, only in its browser and only while fresh is
proven through /callback in tests/api/test_callback.py."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from lib.install import STATE_COOKIE, STATE_TTL_S

SIGNED_STATE = re.compile(
    r"v1\.(?P<exp>[0-9]+)\.[A-Za-z0-9_-]{16}\.(?P<browser>[A-Za-z0-9_-]{22})\.[A-Za-z0-9_-]{43}"
)


def cookie_attributes(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """The state cookie's value and its attributes (lower-cased names)."""
    [header] = [v for k, v in response.headers.multi_items() if k.lower() == "set-cookie"]
    first, *attrs = [part.strip() for part in header.split(";")]
    name, value = first.split("=", 1)
    assert name == STATE_COOKIE
    parsed = {}
    for attr in attrs:
        key, _, val = attr.partition("=")
        parsed[key.lower()] = val
    return value, parsed


def state_of(response: httpx.Response) -> str:
    return dict(parse_qsl(urlsplit(response.headers["location"]).query))["state"]


def test_redirects_to_the_dashboard_install_page_with_a_signed_state(e2e: Any) -> None:
    e2e.kv.gateway.reset_stats()
    with e2e.http() as client:
        response = client.get("/install")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    slug = e2e.env["INTEGRATION_SLUG"]
    assert f"{location.scheme}://{location.netloc}" == e2e.env["VERCEL_DASHBOARD_URL"]
    assert location.path == f"/integrations/{slug}/new"
    query = parse_qsl(location.query)
    assert [name for name, _ in query] == ["state"]
    state = SIGNED_STATE.fullmatch(query[0][1])
    assert state is not None
    assert time.time() + STATE_TTL_S - 5 < int(state["exp"]) <= time.time() + STATE_TTL_S

    nonce, _ = cookie_attributes(response)
    assert nonce not in state.string  # the state names the browser by a digest only
    digest = hashlib.sha256(b"install-browser:" + nonce.encode()).digest()[:16]
    assert state["browser"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    # Anonymous traffic costs nothing durable: not one KV request.
    assert e2e.kv.gateway.stats()["requests"] == 0
    assert e2e.kv_keys() == []


def test_cookie_is_http_only_lax_and_not_secure_on_localhost(e2e: Any) -> None:
    with e2e.http() as client:
        response = client.get("/install")
    nonce, attrs = cookie_attributes(response)
    assert len(nonce) >= 32
    assert "httponly" in attrs
    assert attrs["samesite"] == "Lax"
    assert attrs["path"] == "/"
    assert attrs["max-age"] == str(STATE_TTL_S)
    assert "secure" not in attrs  # http://127.0.0.1 could never send it back


@pytest.mark.parametrize("host", ["integration.example.com", "localhost.example.com"])
def test_cookie_is_secure_when_deployed(e2e: Any, host: str) -> None:
    with e2e.http() as client:
        response = client.get("/install", headers={"Host": host})
    assert response.status_code == 302
    _, attrs = cookie_attributes(response)
    assert "secure" in attrs
    assert "httponly" in attrs
    assert attrs["samesite"] == "Lax"


def direct(headers: dict[str, str]) -> httpx.Response:
    """/install called as WSGI without the dev server, which (like Vercel's edge) sets
    X-Forwarded-* itself: here the function sees the headers given."""
    from api.install import app

    with httpx.Client(
        transport=httpx.WSGITransport(app=app), base_url="http://127.0.0.1:3000"
    ) as client:
        return client.get("/install", headers=headers)


@pytest.mark.parametrize(
    ("headers", "secure"),
    [
        ({"X-Forwarded-Host": "my-integration.vercel.app"}, True),
        ({"Host": "integration.example.com"}, True),
        ({"X-Forwarded-Host": "localhost:3000"}, False),
        ({"X-Forwarded-Host": "[::1]:3000"}, False),
        ({"Host": "localhost"}, False),
        ({}, False),
    ],
)
def test_cookie_secure_follows_the_forwarded_host(
    e2e: Any, headers: dict[str, str], secure: bool
) -> None:
    response = direct(headers)
    assert response.status_code == 302
    _, attrs = cookie_attributes(response)
    assert ("secure" in attrs) is secure


def test_states_are_unique_and_one_browser_keeps_its_cookie(e2e: Any) -> None:
    """Two tabs of one browser both get a usable state (the same second, the same cookie,
    still two states); the cookie stays the same so the first tab's state is not
    orphaned. A malformed cookie is replaced. None of it touches KV."""
    e2e.kv.gateway.reset_stats()
    with e2e.http() as client:
        responses = [client.get("/install") for _ in range(20)]
        states = [state_of(r) for r in responses]
        nonces = {cookie_attributes(r)[0] for r in responses}
        client.cookies.set(STATE_COOKIE, "not a nonce")
        replaced = client.get("/install")
    assert len(set(states)) == 20
    assert len(nonces) == 1
    assert cookie_attributes(replaced)[0] not in ("not a nonce", *nonces)
    with e2e.http() as other:
        assert cookie_attributes(other.get("/install"))[0] not in nonces
    assert e2e.kv.gateway.stats()["requests"] == 0
    assert e2e.kv_keys() == []


def test_storage_down_does_not_stop_an_install_from_starting(e2e: Any) -> None:
    """/install needs no KV at all: with every KV request failing it still starts."""
    e2e.kv.gateway.set_faults(error_rate=1.0, error_status=503)
    try:
        with e2e.http() as client:
            response = client.get("/install")
    finally:
        e2e.kv.gateway.clear_faults()
    assert response.status_code == 302
    assert SIGNED_STATE.fullmatch(state_of(response))
    assert e2e.kv.gateway.stats()["requests"] == 0


def test_an_old_reverification_link_opens_the_configuration_page_never_an_install(
    e2e: Any,
) -> None:
    """Issue 13: the configuration page signs people in with Vercel; a link from before
    (`/install?configurationId=…`) must not send anyone through Vercel's install page
    (which preselects the personal account and installs there)."""
    cfg = "icfg_" + "Ab1" * 8
    with e2e.http() as client:
        response = client.get("/install", params={"configurationId": cfg})
    assert response.status_code == 302
    assert response.headers["location"] == f"/configure?configurationId={cfg}"
    assert "set-cookie" not in response.headers
    assert e2e.kv_keys() == []


@pytest.mark.parametrize(
    "query",
    [
        "configurationId=nope",
        "configurationId=icfg_abc",  # not Vercel's form (24 alphanumerics)
        "configurationId=icfg_abc%0A",
        "configurationId=icfg_a&configurationId=icfg_b",
        "configurationId=%3Cscript%3E",
    ],
)
def test_bad_configuration_id_is_refused_and_stores_nothing(e2e: Any, query: str) -> None:
    with e2e.http() as client:
        response = client.get(f"/install?{query}")
    assert response.status_code == 400
    assert "<script>" not in response.text
    assert "set-cookie" not in response.headers
    # Words, not the parameter's name.
    assert "open the integration from your Vercel dashboard" in response.text
    assert "configurationId" not in response.text
    assert e2e.kv_keys() == []


def test_only_get_and_head(e2e: Any) -> None:
    with e2e.http() as client:
        response = client.post("/install")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert e2e.kv_keys() == []


def test_missing_slug_is_a_logged_misconfiguration(
    e2e: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from lib.app import reset_services

    monkeypatch.delenv("INTEGRATION_SLUG")
    reset_services()
    with e2e.http() as client:
        response = client.get("/install")
    assert response.status_code == 500
    assert "misconfigured" in response.text
    lines = [json.loads(x) for x in capfd.readouterr().out.splitlines() if x.startswith("{")]
    assert any(
        line["level"] == "error" and "INTEGRATION_SLUG" in line.get("problem", "") for line in lines
    )
    assert e2e.kv_keys() == []


@pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "DELETE"])
def test_only_get_starts_an_install_and_others_write_nothing(e2e: Any, method: str) -> None:
    """Issue 11, invariant 7 (part): HEAD is refused as `Allow` says, with no KV write."""
    e2e.kv.gateway.reset_stats()
    with e2e.http() as client:
        got = client.request(method, "/install")
    assert got.status_code == 405
    assert got.headers["allow"] == "GET"
    assert e2e.kv.gateway.stats()["requests"] == 0
    assert e2e.kv_keys() == []
