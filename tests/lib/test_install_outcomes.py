"""lib/install.py, cause by cause: what each way a callback can end is shown as (status,
page kind, words) and what the operator's log says of it; which facts a re-install keeps
(`_installation`, a pure function); and the formats a browser carries across a deploy
(the install state, the kept exchange's cookie). Vercel is an `httpx.MockTransport`, KV
the real gateway: the fixtures of tests/lib/test_install.py."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from typing import Any

import httpx
import pytest

import lib.install as install
from lib.crypto import EncryptionKey, Keyring
from lib.deadline import Deadline
from lib.install import CallbackParams, InstallError
from lib.kv.client import KVUnavailable
from lib.kv.records import Installation
from lib.kv.store import InstallClaim
from lib.vercel.models import IntegrationConfiguration, OAuthToken
from tests.lib import test_install as base
from tests.lib.test_install import (
    CFG,
    TEAM,
    USER,
    FakeVercel,
    begin,
    closing_write_fails,
    done_mark,
    hold_code,
    keys,
    run,
)

# The fixtures of tests/lib/test_install.py, used here under the same names.
unit = base.unit
vercel = base.vercel
offline_settings = base.offline_settings

LOGGER = "integration.install"


def records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.getMessage() == message]


# ------------------------------------------------------------------ the code exchange


@pytest.mark.parametrize(
    ("status", "body", "shown", "logged"),
    [
        (
            400,
            {"error": "invalid_grant"},
            (400, "invalid_code", "This install link was already used or has expired."),
            (logging.INFO, "code refused as used or expired"),
        ),
        (
            401,
            {"error": "invalid_client"},
            (500, "misconfigured", "The integration is misconfigured."),
            (
                logging.ERROR,
                "code exchange refused our client credentials: check VERCEL_CLIENT_ID/SECRET",
            ),
        ),
        (
            400,
            {"error": "access_denied"},
            (400, "invalid_code", "Vercel refused this install link."),
            (logging.ERROR, "code exchange refused"),
        ),
        (
            429,
            {"error": "too_many_requests"},
            (503, "unavailable", "Vercel did not answer in time."),
            (logging.WARNING, "code exchange unanswered"),
        ),
        (
            500,
            {"error": "server_error"},
            (502, "unavailable", "Vercel answered with an error."),
            (logging.WARNING, "code exchange failed"),
        ),
        (
            503,
            {"error": "server_error"},
            (503, "unavailable", "Vercel answered with an error."),
            (logging.WARNING, "code exchange failed"),
        ),
    ],
)
def test_each_exchange_failure_is_shown_and_logged_for_what_it_is(
    kv: Any,
    unit: Any,
    vercel: FakeVercel,
    caplog: pytest.LogCaptureFixture,
    status: int,
    body: dict[str, str],
    shown: tuple[int, str, str],
    logged: tuple[int, str],
) -> None:
    before = keys(kv)
    vercel.oauth_status, vercel.oauth_error = status, body
    with caplog.at_level(logging.INFO, logger=LOGGER), pytest.raises(InstallError) as caught:
        run(unit, vercel)
    assert (caught.value.status, caught.value.kind, caught.value.message) == shown
    assert caught.value.next == "https://vercel.com/next"  # every failure offers the way back
    level, message = logged
    (record,) = records(caplog, message)
    assert record.levelno == level
    if level == logging.WARNING:  # Vercel answered badly: what it said, for the operator
        assert (record.error, record.status) == (body["error"], status)  # type: ignore[attr-defined]
    assert keys(kv) == before  # the claim was given back: a reload can use the link


def test_an_unclassified_refusal_names_vercels_error_and_status(
    kv: Any, unit: Any, vercel: FakeVercel, caplog: pytest.LogCaptureFixture
) -> None:
    vercel.oauth_status, vercel.oauth_error = 400, {"error": "access_denied"}
    with caplog.at_level(logging.INFO, logger=LOGGER), pytest.raises(InstallError):
        run(unit, vercel)
    (record,) = records(caplog, "code exchange refused")
    assert (record.error, record.status) == ("access_denied", 400)  # type: ignore[attr-defined]


def test_a_used_code_of_an_installation_we_have_is_a_completed_install(
    kv: Any, unit: Any, vercel: FakeVercel, caplog: pytest.LogCaptureFixture
) -> None:
    """A reload long after the install (the code's mark has expired): Vercel says the
    code is used, and the installation is here: the install worked; nothing changes."""
    store = unit[0]
    run(unit, vercel, code="code1")
    before = keys(kv)
    vercel.oauth_status, vercel.oauth_error = 400, {"error": "invalid_grant"}
    with caplog.at_level(logging.INFO, logger=LOGGER):
        result, inst = run(unit, vercel, code="code2")
    assert (result.configuration_id, result.already_installed, inst) == (CFG, True, None)
    assert result.next == "https://vercel.com/next"
    assert keys(kv) == before  # nothing written, the second code's claim given back
    assert records(caplog, "code refused as used or expired") == []
    saved = store.get_installation(CFG)
    assert saved is not None
    assert store.token(saved) == vercel.issued[0]


def test_an_unknown_code_is_logged_with_the_links_configuration(
    kv: Any, unit: Any, vercel: FakeVercel, caplog: pytest.LogCaptureFixture
) -> None:
    vercel.oauth_status, vercel.oauth_error = 400, {"error": "invalid_grant"}
    with caplog.at_level(logging.INFO, logger=LOGGER), pytest.raises(InstallError):
        run(unit, vercel)
    (record,) = records(caplog, "code refused as used or expired")
    assert record.configuration_id == CFG  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("token_cfg", "token_team", "matches"),
    [
        ("icfg_" + "z" * 24, TEAM, {"installation_matches": False, "team_matches": True}),
        (CFG, "team_other", {"installation_matches": True, "team_matches": False}),
        (CFG, None, {"installation_matches": True, "team_matches": False}),
        ("icfg_" + "z" * 24, "team_other", {"installation_matches": False, "team_matches": False}),
    ],
)
def test_a_token_of_another_installation_or_team_is_dropped(
    kv: Any,
    unit: Any,
    vercel: FakeVercel,
    caplog: pytest.LogCaptureFixture,
    token_cfg: str,
    token_team: str | None,
    matches: dict[str, bool],
) -> None:
    before = keys(kv)
    vercel.installation_id, vercel.team_id = token_cfg, token_team
    with caplog.at_level(logging.INFO, logger=LOGGER), pytest.raises(InstallError) as caught:
        run(unit, vercel)
    assert (caught.value.status, caught.value.kind, caught.value.message) == (
        400,
        "mismatch",
        "This install link does not match its installation.",
    )
    (record,) = records(caplog, "token does not match the callback")
    assert record.levelno == logging.WARNING
    assert record.configuration_id == CFG  # type: ignore[attr-defined]
    assert {k: getattr(record, k) for k in matches} == matches
    assert keys(kv) == before


def test_a_link_without_team_takes_the_tokens_team_and_says_so(
    kv: Any, unit: Any, vercel: FakeVercel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _result, inst = run(unit, vercel, team_id=None)
    assert inst is not None
    assert (inst.team_id, inst.owner_id) == (TEAM, TEAM)
    (record,) = records(caplog, "callback without teamId: the token's team is used")
    assert record.configuration_id == CFG  # type: ignore[attr-defined]


def test_a_personal_install_without_team_says_nothing_of_a_team(
    kv: Any, unit: Any, vercel: FakeVercel, caplog: pytest.LogCaptureFixture
) -> None:
    vercel.team_id = None
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _result, inst = run(unit, vercel, team_id=None)
    assert inst is not None
    assert (inst.team_id, inst.owner_id) == (None, USER)
    assert records(caplog, "callback without teamId: the token's team is used") == []


def test_a_link_without_configuration_id_is_completed_on_the_tokens_word(
    kv: Any, unit: Any, vercel: FakeVercel, caplog: pytest.LogCaptureFixture
) -> None:
    store = unit[0]
    state, nonce = begin(unit)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        result, inst = run(unit, vercel, cfg=None, state=state, nonce=nonce)
    assert result.configuration_id == CFG
    assert inst is not None
    assert inst.configuration_id == CFG
    (record,) = records(
        caplog, "callback without configurationId: the token's installation is used"
    )
    assert record.configuration_id == CFG  # type: ignore[attr-defined]
    assert store.get_installation(CFG) is not None
    assert store.pending() == [CFG]
    # Its reload: done, without a second exchange (the id is not known from the code's
    # mark, which holds only a digest of it).
    again, none = run(unit, vercel, cfg=None, state=state, nonce=nonce)
    assert (again.configuration_id, again.already_installed) == (None, True)
    assert none is None
    assert vercel.exchanges == 1


def test_an_audit_line_names_install_and_reinstall(
    kv: Any, unit: Any, vercel: FakeVercel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        run(unit, vercel, code="code1")
        run(unit, vercel, code="code2", team_id=None)
    (first,) = records(caplog, "audit: install")
    (second,) = records(caplog, "audit: reinstall")
    assert (first.event, first.refreshed, first.team) == ("install", False, True)  # type: ignore[attr-defined]
    assert (second.event, second.refreshed) == ("reinstall", True)  # type: ignore[attr-defined]
    assert first.configuration_id == second.configuration_id == CFG  # type: ignore[attr-defined]


# --------------------------------------------------------------------- a peer's outcome


def test_a_peer_still_working_is_asked_again_until_it_is_done(
    kv: Any, unit: Any, vercel: FakeVercel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait polls KV (not one look and a guess): each look is a round trip."""
    store = unit[0]
    key = hold_code(store, "code1", "pending")
    looks: list[str] = []
    real = store.install_progress

    def progress(claim: InstallClaim) -> Any:
        looks.append("look")
        if len(looks) == 3:
            store.kv.call("DEL", key)
        return real(claim)

    monkeypatch.setattr(store, "install_progress", progress)
    monkeypatch.setattr(install, "_POLL_S", 0.01)
    with pytest.raises(InstallError) as caught:
        run(unit, vercel)
    assert len(looks) == 3
    assert (caught.value.status, caught.value.kind, caught.value.message) == (
        409,
        "interrupted",
        "Another attempt with this install link did not finish.",
    )


def test_a_peer_never_finishing_is_waited_for_about_eight_seconds(
    kv: Any, unit: Any, vercel: FakeVercel, monkeypatch: pytest.MonkeyPatch
) -> None:
    hold_code(unit[0], "code1", "pending")
    naps: list[float] = []
    clock = [0.0]

    def nap(seconds: float) -> None:
        naps.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(time, "sleep", nap)
    with pytest.raises(InstallError) as caught:
        run(unit, vercel, deadline=Deadline(60, clock=lambda: clock[0]))
    assert (caught.value.status, caught.value.kind, caught.value.message) == (
        409,
        "in_progress",
        "This install is still being completed. Reload in a moment.",
    )
    assert set(naps) == {install._POLL_S}
    assert 7.9 <= sum(naps) <= 8.1
    assert vercel.exchanges == 0


# -------------------------------------------------------------------- the install state


def test_a_state_presented_without_its_browsers_cookie_is_refused_in_words(
    kv: Any, unit: Any, vercel: FakeVercel
) -> None:
    state, nonce = begin(unit)
    for cookie in (None, "", "short", nonce + "!"):
        with pytest.raises(InstallError) as caught:
            run(unit, vercel, state=state, nonce=cookie)
        assert (caught.value.status, caught.value.kind, caught.value.message) == (
            400,
            "bad_state",
            "This install was started in another browser.",
        )
    _other_state, other = begin(unit)
    with pytest.raises(InstallError) as caught:
        run(unit, vercel, state=state, nonce=other)
    assert (caught.value.status, caught.value.kind, caught.value.message) == (
        400,
        "bad_state",
        "This install was started in another browser.",
    )
    assert vercel.exchanges == 0
    # A state presented wrongly stays used: its own browser has to start again.
    with pytest.raises(InstallError) as caught:
        run(unit, vercel, state=state, nonce=nonce)
    assert caught.value.message == "This install link has expired or was already used."


def test_a_state_is_refused_from_the_second_it_expires(
    kv: Any, unit: Any, vercel: FakeVercel, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = unit[0]
    nonce = "n" * 43
    issued = time.time()
    state = install.issue_state(store.keyring, nonce, now=issued)
    expires = int(issued) + install.STATE_TTL_S
    monkeypatch.setattr(time, "time", lambda: float(expires))
    with pytest.raises(InstallError) as caught:
        run(unit, vercel, state=state, nonce=nonce)
    assert (caught.value.status, caught.value.kind, caught.value.message) == (
        400,
        "bad_state",
        "This install link has expired or was already used.",
    )
    monkeypatch.setattr(time, "time", lambda: expires - 1.0)
    _result, inst = run(unit, vercel, state=state, nonce=nonce)
    assert inst is not None


def test_a_forged_state_is_refused_in_words(kv: Any, unit: Any, vercel: FakeVercel) -> None:
    with pytest.raises(InstallError) as caught:
        run(unit, vercel, state="s" * 32, nonce="n" * 43)
    assert (caught.value.status, caught.value.kind, caught.value.message) == (
        400,
        "bad_state",
        "This install link has expired or is not valid.",
    )
    assert caught.value.next == "https://vercel.com/next"


# A state and kept exchange as a deployed release issued them (key "k1" = b"k" * 32, the
# unit fixture's): a deploy while a person is between /install and /callback, or between
# a failed and a retried callback, must not break their link.
RECORDED_NONCE = "recorded-nonce-0000000000000000000000000"
RECORDED_ID = bytes(range(11)) + b"\x17"  # its text ends in "X", a base64url letter like any
RECORDED_ISSUED = (
    "v1.4102444800.AAECAwQFBgcICQoX.qNDRwXISezDs726zyXtLgQ."
    "y9b7nikwhbicJnxVHJs5E1cATkk2WdOblimS6_W3EaQ"
)
RECORDED_KEPT_NAME = "vi_kept_097404a3"
RECORDED_KEPT_AAD = f"kept:{CFG}:b35f4595e64b492bae634e53ae6cedb7"


def _unit_keyring() -> Keyring:
    return Keyring(EncryptionKey(key_id="k1", key=b"k" * 32))


def test_the_state_format_is_stable_across_releases(monkeypatch: pytest.MonkeyPatch) -> None:
    keyring = _unit_keyring()
    monkeypatch.setattr(secrets, "token_bytes", lambda n: RECORDED_ID[:n])
    state = install.issue_state(keyring, RECORDED_NONCE, now=4102444800 - install.STATE_TTL_S)
    assert state == RECORDED_ISSUED
    signed = install._signed_state(keyring, RECORDED_ISSUED)
    assert (signed.expires, signed.browser) == (4102444800, RECORDED_ISSUED.split(".")[3])
    claim = InstallClaim(CFG, True, "pending", True, False, "code-key", None, None)
    install._check_state(signed, claim, RECORDED_NONCE)


def test_a_fresh_browser_gets_a_nonce_of_256_random_bits(unit: Any) -> None:
    store, settings_, _ = unit
    _url, nonce = install.start_install(store.keyring, settings_, nonce=None)
    import base64

    assert len(base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))) == 32
    _url, replaced = install.start_install(store.keyring, settings_, nonce="bad nonce")
    assert replaced != "bad nonce"
    assert len(replaced) == len(nonce)


