"""The few HTML pages functions render: small, accessible, styled like the landing page.

Pages use the landing page's stylesheet (`/styles.css`, served from `public/`) so the
Content-Security-Policy can forbid inline styles and scripts everywhere. Every dynamic
value goes through `html.escape`; nothing secret is ever passed in.

The product name and links come from integration.toml's `[integration]` table
(lib/product.py); `brand()` is the header's brand link, shared with the static pages
that dev/pages.py generates into public/.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from lib.log import get_logger
from lib.product import Product, ProductError, get_product

__all__ = ["FALLBACK", "Link", "brand", "page", "product", "safe"]

# Shown when the [integration] table is broken: an error page must still render.
FALLBACK = Product(
    name="Vercel integration",
    company="",
    support_email="",
    homepage_url="/",
    docs_url="/docs",
    privacy_url="/privacy",
)
_reported: list[str] = []

Link = tuple[str, str]  # (href, label)


class safe(str):
    """Markup built by this module, not to be escaped again."""

    __slots__ = ()


def _text(value: str) -> str:
    return value if isinstance(value, safe) else escape(value)


def product() -> Product:
    """This deployment's product identity, or `FALLBACK` (logged once) if it is invalid."""
    try:
        return get_product()
    except ProductError as exc:
        if str(exc) not in _reported:
            _reported.append(str(exc))
            get_logger("pages").error("product identity unavailable: %s", exc)
        return FALLBACK


def brand(of: Product) -> safe:
    """The header's brand link: the icon and the product name, to the homepage."""
    return safe(
        f'<a class="brand" href="{escape(of.homepage_url, quote=True)}">'
        f'<img src="/favicon.svg" alt="" width="28" height="28"> {escape(of.name)}</a>'
    )


def page(
    title: str,
    message: str,
    *,
    tone: str = "info",
    details: Iterable[str] = (),
    actions: Iterable[Link] = (),
    body: safe | None = None,
    wide: bool = False,
) -> str:
    """A complete page: a heading, a message, optional details, and action links."""
    identity = product()
    items = "".join(f"<li>{_text(d)}</li>" for d in details)
    buttons = "".join(
        f'<a class="{"button secondary" if i else "button"}" '
        f'href="{escape(href, quote=True)}">{escape(label)}</a>'
        for i, (href, label) in enumerate(actions)
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{escape(title)}</title>
<link rel="stylesheet" href="/styles.css">
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
</head>
<body>
<header class="site">
{brand(identity)}
<nav aria-label="Primary"><a href="{escape(identity.docs_url, quote=True)}">Docs</a></nav>
</header>
<main class="card{" wide" if wide else ""} {escape(tone)}" aria-labelledby="title">
<h1 id="title">{escape(title)}</h1>
<p role="{"alert" if tone == "error" else "status"}">{_text(message)}</p>
{f"<ul>{items}</ul>" if items else ""}
{body or ""}
{f'<p class="actions">{buttons}</p>' if buttons else ""}
</main>
</body>
</html>
"""
