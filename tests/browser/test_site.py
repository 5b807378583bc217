"""The static site (public/) and the security headers every response carries.

No browser needed: these read the files and ask the dev server, which applies
`vercel.json`'s headers exactly as a deployment does.

Header choices, and why:
- CSP `default-src 'none'` with only `style-src 'self'`, `img-src 'self'`: the pages
  are HTML and one stylesheet; no script, font, frame or connection is ever needed, so
  none is allowed (an injected script or exfiltrating image has nowhere to go).
- `form-action 'self'`: the only forms (configuration page) post to ourselves.
- `frame-ancestors 'none'` + `X-Frame-Options: DENY`: Vercel opens the callback in a
  popup (a top-level window from `window.open`) or as a full page, and the Configuration
  URL as a page; frame rules govern frames only, so neither is affected. A framed
  configuration page could not work anyway (its SameSite=Lax session cookie is not sent
  to a cross-site frame), and refusing frames keeps "Rotate secrets" from being
  clickjacked.
- No `Cross-Origin-Opener-Policy`: on the callback it would cut the popup off from the
  vercel.com window that opened it, which is how Vercel's flow notices completion.
- `Referrer-Policy: no-referrer`: our URLs carry single-use codes, states and
  configuration ids; nothing we link to needs them.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from dev.stack import ROOT
from lib.provisioning.spec import TARGETS, load_spec

PUBLIC = ROOT / "public"
PAGES = sorted(PUBLIC.glob("*.html"))

# Every kind of response: static pages and assets, each function, errors and redirects.
PATHS = [
    "/",
    "/docs",
    "/privacy",
    "/styles.css",
    "/favicon.svg",
    "/favicon.ico",
    "/no-such-page",
    "/health",
    "/install",
    "/callback",
    "/configure?configurationId=icfg_abcabcabcabcabcabcabcabc",
    "/webhook",
    "/provision",
]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.rows: list[list[str]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag == "table":
            self._table = a.get("id")
        elif tag == "tr" and self._table == "provisioned":
            self.rows.append([])
        elif tag == "td" and self._table == "provisioned":
            self._cell = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None


def _parse(path: Path) -> _Page:
    parser = _Page()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def dev_url(request: pytest.FixtureRequest) -> str:
    """The dev server of the e2e stack (its state is not used, so no per-test reset)."""
    return str(request.getfixturevalue("_e2e_servers").dev_url)


@pytest.fixture(scope="module")
def responses(dev_url: str) -> dict[str, httpx.Response]:
    with httpx.Client(base_url=dev_url, timeout=30.0) as client:
        return {path: client.get(path) for path in PATHS}


@pytest.mark.parametrize("path", PATHS)
def test_every_response_carries_the_security_headers(
    responses: dict[str, httpx.Response], path: str
) -> None:
    headers = responses[path].headers
    csp = {d.split()[0]: d.split()[1:] for d in headers["content-security-policy"].split("; ") if d}
    assert csp["default-src"] == ["'none'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["img-src"] == ["'self'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert "script-src" not in csp  # falls back to 'none'
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert headers["strict-transport-security"].startswith("max-age=")
    assert "camera=()" in headers["permissions-policy"]
    assert headers["cross-origin-resource-policy"] == "same-origin"
    # The install popup must stay connected to the vercel.com window that opened it.
    assert "cross-origin-opener-policy" not in headers


def test_the_paths_answer_as_expected(responses: dict[str, httpx.Response]) -> None:
    status = {path: r.status_code for path, r in responses.items()}
    assert status["/"] == status["/docs"] == status["/privacy"] == 200
    assert status["/styles.css"] == status["/favicon.ico"] == status["/favicon.svg"] == 200
    assert status["/no-such-page"] == 404
    assert status["/install"] == 302  # to Vercel's install page, with a state
    # Sign in with Vercel is not set up in this stack: a page saying so, never a redirect.
    assert status["/configure?configurationId=icfg_abcabcabcabcabcabcabcabc"] == 503
    assert responses["/favicon.ico"].content.startswith(b"\x00\x00\x01\x00")  # a real icon


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_load_nothing_from_elsewhere_and_need_no_javascript(page: Path) -> None:
    parsed = _parse(page)
    assert not [t for t, _ in parsed.tags if t in ("script", "iframe", "object", "embed")]
    for tag, attrs in parsed.tags:
        for name in ("src", "href", "action", "srcset"):
            value = attrs.get(name, "")
            assert not re.match(r"^(https?:)?//", value), (tag, value)
            assert not value.startswith(("javascript:", "data:")), (tag, value)
        assert "style" not in attrs, tag  # the CSP forbids inline styles
        assert not [a for a in attrs if a.startswith("on")], tag
        if tag == "img":
            assert "alt" in attrs
    html_tag = next(a for t, a in parsed.tags if t == "html")
    assert html_tag.get("lang") == "en"
    assert any(t == "main" for t, _ in parsed.tags)
    assert any(t == "meta" and a.get("name") == "viewport" for t, a in parsed.tags)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_internal_links_resolve(dev_url: str, page: Path) -> None:
    links = {
        a["href"].split("#")[0]
        for t, a in _parse(page).tags
        if t in ("a", "link") and a.get("href", "").startswith("/")
    }
    with httpx.Client(base_url=dev_url, timeout=30.0) as client:
        for href in sorted(links - {""}):
            assert client.get(href).status_code in (200, 302), href


def test_landing_page_offers_the_install_and_the_essentials() -> None:
    parsed = _parse(PUBLIC / "index.html")
    hrefs = [a.get("href") for t, a in parsed.tags if t == "a"]
    assert "/install" in hrefs
    assert {"/docs", "/privacy"} <= set(hrefs)
    assert any(h and h.startswith("mailto:") for h in hrefs)
    text = (PUBLIC / "index.html").read_text(encoding="utf-8")
    for topic in ("Permissions it asks for", "Security and your data", "When you uninstall"):
        assert topic in text


def test_landing_page_lists_exactly_what_integration_toml_provisions() -> None:
    """The page is static; this keeps it honest when integration.toml changes."""
    spec = load_spec(ROOT / "integration.toml", {})
    expected: dict[str, tuple[set[str], bool]] = {}
    for entry in spec.env:
        targets, secret = expected.get(entry.key, (set(), False))
        expected[entry.key] = (targets | set(entry.targets), secret or "{secret." in entry.value)
    rows = [r for r in _parse(PUBLIC / "index.html").rows if r]
    shown = {key: (envs, kind) for key, envs, kind in rows}
    assert set(shown) == set(expected), "update the table in public/index.html"
    for key, (targets, secret) in expected.items():
        envs, kind = shown[key]
        assert envs == ", ".join(t for t in TARGETS if t in targets), key
        assert kind.startswith("secret") == secret, key