# --------------------------------------------------------------- the kept exchange


TOKEN = OAuthToken.model_validate(
    {
        "access_token": "tok_kept_secretvalue",
        "token_type": "Bearer",
        "installation_id": CFG,
        "user_id": USER,
        "team_id": TEAM,
    }
)


def _link(code: str = "code1", cfg: str | None = CFG, team: str | None = TEAM) -> CallbackParams:
    return CallbackParams(code, cfg, team, None, None, None)


def test_a_kept_exchange_carries_the_token_and_its_moment_compactly() -> None:
    keyring = _unit_keyring()
    sealed = install._keep(keyring, _link(), TOKEN, 1234.5)
    payload = json.loads(keyring.open_text(sealed, aad=install._kept_aad(_link())))
    assert " " not in json.dumps(payload, separators=(",", ":"))
    assert keyring.open_text(sealed, aad=install._kept_aad(_link())) == json.dumps(
        payload, separators=(",", ":")
    )  # compact: it rides on every /callback request
    found = install._kept(keyring, _link(), sealed)
    assert found is not None
    assert found.at == 1234.5
    assert found.token == TOKEN
    assert found.token.token_type == "Bearer"


def test_holds_kept_only_for_the_very_link_that_kept_it() -> None:
    keyring = _unit_keyring()
    sealed = install._keep(keyring, _link(), TOKEN, 1234.5)
    assert install.holds_kept(keyring, _link(), sealed)
    assert not install.holds_kept(keyring, _link(code="code2"), sealed)
    assert not install.holds_kept(keyring, _link(cfg="icfg_" + "z" * 24), sealed)
    # Altered to name another team: the exchange kept for the real link stays.
    assert not install.holds_kept(keyring, _link(team="team_other"), sealed)
    assert install.holds_kept(keyring, _link(team=None), sealed)
    assert not install.holds_kept(keyring, _link(), None)
    assert not install.holds_kept(keyring, _link(), "v1.k1.garbage")
    # The link without a configuration id keeps under its own binding.
    unnamed = install._keep(keyring, _link(cfg=None), TOKEN, 1.0)
    assert install.holds_kept(keyring, _link(cfg=None), unnamed)
    assert not install.holds_kept(keyring, _link(), unnamed)
    assert not install.holds_kept(keyring, _link(cfg=None), sealed)


