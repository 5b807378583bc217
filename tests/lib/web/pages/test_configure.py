import re
from typing import Any

from lib.provisioning.reports import ChangedVar, Clash, Drift, MissingVar, ProjectDrift, Status
from lib.provisioning.spec import EnvEntry
from lib.web.pages.configure import NOTICES, Facts, env_settings_url, render

ENTRIES = (
    EnvEntry(
        key="ACME_API_KEY",
        value="{secret.api_key}",
        type="sensitive",
        targets=("preview", "production"),
    ),
    EnvEntry(
        key="ACME_API_KEY", value="{secret.api_key}", type="encrypted", targets=("development",)
    ),
    EnvEntry(key="ACME_URL", value="https://x/{project_name}", type="plain"),
)


def _status(**changes: Any) -> Status:
    """A Status from the camelCase fields `/provision` shows (the same object renders both)."""
    shown = {
        "configurationId": "icfg_abc",
        "ownerId": "team_123",
        "teamId": "team_123",
        "scopes": [],
        "projectSelection": "selected",
        "projectIds": ["prj_1", "prj_2"],
        "status": "active",
        "statusReason": None,
        "source": None,
        "createdAt": 1.0,
        "updatedAt": 2.0,
        "pending": False,
        **changes,
    }
    snake = {re.sub(r"[A-Z]", lambda m: "_" + m[0].lower(), k): v for k, v in shown.items()}
    return Status(**snake)


def _drift(shown: dict[str, Any]) -> Drift:
    """A Drift from its JSON form (what `/provision` answers), to keep the cases readable."""

    def project(p: dict[str, Any]) -> ProjectDrift:
        if "error" in p:
            return ProjectDrift(p["projectId"], p["name"], error=p["error"])
        return ProjectDrift(
            p["projectId"],
            p["name"],
            in_sync=p["inSync"],
            ok=p["ok"],
            missing=[MissingVar(m["key"], m.get("targets")) for m in p["missing"]],
            changed=[ChangedVar(c["key"], c.get("fields") or []) for c in p["changed"]],
            extra=p["extra"],
            conflicts=[
                Clash(c["key"], tuple(c["targets"]), c.get("gitBranch"), c["owner"])
                for c in p["conflicts"]
            ],
        )

    rows = [project(p) for p in shown["projects"]]
    in_sync = all(r.in_sync for r in rows)
    drift = Drift(rows, in_sync, error=shown.get("error"))
    assert drift.as_dict() == {"inSync": in_sync, **shown} | (
        {"projects": [r.as_dict() for r in rows]}
    )
    return drift


def _row(name: str, **changes: Any) -> dict[str, Any]:
    return {
        "projectId": f"prj_{name}",
        "name": name,
        "inSync": True,
        "ok": ["ACME_API_KEY", "ACME_API_KEY", "ACME_URL"],
        "missing": [],
        "changed": [],
        "extra": 0,
        "conflicts": [],
        **changes,
    }


def _render(drift: dict[str, Any], **kwargs: Any) -> str:
    return render(
        kwargs.pop("status", _status()),
        _drift(drift),
        "csrf-token",
        kwargs.pop("notice", None),
        ENTRIES,
        kwargs.pop("facts", None),
    )


def _row_html(html: str, name: str) -> str:
    return html.split(f'<th scope="row" data-label="Project">{name}</th>')[1].split("</tr>")[0]


def test_summary_shows_owner_access_status_and_pending() -> None:
    html = _render({"projects": []}, status=_status(pending=True))
    assert "Your team" in html
    assert "team_123" not in html  # never a raw id
    named = _render({"projects": []}, facts=Facts(owner_name="Acme Inc", owner_slug="acme"))
    assert "Team Acme Inc" in named
    assert "2 selected projects" in html
    assert "Active" in html
    assert "Work pending" in html
    personal = _render({"projects": []}, status=_status(teamId=None, projectSelection="all"))
    assert "Your personal account" in personal
    assert "All projects, including new ones" in personal
    assert "Nothing pending" in personal


