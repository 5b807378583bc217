"""The emulator's "vercel.com dashboard": a home page and each configuration's page.

Each configuration's page lists the environment variables of the projects it may access,
and `/<scope-slug>/<project-name>/settings/environment-variables` (the shape of Vercel's
project settings URL) lists one project's, so a person sees what an install wrote: plain
values in clear, encrypted ones as "Encrypted", sensitive ones masked — as Vercel's
dashboard shows them (https://vercel.com/docs/environment-variables/sensitive-environment-variables).

`/<scope-slug>/~/integrations/<slug>/<icfg>` mirrors the shape of Vercel's dashboard
URL for an installed integration (vercel-api.md §10 gives older variants). Its
`/installed` child is the `next` URL of the install flow: following it completes the
install (`completedAt`, §5) and shows the configuration. The page also lets a person do
what the dashboard lets them do — change project access, disable, enable, remove — each
firing the webhooks Vercel fires (actions module).
"""

from __future__ import annotations

from urllib.parse import urlencode

from dev.emulator.actions import ActionError, Actions
from dev.emulator.context import Context
from dev.emulator.install import not_found_page, project_choices
from dev.emulator.layout import esc, page
from dev.emulator.models import Account, Configuration, EnvVar, Project, ProjectSelection
from dev.emulator.routing import Handler, Router
from dev.emulator.wsgi import Request, Response

__all__ = ["env_list", "register"]

_TARGET_NAMES = {"production": "Production", "preview": "Preview", "development": "Development"}


def _env_value(env: EnvVar) -> str:
    if env.type == "plain":
        return (
            f"<code>{esc(env.value)}</code>" if env.value else '<span class="muted">(empty)</span>'
        )
    if env.type == "sensitive":
        return '<span aria-label="Sensitive value, hidden">••••••••</span> (Sensitive)'
    return "Encrypted"


def env_list(ctx: Context, project: Project, cfg: Configuration | None = None) -> str:
    """A project's variables as a list that wraps at any width (no table to scroll)."""
    store = ctx.store
    envs = sorted(store.project_envs(project.id), key=lambda e: (e.key, e.created_at))
    if not envs:
        return '<p class="muted">No environment variables.</p>'
    items = []
    for env in envs:
        where = [_TARGET_NAMES.get(t, t) for t in env.target]
        where += [
            c.slug
            for c in store.project_custom_environments(project.id)
            if c.id in env.custom_environment_ids
        ]
        if env.git_branch:
            where.append(f"branch {env.git_branch}")
        if env.configuration_id is None:
            origin = "added by a person"
        elif cfg is not None and env.configuration_id == cfg.id:
            origin = f"added by {ctx.config.name}"
        else:
            origin = "added by an integration"
        items.append(
            f'<li><code class="key">{esc(env.key)}</code> {_env_value(env)}'
            f'<br><span class="muted">{esc(", ".join(where) or "no environment")} · '
            f"{esc(origin)}</span></li>"
        )
    return f'<ul class="envs">{"".join(items)}</ul>'


