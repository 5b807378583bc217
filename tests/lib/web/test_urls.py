"""lib/web/urls.py: the one place that builds /configure URLs; and the one configuration id
pattern every entry point checks."""

import pytest

from lib.vercel.models import CONFIGURATION_ID
from lib.web.urls import configure_url


def test_configure_urls() -> None:
    assert configure_url("icfg_abc123") == "/configure?configurationId=icfg_abc123"
    assert configure_url("icfg_abc", done="resync-partial") == (
        "/configure?configurationId=icfg_abc&done=resync-partial"
    )


def test_urls_are_quoted_whatever_they_are_given() -> None:
    """Callers validate ids first; the URL must not depend on it (one page did not)."""
    assert configure_url("a&b=c d/e") == "/configure?configurationId=a%26b%3Dc%20d%2Fe"
    assert configure_url('"><x') == "/configure?configurationId=%22%3E%3Cx"
    assert configure_url("icfg_1", done="a&b") == "/configure?configurationId=icfg_1&done=a%26b"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("icfg_" + "A1" * 12, True),
        ("icfg_3bwCLgxL8qt5kjRLcv2Dit7F", True),  # Vercel's OpenAPI example
        ("icfg_cuwj0AdCdH3BwWT4LPijCC7t", True),
        ("icfg_" + "a" * 23, False),
        ("icfg_" + "a" * 25, False),
        ("icfg_" + "a" * 64, False),
        ("icfg_", False),
        ("icfg_" + "a" * 24 + "\n", False),  # `re.match` with `$` let a trailing newline through
        ("icfg_" + "a" * 22 + "-c", False),
        ("icfg_" + "é" * 24, False),
        ("team_" + "a" * 24, False),
    ],
)
def test_one_configuration_id_pattern(value: str, valid: bool) -> None:
    assert bool(CONFIGURATION_ID.fullmatch(value)) is valid


def test_the_emulator_issues_ids_of_that_form() -> None:
    """The local stack's ids pass the same check Vercel's do."""
    from dev.emulator.ids import new_id

    assert all(CONFIGURATION_ID.fullmatch(new_id("icfg_")) for _ in range(200))
