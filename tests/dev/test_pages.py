"""`make pages` (dev/pages.py): the committed public/*.html are what the templates and
integration.toml's [integration] table render, and they follow that table."""

from __future__ import annotations

from pathlib import Path

import pytest

from dev.pages import PUBLIC, TEMPLATES, main, render, stale
from lib.product import Product, load_product
from lib.web.pages.layout import brand

ROOT = Path(__file__).resolve().parents[2]

OTHER = Product(
    name="Zeta <Cloud> & Co",
    company="Zeta",
    support_email="help@zeta.example",
    homepage_url="/home",
    docs_url="https://zeta.example/docs?a=1&b=2",
    privacy_url="/legal/privacy",
)


def test_the_committed_pages_are_current() -> None:
    pages = render(load_product(ROOT / "integration.toml"))
    assert sorted(pages) == sorted(p.name for p in PUBLIC.glob("*.html"))
    assert stale(pages) == [], "public/ is stale: run `make pages` and commit the result"
    assert main(["--check"]) == 0


def test_every_page_follows_the_integration_table() -> None:
    for name, text in render(OTHER).items():
        assert "Acme for Vercel" not in text, name
        assert "© Acme" not in text, name
        assert "support@acme" not in text, name
        assert str(brand(OTHER)) in text, name  # the functions' header link, escaped
        assert "Zeta &lt;Cloud&gt; &amp; Co" in text, name
        assert 'href="mailto:help@zeta.example">Support</a>' in text, name
        assert 'href="https://zeta.example/docs?a=1&amp;b=2">Docs</a>' in text, name
        assert 'href="/legal/privacy">Privacy</a>' in text, name
        assert "© Zeta." in text, name
        assert "$" not in text, name  # every placeholder substituted


def test_stale_names_changed_and_missing_pages(tmp_path: Path) -> None:
    pages = {"a.html": "A", "b.html": "B", "c.html": "C"}
    (tmp_path / "a.html").write_text("A")
    (tmp_path / "b.html").write_text("B, edited by hand")
    assert stale(pages, tmp_path) == ["b.html", "c.html"]


def test_an_unknown_placeholder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("<p>${slogan}</p>")
    with pytest.raises(KeyError, match="slogan"):
        render(OTHER, tmp_path)


def test_partials_are_not_pages() -> None:
    assert (TEMPLATES / "_footer.html").is_file()
    assert "_footer.html" not in render(OTHER)


def test_the_privacy_page_is_dated_names_its_sub_processors_and_tells_the_truth_on_retention() -> (
    None
):
    """Issue 13: a date, the sub-processors, and retention as long as the code keeps data
    (the periods are read from the code that enforces them, so a change there fails here)."""
    import re

    from lib.install import STATE_TTL_S
    from lib.kv.store import CODE_DONE_TTL_S, EVENT_DONE_TTL_S, EVENT_LEASE_TTL_S, GONE_TTL_S
    from lib.web.signin import SIGNIN_TTL_S

    text = (PUBLIC / "privacy.html").read_text(encoding="utf-8")
    assert re.search(r'Last updated <time datetime="\d{4}-\d{2}-\d{2}">', text)
    for processor in ("<strong>Vercel</strong>", "<strong>Upstash</strong>"):
        assert processor in text
    rows = dict(
        re.findall(r'<td data-label="What">(.*?)</td><td data-label="Kept for">(.*?)</td>', text)
    )
    kept = " | ".join(rows.values())
    assert any(v.startswith("Until you remove the integration") for v in rows.values())
    assert f"{GONE_TTL_S // 3600} hours" in kept
    assert f"{EVENT_DONE_TTL_S // 3600} hours ({EVENT_LEASE_TTL_S} seconds" in kept
    assert STATE_TTL_S == SIGNIN_TTL_S
    assert f"{STATE_TTL_S // 60} minutes, or until used" in kept
    assert f"{CODE_DONE_TTL_S // 60} minutes" in kept
    assert "Vercel keeps runtime logs" in kept


def test_no_public_page_links_to_raw_json() -> None:
    for page in PUBLIC.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        for endpoint in ("/health", "/provision", "/webhook"):
            assert f'href="{endpoint}' not in text, (page.name, endpoint)
