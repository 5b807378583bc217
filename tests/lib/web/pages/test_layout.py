"""The pages people see (lib/web/pages/layout.py) and the install flow's pages (lib/web/pages/install.py):
a valid, accessible document linking the shared stylesheet, with every value escaped."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from lib.install import InstallError, InstallResult
from lib.product import load_product, reset_product
from lib.settings import Settings, load_settings
from lib.web.pages.install import error_page, success_page
from lib.web.pages.layout import FALLBACK, brand, page, product, safe

MARKUP = '"><script>alert(1)</script><img src=x onerror=alert(1)>'


class Outline(HTMLParser):
    """What a screen reader and a browser care about, collected from a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: dict[str, str] = {}
        self._open: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open:
            self.text[self._open[-1]] = self.text.get(self._open[-1], "") + data

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


SITE_LINKS = ("/", "/docs")  # the brand header every page carries


def action_links(outline: Outline) -> list[str | None]:
    """The page's own links, without the site header's."""
    return [a["href"] for a in outline.all("a") if a["href"] not in SITE_LINKS]


def assert_accessible(text: str) -> Outline:
    assert text.startswith("<!doctype html>")
    outline = Outline(text)
    [html] = outline.all("html")
    assert html["lang"] == "en"
    assert outline.text.get("title", "").strip()
    [h1] = outline.all("h1")
    [main] = outline.all("main")
    assert main["aria-labelledby"] == h1["id"]
    assert {"rel": "stylesheet", "href": "/styles.css"} in outline.all("link")
    assert any(attrs.get("role") in ("alert", "status") for attrs in outline.all("p"))
    assert not outline.all("script")
    assert "style=" not in text
    return outline


def test_page_escapes_every_value() -> None:
    text = page(
        MARKUP,
        MARKUP,
        details=[MARKUP],
        actions=[(f"https://vercel.com/{MARKUP}", MARKUP), ("javascript:x", MARKUP)],
        tone=MARKUP,
    )
    outline = assert_accessible(text)
    assert "<script>" not in text
    assert [img["src"] for img in outline.all("img")] == ["/favicon.svg"]  # the brand's only
    assert outline.text["h1"] == MARKUP  # shown as text, not interpreted
    hrefs = [a["href"] for a in outline.all("a")]
    assert f"https://vercel.com/{MARKUP}" in hrefs


def test_page_tones_and_roles() -> None:
    error = Outline(page("T", "M", tone="error"))
    assert [p.get("role") for p in error.all("p")] == ["alert"]
    ok = Outline(page("T", "M", tone="success"))
    assert [p.get("role") for p in ok.all("p")] == ["status"]


def test_only_safe_markup_passes_unescaped() -> None:
    text = page("T", safe("<strong>kept</strong>"), details=[safe("<em>kept</em>"), "<em>"])
    assert "<strong>kept</strong>" in text
    assert "<em>kept</em>" in text
    assert "&lt;em&gt;" in text


@pytest.fixture(scope="module")
def config() -> Settings:
    return load_settings(
        {
            "VERCEL_CLIENT_ID": "oac_test",
            "VERCEL_CLIENT_SECRET": "test-client-secret-123",
            "TOKEN_ENCRYPTION_KEY": base64.b64encode(b"k" * 32).decode(),
            "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:1",
            "UPSTASH_REDIS_REST_TOKEN": "unused",
            "INTEGRATION_SLUG": "my-integration",
        }
    )


KINDS = [
    (400, "bad_request"),
    (400, "bad_state"),
    (400, "invalid_code"),
    (400, "mismatch"),
    (500, "misconfigured"),
    (502, "unavailable"),
    (503, "unavailable"),
    (409, "in_progress"),
    (409, "interrupted"),
    (400, "something_new"),
]


@pytest.mark.parametrize(("status", "kind"), KINDS)
def test_error_pages(config: Settings, status: int, kind: str) -> None:
    response = error_page(InstallError(status, kind, MARKUP), config)
    assert response.status == status
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert response.header("cache-control") == "no-store"
    text = response.body.decode()
    outline = assert_accessible(text)
    assert "<script>" not in text
    assert outline.all("p")[0]["role"] == "alert"
    links = action_links(outline)
    if kind == "in_progress":
        assert links == []  # the advice is to reload, not to start over
    elif kind == "bad_state":
        assert links == ["/install"]  # a fresh state, from this browser
    else:
        assert links == ["https://vercel.com/integrations/my-integration/new"]
    retry = response.header("retry-after")
    assert (retry is not None and retry.isdigit()) is (status in (502, 503))


def test_error_page_without_settings_has_no_links() -> None:
    response = error_page(InstallError(500, "misconfigured", "Misconfigured."), None)
    assert action_links(Outline(response.body.decode())) == []


def test_error_page_without_a_slug_links_the_integrations_list(config: Settings) -> None:
    no_slug = config.model_copy(update={"integration_slug": None})
    text = error_page(InstallError(400, "invalid_code", "x"), no_slug).body.decode()
    assert action_links(Outline(text)) == ["https://vercel.com/dashboard/integrations"]


@pytest.mark.parametrize(
    ("result", "expect"),
    [
        (InstallResult("icfg_1", None, projects=["web", MARKUP]), "being set up"),
        (InstallResult("icfg_1", None, already_installed=True), "You can close this window"),
        (InstallResult("icfg_1", None, projects=["web"], pending=True), "in the background"),
    ],
)
def test_success_page(result: InstallResult, expect: str) -> None:
    response = success_page(result)
    assert response.status == 200
    text = response.body.decode()
    outline: Any = assert_accessible(text)
    assert expect in text
    assert "<script>" not in text
    assert next(p.get("role") for p in outline.all("p")) == "status"
    for name in result.projects:
        assert f"Provisioned: {name}" in outline.text.get("li", "")  # as text, unescaped
    assert action_links(outline) == ["/configure?configurationId=icfg_1"]


@pytest.fixture
def spec_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An integration.toml of our own, read afresh by the pages."""
    path = tmp_path / "integration.toml"
    monkeypatch.setenv("INTEGRATION_SPEC_PATH", str(path))
    reset_product()
    yield path
    reset_product()


def test_pages_show_the_product_of_the_integration_table(spec_path: Path) -> None:
    spec_path.write_text(
        "[integration]\n"
        'name = "Zeta <Cloud> & Co"\n'
        'company = "Zeta"\n'
        'support_email = "help@zeta.example"\n'
        'homepage_url = "https://zeta.example/?a=1&b=2"\n'
        'docs_url = "https://zeta.example/docs"\n'
        'privacy_url = "/privacy"\n'
    )
    text = page("T", "M")
    outline = assert_accessible(text)
    [home, docs] = outline.all("a")
    assert home["href"] == "https://zeta.example/?a=1&b=2"  # escaped in the markup, intact
    assert docs["href"] == "https://zeta.example/docs"
    assert "Zeta &lt;Cloud&gt; &amp; Co</a>" in text
    assert "Acme" not in text


def test_a_broken_integration_table_still_renders_a_page(spec_path: Path) -> None:
    spec_path.write_text('[integration]\nname = "Zeta"\n')
    assert product() is FALLBACK
    outline = assert_accessible(page("Misconfigured", "M", tone="error"))
    assert outline.all("a")[0]["href"] == "/"
    assert FALLBACK.name in page("T", "M")


def test_the_brand_is_the_committed_product_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTEGRATION_SPEC_PATH", raising=False)
    reset_product()
    committed = load_product(Path(__file__).resolve().parents[4] / "integration.toml")
    assert product() == committed
    assert str(brand(committed)) in page("T", "M")
