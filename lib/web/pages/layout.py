"""The few HTML pages functions render: small, accessible, styled like the landing page.

Pages use the landing page's stylesheet (`/styles.css`, served from `public/`) so the
Content-Security-Policy can forbid inline styles and scripts everywhere. Every dynamic
value goes through `html.escape`; nothing secret is ever passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

__all__ = ["Link", "page", "safe"]

Link = tuple[str, str]  # (href, label)


class safe(str):
    """Markup built by this module, not to be escaped again."""

    __slots__ = ()


def _text(value: str) -> str:
    return value if isinstance(value, safe) else escape(value)


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
<a class="brand" href="/"><img src="/favicon.svg" alt="" width="28" height="28"> Acme for Vercel</a>
<nav aria-label="Primary"><a href="/docs">Docs</a></nav>
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
