"""The emulator's state: one lock, the seeded demo world, lookups and a snapshot.

The server is threaded, so every read-modify-write of this state happens under
`Store.lock`. Outbound work (webhook deliveries) never runs under it: the receiver may
call back into the REST API while handling a delivery.
"""

from __future__ import annotations

import random
import re
import secrets
import threading
from typing import Any

from dev.emulator.clock import Clock
from dev.emulator.ids import new_id
from dev.emulator.models import (
    Account,
    AuthCode,
    Configuration,
    CustomEnvironment,
    EnvVar,
    Project,
    SigninCode,
    SigninToken,
    TokenRecord,
)

__all__ = ["PROJECT_NAME", "SEED", "EnvTable", "Store"]

PROJECT_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,98}[a-z0-9])?$")

# The demo world `make dev` starts with: a person with 3 projects, in a team with 5, and
# a second person who belongs to no team (someone who must not see the team's install).
SEED: dict[str, Any] = {
    "user": {"slug": "dev-user", "name": "Dev User", "email": "dev-user@example.com"},
    "outsider": {"slug": "outsider", "name": "Out Sider", "email": "outsider@example.com"},
    "team": {"slug": "acme", "name": "Acme Inc"},
    "personal_projects": [("my-blog", "nextjs"), ("portfolio", "astro"), ("notes-app", "vite")],
    "team_projects": [
        ("web", "nextjs"),
        ("api", None),
        ("docs", "docusaurus-2"),
        ("dashboard", "nextjs"),
        ("marketing-site", "astro"),
    ],
}
_DAY_MS = 24 * 60 * 60 * 1000


class EnvTable(dict[str, EnvVar]):
    """The vars by id, plus each project's var ids in the same order.

    Every create and list asks for one project's vars; a scan of every project's vars
    for that grew with the whole world. Writes go through the mutators below; a var's
    `project_id` never changes. Anything the index cannot follow exactly (an id reused
    for another project's var) turns it off, and lookups scan as before.
    """

    def __init__(self) -> None:
        super().__init__()
        self._by_project: dict[str, dict[str, None]] = {}
        self._exact = True

    def __setitem__(self, env_id: str, env: EnvVar) -> None:
        old = self.get(env_id)
        super().__setitem__(env_id, env)
        if old is None:
            self._by_project.setdefault(env.project_id, {})[env_id] = None
        elif old.project_id != env.project_id:
            self._exact = False

    def __delitem__(self, env_id: str) -> None:
        env = self[env_id]
        super().__delitem__(env_id)
        self._by_project.get(env.project_id, {}).pop(env_id, None)

    def pop(self, env_id: str, *default: Any) -> Any:
        if env_id in self:
            env = self[env_id]
            del self[env_id]
            return env
        return super().pop(env_id, *default)

    def clear(self) -> None:
        super().clear()
        self._by_project.clear()
        self._exact = True

    def popitem(self) -> tuple[str, EnvVar]:
        raise NotImplementedError("EnvTable: remove vars by id")

    def setdefault(self, env_id: str, default: Any = None) -> Any:
        raise NotImplementedError("EnvTable: set vars by id")

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("EnvTable: set vars by id")

    def of_project(self, project_id: str) -> list[EnvVar]:
        if not self._exact:
            return [e for e in self.values() if e.project_id == project_id]
        return [self[i] for i in self._by_project.get(project_id, ())]


