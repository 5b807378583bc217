import base64
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.crypto import EncryptionKey, Keyring, sign_token
from lib.web.session import SESSION_TTL_S, csrf_token, issue, verify, verify_csrf

RING = Keyring(EncryptionKey(key_id="k1", key=bytes(range(32))))
OTHER_RING = Keyring(EncryptionKey(key_id="k2", key=bytes(range(1, 33))))
CFG = "icfg_abc123"


def test_a_session_opens_only_for_its_configuration() -> None:
    cookie = issue(RING, CFG)
    sid = verify(RING, cookie, CFG)
    assert sid
    assert verify(RING, cookie, "icfg_other") is None


def test_each_session_has_its_own_id() -> None:
    assert verify(RING, issue(RING, CFG), CFG) != verify(RING, issue(RING, CFG), CFG)


def test_a_session_is_short_lived() -> None:
    start = time.time()
    cookie = issue(RING, CFG, now=start)
    assert verify(RING, cookie, CFG, now=start + SESSION_TTL_S - 1)
    assert verify(RING, cookie, CFG, now=start + SESSION_TTL_S + 1) is None
    assert SESSION_TTL_S <= 60 * 60


@pytest.mark.parametrize("cookie", [None, "", "garbage", "a.b", ".", "x" * 500])
def test_missing_or_malformed_cookies_are_no_session(cookie: str | None) -> None:
    assert verify(RING, cookie, CFG) is None


def test_a_session_signed_with_another_key_is_refused() -> None:
    assert verify(RING, issue(OTHER_RING, CFG), CFG) is None


def test_a_session_signed_for_another_purpose_is_refused() -> None:
    # Same master key, but a CSRF or state key must never mint a session.
    forged = sign_token(RING.derive("csrf"), {"cfg": CFG, "sid": "x"}, 60)
    assert verify(RING, forged, CFG) is None


def test_a_tampered_payload_is_refused() -> None:
    body, _, mac = issue(RING, "icfg_mine").partition(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["cfg"] = CFG
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    assert verify(RING, f"{forged}.{mac}", CFG) is None


def test_a_payload_without_a_session_id_is_refused() -> None:
    token = sign_token(RING.derive("session"), {"cfg": CFG}, 60)
    assert verify(RING, token, CFG) is None


def test_csrf_tokens_are_bound_to_one_session() -> None:
    mine = verify(RING, issue(RING, CFG), CFG)
    theirs = verify(RING, issue(RING, CFG), CFG)
    assert mine
    assert theirs
    token = csrf_token(RING, mine)
    assert verify_csrf(RING, token, mine)
    assert not verify_csrf(RING, token, theirs)
    assert not verify_csrf(OTHER_RING, token, mine)


def test_csrf_tokens_expire() -> None:
    start = time.time()
    token = csrf_token(RING, "sid", now=start)
    assert verify_csrf(RING, token, "sid", now=start + SESSION_TTL_S - 1)
    assert not verify_csrf(RING, token, "sid", now=start + SESSION_TTL_S + 1)


@pytest.mark.parametrize("token", [None, "", "garbage", "a.b"])
def test_missing_or_malformed_csrf_tokens_fail(token: str | None) -> None:
    assert not verify_csrf(RING, token, "sid")


def test_a_session_cookie_is_not_a_csrf_token() -> None:
    cookie = issue(RING, CFG)
    sid = verify(RING, cookie, CFG)
    assert sid
    assert not verify_csrf(RING, cookie, sid)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_no_arbitrary_cookie_opens_a_session(cookie: str) -> None:
    assert verify(RING, cookie, CFG) is None
    assert not verify_csrf(RING, cookie, "sid")
