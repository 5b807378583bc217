"""The configuration page an installed user sees: access, provisioning status, drift,
and the two things they can do about it (resync, rotate secrets).

Keys, targets and kinds only, never a value: the renderer is never given one (the drift
report and the spec entries it receives carry none that it reads), and every dynamic
string is escaped. The forms work without JavaScript; rotation sits behind a
`<details>` disclosure so a stray click cannot invalidate a team's keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from lib.provisioning.reports import Drift, ProjectDrift, Status
from lib.provisioning.spec import TARGETS, EnvEntry
from lib.web.pages.layout import page, safe
from lib.web.session import CSRF_FIELD
from lib.web.urls import configure_url

__all__ = ["NOTICES", "PRODUCT", "confirm_rotation", "not_configured", "render", "signin_page"]

PRODUCT = "Acme for Vercel"

# `?done=` after a POST: what happened, in words (unknown keys show nothing).
NOTICES = {
    "resync": "Resync finished: every project is up to date.",
    "resync-partial": "Resync did not reach every project yet; the rest is retried "
    "automatically in the background.",
    "rotate": "Secrets rotated and pushed to every project. Redeploy to start using the "
    "new values.",
    "rotate-partial": "Secrets rotated; some projects are still being updated in the "
    "background. Redeploy once they show “in sync”.",
}

_STATUS = {
    "active": ("Active", "ok"),
    "paused": ("Paused", "warn"),
    "broken": ("Needs reinstall", "err"),
}
# Who holds a variable the integration wanted (drift's clash owners).
_OWNERS = {
    "user": "your own variable",
    # Learnt from Vercel refusing the write: a var this integration's scope can't list.
    "hidden": "already set by you (a variable the integration cannot see)",
}
_OTHER = "another integration's variable"
_ORDER: dict[str, int] = {t: i for i, t in enumerate(TARGETS)}
_KINDS = {"sensitive": "sensitive", "encrypted": "encrypted", "plain": "plain text"}


def _badge(text: str, tone: str) -> str:
    return f'<span class="badge {tone}">{escape(text)}</span>'


def _code(key: str) -> str:
    return f"<code>{escape(key)}</code>"


def _targets(targets: Iterable[str] | None) -> str:
    """Vercel's order (production, preview, development), whatever order they came in."""
    ordered = sorted(targets or [], key=lambda t: (_ORDER.get(t, len(_ORDER)), t))
    return escape(", ".join(ordered) or "all environments")


def _problems(p: ProjectDrift) -> list[str]:
    lines = []
    for m in p.missing:
        lines.append(f"{_code(m.key)} missing in {_targets(m.targets)}")
    for c in p.changed:
        fields = ", ".join(c.fields) or "settings"
        lines.append(f"{_code(c.key)} was changed outside the integration ({escape(fields)})")
    for h in p.conflicts:
        lines.append(
            f"{_code(h.key)} in {_targets(h.targets)} is "
            f"{_OWNERS.get(h.owner, _OTHER)}: left unchanged"
        )
    extra = p.extra
    if extra:
        lines.append(f"{extra} variable(s) the integration no longer needs, to be removed")
    return lines


def _project_row(p: ProjectDrift) -> str:
    name = escape(p.name or p.project_id or "?")
    if p.error is not None:
        state = _badge("unreachable", "err")
        detail = f"Could not read this project from Vercel ({escape(p.error)})."
    else:
        conflicts = bool(p.conflicts)
        if p.in_sync:
            state = _badge("conflict", "warn") if conflicts else _badge("in sync", "ok")
        else:
            state = _badge("drift", "warn")
        ok = list(dict.fromkeys(p.ok))  # a split var has two records
        lines = _problems(p)
        if ok:
            lines.insert(0, "Provisioned: " + ", ".join(_code(k) for k in ok))
        detail = (
            "<ul class='plain'>" + "".join(f"<li>{line}</li>" for line in lines) + "</ul>"
            if lines
            else "Nothing to provision."
        )
    return f'<tr><th scope="row">{name}</th><td>{state}</td><td>{detail}</td></tr>'


def _projects(drift: Drift) -> str:
    if drift.error:
        return (
            '<p class="notice warn" role="alert">Vercel did not list your projects just now '
            f"({escape(drift.error)}). Reload this page in a minute.</p>"
        )
    rows = sorted(drift.projects, key=lambda p: p.name or "")
    if not rows:
        return '<p class="muted">No projects are reachable with the access you granted.</p>'
    return (
        "<table><caption>Environment variables in each project</caption>"
        '<thead><tr><th scope="col">Project</th><th scope="col">State</th>'
        '<th scope="col">Variables</th></tr></thead>'
        f"<tbody>{''.join(_project_row(p) for p in rows)}</tbody></table>"
    )


def _managed(entries: Sequence[EnvEntry]) -> str:
    rows = "".join(
        f"<tr><td>{_code(e.key)}</td><td>{_targets(e.targets)}"
        f"{escape(f' (branch {e.git_branch})') if e.git_branch else ''}</td>"
        f"<td>{escape(_KINDS.get(e.type, e.type))}"
        f"{', rotatable secret' if '{secret.' in e.value else ''}</td></tr>"
        for e in entries
    )
    return (
        "<table><caption>What the integration manages</caption>"
        '<thead><tr><th scope="col">Variable</th><th scope="col">Environments</th>'
        f'<th scope="col">Kind</th></tr></thead><tbody>{rows}</tbody></table>'
    )


