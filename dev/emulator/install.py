"""The install flow: `GET /integrations/<slug>/new[?state=…]` → scope → projects → Redirect URL.

What Vercel does (vercel-api.md §1):
- The user picks a scope (personal account or team) and the projects the integration may
  access, "All" or specific ones (§1.1, DOC-INSTALL).
- Vercel then opens the Redirect URL with `code`, `configurationId`, `teamId` (team
  installs only), `next` and `source`, plus `state` when the external flow was started
  with one (§1.1, §1.2, §1.4).
- External flow (`/integrations/<slug>/new`): on a scope that already has the
  integration "a new `code` is generated, and the user proceeds to the Redirect URL. No
  new Configuration is created." (§1.2). Marketplace flow (`source=marketplace`, from the
  listing page `/integrations/<slug>`): the user is sent to the existing configuration
  page instead (§1.1).
- The `next` URL completes the install (`completedAt`) and shows the configuration
  (dashboard module). Redirect URL parameters beyond these are UNVERIFIED (§1.1 Q1).
"""

from __future__ import annotations

from urllib.parse import urlencode

from dev.emulator.actions import CONFIG_SOURCES, ActionError, Actions
from dev.emulator.context import Context
from dev.emulator.layout import esc, page
from dev.emulator.models import Account, ProjectSelection
from dev.emulator.routing import Router
from dev.emulator.wsgi import Request, Response

__all__ = ["not_found_page", "project_choices", "register"]

_NO_SCOPE = "That scope does not exist, or the signed-in person is not a member of it."

_ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" role="img" '
    'aria-label="Integration"><rect width="64" height="64" rx="14" fill="#111"/>'
    '<path d="M32 14 52 48H12Z" fill="#fff"/></svg>'
)


def not_found_page(ctx: Context, what: str) -> Response:
    body = f'<h1>Not found</h1><p>{esc(what)}</p><p><a href="/">Back to the emulator</a></p>'
    return Response.html(page("Not found", body, user=ctx.store.user.name), 404)


def _hidden(name: str, value: str | None) -> str:
    if value is None:
        return ""
    return f'<input type="hidden" name="{esc(name)}" value="{esc(value)}">'


def project_choices(
    ctx: Context,
    account: Account,
    selection: ProjectSelection = "all",
    checked: list[str] | None = None,
) -> str:
    """The "Project access" fieldsets, shared with the configuration page."""
    checked = checked or []
    projects = sorted(ctx.store.projects_of(account.id), key=lambda p: p.name)
    boxes = (
        "".join(
            f'<div class="choice"><input type="checkbox" id="p-{esc(p.id)}" name="projects" '
            f'value="{esc(p.id)}"{" checked" if p.id in checked else ""}>'
            f'<label for="p-{esc(p.id)}">{esc(p.name)}</label></div>'
            for p in projects
        )
        or '<p class="muted">This scope has no projects yet.</p>'
    )
    radio = "".join(
        f'<div class="choice"><input type="radio" id="access-{value}" name="access" '
        f'value="{value}"{" checked" if selection == value else ""}>'
        f'<label for="access-{value}">{label}</label></div>'
        for value, label in (
            ("all", "All projects, including future ones"),
            ("selected", "Only the projects selected below"),
        )
    )
    return (
        f"<fieldset><legend>Project access</legend>{radio}</fieldset>"
        f"<fieldset><legend>Projects in {esc(account.name)}</legend>{boxes}</fieldset>"
    )