def test_the_kept_cookie_name_and_binding_are_stable_across_releases() -> None:
    assert install.kept_cookie(_link()) == RECORDED_KEPT_NAME
    assert install._kept_aad(_link()) == RECORDED_KEPT_AAD
    assert install._kept_aad(_link(cfg=None)) == RECORDED_KEPT_AAD.replace(CFG, "icfg_-unnamed")


def test_without_a_redirect_url_the_kept_cookie_goes_to_callback(unit: Any) -> None:
    _store, settings_, _ = unit
    assert install.kept_path(settings_.model_copy(update={"redirect_uri": None})) == "/callback"


def test_unsaved_keeps_the_way_back_and_never_shows_what_it_keeps() -> None:
    unsaved = install.Unsaved("sealed-value", next="https://vercel.com/x")
    assert (unsaved.status, unsaved.kind, unsaved.next) == (503, "unsaved", "https://vercel.com/x")
    assert unsaved.message == "Vercel completed the install, but we could not save it yet."
    assert repr(unsaved) == "Unsaved(kept=…)"
    assert repr(install.Unsaved(None)) == "Unsaved(kept=None)"


# ------------------------------------------------ what a re-install keeps and replaces


def _stored(**facts: Any) -> Installation:
    return Installation.model_validate(
        {
            "configuration_id": CFG,
            "owner_id": "team_before",
            "team_id": "team_before",
            "user_id": "user_before",
            "sealed_token": "v1.k1.old",
            "scopes": ["read:project"],
            "source": "marketplace",
            "project_selection": "selected",
            "project_ids": ["prj_before"],
            "status": "broken",
            "status_reason": "token revoked",
            "created_at": 100.0,
            "updated_at": 150.0,
            "owner_at": 200.0,
            "scopes_at": 200.0,
            "projects_at": 200.0,
            "last_synced_at": 180.0,
            "last_rotated_at": 170.0,
            **facts,
        }
    )