class Store:
    """Everything the emulated Vercel knows. Hold `lock` while reading or writing."""

    def __init__(self, clock: Clock) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.accounts: dict[str, Account] = {}
        # Who is signed in on the emulator's pages (install, consent, dashboard); the
        # person who installs, and the actor of the webhooks their actions fire.
        self.user_id = ""
        # team id -> {user id: role}; roles are Vercel's ("OWNER", "MEMBER", ...).
        self.members: dict[str, dict[str, str]] = {}
        self.projects: dict[str, Project] = {}
        self.envs = EnvTable()
        self.configurations: dict[str, Configuration] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.codes: dict[str, AuthCode] = {}
        self.custom_environments: dict[str, CustomEnvironment] = {}
        # Sign in with Vercel (oidc.py), by digest like the integration's codes and tokens.
        self.signin_codes: dict[str, SigninCode] = {}
        self.signin_tokens: dict[str, SigninToken] = {}

    # -- lifecycle

    def reset(self, seed: bool = True) -> None:
        """Forget everything; with `seed`, recreate the demo world with stable ids."""
        with self.lock:
            self.accounts.clear()
            self.projects.clear()
            self.envs.clear()
            self.configurations.clear()
            self.tokens.clear()
            self.codes.clear()
            self.custom_environments.clear()
            self.members.clear()
            self.signin_codes.clear()
            self.signin_tokens.clear()
            rng = random.Random("vercel-emulator-seed")
            user = Account(
                id=new_id("", rng),
                slug=SEED["user"]["slug"],
                name=SEED["user"]["name"],
                kind="user",
                email=SEED["user"]["email"],
            )
            self.accounts[user.id] = user
            self.user_id = user.id
            if not seed:
                return
            team = Account(
                id=new_id("team_", rng),
                slug=SEED["team"]["slug"],
                name=SEED["team"]["name"],
                kind="team",
            )
            self.accounts[team.id] = team
            self.members[team.id] = {user.id: "OWNER"}
            # Its own generator, so the ids seeded before it stay what they always were.
            other = SEED["outsider"]
            outsider = Account(
                id=new_id("", random.Random("vercel-emulator-seed-outsider")),
                slug=other["slug"],
                name=other["name"],
                kind="user",
                email=other["email"],
            )
            self.accounts[outsider.id] = outsider
            now = self.clock.now_ms()
            team.created_at = user.created_at = outsider.created_at = now - 400 * _DAY_MS
            plan = [(user.id, p) for p in SEED["personal_projects"]]
            plan += [(team.id, p) for p in SEED["team_projects"]]
            for age, (account_id, (name, framework)) in enumerate(reversed(plan), start=1):
                created = now - age * _DAY_MS
                self._put_project(
                    Project(
                        id=new_id("prj_", rng),
                        name=name,
                        account_id=account_id,
                        created_at=created,
                        updated_at=created + 1000,
                        framework=framework,
                    )
                )

    def _put_project(self, project: Project) -> None:
        self.projects[project.id] = project

    # -- accounts

    @property
    def user(self) -> Account:
        return self.accounts[self.user_id]

    def account(self, id_or_slug: str) -> Account | None:
        found = self.accounts.get(id_or_slug)
        if found is not None:
            return found
        return next((a for a in self.accounts.values() if a.slug == id_or_slug), None)

    def teams(self) -> list[Account]:
        return [a for a in self.accounts.values() if a.kind == "team"]

    def users(self) -> list[Account]:
        return [a for a in self.accounts.values() if a.kind == "user"]

    def find_user(self, id_or_username: str) -> Account | None:
        found = self.account(id_or_username)
        return found if found is not None and found.kind == "user" else None

    def sign_in(self, id_or_username: str) -> Account:
        """Who the emulator's pages act for from now on (`PUT /_emulator/signed-in-user`)."""
        user = self.find_user(id_or_username)
        if user is None:
            raise ValueError(f"no user {id_or_username!r}")
        self.user_id = user.id
        return user

    def add_user(self, username: str, name: str | None = None, email: str | None = None) -> Account:
        if not PROJECT_NAME.match(username) or self.account(username) is not None:
            raise ValueError(f"username {username!r} is invalid or taken")
        user = Account(
            id=new_id(""),
            slug=username,
            name=name or username,
            kind="user",
            email=email or f"{username}@example.com",
            created_at=self.clock.tick_ms(),
        )
        self.accounts[user.id] = user
        return user

    def teams_of(self, user_id: str) -> list[Account]:
        return [t for t in self.teams() if user_id in self.members.get(t.id, {})]

    def members_of(self, team_id: str) -> list[tuple[Account, str]]:
        """(user, role) for each member of a team, in joining order."""
        roles = self.members.get(team_id, {})
        return [(self.accounts[uid], role) for uid, role in roles.items() if uid in self.accounts]

    def set_member(self, team_id: str, user_id: str, role: str | None) -> None:
        """Add a member with `role`, change their role, or (None) remove them."""
        roles = self.members.setdefault(team_id, {})
        if role is None:
            roles.pop(user_id, None)
        else:
            roles[user_id] = role

    def scopes_of_user(self) -> list[Account]:
        """Where the signed-in person can install: their account, then their teams."""
        return [self.user, *self.teams_of(self.user_id)]

    def add_team(self, slug: str, name: str | None = None) -> Account:
        if not PROJECT_NAME.match(slug) or self.account(slug) is not None:
            raise ValueError(f"team slug {slug!r} is invalid or taken")
        team = Account(
            id=new_id("team_"),
            slug=slug,
            name=name or slug,
            kind="team",
            created_at=self.clock.tick_ms(),
        )
        self.accounts[team.id] = team
        self.members[team.id] = {self.user_id: "OWNER"}  # the person who created it
        return team

    # -- projects

    def projects_of(self, account_id: str) -> list[Project]:
        return [p for p in self.projects.values() if p.account_id == account_id]

    def find_project(self, account_id: str, id_or_name: str) -> Project | None:
        """Vercel's `{idOrName}`: an id, else a name, within one account."""
        found = self.projects.get(id_or_name)
        if found is not None and found.account_id == account_id:
            return found
        return next((p for p in self.projects_of(account_id) if p.name == id_or_name), None)

    def add_project(self, account_id: str, name: str, framework: str | None = None) -> Project:
        if account_id not in self.accounts:
            raise ValueError(f"no account {account_id!r}")
        if not PROJECT_NAME.match(name):
            raise ValueError(f"invalid project name {name!r}")
        if self.find_project(account_id, name) is not None:
            raise ValueError(f"a project named {name!r} already exists")
        now = self.clock.tick_ms()
        project = Project(
            id=new_id("prj_"),
            name=name,
            account_id=account_id,
            created_at=now,
            updated_at=now,
            framework=framework,
        )
        self._put_project(project)
        return project

    # -- custom environments

    def project_custom_environments(self, project_id: str) -> list[CustomEnvironment]:
        found = [c for c in self.custom_environments.values() if c.project_id == project_id]
        return sorted(found, key=lambda c: (c.created_at, c.id))

    def find_custom_environment(self, project_id: str, slug_or_id: str) -> CustomEnvironment | None:
        return next(
            (
                c
                for c in self.project_custom_environments(project_id)
                if slug_or_id in (c.id, c.slug)
            ),
            None,
        )

    def add_custom_environment(
        self, project: Project, slug: str, description: str | None = None
    ) -> CustomEnvironment:
        """Vercel refuses the names of the standard environments (the API's description:
        "Must not be named 'Production' or 'Preview'")."""
        if not PROJECT_NAME.match(slug) or slug in ("production", "preview", "development"):
            raise ValueError(f"invalid custom environment slug {slug!r}")
        if self.find_custom_environment(project.id, slug) is not None:
            raise ValueError(f"a custom environment {slug!r} already exists")
        now = self.clock.tick_ms()
        env = CustomEnvironment(
            id=new_id("env_"),
            project_id=project.id,
            slug=slug,
            description=description,
            created_at=now,
            updated_at=now,
        )
        self.custom_environments[env.id] = env
        return env

    # -- env vars

    def project_envs(self, project_id: str) -> list[EnvVar]:
        return self.envs.of_project(project_id)

    @staticmethod
    def new_ciphertext() -> str:
        """What Vercel returns instead of an encrypted value: opaque, unrelated to it."""
        return secrets.token_urlsafe(48)

    # -- configurations

    def configuration_for(self, owner_id: str) -> Configuration | None:
        """The live configuration of this integration on a scope (at most one)."""
        return next(
            (c for c in self.configurations.values() if c.owner_id == owner_id and c.active),
            None,
        )

    def granted_project_ids(self, cfg: Configuration) -> list[str]:
        if cfg.project_selection == "all":
            return [p.id for p in self.projects_of(cfg.owner_id)]
        return [pid for pid in cfg.projects if pid in self.projects]

    # -- test view

    def snapshot(self) -> dict[str, Any]:
        """Everything, values included: the control API is a local test tool."""
        with self.lock:
            return {
                "user": _account(self.user),
                "signedInUser": self.user.slug,
                "users": [_account(u) for u in self.users()],
                "teams": [
                    {
                        **_account(t),
                        "members": [
                            {"id": u.id, "username": u.slug, "role": role}
                            for u, role in self.members_of(t.id)
                        ],
                    }
                    for t in self.teams()
                ],
                "projects": [
                    {
                        "id": p.id,
                        "name": p.name,
                        "accountId": p.account_id,
                        "createdAt": p.created_at,
                        "updatedAt": p.updated_at,
                        "env": [_env(e) for e in self.project_envs(p.id)],
                        "customEnvironments": [
                            {"id": c.id, "slug": c.slug, "description": c.description}
                            for c in self.project_custom_environments(p.id)
                        ],
                    }
                    for p in self.projects.values()
                ],
                "configurations": [_configuration(c) for c in self.configurations.values()],
                "tokens": len(self.tokens),
                "codes": {
                    "issued": len(self.codes),
                    "unused": sum(not c.used for c in self.codes.values()),
                },
                "signIn": {
                    "codes": len(self.signin_codes),
                    "unusedCodes": sum(not c.used for c in self.signin_codes.values()),
                    "tokens": len(self.signin_tokens),
                },
            }


