"""The install flow's side of issue 12 without a network: `next` on both of Vercel's
dashboard hosts, refusals logged, every error carrying the safe way back, and a
cancelled install recognised before anything else happens."""

from __future__ import annotations

import logging

import pytest

from lib.install import InstallError, parse_callback, safe_next
from lib.settings import Settings
from tests.lib.test_install import _query, offline_settings  # noqa: F401 - the fixture

VERCEL = "https://vercel.com"


@pytest.mark.parametrize(
    "value",
    [
        "https://vercel.com",
        "https://vercel.com/acme/integrations/x",
        "https://www.vercel.com",
        "https://www.vercel.com/acme/integrations/x?a=1",
        "https://www.vercel.com:443/x",
    ],
)
def test_both_dashboard_hosts_are_allowed(value: str) -> None:
    assert safe_next(value, VERCEL) == value


@pytest.mark.parametrize(
    "value",
    [
        "http://www.vercel.com/x",
        "https://www.vercel.com.evil.com/x",
        "https://www.vercel.com@evil.com/x",
        "https://user@www.vercel.com/x",
        "https://www.vercel.com:444/x",
        "https://ww.vercel.com/x",
        "https://api.vercel.com/x",
        "//www.vercel.com/x",
        "https:www.vercel.com/x",
        "https://www.vercel.com\\@evil.com",
        "https://www.vercel.com/x y",
    ],
)
def test_every_other_check_still_holds_for_www(value: str) -> None:
    assert safe_next(value, VERCEL) is None


def test_www_is_allowed_whatever_the_dashboard_setting_and_the_setting_decides_the_rest() -> None:
    emulator = "http://127.0.0.1:4000"
    assert safe_next("https://www.vercel.com/x", emulator) == "https://www.vercel.com/x"
    assert safe_next("https://vercel.com/x", emulator) is None
    assert safe_next("http://127.0.0.1:4000/x", emulator) == "http://127.0.0.1:4000/x"


def test_a_refused_next_is_logged_as_a_warning_by_host_only(
    offline_settings: Settings,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    evil = "https://evil.example/steal?token=abcdef123456"
    with caplog.at_level(logging.INFO, logger="install"):
        params = parse_callback(_query(next=evil), offline_settings)
    assert params.next is None
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "next refused" in warning.getMessage()
    assert getattr(warning, "next_host", None) == "evil.example"
    assert "abcdef123456" not in str(warning.__dict__)


def test_an_accepted_next_logs_nothing(
    offline_settings: Settings,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="install"):
        parse_callback(_query(next="https://www.vercel.com/x"), offline_settings)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_refused_link_carries_the_safe_next(offline_settings: Settings) -> None:  # noqa: F811
    with pytest.raises(InstallError) as caught:
        parse_callback(
            _query(configurationId="<drop>", next="https://vercel.com/back"), offline_settings
        )
    assert caught.value.kind == "bad_request"
    assert caught.value.next == "https://vercel.com/back"
    with pytest.raises(InstallError) as caught:
        parse_callback(_query(code="a b", next="https://evil.example/"), offline_settings)
    assert caught.value.next is None


@pytest.mark.parametrize("error", ["access_denied", "<script>", ""])
def test_error_without_code_is_cancelled_on_vercel(
    offline_settings: Settings,  # noqa: F811
    error: str,
) -> None:
    query = _query(code="<drop>", next="https://www.vercel.com/back")
    query["error"] = [error]
    query["error_description"] = ["The user cancelled"]
    with pytest.raises(InstallError) as caught:
        parse_callback(query, offline_settings)
    if not error:  # an empty `error` is no error: the missing code is the problem
        assert caught.value.kind == "bad_request"
        return
    assert caught.value.status == 400
    assert caught.value.kind == "cancelled"
    assert "cancelled on Vercel" in caught.value.message
    assert caught.value.next == "https://www.vercel.com/back"


def test_error_next_to_a_code_is_not_a_cancellation(
    offline_settings: Settings,  # noqa: F811
) -> None:
    query = _query()
    query["error"] = ["access_denied"]
    assert parse_callback(query, offline_settings).code == "c0de-._~"


def test_cancelled_without_configuration_id_is_still_cancelled(
    offline_settings: Settings,  # noqa: F811
) -> None:
    query = {"error": ["access_denied"]}
    with pytest.raises(InstallError) as caught:
        parse_callback(query, offline_settings)
    assert caught.value.kind == "cancelled"
    assert caught.value.next is None