CONFIGURATION = IntegrationConfiguration.model_validate(
    {"id": CFG, "scopes": ["read:project", "read-write:env"], "projectSelection": "all"}
)


def _installation(
    stored: Installation | None,
    *,
    exchanged_at: float = 300.0,
    read_at: float = 300.0,
    configuration: IntegrationConfiguration | None = CONFIGURATION,
    source: str | None = "external",
) -> Installation:
    params = CallbackParams("code1", CFG, TEAM, None, source, None)
    return install._installation(
        params, TOKEN, "v1.k1.new", configuration, stored, exchanged_at, read_at
    )


def test_a_first_install_takes_every_fact_from_the_token_and_vercel() -> None:
    before = time.time()
    inst = _installation(None, exchanged_at=300.0, read_at=301.0)
    assert inst.configuration_id == CFG
    assert (inst.owner_id, inst.team_id, inst.user_id, inst.owner_at) == (TEAM, TEAM, USER, 300.0)
    assert (inst.scopes, inst.scopes_at) == (["read:project", "read-write:env"], 301.0)
    assert (inst.project_selection, inst.project_ids, inst.projects_at) == ("all", [], 301.0)
    assert (inst.sealed_token, inst.status, inst.source) == ("v1.k1.new", "active", "external")
    assert before <= inst.created_at == inst.updated_at <= time.time()
    assert (inst.last_synced_at, inst.last_rotated_at) == (None, None)