def test_broken_installation_says_reinstall_with_the_link_and_offers_no_actions() -> None:
    facts = Facts(reinstall_url="https://vercel.com/integrations/acme")
    html = _render(
        {"projects": [], "error": "forbidden"},
        status=_status(status="broken", statusReason="token revoked or invalid"),
        facts=facts,
    )
    assert "Needs reinstall" in html
    assert '<a href="https://vercel.com/integrations/acme">Reinstall</a>' in html
    assert "Reinstall it to restore access" in html
    assert "token revoked or invalid" not in html  # the stored reason is for operators
    assert "Reload this page in a minute" not in html
    assert 'value="resync"' not in html


def test_a_disabled_configuration_is_said_in_words_and_offers_no_actions() -> None:
    html = _render(
        {"projects": [], "error": "integration_configuration_disabled"},
        status=_status(status="paused", statusReason="integration_configuration_disabled"),
    )
    assert "Disabled on Vercel" in html
    assert "once it is enabled again on Vercel" in html
    assert "integration_configuration_disabled" not in html
    assert 'value="resync"' not in html
    assert 'value="rotate"' not in html


def test_last_synced_and_rotated_and_redeploy_and_sensitive_policy() -> None:
    html = _render(
        {"projects": [_row("web")]},
        facts=Facts(last_synced=1_700_000_000, sensitive_enforced=True, owner_slug="acme"),
    )
    assert '<time datetime="2023-11-14T22:13:20+00:00">2023-11-14 22:13 UTC</time>' in html
    assert "Secrets last rotated</dt><dd>not yet" in html
    assert "redeploy a project to use them" in html
    assert "enforces sensitive environment variables" in html
    assert 'href="https://vercel.com/acme/web/settings/environment-variables"' in html
    assert "enforces sensitive" not in _render({"projects": []})


def test_env_settings_links_without_a_slug_use_vercels_deep_link() -> None:
    assert env_settings_url(Facts(), "web").startswith("https://vercel.com/d?to=")
    url = env_settings_url(Facts(owner_slug="a b", dashboard_url="http://x"), "w/e")
    assert url == "http://x/a%20b/w%2Fe/settings/environment-variables"


def test_a_conflict_is_never_provisioned_nor_up_to_date() -> None:
    drift = {
        "projects": [
            _row("web", conflicts=[{"key": "ACME_URL", "targets": ["preview"], "owner": "user"}])
        ]
    }
    html = _render(drift, notice="resync")
    web = _row_html(html, "web")
    assert "conflict" in web
    assert "in sync" not in web
    provisioned = web.split("Provisioned:")[1].split("</li>")[0]
    assert "ACME_URL" not in provisioned
    assert "ACME_API_KEY" in provisioned
    assert NOTICES["resync"] not in html
    assert "1 variable(s) are held by variables the integration does not own" in html


def test_rows_show_keys_and_targets_in_vercels_order_once_each() -> None:
    drift = {
        "projects": [
            _row("web"),
            _row(
                "api",
                inSync=False,
                ok=["ACME_URL"],
                missing=[{"key": "ACME_API_KEY", "targets": ["preview", "production"]}],
                changed=[{"key": "ACME_URL", "fields": ["value"]}],
                extra=2,
            ),
            _row(
                "docs",
                conflicts=[{"key": "ACME_URL", "targets": ["development"], "owner": "user"}],
            ),
            _row(
                "blog",
                conflicts=[{"key": "ACME_URL", "targets": ["preview"], "owner": "hidden"}],
            ),
            _row(
                "site",
                conflicts=[{"key": "ACME_URL", "targets": ["preview"], "owner": "icfg_other"}],
            ),
        ]
    }
    html = _render(drift)
    web = _row_html(html, "web")
    assert web.count("ACME_API_KEY") == 1  # a split variable is one key to a person
    assert "in sync" in web
    api = _row_html(html, "api")
    assert "drift" in api
    assert "<code>ACME_API_KEY</code> missing in production, preview" in api
    assert "<code>ACME_URL</code> was changed outside the integration (value)" in api
    assert "2 variable(s) the integration no longer needs" in api
    assert "is your own variable: left unchanged" in html
    assert "already set by you (a variable the integration cannot see)" in html
    assert "another integration's variable" in html
    # Sorted by name.
    assert html.index(">api<") < html.index(">blog<") < html.index(">docs<") < html.index(">web<")