class Dashboard:
    def __init__(self, ctx: Context, actions: Actions) -> None:
        self._ctx = ctx
        self._actions = actions

    def _render(self, title: str, body: str, status: int = 200) -> Response:
        return Response.html(page(title, body, user=self._ctx.store.user.name), status)

    def home(self, req: Request) -> Response:
        ctx = self._ctx
        slug = ctx.config.slug
        rows = []
        with ctx.store.lock:
            for account in ctx.store.scopes_of_user():
                cfg = ctx.store.configuration_for(account.id)
                projects = len(ctx.store.projects_of(account.id))
                link = (
                    f'<a href="{esc(self._actions.dashboard_path(cfg))}">{esc(cfg.id)}</a>'
                    if cfg
                    else '<span class="muted">not installed</span>'
                )
                envs = ", ".join(
                    f'<a href="/{esc(account.slug)}/{esc(p.name)}/settings/environment-variables">'
                    f"{esc(p.name)}</a>"
                    for p in sorted(ctx.store.projects_of(account.id), key=lambda p: p.name)
                )
                rows.append(
                    f"<li><strong>{esc(account.name)}</strong> "
                    f'<span class="muted">({esc(account.slug)}, {projects} projects)</span>: '
                    f"{link}"
                    + (f'<br><span class="muted">Variables of</span> {envs}' if envs else "")
                    + "</li>"
                )
        body = (
            "<h1>Vercel emulator</h1>"
            f'<p><a href="/integrations/{esc(slug)}/new">Add {esc(ctx.config.name)}</a> '
            f'(external flow) · <a href="/integrations/{esc(slug)}">Marketplace listing</a></p>'
            f"<h2>Your scopes</h2><ul>{''.join(rows)}</ul>"
            '<p class="muted">Tests drive this emulator through <code>/_emulator/</code>; '
            'see <a href="/_emulator/state">its state</a>.</p>'
        )
        return self._render("Dashboard", body)

    def _configuration(self, scope: str, slug: str, cfg_id: str) -> Configuration | None:
        cfg = self._ctx.store.configurations.get(cfg_id)
        owner = self._ctx.store.account(scope)
        if cfg is None or not cfg.active or slug != self._ctx.config.slug:
            return None
        if owner is None or owner.id != cfg.owner_id:
            return None
        return cfg

    def show(
        self, req: Request, p: dict[str, str], *, installed: bool = False, error: str = ""
    ) -> Response:
        ctx = self._ctx
        with ctx.store.lock:
            cfg = self._configuration(p["scope"], p["slug"], p["cfg"])
            if cfg is None:
                return not_found_page(ctx, "This configuration does not exist or was removed.")
            if installed:
                cfg = self._actions.complete(cfg.id)
            return self._render(
                ctx.config.name, self._body(cfg, installed, error), 400 if error else 200
            )

    def _body(self, cfg: Configuration, installed: bool, error: str) -> str:
        ctx = self._ctx
        store = ctx.store
        owner = store.accounts[cfg.owner_id]
        base = esc(self._actions.dashboard_path(cfg))
        granted = [store.projects[pid].name for pid in store.granted_project_ids(cfg)]
        access = (
            "All projects"
            if cfg.project_selection == "all"
            else ", ".join(granted) or "No projects selected"
        )
        status = (
            "Disabled"
            if cfg.disabled_at
            else ("Installed" if cfg.completed_at else "Pending: the integration's setup")
        )
        notice = (
            f'<p class="notice" role="status">{esc(ctx.config.name)} is installed on '
            f"{esc(owner.name)}. You can close this window.</p>"
            if installed
            else ""
        )
        problem = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
        configure = ""
        if ctx.config.configuration_url:
            href = f"{ctx.config.configuration_url}?{urlencode({'configurationId': cfg.id})}"
            configure = f'<p><a href="{esc(href)}">Configure</a></p>'
        toggle = "enable" if cfg.disabled_at else "disable"
        return (
            f"<h1>{esc(ctx.config.name)}</h1>{notice}{problem}"
            "<dl>"
            f"<dt>Scope</dt><dd>{esc(owner.name)} ({'team' if owner.team_id else 'personal'})</dd>"
            f"<dt>Configuration</dt><dd>{esc(cfg.id)}</dd>"
            f"<dt>Status</dt><dd>{esc(status)}</dd>"
            f"<dt>Project access</dt><dd>{esc(access)}</dd>"
            f"<dt>Permissions</dt><dd>{esc(', '.join(cfg.scopes))}</dd>"
            "</dl>"
            f"{configure}"
            f"{self._variables(cfg, owner)}"
            f'<h2>Manage access</h2><form method="post" action="{base}/access">'
            f"{project_choices(ctx, owner, cfg.project_selection, cfg.projects)}"
            '<button type="submit">Save access</button></form>'
            '<h2>Danger zone</h2><div class="actions">'
            f'<form method="post" action="{base}/{toggle}">'
            f'<button type="submit" class="secondary">{toggle.title()}</button></form>'
            f'<form method="post" action="{base}/remove">'
            '<button type="submit" class="secondary">Remove integration</button></form></div>'
        )

    def _variables(self, cfg: Configuration, owner: Account) -> str:
        store = self._ctx.store
        projects = sorted(
            (store.projects[pid] for pid in store.granted_project_ids(cfg)), key=lambda p: p.name
        )
        sections = "".join(
            f'<h3><a href="/{esc(owner.slug)}/{esc(p.name)}/settings/environment-variables">'
            f"{esc(p.name)}</a></h3>{env_list(self._ctx, p, cfg)}"
            for p in projects
        )
        return "<h2>Environment variables</h2>" + (
            sections or '<p class="muted">No projects to show.</p>'
        )

    def project_env(self, req: Request, p: dict[str, str]) -> Response:
        ctx = self._ctx
        with ctx.store.lock:
            owner = ctx.store.account(p["scope"])
            project = ctx.store.find_project(owner.id, p["project"]) if owner else None
            if owner is None or project is None:
                return not_found_page(ctx, "There is no such project.")
            cfg = ctx.store.configuration_for(owner.id)
            body = (
                f"<h1>{esc(project.name)}</h1>"
                f'<p class="muted">{esc(owner.name)} · Settings · Environment Variables</p>'
                f"{env_list(ctx, project, cfg)}"
                '<p class="muted">Changes apply to new deployments.</p>'
                '<p><a href="/">Back to the dashboard</a></p>'
            )
        return self._render(f"{project.name} · Environment Variables", body)

    def act(self, req: Request, p: dict[str, str], action: str) -> Response:
        ctx = self._ctx
        with ctx.store.lock:
            cfg = self._configuration(p["scope"], p["slug"], p["cfg"])
            if cfg is None:
                return not_found_page(ctx, "This configuration does not exist or was removed.")
            path = self._actions.dashboard_path(cfg)
            form = req.form()
            try:
                if action == "access":
                    selection: ProjectSelection = (
                        "selected" if form.get("access", ["all"])[0] == "selected" else "all"
                    )
                    self._actions.set_project_access(cfg.id, selection, form.get("projects", []))
                elif action == "disable":
                    self._actions.disable(cfg.id)
                elif action == "enable":
                    self._actions.enable(cfg.id)
                else:
                    self._actions.delete_configuration(cfg.id)
                    return Response.redirect("/", 303)
            except ActionError as exc:
                return self.show(req, p, error=exc.message)
        return Response.redirect(path, 303)


def register(router: Router, ctx: Context, actions: Actions) -> None:
    board = Dashboard(ctx, actions)
    base = "/{scope}/~/integrations/{slug}/{cfg}"
    router.add("GET", "/", lambda req, _: board.home(req))
    router.add("GET", "/favicon.ico", lambda req, _: Response.empty(204))
    router.add("GET", base, lambda req, p: board.show(req, p))
    router.add(
        "GET",
        "/{scope}/{project}/settings/environment-variables",
        lambda req, p: board.project_env(req, p),
    )
    router.add("GET", base + "/installed", lambda req, p: board.show(req, p, installed=True))
    for action in ("access", "disable", "enable", "remove"):
        router.add("POST", f"{base}/{action}", _action_route(board, action))


def _action_route(board: Dashboard, action: str) -> Handler:
    return lambda req, p: board.act(req, p, action)