def test_a_first_install_of_a_personal_account_is_owned_by_the_user() -> None:
    personal = TOKEN.model_copy(update={"team_id": None})
    params = CallbackParams("code1", CFG, None, None, None, None)
    inst = install._installation(params, personal, "v1.k1.new", None, None, 300.0, 300.0)
    assert (inst.owner_id, inst.team_id) == (USER, None)
    assert (inst.scopes, inst.project_selection, inst.scopes_at, inst.projects_at) == (
        [],
        None,
        0.0,
        0.0,
    )


def test_a_reinstall_replaces_the_token_and_keeps_the_history() -> None:
    inst = _installation(_stored(), source=None)
    assert inst.sealed_token == "v1.k1.new"
    assert (inst.status, inst.status_reason) == ("active", None)
    assert (inst.created_at, inst.source) == (100.0, "marketplace")
    assert (inst.last_synced_at, inst.last_rotated_at) == (180.0, 170.0)
    assert inst.updated_at > 150.0
    assert _installation(_stored(), source="external").source == "external"


def test_a_reinstall_takes_each_fact_newer_than_the_stored_one_even_at_the_same_second() -> None:
    for at in (200.0, 300.0):
        inst = _installation(_stored(), exchanged_at=at, read_at=at)
        assert (inst.owner_id, inst.team_id, inst.owner_at) == (TEAM, TEAM, at)
        assert (inst.scopes, inst.scopes_at) == (["read:project", "read-write:env"], at)
        assert (inst.project_selection, inst.project_ids, inst.projects_at) == ("all", [], at)


def test_a_reinstall_keeps_each_stored_fact_that_is_newer() -> None:
    """A webhook applied a newer fact while this callback waited on Vercel."""
    inst = _installation(_stored(), exchanged_at=199.0, read_at=199.0)
    assert (inst.owner_id, inst.team_id, inst.owner_at) == ("team_before", "team_before", 200.0)
    assert (inst.scopes, inst.scopes_at) == (["read:project"], 200.0)
    assert (inst.project_selection, inst.project_ids, inst.projects_at) == (
        "selected",
        ["prj_before"],
        200.0,
    )
    # Each fact by its own watermark.
    mixed = _installation(
        _stored(owner_at=100.0, scopes_at=400.0, projects_at=250.0),
        exchanged_at=300.0,
        read_at=300.0,
    )
    assert (mixed.owner_id, mixed.owner_at) == (TEAM, 300.0)
    assert (mixed.scopes, mixed.scopes_at) == (["read:project"], 400.0)
    assert (mixed.project_selection, mixed.projects_at) == ("all", 300.0)


def test_a_reinstall_without_vercels_answer_keeps_what_we_knew() -> None:
    inst = _installation(_stored(), configuration=None)
    assert (inst.owner_id, inst.owner_at) == (TEAM, 300.0)  # the token still counts
    assert (inst.scopes, inst.scopes_at) == (["read:project"], 200.0)
    assert (inst.project_selection, inst.project_ids) == ("selected", ["prj_before"])