def _account(a: Account) -> dict[str, Any]:
    out: dict[str, Any] = {"id": a.id, "slug": a.slug, "name": a.name, "kind": a.kind}
    if a.kind == "user":
        out["email"] = a.email
    if a.kind == "team":
        out["sensitiveEnvironmentVariablePolicy"] = a.sensitive_env_policy
    return out


def _env(e: EnvVar) -> dict[str, Any]:
    return {
        "id": e.id,
        "key": e.key,
        "value": e.value,
        "type": e.type,
        "target": list(e.target),
        "gitBranch": e.git_branch,
        "comment": e.comment,
        "customEnvironmentIds": list(e.custom_environment_ids),
        "configurationId": e.configuration_id,
        "hidden": e.hidden,
        "createdAt": e.created_at,
        "updatedAt": e.updated_at,
    }


def _configuration(c: Configuration) -> dict[str, Any]:
    return {
        "id": c.id,
        "ownerId": c.owner_id,
        "teamId": c.team_id,
        "userId": c.user_id,
        "scopes": list(c.scopes),
        "projectSelection": c.project_selection,
        "projects": list(c.projects),
        "source": c.source,
        "createdAt": c.created_at,
        "completedAt": c.completed_at,
        "disabledAt": c.disabled_at,
        "disabledReason": c.disabled_reason,
        "deletedAt": c.deleted_at,
    }