def _summary(status: Status) -> str:
    owner = f"Team {_code(status.team_id)}" if status.team_id else "Your personal account"
    if status.project_selection == "selected":
        count = len(status.project_ids)
        access = f"{count} selected project{'' if count == 1 else 's'}"
    else:
        access = "All projects, including new ones"
    label, tone = _STATUS.get(status.status or "active", ("Unknown", "warn"))
    health = _badge(label, tone)
    if status.status_reason:
        health += f' <span class="muted">{escape(status.status_reason)}</span>'
    work = (
        _badge("Work pending", "warn") + ' <span class="muted">finishing in the background</span>'
        if status.pending
        else _badge("Nothing pending", "ok")
    )
    items = [
        ("Installed on", owner),
        ("Project access", escape(access)),
        ("Status", health),
        ("Background work", work),
    ]
    return (
        '<dl class="summary">'
        + "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in items)
        + "</dl>"
    )


def _actions(cfg: str, csrf: str, secret_keys: list[str]) -> str:
    action = escape(configure_url(cfg), quote=True)
    hidden = f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf, quote=True)}">'
    resync = (
        f'<form method="post" action="{action}">{hidden}'
        '<input type="hidden" name="action" value="resync">'
        '<button type="submit">Resync now</button></form>'
        '<p class="muted">Checks every project against Vercel and fixes what drifted. '
        "Your own variables are never changed.</p>"
    )
    if not secret_keys:
        return f'<div class="panel">{resync}</div>'
    keys = ", ".join(_code(k) for k in secret_keys)
    rotate = (
        '<details class="danger"><summary>Rotate secrets…</summary>'
        f"<p>Mints new values for {keys} and writes them to every project. Running "
        "deployments keep the old values until you redeploy them.</p>"
        f'<form method="post" action="{action}">{hidden}'
        '<input type="hidden" name="action" value="rotate">'
        '<button type="submit" class="danger">Rotate secrets</button></form></details>'
    )
    return f'<div class="panel">{resync}{rotate}</div>'


def render(
    status: Status,
    drift: Drift,
    csrf: str,
    notice: str | None,
    entries: Sequence[EnvEntry] = (),
) -> str:
    """The whole page. `notice` is one of `NOTICES`' values (shown as a status banner)."""
    cfg = status.configuration_id
    secret_keys = list(dict.fromkeys(e.key for e in entries if "{secret." in e.value))
    banner = f'<p class="notice ok" role="status">{escape(notice)}</p>' if notice else ""
    body = (
        f"{banner}{_summary(status)}"
        f'<h2 id="projects">Projects</h2>{_projects(drift)}'
        f"{'<h2>Variables</h2>' + _managed(entries) if entries else ''}"
        f"<h2>Actions</h2>{_actions(cfg, csrf, secret_keys)}"
        f'<p class="muted small">Configuration {_code(cfg)} · '
        '<a href="/docs">Help</a> · <a href="/privacy">Privacy</a></p>'
    )
    return page(
        f"{PRODUCT}: configuration",
        "The environment variables this integration keeps right in your projects.",
        body=safe(body),
        wide=True,
    )


def signin_page(cfg: str, *, expired: bool) -> str:
    """No session: who you are comes from Sign in with Vercel, never from an install."""
    start = configure_url(cfg) + "&signin=start"
    message = (
        "Your session has expired (or it was for another configuration). Sign in again "
        "to manage this configuration."
        if expired
        else "Sign in with your Vercel account to see and manage this configuration."
    )
    body = (
        '<p class="muted">Vercel shows a consent page, then sends you back here. Signing in '
        "installs nothing and changes nothing in your account. The person who installed "
        "the integration, and members of the team that owns it, can open this page.</p>"
    )
    return page(
        "Sign in to manage this configuration" if not expired else "Your session has expired",
        message,
        body=safe(body),
        actions=[(start, "Sign in with Vercel")],
    )


def not_configured(missing: Sequence[str]) -> str:
    """Sign in with Vercel is not set up: say what the operator must do, install nothing."""
    names = ", ".join(_code(name) for name in missing)
    body = (
        "<p>For the operator of this integration: create a Vercel App with Sign in with "
        "Vercel enabled (https://vercel.com/docs/sign-in-with-vercel/getting-started), add "
        "this deployment's <code>/configure</code> URL as an Authorization Callback URL, "
        f"then set {names} in the project's environment variables and redeploy.</p>"
    )
    return page(
        "Sign-in is not set up yet",
        "This configuration page needs Sign in with Vercel to know who you are, and the "
        "integration's operator has not set it up. Nothing was installed or changed.",
        tone="error",
        body=safe(body),
        actions=[("https://vercel.com/dashboard/integrations", "Back to Vercel")],
    )


def confirm_rotation(cfg: str, csrf: str, secret_keys: Sequence[str]) -> str:
    """The second step of rotation: what happens to the old value, then one button."""
    action = escape(configure_url(cfg), quote=True)
    hidden = f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf, quote=True)}">'
    keys = ", ".join(_code(k) for k in secret_keys) or "the integration's secrets"
    body = (
        f"<p>New values are minted for {keys} and written to every project. The old "
        "values stop being stored by the integration at once; deployments already running "
        "keep the old values until you redeploy them, and new deployments get the new "
        "ones.</p>"
        f'<form method="post" action="{action}">{hidden}'
        '<input type="hidden" name="action" value="rotate-confirm">'
        '<p class="actions"><button type="submit" class="danger">Yes, rotate secrets</button> '
        f'<a class="button secondary" href="{action}">Cancel</a></p></form>'
    )
    return page(
        "Rotate secrets?",
        "This replaces secret values in every project of this configuration.",
        tone="warn",
        body=safe(body),
    )
