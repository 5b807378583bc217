"""The configuration page an installed user sees: access, provisioning status, drift,
and the two things they can do about it (resync, rotate secrets). Keys and targets only,
never a value."""

from __future__ import annotations

from html import escape
from typing import Any

from lib.pages import page, safe
from lib.session import CSRF_FIELD

__all__ = ["render"]


def _badge(text: str, tone: str) -> str:
    return f'<span class="badge {tone}">{escape(text)}</span>'


def _project_rows(drift: dict[str, Any]) -> str:
    rows = []
    for p in drift.get("projects", []):
        if "error" in p:
            state = _badge("unreachable", "err")
            detail = escape(str(p["error"]))
        else:
            state = _badge("in sync", "ok") if p.get("inSync") else _badge("drift", "warn")
            parts = []
            if p.get("ok"):
                parts.append(
                    "Provisioned: " + ", ".join(f"<code>{escape(k)}</code>" for k in p["ok"])
                )
            for m in p.get("missing", []):
                parts.append(
                    f"Missing: <code>{escape(m['key'])}</code> ({escape(', '.join(m['targets'] or []))})"
                )
            for c in p.get("changed", []):
                parts.append(
                    f"Changed: <code>{escape(c['key'])}</code> ({escape(', '.join(c['fields']))})"
                )
            for c in p.get("conflicts", []):
                owner = (
                    "your variable" if c["owner"] == "user" else "another integration's variable"
                )
                parts.append(
                    f"Conflict: <code>{escape(c['key'])}</code> in {escape(', '.join(c['targets']))} "
                    f"is {escape(owner)}; left unchanged"
                )
            detail = "<br>".join(parts) or "Nothing to provision."
        rows.append(
            f'<tr><th scope="row">{escape(p.get("name") or p["projectId"])}</th>'
            f"<td>{state}</td><td>{detail}</td></tr>"
        )
    return "".join(rows) or '<tr><td colspan="3">No projects reachable yet.</td></tr>'


def render(status: dict[str, Any], drift: dict[str, Any], csrf: str, notice: str | None) -> str:
    cfg = escape(status["configurationId"])
    owner = (
        f"Team <code>{escape(status['teamId'])}</code>"
        if status.get("teamId")
        else "Personal account"
    )
    access = (
        "All projects"
        if status.get("projectSelection") != "selected"
        else f"{len(status.get('projectIds') or [])} selected project(s)"
    )
    health = {
        "active": ("active", "ok"),
        "paused": ("paused", "warn"),
        "broken": ("needs reinstall", "err"),
    }
    label, tone = health.get(status.get("status", "active"), ("unknown", "warn"))
    reason = f" — {escape(status['statusReason'])}" if status.get("statusReason") else ""
    pending = _badge("work pending", "warn") if status.get("pending") else ""
    hidden = f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf, quote=True)}">'
    body = f"""
<table>
<tbody>
<tr><th scope="row">Installed on</th><td>{owner}</td></tr>
<tr><th scope="row">Project access</th><td>{escape(access)}</td></tr>
<tr><th scope="row">Status</th><td>{_badge(label, tone)}{reason} {pending}</td></tr>
</tbody>
</table>
<h2>Projects</h2>
<table>
<thead><tr><th scope="col">Project</th><th scope="col">State</th><th scope="col">Variables</th></tr></thead>
<tbody>{_project_rows(drift)}</tbody>
</table>
<div class="actions">
<form class="inline" method="post" action="/configure?configurationId={cfg}">{hidden}
<input type="hidden" name="action" value="resync"><button type="submit">Resync now</button></form>
<form class="inline" method="post" action="/configure?configurationId={cfg}">{hidden}
<input type="hidden" name="action" value="rotate"><button type="submit" class="secondary">Rotate secrets</button></form>
</div>
"""
    return page(
        "Integration configuration",
        notice or f"Configuration {status['configurationId']}",
        tone="success" if notice else "info",
        body=safe(body),
        wide=True,
    )
