"""`make pages`: write public/*.html from dev/page_templates/ and integration.toml.

The static pages are served by Vercel straight from public/ (no function runs for them),
so they are generated ahead of time and committed; tests/dev/test_pages.py fails when a
committed page differs from what this renders, as the landing page's variable table is
checked against the spec. The product name, company, support address and links come from
the `[integration]` table (lib/product.py); the header's brand link is the one the
functions' pages use (`lib.web.pages.layout.brand`).

Templates use `string.Template` placeholders (`${name}`); an unknown placeholder is an
error, and every value is HTML-escaped. Files starting with `_` are partials: `${footer}`
is `_footer.html`, rendered with the same values.

`python -m dev.pages` writes the pages; `--check` only reports stale ones (exit 1).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from html import escape
from pathlib import Path
from string import Template

from lib.product import Product, load_product
from lib.web.pages.layout import brand

__all__ = ["PUBLIC", "TEMPLATES", "main", "render", "stale"]

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "dev" / "page_templates"
PUBLIC = ROOT / "public"


def _values(product: Product) -> dict[str, str]:
    return {
        "name": escape(product.name),
        "company": escape(product.company),
        "support_email": escape(product.support_email),
        "support_mailto": escape(product.support_mailto, quote=True),
        "homepage_url": escape(product.homepage_url, quote=True),
        "docs_url": escape(product.docs_url, quote=True),
        "privacy_url": escape(product.privacy_url, quote=True),
        "brand": str(brand(product)),
    }


def render(product: Product, templates: Path = TEMPLATES) -> dict[str, str]:
    """Every page, file name -> text, for `product`."""
    values = _values(product)
    partials = {
        path.stem.lstrip("_"): Template(path.read_text(encoding="utf-8")).substitute(values)
        for path in sorted(templates.glob("_*.html"))
    }
    return {
        path.name: Template(path.read_text(encoding="utf-8")).substitute(values, **partials)
        for path in sorted(templates.glob("*.html"))
        if not path.name.startswith("_")
    }


def stale(pages: dict[str, str], public: Path = PUBLIC) -> list[str]:
    """The generated pages whose committed copy in `public` differs (or is missing)."""
    found = []
    for name, text in pages.items():
        target = public / name
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            found.append(name)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    pages = render(load_product(ROOT / "integration.toml"))
    outdated = stale(pages)
    if "--check" in args:
        for name in outdated:
            print(f"public/{name} is stale: run `make pages`")
        return 1 if outdated else 0
    for name in outdated:
        (PUBLIC / name).write_text(pages[name], encoding="utf-8")
        print(f"wrote public/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
