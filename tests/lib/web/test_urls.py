"""lib/web/urls.py: the one place that builds /configure and re-verification URLs."""

import pytest

from lib.vercel.models import CONFIGURATION_ID
from lib.web.urls import configure_url, reverify_url


def test_configure_and_reverify_urls() -> None:
    assert configure_url("icfg_abc123") == "/configure?configurationId=icfg_abc123"
    assert configure_url("icfg_abc", done="resync-partial") == (
        "/configure?configurationId=icfg_abc&done=resync-partial"
    )
    assert reverify_url("icfg_abc") == "/install?configurationId=icfg_abc"


def test_urls_are_quoted_whatever_they_are_given() -> None:
    """Callers validate ids first; the URL must not depend on it (one page did not)."""
    assert configure_url("a&b=c d/e") == "/configure?configurationId=a%26b%3Dc%20d%2Fe"
    assert reverify_url('"><x') == "/install?configurationId=%22%3E%3Cx"
    assert configure_url("icfg_1", done="a&b") == "/configure?configurationId=icfg_1&done=a%26b"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("icfg_" + "A1" * 12, True),
        ("icfg_" + "a" * 64, True),
        ("icfg_" + "a" * 65, False),
        ("icfg_", False),
        ("icfg_abc\n", False),  # `re.match` with `$` let a trailing newline through
        ("icfg_ab-c", False),
        ("team_abc", False),
    ],
)
def test_one_configuration_id_pattern(value: str, valid: bool) -> None:
    assert bool(CONFIGURATION_ID.fullmatch(value)) is valid