def test_a_selection_of_projects_is_stored_as_vercel_lists_it() -> None:
    selected = IntegrationConfiguration.model_validate(
        {"id": CFG, "scopes": [], "projectSelection": "selected", "projects": ["prj_1", "prj_2"]}
    )
    inst = _installation(_stored(), configuration=selected)
    assert (inst.project_selection, inst.project_ids) == ("selected", ["prj_1", "prj_2"])
    assert inst.scopes == []


# ------------------------------------------------------------ a kept exchange superseded


def test_a_kept_exchange_older_than_the_stored_install_writes_nothing(
    kv: Any,
    unit: Any,
    vercel: FakeVercel,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """KV failed after the first exchange; the person started again from Vercel and a
    second code was stored; then the first link is retried with its kept exchange: the
    older token must not replace the newer one."""
    store = unit[0]
    closing_write_fails(store, monkeypatch)
    with pytest.raises(install.Unsaved) as caught:
        run(unit, vercel, code="code1")
    monkeypatch.undo()
    run(unit, vercel, code="code2")
    before = keys(kv)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        result, inst = run(unit, vercel, code="code1", kept=caught.value.kept)
    assert (result.configuration_id, result.already_installed, inst) == (CFG, True, None)
    assert result.next == "https://vercel.com/next"
    assert keys(kv) == before
    saved = store.get_installation(CFG)
    assert saved is not None
    assert store.token(saved) == vercel.issued[1]
    (record,) = records(caplog, "kept exchange superseded by a newer install; nothing written")
    assert record.configuration_id == CFG  # type: ignore[attr-defined]
    (resumed,) = records(caplog, "install resumed from the kept exchange")
    assert resumed.configuration_id == CFG  # type: ignore[attr-defined]


def test_a_kept_exchange_is_checked_against_the_links_team(
    kv: Any, unit: Any, vercel: FakeVercel, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = unit[0]
    closing_write_fails(store, monkeypatch)
    with pytest.raises(install.Unsaved) as caught:
        run(unit, vercel, code="code1")
    monkeypatch.undo()
    with pytest.raises(InstallError) as refused:
        run(unit, vercel, code="code1", team_id="team_other", kept=caught.value.kept)
    assert (refused.value.status, refused.value.kind) == (400, "mismatch")
    assert store.get_installation(CFG) is None
    assert vercel.exchanges == 1


def test_a_repeat_never_gives_back_a_state_another_request_used(
    kv: Any, unit: Any, vercel: FakeVercel
) -> None:
    state, nonce = begin(unit)
    run(unit, vercel, code="code0", state=state, nonce=nonce)  # uses the state
    hold_code(unit[0], "code1", done_mark(CFG))
    result, _inst = run(unit, vercel, code="code1", state=state, nonce=nonce)  # a repeat
    assert result.already_installed
    with pytest.raises(InstallError) as caught:
        run(unit, vercel, code="code2", state=state, nonce=nonce)
    assert caught.value.message == "This install link has expired or was already used."


# ------------------------------------------------------------------- the link's words


@pytest.mark.parametrize(
    ("changes", "parameter", "problem"),
    [
        ({"code": "a b"}, "code", "not valid"),
        ({"code": "<drop>"}, "code", "missing"),
        ({"teamId": ["team_a", "team_b"]}, "teamId", "given twice"),
        ({"configurationId": "icfg_short"}, "configurationId", "not valid"),
    ],
)
def test_a_refused_link_names_the_parameter_in_the_log_and_words_on_the_page(
    offline_settings: Any,
    caplog: pytest.LogCaptureFixture,
    changes: dict[str, Any],
    parameter: str,
    problem: str,
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER), pytest.raises(InstallError) as caught:
        install.parse_callback(base._query(**changes), offline_settings)
    (record,) = records(caplog, "callback link refused")
    assert (record.parameter, record.problem) == (parameter, problem)  # type: ignore[attr-defined]
    # The page speaks words, not parameter names.
    words = {"code": "install code", "teamId": "team", "configurationId": "configuration"}
    assert caught.value.message == (
        f"This install link is incomplete or damaged: its {words[parameter]} is {problem}."
    )


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("https://evil.example/x", "evil.example"),
        ("https://[::1/x", "?"),  # unparsable: no host to name
        ("vercel.com/x", "?"),  # no scheme: no host either
        ("https://" + "h" * 150 + ".example/", "h" * 100),
    ],
)
def test_a_refused_next_is_logged_by_host_and_length(
    offline_settings: Any, caplog: pytest.LogCaptureFixture, value: str, host: str
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        params = install.parse_callback(base._query(next=value), offline_settings)
    assert params.next is None
    (record,) = records(caplog, "next refused: the install popup will not close by itself")
    assert record.levelno == logging.WARNING
    assert (record.next_host, record.next_length) == (host, len(value))  # type: ignore[attr-defined]


@pytest.mark.parametrize(("error", "logged"), [("access_denied", "access_denied"), ("<x>", "?")])
def test_a_cancelled_install_is_logged_by_its_code_only(
    offline_settings: Any, caplog: pytest.LogCaptureFixture, error: str, logged: str
) -> None:
    query = {"error": [error], "error_description": ["free text"], "next": ["https://vercel.com/b"]}
    with caplog.at_level(logging.INFO, logger=LOGGER), pytest.raises(InstallError) as caught:
        install.parse_callback(query, offline_settings)
    assert (caught.value.kind, caught.value.next) == ("cancelled", "https://vercel.com/b")
    assert caught.value.message == "The install was cancelled on Vercel. Nothing was installed."
    (record,) = records(caplog, "install cancelled on Vercel")
    assert record.error == logged  # type: ignore[attr-defined]


# ------------------------------------------------------------ an uninstall in the way

REMOVED = (
    410,
    "removed",
    "This installation was removed from Vercel. Install the integration again.",
)


def test_a_link_of_an_uninstalled_installation_never_spends_its_code(
    kv: Any, unit: Any, vercel: FakeVercel
) -> None:
    store = unit[0]
    run(unit, vercel, code="code1")
    store.delete_installation(CFG, [TEAM])
    with pytest.raises(InstallError) as caught:
        run(unit, vercel, code="code2")
    assert (caught.value.status, caught.value.kind, caught.value.message) == REMOVED
    assert caught.value.next == "https://vercel.com/next"
    assert vercel.exchanges == 1
    assert store.get_installation(CFG) is None


def test_an_uninstall_landing_during_the_exchange_wins(
    kv: Any, unit: Any, vercel: FakeVercel, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = unit[0]
    real = vercel.handler

    def uninstalled_meanwhile(request: httpx.Request) -> httpx.Response:
        if "/integrations/configuration/" in request.url.path:
            store.delete_installation(CFG, [TEAM])  # the removed event lands now
        return real(request)

    monkeypatch.setattr(vercel, "handler", uninstalled_meanwhile)
    with pytest.raises(InstallError) as caught:
        run(unit, vercel)
    assert (caught.value.status, caught.value.kind, caught.value.message) == REMOVED
    assert caught.value.next == "https://vercel.com/next"
    assert store.get_installation(CFG) is None
    assert store.all_installations() == []


def test_a_repeat_of_a_link_uninstalled_since_says_it_was_removed(
    kv: Any, unit: Any, vercel: FakeVercel
) -> None:
    store = unit[0]
    run(unit, vercel, code="code1")
    store.delete_installation(CFG, [TEAM])
    with pytest.raises(InstallError) as caught:
        run(unit, vercel, code="code1")  # the reload of the finished link
    assert (caught.value.status, caught.value.kind, caught.value.message) == REMOVED
    assert caught.value.next == "https://vercel.com/next"
    assert vercel.exchanges == 1


def test_a_reinstall_through_a_link_without_configuration_id_is_a_reinstall(
    kv: Any, unit: Any, vercel: FakeVercel
) -> None:
    store = unit[0]
    run(unit, vercel, code="code1")
    created = store.get_installation(CFG)
    assert created is not None
    state, nonce = begin(unit)
    kv.gateway.reset_stats()
    result, _inst = run(unit, vercel, code="code2", cfg=None, state=state, nonce=nonce)
    assert kv.gateway.stats()["requests"] == 3  # claim, read under the token's id, write
    assert (result.configuration_id, result.already_installed) == (CFG, True)
    again = store.get_installation(CFG)
    assert again is not None
    assert again.created_at == created.created_at
    assert store.token(again) == vercel.issued[1]


def test_a_reinstall_costs_two_kv_round_trips_and_is_pending_again(
    kv: Any, unit: Any, vercel: FakeVercel
) -> None:
    store = unit[0]
    run(unit, vercel, code="code1")
    store.clear_pending(CFG, started=time.time() + 1)
    kv.gateway.reset_stats()
    result, inst = run(unit, vercel, code="code2")
    assert kv.gateway.stats()["requests"] == 2
    assert result.already_installed
    assert inst is not None
    assert store.pending() == [CFG]


def test_the_configuration_is_read_with_the_tokens_team(
    kv: Any, unit: Any, vercel: FakeVercel
) -> None:
    run(unit, vercel, team_id=None)
    assert vercel.configuration_teams == [TEAM]


def test_an_unreadable_configuration_is_logged_and_the_install_goes_on(
    kv: Any, unit: Any, vercel: FakeVercel, caplog: pytest.LogCaptureFixture
) -> None:
    vercel.configuration_status = 500
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _result, inst = run(unit, vercel)
    assert inst is not None
    (record,) = records(caplog, "could not read configuration")
    assert record.levelno == logging.WARNING
    assert record.error == "x"  # type: ignore[attr-defined]


def test_a_reinstall_mends_a_broken_installation() -> None:
    assert _installation(_stored()).status == "active"  # stored: broken, token revoked
    assert _installation(_stored()).status_reason is None


def test_a_kept_exchange_is_refused_from_the_second_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keyring = _unit_keyring()
    monkeypatch.setattr(time, "time", lambda: 1000.0)
    sealed = install._keep(keyring, _link(), TOKEN, 999.0)
    monkeypatch.setattr(time, "time", lambda: 1000.0 + install.KEPT_TTL_S - 1)
    assert install._kept(keyring, _link(), sealed) is not None
    monkeypatch.setattr(time, "time", lambda: 1000.0 + install.KEPT_TTL_S)
    assert install._kept(keyring, _link(), sealed) is None


def test_a_kept_exchange_of_an_earlier_version_dates_itself_from_its_expiry() -> None:
    """Earlier versions sealed no `at`: it was sealed just after the exchange."""
    keyring = _unit_keyring()
    exp = int(time.time()) + 600
    payload = {
        "exp": exp,
        "access_token": "tok_old_format_value",
        "installation_id": CFG,
        "user_id": USER,
        "team_id": TEAM,
    }
    sealed = keyring.seal(json.dumps(payload), aad=install._kept_aad(_link()))
    found = install._kept(keyring, _link(), sealed)
    assert found is not None
    assert found.at == exp - install.KEPT_TTL_S


def test_a_kept_token_is_masked_in_logs_once_opened() -> None:
    from lib.log import redact

    keyring = _unit_keyring()
    value = f"tok_kept_{secrets.token_hex(8)}"  # fresh: the registry lives with the process
    token = OAuthToken.model_validate({**TOKEN.model_dump(), "access_token": value})
    sealed = install._keep(keyring, _link(), token, 1.0)
    assert value in redact(value)
    assert install._kept(keyring, _link(), sealed) is not None
    assert value not in redact(value)


def test_an_exchanged_token_is_masked_in_logs(kv: Any, unit: Any, vercel: FakeVercel) -> None:
    from lib.log import redact

    run(unit, vercel)
    assert vercel.issued[0] not in redact(f"token {vercel.issued[0]}")


def test_an_install_error_reads_as_its_words() -> None:
    error = InstallError(409, "in_progress", "Still being completed.")
    assert str(error) == "Still being completed."


def test_a_kept_retry_completes_while_the_failed_attempt_still_holds_the_code(
    kv: Any,
    unit: Any,
    vercel: FakeVercel,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """KV failed after the exchange and while the claim was being given back: the code
    stays "pending" under the failed attempt's claim, which is the retry's own."""
    store = unit[0]
    closing_write_fails(store, monkeypatch)

    def down(*_args: Any, **_kwargs: Any) -> Any:
        raise KVUnavailable("KV store unavailable (test)")

    monkeypatch.setattr(store.kv, "pipeline", down)  # the give-back fails too
    with caplog.at_level(logging.INFO, logger=LOGGER), pytest.raises(install.Unsaved) as caught:
        run(unit, vercel)
    monkeypatch.undo()
    (line,) = records(
        caplog, "installation not saved: KV failed after the exchange; kept for a retry"
    )
    assert line.levelno == logging.WARNING
    assert line.configuration_id == CFG  # type: ignore[attr-defined]
    code_key = store.key("code", hashlib.sha256(b"code1").hexdigest()[:32])
    assert store.kv.call("GET", code_key) == "pending"
    result, inst = run(unit, vercel, kept=caught.value.kept)
    assert inst is not None
    assert result.already_installed is False
    assert vercel.exchanges == 1


def test_a_used_code_of_an_installation_we_have_gives_the_state_back(
    kv: Any, unit: Any, vercel: FakeVercel
) -> None:
    run(unit, vercel, code="code1")
    state, nonce = begin(unit)
    vercel.oauth_status, vercel.oauth_error = 400, {"error": "invalid_grant"}
    result, _inst = run(unit, vercel, code="code2", state=state, nonce=nonce)
    assert result.already_installed
    vercel.oauth_status = 200
    _result, inst = run(unit, vercel, code="code3", state=state, nonce=nonce)  # still usable
    assert inst is not None


def test_a_damaged_record_fails_the_install_and_gives_everything_back(
    kv: Any, unit: Any, vercel: FakeVercel
) -> None:
    from lib.kv.records import StoreError

    store = unit[0]
    state, nonce = begin(unit)
    store.kv.call("SET", store.key("inst", CFG), "{damaged")
    before = keys(kv)
    with pytest.raises(StoreError):
        run(unit, vercel, state=state, nonce=nonce)
    assert keys(kv) == before  # the code and the state were given back
    store.kv.call("DEL", store.key("inst", CFG))
    _result, inst = run(unit, vercel, state=state, nonce=nonce)  # the reload works
    assert inst is not None