def test_managed_variables_are_listed_with_environments_and_kind_never_values() -> None:
    html = _render({"projects": [_row("web")]})
    assert (
        '<td data-label="Variable"><code>ACME_API_KEY</code></td>'
        '<td data-label="Environments">production, preview</td>'
    ) in html
    assert "sensitive, rotatable secret" in html
    assert (
        '<td data-label="Variable"><code>ACME_URL</code></td>'
        '<td data-label="Environments">production, preview, development</td>'
    ) in html
    web = _row_html(html, "web")
    assert "<code>ACME_API_KEY</code> (production, preview, development)" in web
    assert "{secret.api_key}" not in html
    assert "https://x/" not in html


def test_unreachable_project_and_unlisted_projects() -> None:
    html = _render({"projects": [{"projectId": "prj_1", "name": "web", "error": "forbidden"}]})
    assert "unreachable" in html
    assert "Vercel refused access" in html
    assert "forbidden" not in html
    failed = _render({"error": "rate_limited", "projects": []})
    assert 'role="alert"' in failed
    assert "Vercel asked us to slow down" in failed
    assert "rate_limited" not in failed
    odd = _render({"error": "something_new", "projects": []})
    assert "something_new" not in odd
    empty = _render({"projects": []})
    assert "No projects are reachable" in empty


def test_everything_dynamic_is_escaped() -> None:
    evil = '<script>alert(1)</script>"'
    drift = {
        "projects": [
            _row(
                evil,
                inSync=False,
                missing=[{"key": evil, "targets": [evil]}],
                conflicts=[{"key": evil, "targets": [evil], "owner": evil}],
            )
        ]
    }
    html = render(_status(teamId=evil, statusReason=evil), _drift(drift), evil, None, ENTRIES)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;&quot;"' in html  # the CSRF field


def test_forms_post_back_with_the_csrf_token() -> None:
    html = _render({"projects": []})
    assert html.count('<form method="post" action="/configure?configurationId=icfg_abc">') == 2
    assert html.count('<input type="hidden" name="csrf" value="csrf-token">') == 2
    assert 'value="resync"' in html
    assert 'value="rotate"' in html
    assert "You confirm on the next page" in html  # rotation asks before it acts


def test_without_secrets_there_is_nothing_to_rotate() -> None:
    html = render(_status(), _drift({"projects": []}), "t", None, ENTRIES[2:])
    assert 'value="rotate"' not in html
    assert 'value="resync"' in html


def test_notices_are_shown_as_status() -> None:
    html = _render({"projects": []}, notice="resync")
    assert f'<p class="notice ok" role="status">{NOTICES["resync"]}</p>' in html
    assert "notice ok" not in _render({"projects": []})
    assert "notice" not in _render({"projects": []}, notice="<script>")
    partial = _render({"projects": []}, notice="rotate-partial")
    assert 'class="notice warn"' in partial


def test_the_product_name_and_help_links_come_from_the_integration_table(
    tmp_path: Any, monkeypatch: Any
) -> None:
    from lib.product import reset_product

    spec = tmp_path / "integration.toml"
    spec.write_text(
        "[integration]\n"
        'name = "Zeta <Cloud>"\n'
        'company = "Zeta"\n'
        'support_email = "help@zeta.example"\n'
        'homepage_url = "https://zeta.example/"\n'
        'docs_url = "https://zeta.example/docs?a=1&b=2"\n'
        'privacy_url = "https://zeta.example/privacy"\n'
    )
    monkeypatch.setenv("INTEGRATION_SPEC_PATH", str(spec))
    reset_product()
    try:
        html = _render({"projects": []})
    finally:
        reset_product()
    assert "<title>Zeta &lt;Cloud&gt;: configuration</title>" in html
    assert '<a href="https://zeta.example/docs?a=1&amp;b=2">Help</a>' in html
    assert '<a href="https://zeta.example/privacy">Privacy</a>' in html
    assert "Acme" not in html
    assert 'href="/docs"' not in html