class InstallPages:
    def __init__(self, ctx: Context, actions: Actions) -> None:
        self._ctx = ctx
        self._actions = actions

    def _render(self, title: str, body: str, status: int = 200) -> Response:
        return Response.html(page(title, body, user=self._ctx.store.user.name), status)

    def _scope(self, id_or_slug: str) -> Account | None:
        """A scope the signed-in person may install on: their own account or their teams."""
        account = self._ctx.store.account(id_or_slug)
        mine = {a.id for a in self._ctx.store.scopes_of_user()}
        return account if account is not None and account.id in mine else None

    def _source(self, raw: str | None) -> str:
        return raw if raw in CONFIG_SOURCES else "external"

    def listing(self, req: Request, slug: str) -> Response:
        ctx = self._ctx
        if slug != ctx.config.slug:
            return not_found_page(ctx, f"There is no integration {slug!r}.")
        name = esc(ctx.config.name)
        href = f"/integrations/{esc(slug)}/new?source=marketplace"
        body = (
            f"<h1>{name}</h1><p>An integration on the Vercel Marketplace. It asks for: "
            f"{esc(', '.join(ctx.config.scopes))}.</p>"
            f'<p><a href="{href}">Add Integration</a></p>'
        )
        return self._render(ctx.config.name, body)

    def icon(self, req: Request, slug: str) -> Response:
        return Response(200, _ICON.encode(), [("Content-Type", "image/svg+xml")])

    def new(self, req: Request, slug: str) -> Response:
        ctx = self._ctx
        if slug != ctx.config.slug:
            return not_found_page(ctx, f"There is no integration {slug!r}.")
        state = req.query.get("state") if "state" in req.query else None
        source = self._source(req.query.get("source"))
        scope = req.query.get("scope")
        with ctx.store.lock:
            if not scope:
                return self._choose_scope(state, source)
            account = self._scope(scope)
            if account is None:
                return not_found_page(ctx, _NO_SCOPE)
            existing = ctx.store.configuration_for(account.id)
            if existing is not None and source == "marketplace":
                return Response.redirect(self._actions.dashboard_path(existing))
            return self._choose_projects(account, state, source, already=existing is not None)

    def _choose_scope(self, state: str | None, source: str) -> Response:
        ctx = self._ctx
        options = []
        for account in ctx.store.scopes_of_user():
            kind = "Personal account" if account.kind == "user" else "Team"
            installed = ctx.store.configuration_for(account.id) is not None
            note = " — already installed" if installed else ""
            first = account.id == ctx.store.user_id
            options.append(
                f'<div class="choice"><input type="radio" id="scope-{esc(account.id)}" '
                f'name="scope" value="{esc(account.id)}"{" checked" if first else ""}>'
                f'<label for="scope-{esc(account.id)}">{esc(account.name)} '
                f'<span class="muted">({kind}{note})</span></label></div>'
            )
        body = (
            f"<h1>Add {esc(ctx.config.name)}</h1>"
            f'<form method="get" action="/integrations/{esc(ctx.config.slug)}/new">'
            f"<fieldset><legend>Choose where to install it</legend>{''.join(options)}</fieldset>"
            f"{_hidden('state', state)}{_hidden('source', source)}"
            '<button type="submit">Continue</button></form>'
        )
        return self._render(f"Add {ctx.config.name}", body)

    def _choose_projects(
        self,
        account: Account,
        state: str | None,
        source: str,
        *,
        already: bool,
        error: str | None = None,
    ) -> Response:
        ctx = self._ctx
        back = {"source": source, **({"state": state} if state is not None else {})}
        back_href = f"/integrations/{esc(ctx.config.slug)}/new?{esc(urlencode(back))}"
        hidden = _hidden("scope", account.id) + _hidden("state", state) + _hidden("source", source)
        if already:
            fields = (
                f'<p class="notice">{esc(ctx.config.name)} is already installed on '
                f"{esc(account.name)}. Continuing issues a new authorization code for the "
                "existing configuration.</p>"
            )
            button = "Continue"
        else:
            fields = project_choices(ctx, account)
            button = "Install"
        problem = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
        body = (
            f"<h1>Add {esc(ctx.config.name)} to {esc(account.name)}</h1>{problem}"
            f'<form method="post" action="/integrations/{esc(ctx.config.slug)}/new">'
            f"{fields}{hidden}"
            f'<div class="actions"><button type="submit">{button}</button>'
            f'<a href="{back_href}">Choose another scope</a></div></form>'
        )
        return self._render(f"Add {ctx.config.name}", body, 400 if error else 200)

    def submit(self, req: Request, slug: str) -> Response:
        ctx = self._ctx
        if slug != ctx.config.slug:
            return not_found_page(ctx, f"There is no integration {slug!r}.")
        form = req.form()
        first = {k: v[0] for k, v in form.items()}
        state = first.get("state") if "state" in first else None
        source = self._source(first.get("source"))
        access = first.get("access", "all")
        selection: ProjectSelection = "selected" if access == "selected" else "all"
        with ctx.store.lock:
            account = self._scope(first.get("scope", ""))
            if account is None:
                return not_found_page(ctx, _NO_SCOPE)
            try:
                cfg, _ = self._actions.install(
                    account.id, selection, form.get("projects", []), source
                )
            except ActionError as exc:
                return self._choose_projects(
                    account, state, source, already=False, error=exc.message
                )
            code = self._actions.mint_code(cfg.id)
            location = self._actions.callback_url(cfg, code, source, state)
        return Response.redirect(location)


def register(router: Router, ctx: Context, actions: Actions) -> None:
    pages = InstallPages(ctx, actions)
    router.add("GET", "/integrations/{slug}", lambda req, p: pages.listing(req, p["slug"]))
    router.add("GET", "/integrations/{slug}/icon.svg", lambda req, p: pages.icon(req, p["slug"]))
    router.add("GET", "/integrations/{slug}/new", lambda req, p: pages.new(req, p["slug"]))
    router.add("POST", "/integrations/{slug}/new", lambda req, p: pages.submit(req, p["slug"]))
