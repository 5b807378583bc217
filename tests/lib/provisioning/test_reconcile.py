"""The reconciler end to end: our Provisioner ↔ the Vercel API emulator (real HTTP) ↔ KV.

Installations are made with the real install code (code exchange included) but without
the callback's provisioning, so each test decides when and how the first reconcile runs.
Every Vercel call goes through `Wire`, a real HTTP transport that logs each request and
can kill or fail the n-th one: that is how "killed after each possible step" is proven.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lib.deadline import Deadline
from lib.install import complete_install, parse_callback
from lib.kv.client import KVError
from lib.kv.records import Installation
from lib.provisioning.admin import rotate_secrets, sweep
from lib.provisioning.reconcile import HIDDEN_RECHECK_S, Provisioner
from lib.provisioning.spec import Spec, TemplateContext, parse_spec
from lib.vercel.client import VercelClient
from lib.vercel.models import Project
from lib.vercel.transport import RetryPolicy
from tests.conftest import E2E

SCOPE_USER = "dev-user"  # 3 projects in the seeded world
SCOPE_TEAM = "acme"  # 5 projects

SPEC = {
    "secrets": {"api_key": {"bytes": 16, "prefix": "sk_"}},
    "env": [
        {"key": "API_KEY", "value": "{secret.api_key}", "type": "sensitive"},
        {"key": "DASHBOARD_URL", "value": "https://x.example/{project_name}", "type": "plain"},
        {
            "key": "PROJECT_REF",
            "value": "{owner_id}/{project_id}",
            "targets": ["production", "preview"],
        },
    ],
}
# A later version of the spec: one var removed, one retargeted, one re-typed, one added.
SPEC_V2 = {
    "secrets": {"api_key": {"bytes": 16, "prefix": "sk_"}},
    "env": [
        {"key": "API_KEY", "value": "{secret.api_key}", "type": "encrypted"},
        {
            "key": "DASHBOARD_URL",
            "value": "https://y.example/{project_name}",
            "type": "plain",
            "targets": ["production"],
            "comment": "moved",
        },
        {"key": "NEW_FLAG", "value": "on", "type": "plain", "targets": ["preview"]},
    ],
}

NO_WAIT = RetryPolicy(max_attempts=3, sleep=lambda _: None)


def spec_of(data: dict[str, Any]) -> Spec:
    return parse_spec(data, source="test.toml", env={})


class Killed(BaseException):
    """The process running the reconcile died: nothing after this point happens."""


@dataclass
class Wire(httpx.BaseTransport):
    """Real HTTP with a request log, and a planned failure of the call at `fail_at`.

    Modes: `kill` (the process dies before sending), `kill-after` (the request is
    handled, then the process dies before reading the answer), `error` (a 503 that never
    reached Vercel), `drop` (handled, then the connection is lost)."""

    fail_at: int | None = None
    mode: str = "kill"
    calls: list[tuple[str, str]] = field(default_factory=list)
    killed: bool = False
    _inner: httpx.HTTPTransport = field(default_factory=httpx.HTTPTransport)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            index = len(self.calls)
            self.calls.append((request.method, str(request.url)))
            if self.killed:
                raise Killed
            strike = index == self.fail_at
            if strike and self.mode == "kill":
                self.killed = True
        if strike and self.mode == "kill":
            raise Killed
        if strike and self.mode == "error":
            return httpx.Response(
                503, json={"error": {"code": "service_unavailable", "message": "injected"}}
            )
        response = self._inner.handle_request(request)
        response.read()
        if strike and self.mode == "kill-after":
            self.killed = True
            raise Killed
        if strike and self.mode == "drop":
            raise httpx.ReadError("injected: connection lost after the request was handled")
        return response

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] != "GET"]


def provisioner(
    e2e: E2E,
    spec: Spec,
    wire: Wire | None = None,
    *,
    concurrency: int = 4,
    clock: Callable[[], float] = time.time,
) -> Provisioner:
    transport = wire or Wire()

    def client(token: str, **kwargs: Any) -> VercelClient:
        return VercelClient(token, transport=transport, retry=NO_WAIT, **kwargs)

    return Provisioner(
        e2e.services().store,
        spec,
        api_url=e2e.emulator_url,
        concurrency=concurrency,
        client_factory=client,
        clock=clock,
    )


def install(
    e2e: E2E,
    scope: str = SCOPE_USER,
    selection: str = "all",
    projects: tuple[str, ...] = (),
    spec: Spec | None = None,
) -> Installation:
    """What /callback stores (code exchange included), without its first reconcile."""
    minted = e2e.emulator.mint_code(scope=scope, project_selection=selection, projects=projects)
    services = e2e.services()
    params = parse_callback(parse_qs(urlsplit(minted["redirectUrl"]).query), services.settings)
    inst = complete_install(
        params,
        store=services.store,
        settings=services.settings,
        spec=spec or spec_of(SPEC),
        nonce=None,
        deadline=Deadline(10),
    ).installation
    assert inst is not None
    return inst


def project_envs(e2e: E2E) -> dict[str, list[dict[str, Any]]]:
    """Project name -> every env var on it (values included: the emulator's view)."""
    return {p["name"]: p["env"] for p in e2e.emulator.state()["projects"]}


def shape(env: dict[str, Any]) -> tuple[Any, ...]:
    return (env["key"], env["type"], tuple(sorted(env["target"])), env["gitBranch"], env["value"])


def desired_shapes(e2e: E2E, spec: Spec, inst: Installation) -> dict[str, list[tuple[Any, ...]]]:
    """Project name -> the var records the spec wants there, for every reachable project,
    less the targets someone else's var (visible to us or not) holds for the same key."""
    secrets = e2e.services().store.get_secrets(inst.configuration_id)
    state = e2e.emulator.state()
    out: dict[str, list[tuple[Any, ...]]] = {}
    for p in state["projects"]:
        if p["accountId"] != inst.owner_id:
            continue
        if inst.project_selection == "selected" and p["id"] not in inst.project_ids:
            continue
        ctx = TemplateContext(
            configuration_id=inst.configuration_id,
            team_id=inst.team_id,
            user_id=inst.user_id,
            project_id=p["id"],
            project_name=p["name"],
            secrets=secrets,
        )
        taken: dict[tuple[str, str | None], set[str]] = {}
        for e in p["env"]:
            if e["configurationId"] != inst.configuration_id:
                taken.setdefault((e["key"], e["gitBranch"]), set()).update(e["target"])
        records = []
        for d in spec.desired(ctx):
            free = tuple(sorted(set(d.targets) - taken.get((d.key, d.git_branch), set())))
            if free:
                records.append((d.key, d.type, free, d.git_branch, d.value))
        out[p["name"]] = sorted(records)
    return out


def ours(e2e: E2E, inst: Installation) -> dict[str, list[tuple[Any, ...]]]:
    return {
        name: sorted(shape(e) for e in envs if e["configurationId"] == inst.configuration_id)
        for name, envs in project_envs(e2e).items()
        if any(e["configurationId"] == inst.configuration_id for e in envs)
    }


def assert_converged(e2e: E2E, spec: Spec, inst: Installation) -> None:
    """Exactly the desired set on every reachable project: nothing missing, nothing
    duplicated, nothing left over (orphans), nowhere else."""
    want = {k: v for k, v in desired_shapes(e2e, spec, inst).items()}
    assert ours(e2e, inst) == want


def vercel_writes(e2e: E2E) -> dict[str, int]:
    routes = e2e.emulator.call_counts()["routes"]
    return {k: v["count"] for k, v in routes.items() if not k.startswith("GET")}


@pytest.fixture
def fresh(e2e: E2E) -> Callable[[], None]:
    """Back to an empty world and an empty KV (faults, counts and logs cleared too)."""

    def reset() -> None:
        e2e.emulator.reset()
        e2e.kv.gateway.backend.execute([b"FLUSHDB"])
        e2e.kv.gateway.reset_stats()

    return reset


_READS = frozenset({"GET", "HGET", "HGETALL", "HMGET", "ZRANGE", "ZSCORE", "SMEMBERS", "EXISTS"})


class KVSpy:
    """Wraps the store's KV client and remembers every command name sent."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.commands: list[str] = []

    def _note(self, commands: Any) -> None:
        self.commands += [str(c[0]).upper() for c in commands]

    def call(self, *command: Any, idempotent: bool = False) -> Any:
        self._note([command])
        return self.inner.call(*command, idempotent=idempotent)

    def pipeline(self, commands: Any, *, idempotent: bool = False) -> Any:
        self._note(commands)
        return self.inner.pipeline(commands, idempotent=idempotent)

    def transaction(self, commands: Any, *, idempotent: bool = False) -> Any:
        self._note(commands)
        return self.inner.transaction(commands, idempotent=idempotent)

    def writes(self) -> list[str]:
        return [c for c in self.commands if c not in _READS]


@pytest.fixture
def kv_spy(e2e: E2E) -> Iterator[KVSpy]:
    store = e2e.services().store
    spy = KVSpy(store.kv)
    store.kv = spy  # type: ignore[assignment,unused-ignore]
    yield spy
    store.kv = spy.inner


def report_of(report: Any, name: str) -> Any:
    return next(p for p in report.projects if p.name == name)


def remove_env(e2e: E2E, env_id: str) -> None:
    """The user deletes a var on the dashboard."""
    assert e2e.emulator.remove_env(env_id)


def env_statuses(e2e: E2E) -> dict[str, dict[str, int]]:
    return {k: v["statuses"] for k, v in e2e.emulator.call_counts()["routes"].items()}


TARGETS3 = ("development", "preview", "production")


def install_seeing_every_var(e2e: E2E) -> Installation:
    """An installation granted `global-project-env-vars`: the list shows users' vars."""
    before = e2e.emulator.config.scopes
    e2e.emulator.configure(scopes=(*before, "read-write:global-project-env-vars"))
    try:
        return install(e2e)
    finally:
        e2e.emulator.configure(scopes=before)


# ---------------------------------------------------------------------------------------
# The user pains (anchors.md §3)
# ---------------------------------------------------------------------------------------


def test_every_target_gets_its_vars_not_just_production(e2e: E2E) -> None:
    spec = spec_of(SPEC)
    inst = install(e2e, spec=spec)
    report = provisioner(e2e, spec).reconcile(inst.configuration_id, Deadline(30))
    assert report.outcome == "done"
    assert not report.pending
    assert_converged(e2e, spec, inst)
    mine = ours(e2e, inst)
    assert len(mine) == 3
    for envs in mine.values():
        for target in ("production", "preview", "development"):
            keys = {key for key, _, targets, _, _ in envs if target in targets}
            assert {"API_KEY", "DASHBOARD_URL"} <= keys, (target, keys)
        # sensitive is not allowed for development: split into sensitive + encrypted.
        api = {(kind, targets) for key, kind, targets, _, _ in envs if key == "API_KEY"}
        assert api == {("sensitive", ("preview", "production")), ("encrypted", ("development",))}


def test_rerun_is_a_noop_zero_vercel_and_kv_writes(e2e: E2E, kv_spy: KVSpy) -> None:
    spec = spec_of(SPEC)
    inst = install(e2e, spec=spec)
    prov = provisioner(e2e, spec)
    first = prov.reconcile(inst.configuration_id, Deadline(30))
    assert first.outcome == "done"
    assert sum(p.writes for p in first.projects) == 3  # one batched create per project
    e2e.emulator.reset_calls()
    e2e.kv.gateway.reset_stats()
    kv_spy.commands.clear()
    wire = Wire()
    second = provisioner(e2e, spec, wire).reconcile(inst.configuration_id, Deadline(30))
    assert second.outcome == "done"
    assert not second.pending
    assert vercel_writes(e2e) == {}
    assert wire.writes() == []
    # One project listing + one env list per project, nothing else.
    assert len(wire.calls) == 1 + 3
    assert kv_spy.writes() == []
    # 5 records: API_KEY and DASHBOARD_URL are each split off development.
    assert all(p.unchanged == 5 and p.writes == 0 for p in second.projects)
    assert_converged(e2e, spec, inst)


def test_team_install_carries_team_id_on_every_call(e2e: E2E) -> None:
    spec = spec_of(SPEC)
    inst = install(e2e, SCOPE_TEAM, spec=spec)
    assert inst.team_id
    wire = Wire()
    report = provisioner(e2e, spec, wire).reconcile(inst.configuration_id, Deadline(30))
    assert report.outcome == "done"
    assert len(report.projects) == 5
    assert_converged(e2e, spec, inst)
    # The projects list, then one batched create per fresh project: no env list first.
    assert len(wire.calls) == 1 + 5
    for method, url in wire.calls:
        assert parse_qs(urlsplit(url).query).get("teamId") == [inst.team_id], (method, url)


@pytest.mark.parametrize("visible", [False, True], ids=["user-var-invisible", "user-var-visible"])
def test_user_var_with_same_key_is_never_clobbered_and_is_reported(
    e2e: E2E, kv_spy: KVSpy, visible: bool
) -> None:
    """With the least-privilege scope Vercel hides the user's vars from us: the clash
    surfaces only when the create conflicts. With the global scope the list shows it."""
    inst = install_seeing_every_var(e2e) if visible else install(e2e)
    spec = spec_of(SPEC)
    e2e.emulator.add_user_env("my-blog", "DASHBOARD_URL", "mine", target=["production"])
    e2e.emulator.add_user_env("portfolio", "API_KEY", "theirs", type="plain")
    prov = provisioner(e2e, spec)
    report = prov.reconcile(inst.configuration_id, Deadline(30))
    assert report.outcome == "done"
    assert not report.pending

    envs = project_envs(e2e)
    user = [
        (e["key"], e["value"], e["target"])
        for n in envs
        for e in envs[n]
        if not e["configurationId"]
    ]
    assert sorted(user) == [
        ("API_KEY", "theirs", ["production", "preview", "development"]),
        ("DASHBOARD_URL", "mine", ["production"]),
    ]
    blog, folio = report_of(report, "my-blog"), report_of(report, "portfolio")
    assert [(c.key, list(c.targets)) for c in blog.conflicts] == [("DASHBOARD_URL", ["production"])]
    assert sorted((c.key, tuple(sorted(c.targets))) for c in folio.conflicts) == [
        ("API_KEY", ("development",)),
        ("API_KEY", ("preview", "production")),
    ]
    owner = "user" if visible else "hidden"
    assert {c.owner for c in blog.conflicts + folio.conflicts} == {owner}
    # The free targets still get our var: preview and development are not left out.
    mine = ours(e2e, inst)
    blog_mine = [s[:3] for s in mine["my-blog"]]
    assert ("DASHBOARD_URL", "plain", ("preview",)) in blog_mine
    assert ("DASHBOARD_URL", "plain", ("development",)) in blog_mine
    assert not any(s[0] == "API_KEY" for s in mine["portfolio"])

    # Again: nothing to do, no conflict loop, and the clash is still reported.
    e2e.emulator.reset_calls()
    kv_spy.commands.clear()
    wire = Wire()
    again = provisioner(e2e, spec, wire).reconcile(inst.configuration_id, Deadline(30))
    assert vercel_writes(e2e) == {}
    assert kv_spy.writes() == []
    assert len(wire.calls) == 1 + 3
    assert report_of(again, "my-blog").conflicts == blog.conflicts
    assert sorted(map(str, report_of(again, "portfolio").conflicts)) == sorted(
        map(str, folio.conflicts)
    )


def test_a_fresh_project_is_one_create_and_only_a_conflict_lists_it(e2e: E2E) -> None:
    """Issue 14: nothing of ours recorded on a project -> one batched create, no list. A
    user's var in the way makes the create report a conflict; only then is that project
    listed, the clash reported, the user's var left as it was and the free targets created.
    """
    inst = install_seeing_every_var(e2e)
    mine = e2e.emulator.add_user_env("my-blog", "DASHBOARD_URL", "mine", target=["production"])
    other = e2e.emulator.add_user_env("notes-app", "USER_ONLY", "theirs")
    before = {e["id"]: shape(e) for envs in project_envs(e2e).values() for e in envs}
    spec = spec_of(SPEC)
    wire = Wire()
    report = provisioner(e2e, spec, wire).reconcile(inst.configuration_id, Deadline(30))
    assert report.outcome == "done"
    for project in report.projects:
        methods = [m for m, url in wire.calls if project.project_id in url]
        if project.name == "my-blog":
            assert methods == ["POST", "GET", "POST"]
            assert [c.as_dict() for c in project.conflicts] == [
                {
                    "key": "DASHBOARD_URL",
                    "targets": ["production"],
                    "gitBranch": None,
                    "owner": "user",
                }
            ]
        else:
            assert methods == ["POST"], project.name
            assert project.conflicts == []
    after = {e["id"]: shape(e) for envs in project_envs(e2e).values() for e in envs}
    for env_id in (mine["env"]["id"], other["env"]["id"]):
        assert after[env_id] == before[env_id]  # the user's vars, untouched
    assert_converged(e2e, spec, inst)
    # Recorded now: the next run lists (one call per project) and writes nothing.
    e2e.emulator.reset_calls()
    again = provisioner(e2e, spec).reconcile(inst.configuration_id, Deadline(30))
    assert vercel_writes(e2e) == {}
    assert report_of(again, "my-blog").conflicts == report_of(report, "my-blog").conflicts


def test_hidden_var_is_learnt_from_the_conflict_and_free_targets_still_provisioned(
    e2e: E2E, kv_spy: KVSpy
) -> None:
    """A var the list never shows (even with the global scope) holds production: the first
    create conflicts, one re-list can't explain it, so production is recorded as taken
    and preview/development are created. Reruns don't try again until the recheck."""
    inst = install_seeing_every_var(e2e)
    hidden = e2e.emulator.add_user_env(
        "notes-app", "DASHBOARD_URL", "hidden", target=["production"], hidden=True
    )
    spec = spec_of(SPEC)
    wire = Wire()
    report = provisioner(e2e, spec, wire).reconcile(inst.configuration_id, Deadline(30))
    assert report.outcome == "done"
    notes = report_of(report, "notes-app")
    assert [c.as_dict() for c in notes.conflicts] == [
        {"key": "DASHBOARD_URL", "targets": ["production"], "gitBranch": None, "owner": "hidden"}
    ]
    assert notes.complete
    assert not notes.errors
    mine = {s[:3] for s in ours(e2e, inst)["notes-app"]}
    assert ("DASHBOARD_URL", "plain", ("preview",)) in mine
    assert ("DASHBOARD_URL", "plain", ("development",)) in mine
    # Fresh: create (1 conflict), then list, create the rest: bounded, no loop.
    notes_calls = [c for c in wire.calls if notes.project_id in c[1]]
    assert [m for m, _ in notes_calls] == ["POST", "GET", "POST"]
    assert any(  # the hidden var is untouched
        e["id"] == hidden["env"]["id"] and e["value"] == "hidden"
        for e in project_envs(e2e)["notes-app"]
    )

    e2e.emulator.reset_calls()
    kv_spy.commands.clear()
    again = provisioner(e2e, spec).reconcile(inst.configuration_id, Deadline(30))
    assert vercel_writes(e2e) == {}
    assert kv_spy.writes() == []
    assert report_of(again, "notes-app").conflicts == notes.conflicts

    # A day later the write is tried once more (the user may have removed their var).
    later = provisioner(e2e, spec, clock=lambda: time.time() + HIDDEN_RECHECK_S + 60)
    e2e.emulator.reset_calls()
    recheck = later.reconcile(inst.configuration_id, Deadline(30))
    assert report_of(recheck, "notes-app").conflicts == notes.conflicts
    # Ours now holds preview/development, so the retry is a PATCH adding production.
    assert vercel_writes(e2e) == {"PATCH /v9/projects/{idOrName}/env/{id}": 1}
    assert env_statuses(e2e)["PATCH /v9/projects/{idOrName}/env/{id}"] == {"400": 1}
    # ... and the user did remove it: an explicit recheck now provisions production too.
    remove_env(e2e, hidden["env"]["id"])
    final = provisioner(e2e, spec).reconcile(
        inst.configuration_id, Deadline(30), recheck_conflicts=True
    )
    assert report_of(final, "notes-app").conflicts == []
    assert_converged(e2e, spec, inst)


def test_target_set_mismatch_never_loops_on_env_conflict(e2e: E2E, kv_spy: KVSpy) -> None:
    """Sentry's upsert loop (anchors.md §3 pain 5): an existing var whose target set differs
    from the wanted one. Ours is PATCHed by id; a user's is left alone and its targets
    skipped. The conflict is met once, never retried, and the rerun writes nothing."""
    narrow = {
        "env": [{"key": "DASHBOARD_URL", "value": "u", "type": "plain", "targets": ["production"]}]
    }
    inst = install(e2e)
    provisioner(e2e, spec_of(narrow)).reconcile(inst.configuration_id, Deadline(30))
    e2e.emulator.add_user_env("my-blog", "PROJECT_REF", "user's", target=["production", "preview"])
    e2e.emulator.reset_calls()
    spec = spec_of(SPEC)
    report = provisioner(e2e, spec).reconcile(inst.configuration_id, Deadline(30))
    assert report.outcome == "done"
    statuses = env_statuses(e2e)
    assert statuses["PATCH /v9/projects/{idOrName}/env/{id}"] == {"200": 3}  # retargeted
    # One batched create per project; my-blog's conflicts once, one re-list explains it.
    assert statuses["POST /v10/projects/{idOrName}/env"] == {"201": 3}
    assert statuses["GET /v10/projects/{idOrName}/env"] == {"200": 3 + 1}
    conflicts = [f.as_dict() for p in report.projects for f in p.conflicts]
    assert conflicts == [
        {"key": "PROJECT_REF", "targets": ["preview", "production"], "gitBranch": None,
         "owner": "hidden"}
    ]  # fmt: skip
    assert not any("400" in s for k, s in statuses.items() if k.startswith(("PATCH", "DELETE")))
    e2e.emulator.reset_calls()
    kv_spy.commands.clear()
    provisioner(e2e, spec).reconcile(inst.configuration_id, Deadline(30))
    assert vercel_writes(e2e) == {}
    assert kv_spy.writes() == []
    mine = ours(e2e, inst)
    assert not any(s[0] == "PROJECT_REF" for s in mine["my-blog"])
    for n in mine:  # development is its own var (the spec splits it off)
        assert sorted(s[:3] for s in mine[n] if s[0] == "DASHBOARD_URL") == [
            ("DASHBOARD_URL", "plain", ("development",)),
            ("DASHBOARD_URL", "plain", ("preview", "production")),
        ]


def test_rotation_updates_every_projects_var(e2e: E2E) -> None:
    spec = spec_of(SPEC)
    inst = install(e2e, SCOPE_TEAM, spec=spec)
    prov = provisioner(e2e, spec)
    prov.reconcile(inst.configuration_id, Deadline(30))
    old = e2e.services().store.get_secrets(inst.configuration_id)["api_key"]
    e2e.emulator.reset_calls()
    report = rotate_secrets(prov, inst.configuration_id, ["api_key"], Deadline(30))
    assert report.outcome == "done"
    new = e2e.services().store.get_secrets(inst.configuration_id)["api_key"]
    assert new != old
    assert new.startswith("sk_")
    values = [
        (e["type"], e["value"])
        for envs in project_envs(e2e).values()
        for e in envs
        if e["key"] == "API_KEY"
    ]
    assert len(values) == 5 * 2  # sensitive production/preview + encrypted development
    assert all(v == new for _, v in values)
    # By id, in place: two PATCHes per project, nothing created or deleted.
    assert vercel_writes(e2e) == {"PATCH /v9/projects/{idOrName}/env/{id}": 10}
    assert_converged(e2e, spec, inst)
    with pytest.raises(ValueError, match="unknown secret"):
        rotate_secrets(prov, inst.configuration_id, ["nope"], Deadline(30))


def test_spec_change_deletes_removed_vars_everywhere_and_leaves_user_vars(
    e2e: E2E, kv_spy: KVSpy
) -> None:
    inst = install(e2e, SCOPE_TEAM)
    v1, v2 = spec_of(SPEC), spec_of(SPEC_V2)
    provisioner(e2e, v1).reconcile(inst.configuration_id, Deadline(30))
    e2e.emulator.add_user_env("web", "MY_OWN", "keep me")
    e2e.emulator.add_user_env("api", "NEW_FLAG", "user's", target=["production"])
    users_before = {
        n: [e for e in envs if not e["configurationId"]] for n, envs in project_envs(e2e).items()
    }
    report = provisioner(e2e, v2).reconcile(inst.configuration_id, Deadline(30))
    assert report.outcome == "done"
    assert_converged(e2e, v2, inst)
    for envs in ours(e2e, inst).values():
        assert not any(s[0] == "PROJECT_REF" for s in envs)
    users_after = {
        n: [e for e in envs if not e["configurationId"]] for n, envs in project_envs(e2e).items()
    }
    assert users_after == users_before
    # PROJECT_REF deleted, API_KEY re-created unsplit (sensitive can't be PATCHed to
    # encrypted), DASHBOARD_URL retargeted and its value changed by PATCH.
    web = report_of(report, "web")
    assert web.deleted == 3
    assert sorted(web.created) == ["API_KEY", "NEW_FLAG"]
    assert web.updated == ["DASHBOARD_URL"]
    kv_spy.commands.clear()
    e2e.emulator.reset_calls()
    provisioner(e2e, v2).reconcile(inst.configuration_id, Deadline(30))
    assert vercel_writes(e2e) == {}
    assert kv_spy.writes() == []


def test_disabled_installation_pauses_without_a_retry_storm_then_resumes(e2e: E2E) -> None:
    spec = spec_of(SPEC)
    inst = install(e2e, SCOPE_TEAM, spec=spec)
    cfg = inst.configuration_id
    store = e2e.services().store
    e2e.emulator.disable_configuration(cfg)
    for _ in range(3):
        e2e.emulator.reset_calls()
        report = provisioner(e2e, spec).reconcile(cfg, Deadline(30))
        assert (report.outcome, report.reason) == ("paused", "integration_configuration_disabled")
        assert report.pending
        # One failing call per reconcile: not one per project, and no retries.
        assert e2e.emulator.call_counts()["total"] == 1
    saved = store.get_installation(cfg)
    assert saved is not None
    assert saved.status == "paused"
    assert store.pending() == [cfg]
    e2e.emulator.enable_configuration(cfg)
    swept = sweep(provisioner(e2e, spec), Deadline(30))
    assert [r.outcome for r in swept] == ["done"]
    saved = store.get_installation(cfg)
    assert saved is not None
    assert (saved.status, saved.status_reason) == ("active", None)
    assert store.pending() == []
    assert_converged(e2e, spec, inst)


def test_revoked_token_marks_the_installation_broken(e2e: E2E) -> None:
    spec = spec_of(SPEC)
    inst = install(e2e, spec=spec)
    cfg = inst.configuration_id
    store = e2e.services().store
    store.mark_pending(cfg)
    # Vercel no longer knows the token we hold (revoked, and we were never told).
    store.save_installation(
        inst.model_copy(update={"sealed_token": store.seal_token(cfg, "revoked-token")})
    )
    e2e.emulator.reset_calls()
    report = provisioner(e2e, spec).reconcile(cfg, Deadline(30))
    assert report.outcome == "broken"
    assert "reinstall" in (report.reason or "")
    assert not report.pending
    assert store.pending() == []
    assert e2e.emulator.call_counts()["total"] == 1
    saved = store.get_installation(cfg)
    assert saved is not None
    assert saved.status == "broken"


def test_selected_projects_install_reconciles_exactly_the_selection(e2e: E2E) -> None:
    spec = spec_of(SPEC)
    ids = {p["name"]: p["id"] for p in e2e.emulator.state()["projects"]}
    inst = install(e2e, SCOPE_USER, "selected", (ids["my-blog"], ids["notes-app"]), spec)
    assert inst.project_selection == "selected"
    report = provisioner(e2e, spec).reconcile(inst.configuration_id, Deadline(30))
    assert sorted(p.name or "" for p in report.projects) == ["my-blog", "notes-app"]
    assert sorted(ours(e2e, inst)) == ["my-blog", "notes-app"]
    assert_converged(e2e, spec, inst)
    # A project outside the selection (say, a stale webhook) is that project's error only.
    other = Project(id=ids["portfolio"], name="portfolio")
    one = provisioner(e2e, spec).reconcile(inst.configuration_id, Deadline(30), projects=[other])
    assert one.outcome == "partial"
    assert one.projects[0].errors == ["forbidden: Forbidden"]
    saved = e2e.services().store.get_installation(inst.configuration_id)
    assert saved is not None
    assert saved.status == "active"


def test_all_projects_install_follows_pagination(e2e: E2E) -> None:
    spec = spec_of(SPEC)
    for n in range(7):
        e2e.emulator.create_project("dev-user", f"extra-{n}")
    inst = install(e2e, spec=spec)
    limit = e2e.emulator.config.projects_max_limit
    e2e.emulator.configure(projects_max_limit=3)  # 10 projects: 4 pages of at most 3
    try:
        wire = Wire()
        report = provisioner(e2e, spec, wire).reconcile(inst.configuration_id, Deadline(30))
    finally:
        e2e.emulator.configure(projects_max_limit=limit)
    assert report.outcome == "done"
    assert len(report.projects) == 10
    assert [m for m, u in wire.calls if urlsplit(u).path == "/v10/projects"] == ["GET"] * 4
    assert len(ours(e2e, inst)) == 10
    assert_converged(e2e, spec, inst)


class StepClock:
    """A monotonic clock that moves one second per Vercel call: deadlines by call count."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_uninstall_mid_run_starts_no_further_project(e2e: E2E) -> None:
    """The first project's record is refused (uninstalled after its create): the run
    stops there, no other project makes a Vercel call and nothing is written to the KV."""
    spec = spec_of(SPEC)
    inst = install(e2e, SCOPE_TEAM, spec=spec)
    cfg = inst.configuration_id
    store = e2e.services().store

    class Uninstalling(Wire):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            if request.method == "POST":
                store.delete_installation(cfg, [inst.owner_id])
            return response

    wire = Uninstalling()
    report = provisioner(e2e, spec, wire, concurrency=1).reconcile(cfg, Deadline(30))
    assert (report.outcome, report.pending) == ("unknown", False)
    assert [m for m, _ in wire.calls] == ["GET", "POST"]
    assert not e2e.kv_keys(f"vi:*{cfg}*")


def test_out_of_time_leaves_a_pending_marker_and_the_sweep_finishes(e2e: E2E) -> None:
    spec = spec_of(SPEC)
    inst = install(e2e, SCOPE_TEAM, spec=spec)
    cfg = inst.configuration_id
    clock = StepClock()

    class Ticking(Wire):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            clock.now += 1.0
            return super().handle_request(request)

    prov = provisioner(e2e, spec, Ticking(), concurrency=1)
    # Listing (1 s) and two fresh projects (1 s each: one create, no list) fit; the third
    # would start with < 1 s left.
    report = prov.reconcile(cfg, Deadline(3.5, clock=clock))
    assert report.outcome == "partial"
    assert report.pending
    assert sum(p.complete for p in report.projects) == 2
    assert e2e.services().store.pending() == [cfg]
    assert len(ours(e2e, inst)) == 2
    swept = sweep(provisioner(e2e, spec), Deadline(30))
    assert [(r.configuration_id, r.outcome, r.pending) for r in swept] == [(cfg, "done", False)]
    assert e2e.services().store.pending() == []
    assert_converged(e2e, spec, inst)


def test_concurrent_reconciles_of_one_installation_converge_without_duplicates(
    e2e: E2E,
) -> None:
    """A webhook and the cron sweep at once: both list, both create; the loser's create
    conflicts with the winner's vars, a re-list shows them as ours, nothing is hidden."""
    spec = spec_of(SPEC)
    inst = install(e2e, SCOPE_TEAM, spec=spec)
    e2e.emulator.set_latency(20)  # widen the window between list and create
    barrier = threading.Barrier(2)
    reports: list[Any] = []

    def run() -> None:
        barrier.wait()
        reports.append(provisioner(e2e, spec).reconcile(inst.configuration_id, Deadline(30)))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    e2e.emulator.set_latency(0)
    assert_converged(e2e, spec, inst)
    assert not [c for r in reports for p in r.projects for c in p.conflicts]
    e2e.emulator.reset_calls()
    provisioner(e2e, spec).reconcile(inst.configuration_id, Deadline(30))
    assert vercel_writes(e2e) == {}


# ---------------------------------------------------------------------------------------
# Resumability: killed (or failed) at every call, the next run converges exactly
# ---------------------------------------------------------------------------------------

MODES = ("kill", "kill-after", "error", "drop")


def _faulty_then_clean(
    e2e: E2E, inst: Installation, spec: Spec, fail_at: int, mode: str
) -> tuple[Wire, Any]:
    wire = Wire(fail_at=fail_at, mode=mode)
    report = None
    with contextlib.suppress(Killed):
        report = provisioner(e2e, spec, wire, concurrency=1).reconcile(
            inst.configuration_id, Deadline(30)
        )
    assert len(wire.calls) > fail_at, "the fault never struck"
    if mode in ("error", "drop") and wire.calls[fail_at][0] == "POST":
        assert report is not None
        assert report.pending
    clean = provisioner(e2e, spec, concurrency=1).reconcile(inst.configuration_id, Deadline(30))
    return wire, clean


def _assert_settled(e2e: E2E, spec: Spec, inst: Installation, clean: Any) -> None:
    assert (clean.outcome, clean.pending) == ("done", False), clean.as_dict()
    assert_converged(e2e, spec, inst)
    assert e2e.services().store.pending() == []
    # And from there on, a rerun is a no-op: what was recorded agrees with Vercel.
    e2e.emulator.reset_calls()
    provisioner(e2e, spec).reconcile(inst.configuration_id, Deadline(30))
    assert vercel_writes(e2e) == {}


def _count_calls(e2e: E2E, spec: Spec, inst: Installation) -> list[tuple[str, str]]:
    wire = Wire()
    provisioner(e2e, spec, wire, concurrency=1).reconcile(inst.configuration_id, Deadline(30))
    return wire.calls


def test_first_provision_killed_at_every_call_converges(
    e2e: E2E, fresh: Callable[[], None]
) -> None:
    """Including a project where a var we can't see takes production from one of ours:
    the conflict, the re-list that can't explain it and the second create are steps too."""
    spec = spec_of(SPEC)

    def world() -> Installation:
        fresh()
        e2e.emulator.add_user_env("my-blog", "DASHBOARD_URL", "mine", target=["production"])
        return install(e2e, spec=spec)

    calls = _count_calls(e2e, spec, world())
    # Projects list; per fresh project one create; my-blog's conflict: its list, 2nd create.
    assert sorted(m for m, _ in calls) == ["GET"] * (1 + 1) + ["POST"] * (3 + 1)
    for mode in MODES:
        left = 0
        for index in range(len(calls)):
            inst = world()
            _, clean = _faulty_then_clean(e2e, inst, spec, index, mode)
            left += sum(p.writes for p in clean.projects)
            _assert_settled(e2e, spec, inst, clean)
        assert left > 0  # the faults did leave work for the next run


def test_spec_change_killed_at_every_call_converges(e2e: E2E, fresh: Callable[[], None]) -> None:
    """The richest plan: per project 3 deletes (one var gone, one type change needing
    delete+create, one split var merged), 1 PATCH (targets, value, comment), 1 create."""
    v1, v2 = spec_of(SPEC), spec_of(SPEC_V2)

    def world() -> Installation:
        fresh()
        ids = {p["name"]: p["id"] for p in e2e.emulator.state()["projects"]}
        inst = install(e2e, SCOPE_USER, "selected", (ids["portfolio"],), v1)
        provisioner(e2e, v1).reconcile(inst.configuration_id, Deadline(30))
        e2e.emulator.add_user_env("portfolio", "KEEP", "user's")
        return inst

    calls = _count_calls(e2e, v2, world())
    assert [m for m, _ in calls] == ["GET", "GET"] + ["DELETE"] * 3 + ["PATCH", "POST"]
    for mode in MODES:
        left = 0
        for index in range(len(calls)):
            inst = world()
            _, clean = _faulty_then_clean(e2e, inst, v2, index, mode)
            left += sum(p.writes for p in clean.projects)
            _assert_settled(e2e, v2, inst, clean)
            kept = [e for e in project_envs(e2e)["portfolio"] if e["key"] == "KEEP"]
            assert [(e["value"], e["configurationId"]) for e in kept] == [("user's", None)]
        assert left > 0  # the faults did leave work for the next run


@pytest.mark.parametrize("kind", ["error", "drop"])
def test_kv_faults_mid_run_then_clean_run_converges(
    e2e: E2E, fresh: Callable[[], None], kind: str
) -> None:
    spec = spec_of(SPEC)
    gateway = e2e.kv.gateway
    for seed in range(6):
        fresh()
        inst = install(e2e, SCOPE_TEAM, spec=spec)
        if kind == "error":
            gateway.set_faults(error_rate=0.35, seed=seed)
        else:
            gateway.set_faults(drop_rate=0.35, seed=seed)
        try:
            report = provisioner(e2e, spec).reconcile(inst.configuration_id, Deadline(30))
        except KVError:
            report = None  # the storage failed outright: the caller answers 503
        finally:
            gateway.clear_faults()
        assert report is None or report.outcome in ("done", "partial")
        assert sum(gateway.stats()["injected"].values()) > 0
        clean = provisioner(e2e, spec).reconcile(inst.configuration_id, Deadline(30))
        _assert_settled(e2e, spec, inst, clean)


@pytest.mark.parametrize(
    ("status", "code"),
    [(403, "ENV_CONFLICT"), (400, "ENV_ALREADY_EXISTS"), (403, "ENV_ALREADY_EXISTS")],
)
def test_every_documented_conflict_answer_is_understood(e2e: E2E, status: int, code: str) -> None:
    """vercel-api.md §4.1: the duplicate answer has been 400 and 403, ENV_CONFLICT and
    ENV_ALREADY_EXISTS. Each is a clash, learnt once, never an error or a loop."""
    before = (e2e.emulator.config.env_conflict_status, e2e.emulator.config.env_conflict_code)
    e2e.emulator.configure(env_conflict_status=status, env_conflict_code=code)
    try:
        inst = install(e2e)
        e2e.emulator.add_user_env("my-blog", "DASHBOARD_URL", "mine", target=["development"])
        spec = spec_of(SPEC)
        report = provisioner(e2e, spec).reconcile(inst.configuration_id, Deadline(30))
        blog = report_of(report, "my-blog")
        assert (report.outcome, blog.errors) == ("done", [])
        assert [(c.key, list(c.targets)) for c in blog.conflicts] == [
            ("DASHBOARD_URL", ["development"])
        ]
        e2e.emulator.reset_calls()
        provisioner(e2e, spec).reconcile(inst.configuration_id, Deadline(30))
        assert vercel_writes(e2e) == {}
    finally:
        e2e.emulator.configure(env_conflict_status=before[0], env_conflict_code=before[1])


def test_var_deleted_between_list_and_patch_is_recreated_in_the_same_run(e2e: E2E) -> None:
    spec = spec_of(SPEC)
    inst = install(e2e, spec=spec)
    provisioner(e2e, spec).reconcile(inst.configuration_id, Deadline(30))

    class UserDeletesFirst(Wire):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "PATCH":  # the user deletes the var just before
                remove_env(e2e, request.url.path.rsplit("/", 1)[1])
            return super().handle_request(request)

    e2e.emulator.reset_calls()
    rotated = provisioner(e2e, spec, UserDeletesFirst(), concurrency=1)
    report = rotate_secrets(rotated, inst.configuration_id, None, Deadline(30))
    assert report.outcome == "done"
    assert not report.pending
    statuses = env_statuses(e2e)
    assert statuses["PATCH /v9/projects/{idOrName}/env/{id}"] == {"404": 6}
    assert statuses["POST /v10/projects/{idOrName}/env"] == {"201": 3}  # re-created at once
    assert_converged(e2e, spec, inst)


def test_uninstall_landing_mid_reconcile_leaves_nothing_behind(
    e2e: E2E, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The uninstall webhook deletes everything while a reconcile is writing; the
    reconcile's closing round trip notices and sweeps what it wrote afterwards."""
    spec = spec_of(SPEC)
    inst = install(e2e, spec=spec)
    cfg = inst.configuration_id
    store = e2e.services().store
    p = provisioner(e2e, spec)
    real = p.reconcile_project
    calls = 0

    def uninstalled_during(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            store.delete_installation(cfg, [inst.owner_id])
        return real(*args, **kwargs)

    monkeypatch.setattr(p, "reconcile_project", uninstalled_during)
    report = p.reconcile(cfg, Deadline(30))
    assert calls >= 1
    assert report.outcome == "unknown"
    assert not report.pending
    assert [k for k in e2e.kv_keys() if cfg in k] == []
    assert store.pending() == []


def test_vercel_timeout_setting_reaches_every_client(e2e: E2E) -> None:
    seen: list[Any] = []

    def factory(token: str, **kwargs: Any) -> VercelClient:
        seen.append(kwargs.get("timeout"))
        return VercelClient(token, **kwargs)

    inst = install(e2e)
    p = Provisioner(
        e2e.services().store,
        spec_of(SPEC),
        api_url=e2e.emulator_url,
        client_factory=factory,
        timeout_s=4.0,
    )
    p.reconcile(inst.configuration_id, Deadline(30))
    assert seen
    assert all(t is not None and t.read == 4.0 for t in seen)
