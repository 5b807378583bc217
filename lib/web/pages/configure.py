"""The configuration page an installed user sees: who owns the installation, whether it
works, what was provisioned where, and the two things they can do about it (resync,
rotate secrets).

Keys, targets and kinds only, never a value: the renderer is never given one (the drift
report and the spec entries it receives carry none that it reads), and every dynamic
string is escaped. States are said in words (no raw error codes), and only actions that
can work are offered. The forms work without JavaScript; rotation asks for confirmation
on a page of its own before anything changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote

from lib.provisioning.reports import Drift, ProjectDrift, Status
from lib.provisioning.spec import TARGETS, EnvEntry
from lib.web.pages.layout import page, product, safe
from lib.web.session import CSRF_FIELD
from lib.web.urls import configure_url

__all__ = [
    "DISABLED",
    "NOTICES",
    "Facts",
    "confirm_rotation",
    "not_configured",
    "render",
    "signin_page",
]

# Changes to environment variables apply to new deployments only
# (https://vercel.com/docs/environment-variables/managing-environment-variables).
REDEPLOY = "Changes apply to new deployments: redeploy a project to use them."

# After a POST, what happened, in words (unknown keys show nothing). "resync" is only
# said while no conflict remains; otherwise `_notice` says what was left alone.
NOTICES = {
    "resync": "Resync finished: every project is up to date.",
    "resync-partial": "Resync did not reach every project yet; the rest is retried "
    "automatically in the background.",
    "rotate": "Secrets rotated and pushed to every project. Redeploy to start using the "
    "new values.",
    "rotate-partial": "Secrets rotated; some projects are still being updated in the "
    "background. Redeploy once they show “in sync”.",
}
_RESYNC_CONFLICTS = (
    "Resync finished, but {n} variable(s) are held by variables the integration does not "
    "own and were left unchanged (see below)."
)

# Why an installation stopped, in words (its stored reason is for operators).
DISABLED = "integration_configuration_disabled"
_ERRORS = {
    DISABLED: "Vercel has disabled this configuration",
    "forbidden": "Vercel refused access",
    "not_found": "Vercel no longer knows this project",
    "rate_limited": "Vercel asked us to slow down",
    "unavailable": "Vercel did not answer",
    "timeout": "Vercel did not answer in time",
}
_ERROR_DEFAULT = "Vercel did not answer as expected"


@dataclass(frozen=True)
class Facts:
    """What the page knows beyond the stored installation, each optional."""

    owner_name: str | None = None  # the team's name (getTeam), never a raw id if known
    owner_slug: str | None = None  # the team's slug, or the personal account's username
    sensitive_enforced: bool = False  # the team enforces sensitive variables
    team_read_missing: bool = False  # getTeam refused: the Team read permission is missing
    dashboard_url: str = "https://vercel.com"
    reinstall_url: str | None = None
    last_synced: float | None = None
    last_rotated: float | None = None


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


def _when(ts: float | None) -> str:
    if not ts:
        return "not yet"
    moment = datetime.fromtimestamp(ts, UTC)
    return (
        f'<time datetime="{moment.isoformat(timespec="seconds")}">'
        f"{moment.strftime('%Y-%m-%d %H:%M')} UTC</time>"
    )


def _error_words(code: str | None) -> str:
    return _ERRORS.get(code or "", _ERROR_DEFAULT)


def env_settings_url(facts: Facts, project: str) -> str:
    """A project's environment-variable settings on Vercel: `/{scope}/{project}/settings/
    environment-variables` when the scope's slug is known, else Vercel's documented deep
    link that asks which team and project (https://vercel.com/docs/environment-variables/
    managing-environment-variables)."""
    if facts.owner_slug:
        return (
            f"{facts.dashboard_url}/{quote(facts.owner_slug, safe='')}/"
            f"{quote(project, safe='')}/settings/environment-variables"
        )
    return f"{facts.dashboard_url}/d?to=%2F%5Bteam%5D%2F%5Bproject%5D%2Fsettings%2Fenvironment-variables"


def _provisioned(p: ProjectDrift, entries: Sequence[EnvEntry]) -> str:
    """The keys in place, each with its environments; a key held by someone else is not."""
    held = {h.key for h in p.conflicts}
    keys = [k for k in dict.fromkeys(p.ok) if k not in held]  # a split var has two records
    if not keys:
        return ""
    targets: dict[str, list[str]] = {}
    for e in entries:
        targets.setdefault(e.key, []).extend(e.targets or TARGETS)
    return "Provisioned: " + ", ".join(
        f"{_code(k)} ({_targets(set(targets[k]))})" if k in targets else _code(k) for k in keys
    )


def _project_row(p: ProjectDrift, entries: Sequence[EnvEntry], facts: Facts) -> str:
    name = p.name or p.project_id or "?"
    link = (
        f'<a href="{escape(env_settings_url(facts, name), quote=True)}">'
        f'Variables on Vercel<span class="visually-hidden"> for {escape(name)}</span></a>'
    )
    if p.error is not None:
        state = _badge("unreachable", "err")
        detail = f"Could not read this project from Vercel: {escape(_error_words(p.error))}."
    else:
        if p.conflicts:
            state = _badge("conflict", "warn")
        elif p.in_sync:
            state = _badge("in sync", "ok")
        else:
            state = _badge("drift", "warn")
        lines = _problems(p)
        provisioned = _provisioned(p, entries)
        if provisioned:
            lines.insert(0, provisioned)
        detail = (
            "<ul class='plain'>" + "".join(f"<li>{line}</li>" for line in lines) + "</ul>"
            if lines
            else "Nothing to provision."
        )
    return (
        f'<tr><th scope="row" data-label="Project">{escape(name)}</th>'
        f'<td data-label="State">{state}</td><td data-label="Variables">{detail}'
        f'<p class="small">{link}</p></td></tr>'
    )


def _projects(status: Status, drift: Drift, entries: Sequence[EnvEntry], facts: Facts) -> str:
    if drift.error:
        if drift.error == DISABLED or status.status == "paused":
            return (
                '<p class="notice warn" role="alert">Vercel has disabled this configuration, '
                "so the integration cannot read or change your projects. Nothing is lost: "
                "once it is enabled again on Vercel, opening this page resumes the work.</p>"
            )
        if status.status == "broken":
            return (
                '<p class="notice warn" role="alert">The integration no longer has access '
                "to your projects. Reinstall it to restore access.</p>"
            )
        return (
            '<p class="notice warn" role="alert">Vercel did not list your projects just now '
            f"({escape(_error_words(drift.error))}). Reload this page in a minute.</p>"
        )
    rows = sorted(drift.projects, key=lambda p: p.name or "")
    if not rows:
        return '<p class="muted">No projects are reachable with the access you granted.</p>'
    return (
        '<table class="stack"><caption>Environment variables in each project</caption>'
        '<thead><tr><th scope="col">Project</th><th scope="col">State</th>'
        '<th scope="col">Variables</th></tr></thead>'
        f"<tbody>{''.join(_project_row(p, entries, facts) for p in rows)}</tbody></table>"
        f'<p class="muted">{escape(REDEPLOY)}</p>'
    )


def _managed(entries: Sequence[EnvEntry], facts: Facts) -> str:
    rows = "".join(
        f'<tr><td data-label="Variable">{_code(e.key)}</td>'
        f'<td data-label="Environments">{_targets(e.targets)}'
        f"{escape(f' (branch {e.git_branch})') if e.git_branch else ''}</td>"
        f'<td data-label="Kind">{escape(_KINDS.get(e.type, e.type))}'
        f"{', rotatable secret' if '{secret.' in e.value else ''}</td></tr>"
        for e in entries
    )
    note = (
        '<p class="muted">This team enforces sensitive environment variables: Vercel stores '
        "the production and preview values as sensitive, readable only by deployments.</p>"
        if facts.sensitive_enforced
        else ""
    )
    return (
        '<table class="stack"><caption>What the integration manages</caption>'
        '<thead><tr><th scope="col">Variable</th><th scope="col">Environments</th>'
        f'<th scope="col">Kind</th></tr></thead><tbody>{rows}</tbody></table>{note}'
    )


def _health(status: Status, facts: Facts) -> str:
    if status.status == "broken":
        text = (
            _badge("Needs reinstall", "err") + ' <span class="muted">The integration\'s '
            "access to Vercel was revoked.</span>"
        )
        if facts.reinstall_url:
            text += f' <a href="{escape(facts.reinstall_url, quote=True)}">Reinstall</a>'
        return text
    if status.status == "paused":
        if status.status_reason in (None, DISABLED):
            return _badge("Disabled on Vercel", "warn")
        return _badge("Paused", "warn") + (
            ' <span class="muted">Waiting for a permission the integration needs; '
            "accept the integration's updated permissions on Vercel.</span>"
        )
    return _badge("Active", "ok")


def _summary(status: Status, facts: Facts) -> str:
    if status.team_id:
        owner = f"Team {escape(facts.owner_name)}" if facts.owner_name else "Your team"
    else:
        owner = "Your personal account"
    if status.project_selection == "selected":
        count = len(status.project_ids)
        access = f"{count} selected project{'' if count == 1 else 's'}"
    else:
        access = "All projects, including new ones"
    if status.status == "broken":
        work = _badge("Stopped", "err") + ' <span class="muted">until you reinstall</span>'
    elif status.status == "paused":
        work = _badge("Waiting", "warn") + ' <span class="muted">resumes once enabled</span>'
    elif status.pending:
        work = (
            _badge("Work pending", "warn")
            + ' <span class="muted">finishing in the background</span>'
        )
    else:
        work = _badge("Nothing pending", "ok")
    items = [
        ("Installed on", owner),
        ("Project access", escape(access)),
        ("Status", _health(status, facts)),
        ("Background work", work),
        ("Last synced", _when(facts.last_synced)),
        ("Secrets last rotated", _when(facts.last_rotated)),
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
        f'<form method="post" action="{action}">{hidden}'
        '<input type="hidden" name="action" value="rotate">'
        '<button type="submit" class="secondary">Rotate secrets…</button></form>'
        f'<p class="muted">Mints new values for {keys}. You confirm on the next page.</p>'
    )
    return f'<div class="panel">{resync}{rotate}</div>'


def _notice(key: str | None, drift: Drift) -> str:
    if key is None or key not in NOTICES:
        return ""
    held = sum(len(p.conflicts) for p in drift.projects)
    text = NOTICES[key]
    if key == "resync" and (held or not drift.in_sync or drift.error):
        text = _RESYNC_CONFLICTS.format(n=held) if held else NOTICES["resync-partial"]
    tone = "ok" if text == NOTICES.get(key) and not key.endswith("partial") else "warn"
    return f'<p class="notice {tone}" role="status">{escape(text)}</p>'


def render(
    status: Status,
    drift: Drift,
    csrf: str,
    notice: str | None,
    entries: Sequence[EnvEntry] = (),
    facts: Facts | None = None,
) -> str:
    """The whole page. `notice` is a key of `NOTICES` (the outcome of the last POST)."""
    facts = facts or Facts()
    cfg = status.configuration_id
    secret_keys = list(dict.fromkeys(e.key for e in entries if "{secret." in e.value))
    working = status.status == "active" and not drift.error
    actions = f"<h2>Actions</h2>{_actions(cfg, csrf, secret_keys)}" if working else ""
    permission = (
        '<p class="muted">Only the person who installed the integration can open this page: '
        "it was not granted Vercel's Team read permission, which shows the team's name and "
        "who belongs to it.</p>"
        if facts.team_read_missing
        else ""
    )
    identity = product()
    help_links = (
        f'<a href="{escape(identity.docs_url, quote=True)}">Help</a> · '
        f'<a href="{escape(identity.privacy_url, quote=True)}">Privacy</a>'
    )
    body = (
        f"{_notice(notice, drift)}{_summary(status, facts)}{permission}"
        f'<h2 id="projects">Projects</h2>{_projects(status, drift, entries, facts)}'
        f"{'<h2>Variables</h2>' + _managed(entries, facts) if entries else ''}"
        f"{actions}"
        f'<p class="muted small">Configuration {_code(cfg)} · {help_links}</p>'
    )
    return page(
        f"{identity.name}: configuration",
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
