"""The emulator's HTML: one accessible page shell, no JavaScript, no external resources.

Every interpolated value goes through `esc`; pages are plain forms so they work in any
browser, with the keyboard, and in the real-browser tests.
"""

from __future__ import annotations

from html import escape

__all__ = ["esc", "page"]

_STYLE = """
:root { color-scheme: light dark; --fg: #111; --bg: #fff; --muted: #555; --line: #d4d4d4;
  --accent: #0a58ca; --ok: #116329; --warn: #8a4b00; }
@media (prefers-color-scheme: dark) { :root { --fg: #eee; --bg: #111; --muted: #b5b5b5;
  --line: #3a3a3a; --accent: #8ab4ff; --ok: #7ee2a8; --warn: #ffcf7a; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header, main, footer { max-width: 44rem; margin: 0 auto; padding: 1rem 1.25rem; }
header { border-bottom: 1px solid var(--line); display: flex; justify-content: space-between; }
header a { color: var(--fg); font-weight: 700; text-decoration: none; }
a { color: var(--accent); }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; }
fieldset { border: 1px solid var(--line); border-radius: .5rem; margin: 0 0 1rem; padding: .75rem 1rem; }
legend { font-weight: 600; padding: 0 .25rem; }
.choice { display: flex; gap: .5rem; align-items: baseline; padding: .25rem 0; }
.muted { color: var(--muted); }
button { font: inherit; padding: .5rem 1.1rem; border-radius: .4rem; border: 1px solid var(--fg);
  background: var(--fg); color: var(--bg); cursor: pointer; }
button.secondary { background: transparent; color: var(--fg); }
button:focus-visible, a:focus-visible, input:focus-visible { outline: 3px solid var(--accent);
  outline-offset: 2px; }
.notice { border-left: 4px solid var(--ok); padding: .5rem 1rem; margin: 0 0 1rem; }
.error { border-left: 4px solid var(--warn); padding: .5rem 1rem; margin: 0 0 1rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; overflow-wrap: anywhere; }
.actions { display: flex; flex-wrap: wrap; align-items: center; gap: .75rem; margin: 1rem 0; }
.actions form { margin: 0; }
code { overflow-wrap: anywhere; }
ul.envs { list-style: none; padding: 0; margin: 0 0 1rem; }
ul.envs li { border-top: 1px solid var(--line); padding: .5rem 0; overflow-wrap: anywhere; }
ul.envs code.key { font-weight: 600; }
h3 { font-size: 1.1rem; margin: 1rem 0 .25rem; }
"""


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def page(title: str, body: str, *, user: str = "") -> str:
    """A complete document; `body` is trusted HTML built with `esc`."""
    who = f'<span class="muted">Signed in as {esc(user)}</span>' if user else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'  # no favicon request, so no 404 in the console
        f"<title>{esc(title)} · Vercel (emulator)</title><style>{_STYLE}</style></head>"
        f'<body><header><a href="/">▲ Vercel <span class="muted">(local emulator)</span></a>'
        f"{who}</header><main>{body}</main>"
        '<footer class="muted">A local emulator of Vercel for development and tests. '
        "Nothing here talks to vercel.com.</footer></body></html>"
    )
