"""/webhook end to end: the emulator's real signed deliveries to our real function.

Every event type is triggered through the emulator's control API and delivered by its
webhook sender over HTTP (retries time-compressed); what we assert is the KV and the
emulated Vercel afterwards. Bulk checks (forgeries, fuzzing) drive the same WSGI app
in-process, with the same settings, KV gateway and emulator, for speed.
"""

from __future__ import annotations

import io
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import api.webhook
from dev.emulator import sign
from lib.app import reset_services
from lib.provisioning.spec import TemplateContext
from lib.web.wsgi import MAX_BODY_BYTES
from lib.webhooks.handlers import HANDLERS
from tests.conftest import E2E, E2E_CLIENT_SECRET

SCOPES = ["dev-user", "acme"]  # a personal account and a team
ENV_WRITES = (
    "POST /v10/projects/{idOrName}/env",
    "PATCH /v9/projects/{idOrName}/env/{id}",
    "DELETE /v9/projects/{idOrName}/env/{id}",
)
FULL_SCOPES = (
    "read:project",
    "read-write:project-env-vars",
    "read-write:integration-configuration",
)

# -- looking at the system --------------------------------------------------------------


def drain(e2e: E2E, timeout: float = 20.0) -> None:
    assert e2e.emulator.drain(timeout), "webhook deliveries did not settle"


def dump(e2e: E2E) -> dict[str, Any]:
    """Every key of the KV with its content: the whole of our state."""
    backend = e2e.kv.gateway.backend

    def text(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, list):
            return [text(v) for v in value]
        return value

    out: dict[str, Any] = {}
    for key in e2e.kv_keys():
        kind = text(backend.execute([b"TYPE", key.encode()]))
        read = {
            "string": [b"GET"],
            "set": [b"SMEMBERS"],
            "hash": [b"HGETALL"],
            "zset": [b"ZRANGE"],
        }[kind]
        extra = [b"0", b"-1"] if kind == "zset" else []
        value = text(backend.execute([*read, key.encode(), *extra]))
        out[key] = sorted(value) if kind == "set" else value
    return out


def traces(e2e: E2E, needle: str) -> list[str]:
    """Keys whose name or content mentions `needle` (an installation id). The install
    flow's 30-minute memo of a used code names the installation by digest only."""
    return [k for k, v in dump(e2e).items() if needle in k or needle in json.dumps(v)]


def emulated(e2e: E2E, project_id: str) -> dict[str, Any]:
    for project in e2e.emulator.state()["projects"]:
        if project["id"] == project_id:
            return dict(project)
    raise AssertionError(f"no project {project_id}")


def ours(e2e: E2E, cfg: str, project_id: str) -> list[tuple[Any, ...]]:
    """Our vars on a project as (key, value, type, targets, branch), duplicates kept."""
    return sorted(
        (e["key"], e["value"], e["type"], tuple(sorted(e["target"])), e["gitBranch"])
        for e in emulated(e2e, project_id)["env"]
        if e["configurationId"] == cfg
    )


def desired(e2e: E2E, cfg: str, project_id: str) -> list[tuple[Any, ...]]:
    """What the spec wants on that project, rendered with its current name."""
    svc = e2e.services()
    inst = svc.store.get_installation(cfg)
    assert inst is not None, f"{cfg} is not installed"
    project = emulated(e2e, project_id)
    ctx = TemplateContext(
        configuration_id=cfg,
        team_id=inst.team_id,
        user_id=inst.user_id,
        project_id=project_id,
        project_name=project["name"],
        secrets=svc.store.get_secrets(cfg),
    )
    return sorted(
        (d.key, d.value, d.type, tuple(sorted(d.targets)), d.git_branch)
        for d in svc.spec.desired(ctx)
    )


def assert_provisioned(e2e: E2E, cfg: str, project_id: str) -> None:
    assert ours(e2e, cfg, project_id) == desired(e2e, cfg, project_id)


def env_writes(e2e: E2E) -> int:
    routes = e2e.emulator.call_counts()["routes"]
    return sum(routes.get(r, {}).get("count", 0) for r in ENV_WRITES)


def api_calls(e2e: E2E) -> int:
    return int(e2e.emulator.call_counts()["total"])


def project_id(e2e: E2E, scope: str, name: str) -> str:
    owner = scope_id(e2e, scope)
    for project in e2e.emulator.state()["projects"]:
        if project["name"] == name and project["accountId"] == owner:
            return str(project["id"])
    raise AssertionError(f"no project {name} in {scope}")


def scope_id(e2e: E2E, scope: str) -> str:
    state = e2e.emulator.state()
    for account in [state["user"], *state["teams"]]:
        if scope in (account["slug"], account["id"]):
            return str(account["id"])
    raise AssertionError(f"no scope {scope}")


def deliveries(e2e: E2E, kind: str | None = None) -> list[dict[str, Any]]:
    return [d for d in e2e.emulator.deliveries() if kind is None or d["type"] == kind]


def statuses(delivery: dict[str, Any]) -> list[int | None]:
    return [a["status"] for a in delivery["attempts"]]


def install(e2e: E2E, scope: str, selection: str = "all", projects: tuple[str, ...] = ()) -> str:
    got = e2e.install(scope, selection, projects)
    drain(e2e)
    return str(got["configurationId"])


@contextmanager
def held(e2e: E2E) -> Iterator[None]:
    """Deliveries fired inside are not sent (state "skipped"): redeliver them at will."""
    url = e2e.emulator.config.webhook_url
    e2e.emulator.configure(webhook_url=None)
    try:
        yield
    finally:
        drain(e2e)
        e2e.emulator.configure(webhook_url=url)


def redeliver(e2e: E2E, delivery: dict[str, Any], times: int = 1) -> None:
    for _ in range(times):
        e2e.emulator.redeliver(delivery["id"])


def envelope(kind: str, payload: dict[str, Any], event_id: str | None = None) -> bytes:
    body = {
        "id": event_id or f"evt_{random.getrandbits(64):x}",
        "type": kind,
        "createdAt": int(time.time() * 1000),  # older than 48 h would be refused as stale
        "region": "iad1",
        "payload": payload,
    }
    return json.dumps(body).encode()


def post(e2e: E2E, body: bytes, signature: str | None = "sign") -> httpx.Response:
    """A hand-made delivery over real HTTP, signed with the real secret by default."""
    headers = {"content-type": "application/json"}
    if signature == "sign":
        signature = sign(body, E2E_CLIENT_SECRET)
    if signature is not None:
        headers["x-vercel-signature"] = signature
    with e2e.http() as client:
        return client.post("/webhook", content=body, headers=headers)


def call(body: bytes, signature: str | None) -> tuple[int, bytes]:
    """The webhook function called in-process as WSGI (same settings, KV and emulator):
    a tenth of the cost of a request through httpx, for the bulk checks."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/webhook",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
    }
    if signature is not None:
        environ["HTTP_X_VERCEL_SIGNATURE"] = signature
    status: list[str] = []

    def start_response(
        line: str, headers: list[tuple[str, str]], *_: Any
    ) -> Callable[[bytes], object]:
        status.append(line)
        return lambda _: None

    chunks = api.webhook.app(environ, start_response)
    return int(status[0].split()[0]), b"".join(chunks)


@contextmanager
def in_process() -> Iterator[httpx.Client]:
    """The webhook function called in-process (same settings, KV and emulator)."""
    transport = httpx.WSGITransport(app=api.webhook.app)
    with httpx.Client(transport=transport, base_url="http://function.local") as client:
        yield client


# -- integration-configuration.removed ------------------------------------------------------


@pytest.mark.parametrize("scope", SCOPES)
def test_uninstall_leaves_no_trace_and_old_events_recreate_nothing(e2e: E2E, scope: str) -> None:
    cfg = install(e2e, scope)
    owner = scope_id(e2e, scope)
    with held(e2e):  # a project.created that never reached us before the uninstall
        e2e.emulator.create_project(scope, "late-one")
    late = deliveries(e2e, "project.created")[-1]
    e2e.emulator.create_project(scope, "seen-one")
    drain(e2e)
    seen = deliveries(e2e, "project.created")[-1]
    e2e.emulator.remove_project("seen-one", owner=scope)  # leaves a tombstone
    drain(e2e)
    assert traces(e2e, cfg)

    e2e.emulator.delete_configuration(cfg)
    drain(e2e)
    [removed] = deliveries(e2e, "integration-configuration.removed")
    assert statuses(removed) == [200]
    assert traces(e2e, cfg) == []
    assert e2e.services().store.installations_for_owner(owner) == []

    calls = api_calls(e2e)
    redeliver(e2e, late)  # never processed: an unknown installation now
    redeliver(e2e, seen)  # processed before: a duplicate
    redeliver(e2e, removed)
    drain(e2e)
    assert [statuses(d)[-1] for d in deliveries(e2e)[-3:]] == [200, 200, 200]
    assert traces(e2e, cfg) == []
    assert api_calls(e2e) == calls


def test_uninstall_during_a_failing_handler_leaves_nothing_behind(e2e: E2E) -> None:
    """The removal lands while a project.created handler is between its Vercel calls;
    that handler then fails (a 500 on create), records what it did and would ask for a
    retry. It must find the installation gone and sweep up what it wrote after it."""
    cfg = install(e2e, "acme")
    with held(e2e):
        e2e.emulator.create_project("acme", "racer")
    [created] = deliveries(e2e, "project.created")
    e2e.emulator.set_latency(300)
    e2e.emulator.set_faults([{"route": "POST *", "probability": 1.0, "kinds": ["500"]}])
    e2e.emulator.reset_calls()
    redeliver(e2e, created)
    # The project is fresh: no env list, its one create follows the project's read.
    read = "GET /v9/projects/{idOrName}"
    for _ in range(200):  # until the project's read is answered: the create is on its way
        if e2e.emulator.call_counts()["routes"].get(read):
            break
        threading.Event().wait(0.01)
    removal = envelope("integration-configuration.removed", {"configuration": {"id": cfg}})
    assert post(e2e, removal).status_code == 200
    drain(e2e)
    e2e.emulator.set_latency(0)
    e2e.emulator.clear_faults()
    assert e2e.emulator.call_counts()["routes"]["POST /v10/projects/{idOrName}/env"][
        "statuses"
    ] == {"500": 1}
    assert statuses(deliveries(e2e)[-1]) == [200]  # nothing left to retry for
    assert traces(e2e, cfg) == []


def test_uninstall_of_an_installation_we_never_stored_sweeps_its_keys(e2e: E2E) -> None:
    cfg = install(e2e, "acme")
    store = e2e.services().store
    owner = scope_id(e2e, "acme")
    store.kv.call("DEL", store.key("inst", cfg))  # only leftovers remain
    e2e.emulator.delete_configuration(cfg)
    drain(e2e)
    assert traces(e2e, cfg) == []
    assert store.installations_for_owner(owner) == []


# -- project.* ------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", SCOPES)
def test_project_created_is_provisioned(e2e: E2E, scope: str) -> None:
    cfg = install(e2e, scope)
    project = e2e.emulator.create_project(scope, "fresh-app")["project"]
    drain(e2e)
    [delivery] = deliveries(e2e, "project.created")
    assert statuses(delivery) == [200]
    assert_provisioned(e2e, cfg, project["id"])
    assert project["id"] in e2e.services().store.get_projects(cfg)


@pytest.mark.parametrize("scope", SCOPES)
def test_project_removed_is_forgotten(e2e: E2E, scope: str) -> None:
    cfg = install(e2e, scope)
    project = e2e.emulator.create_project(scope, "short-lived")["project"]
    drain(e2e)
    writes = env_writes(e2e)
    e2e.emulator.remove_project(project["id"])
    drain(e2e)
    assert statuses(deliveries(e2e, "project.removed")[0]) == [200]
    record = e2e.services().store.get_projects(cfg)[project["id"]]
    assert record.removed_at is not None
    assert record.env == {}
    assert env_writes(e2e) == writes  # nothing to delete: Vercel took the vars with it


@pytest.mark.parametrize("scope", SCOPES)
def test_project_renamed_updates_templated_values(e2e: E2E, scope: str) -> None:
    cfg = install(e2e, scope)
    pid = e2e.emulator.create_project(scope, "old-name")["project"]["id"]
    drain(e2e)
    before = dict((k, v) for k, v, *_ in ours(e2e, cfg, pid))
    e2e.emulator.rename_project(pid, "new-name")
    drain(e2e)
    after = dict((k, v) for k, v, *_ in ours(e2e, cfg, pid))
    assert before["ACME_DASHBOARD_URL"].endswith("/old-name")
    assert after["ACME_DASHBOARD_URL"].endswith("/new-name")
    assert after["ACME_PROJECT_ID"] == before["ACME_PROJECT_ID"] == pid
    assert_provisioned(e2e, cfg, pid)
    assert e2e.services().store.get_projects(cfg)[pid].name == "new-name"


def test_renames_delivered_out_of_order_end_with_the_current_name(e2e: E2E) -> None:
    cfg = install(e2e, "acme")
    pid = project_id(e2e, "acme", "web")
    with held(e2e):
        e2e.emulator.rename_project(pid, "web-two")
        e2e.emulator.rename_project(pid, "web-three")
    first, second = deliveries(e2e, "project.renamed")
    redeliver(e2e, second)
    drain(e2e)
    redeliver(e2e, first)  # the older rename arrives last
    drain(e2e)
    assert dict((k, v) for k, v, *_ in ours(e2e, cfg, pid))["ACME_DASHBOARD_URL"].endswith(
        "/web-three"
    )
    assert_provisioned(e2e, cfg, pid)


def test_removed_delivered_before_created_ends_removed(e2e: E2E) -> None:
    cfg = install(e2e, "acme")
    with held(e2e):
        pid = e2e.emulator.create_project("acme", "flicker")["project"]["id"]
        e2e.emulator.remove_project(pid)
    created = deliveries(e2e, "project.created")[0]
    removed = deliveries(e2e, "project.removed")[0]
    redeliver(e2e, removed)
    drain(e2e)
    calls = api_calls(e2e)
    redeliver(e2e, created)
    drain(e2e)
    assert statuses(deliveries(e2e)[-1]) == [200]
    assert api_calls(e2e) == calls  # settled by createdAt alone, not by asking Vercel
    record = e2e.services().store.get_projects(cfg)[pid]
    assert record.removed_at is not None
    assert record.env == {}


# -- permission-upgraded, scope-change-confirmed, transferred ----------------------------------


@pytest.mark.parametrize("scope", SCOPES)
def test_permission_upgraded_provisions_added_and_forgets_removed(e2e: E2E, scope: str) -> None:
    names = [
        p["name"]
        for p in e2e.emulator.state()["projects"]
        if p["accountId"] == scope_id(e2e, scope)
    ]
    first, second = project_id(e2e, scope, names[0]), project_id(e2e, scope, names[1])
    cfg = install(e2e, scope, "selected", (first,))
    assert_provisioned(e2e, cfg, first)
    assert ours(e2e, cfg, second) == []

    e2e.emulator.set_project_access(cfg, "selected", [second])
    drain(e2e)
    assert statuses(deliveries(e2e, "integration-configuration.permission-upgraded")[0]) == [200]
    assert_provisioned(e2e, cfg, second)
    store = e2e.services().store
    assert set(store.get_projects(cfg)) == {second}
    inst = store.get_installation(cfg)
    assert inst is not None
    assert inst.project_selection == "selected"
    assert inst.project_ids == [second]

    e2e.emulator.set_project_access(cfg, "all")
    drain(e2e)
    inst = store.get_installation(cfg)
    assert inst is not None
    assert inst.project_selection == "all"
    for name in names:
        assert_provisioned(e2e, cfg, project_id(e2e, scope, name))


def test_permission_changes_delivered_out_of_order_end_with_current_access(e2e: E2E) -> None:
    a, b, c = (project_id(e2e, "acme", n) for n in ("web", "api", "docs"))
    cfg = install(e2e, "acme", "selected", (a,))
    with held(e2e):
        e2e.emulator.set_project_access(cfg, "selected", [a, b])
        e2e.emulator.set_project_access(cfg, "selected", [c])
    older, newer = deliveries(e2e, "integration-configuration.permission-upgraded")
    redeliver(e2e, newer)
    drain(e2e)
    redeliver(e2e, older)
    drain(e2e)
    inst = e2e.services().store.get_installation(cfg)
    assert inst is not None
    assert inst.project_ids == [c]
    assert_provisioned(e2e, cfg, c)
    assert set(e2e.services().store.get_projects(cfg)) <= {c, a}


@pytest.mark.parametrize("scope", SCOPES)
def test_scope_change_confirmed_records_scopes_and_unblocks(e2e: E2E, scope: str) -> None:
    cfg = install(e2e, scope)
    store = e2e.services().store
    e2e.emulator.remove_scopes(cfg, ["read-write:project-env-vars"])
    pid = e2e.emulator.create_project(scope, "needs-scope")["project"]["id"]
    drain(e2e)
    assert statuses(deliveries(e2e, "project.created")[0]) == [200]  # blocked, not retried
    inst = store.get_installation(cfg)
    assert inst is not None
    assert inst.status == "paused"
    assert (inst.status_reason or "").startswith("missing permission")
    assert cfg in store.pending()
    assert ours(e2e, cfg, pid) == []

    e2e.emulator.confirm_scope_change(cfg, [*FULL_SCOPES, "read:deployment"])
    drain(e2e)
    assert statuses(deliveries(e2e, "integration-configuration.scope-change-confirmed")[0]) == [200]
    inst = store.get_installation(cfg)
    assert inst is not None
    assert inst.status == "active"
    assert inst.scopes == [*FULL_SCOPES, "read:deployment"]
    assert cfg not in store.pending()
    assert_provisioned(e2e, cfg, pid)


def test_scope_change_without_a_block_records_scopes_only(e2e: E2E) -> None:
    cfg = install(e2e, "acme")
    writes = env_writes(e2e)
    e2e.emulator.confirm_scope_change(cfg, [*FULL_SCOPES, "read:domain"])
    drain(e2e)
    inst = e2e.services().store.get_installation(cfg)
    assert inst is not None
    assert "read:domain" in inst.scopes
    assert env_writes(e2e) == writes


@pytest.mark.parametrize("scope", SCOPES)
def test_transferred_moves_the_owner_index_and_follows_the_new_team(e2e: E2E, scope: str) -> None:
    cfg = install(e2e, scope)
    new_team = e2e.emulator.create_team("newco")["team"]["id"]
    e2e.emulator.create_project("newco", "inherited")
    old_owner = scope_id(e2e, scope)
    e2e.emulator.transfer_configuration(cfg, "newco")
    drain(e2e)
    assert statuses(deliveries(e2e, "integration-configuration.transferred")[0]) == [200]
    store = e2e.services().store
    assert store.installations_for_owner(new_team) == [cfg]
    assert store.installations_for_owner(old_owner) == []
    inst = store.get_installation(cfg)
    assert inst is not None
    assert (inst.owner_id, inst.team_id) == (new_team, new_team)
    assert_provisioned(e2e, cfg, project_id(e2e, "newco", "inherited"))

    later = e2e.emulator.create_project("newco", "after-move")["project"]["id"]
    drain(e2e)
    assert statuses(deliveries(e2e, "project.created")[-1]) == [200]
    assert_provisioned(e2e, cfg, later)


# -- events we don't act on ---------------------------------------------------------------------


@pytest.mark.parametrize(("scope", "project"), [("dev-user", "my-blog"), ("acme", "web")])
def test_deployment_and_unknown_events_are_acknowledged_without_kv(
    e2e: E2E, scope: str, project: str
) -> None:
    install(e2e, scope)
    before = dump(e2e)
    e2e.kv.gateway.reset_stats()
    events = ("deployment.created", "deployment.ready", "deployment.succeeded")
    e2e.emulator.deploy(project, events=list(events), owner=scope)
    e2e.emulator.deploy(project, events=["deployment.error", "deployment.canceled"], owner=scope)
    e2e.emulator.deploy(project, events=["deployment.promoted"], target=None, owner=scope)
    drain(e2e)
    got = deliveries(e2e)
    assert {d["type"] for d in got} >= {*events, "deployment.promoted", "deployment.canceled"}
    assert all(statuses(d) == [200] for d in got)
    for kind in ("deployment.cancelled", "domain.created", "marketplace.invoice.paid", "x"):
        body = envelope(kind, {"team": {"id": scope_id(e2e, scope)}})
        assert post(e2e, body).status_code == 200
    assert e2e.kv.gateway.stats()["requests"] == 0
    assert dump(e2e) == before


LEGACY = [
    ("project-created", "project.created"),
    ("project-removed", "project.removed"),
    (
        "integration-configuration-permission-updated",
        "integration-configuration.permission-upgraded",
    ),
    (
        "integration-configuration-scope-change-confirmed",
        "integration-configuration.scope-change-confirmed",
    ),
    ("integration-configuration-removed", "integration-configuration.removed"),
]


def test_legacy_hyphenated_names_act_as_their_dotted_forms(e2e: E2E) -> None:
    cfg = install(e2e, "acme")
    team = scope_id(e2e, "acme")
    user = e2e.emulator.state()["user"]["id"]
    store = e2e.services().store
    with held(e2e):
        pid = e2e.emulator.create_project("acme", "legacy-app")["project"]["id"]
    project = {
        "team": {"id": team},
        "user": {"id": user},
        "project": {"id": pid, "name": "legacy-app"},
    }
    configuration = {"team": {"id": team}, "user": {"id": user}, "configuration": {"id": cfg}}

    assert post(e2e, envelope("project-created", project)).status_code == 200
    assert_provisioned(e2e, cfg, pid)

    e2e.emulator.remove_scopes(cfg, ["read-write:project-env-vars"])  # nothing changes at Vercel
    upgraded = {**configuration, "configuration": {"id": cfg, "projectSelection": "all"}}
    upgraded["projects"] = {"added": [], "removed": []}
    assert (
        post(e2e, envelope("integration-configuration-permission-updated", upgraded)).status_code
        == 200
    )
    inst = store.get_installation(cfg)
    assert inst is not None
    assert "read-write:project-env-vars" not in inst.scopes

    e2e.emulator.confirm_scope_change(cfg, list(FULL_SCOPES))
    with held(e2e):
        pass
    scopes = {**configuration, "configuration": {"id": cfg, "scopes": list(FULL_SCOPES)}}
    body = envelope("integration-configuration-scope-change-confirmed", scopes)
    assert post(e2e, body).status_code == 200
    inst = store.get_installation(cfg)
    assert inst is not None
    assert inst.scopes == list(FULL_SCOPES)

    removed = {**project, "project": {"id": pid, "name": "legacy-app"}}
    assert post(e2e, envelope("project-removed", removed)).status_code == 200
    assert store.get_projects(cfg)[pid].removed_at is not None

    assert (
        post(e2e, envelope("integration-configuration-removed", configuration)).status_code == 200
    )
    assert traces(e2e, cfg) == []


# -- disabled installations ---------------------------------------------------------------------


def test_disabled_installation_is_paused_then_resumes_when_enabled(e2e: E2E) -> None:
    cfg = install(e2e, "acme")
    store = e2e.services().store
    web = project_id(e2e, "acme", "web")
    e2e.emulator.disable_configuration(cfg)
    during = e2e.emulator.create_project("acme", "made-while-disabled")["project"]["id"]
    e2e.emulator.rename_project(web, "web-renamed")  # held by Vercel while disabled
    drain(e2e)
    [created] = deliveries(e2e, "project.created")
    assert statuses(created) == [200]  # acknowledged: retrying would be futile
    inst = store.get_installation(cfg)
    assert inst is not None
    assert inst.status == "paused"
    assert inst.status_reason == "integration_configuration_disabled"
    assert cfg in store.pending()
    assert ours(e2e, cfg, during) == []
    assert deliveries(e2e, "project.renamed")[0]["state"] == "paused"

    e2e.emulator.enable_configuration(cfg)
    drain(e2e)
    assert statuses(deliveries(e2e, "project.renamed")[0]) == [200]
    inst = store.get_installation(cfg)
    assert inst is not None
    assert inst.status == "active"
    assert cfg not in store.pending()
    assert_provisioned(e2e, cfg, during)  # resumed: the work left over while disabled
    assert_provisioned(e2e, cfg, web)


# -- the HTTP contract --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_refused(e2e: E2E, method: str) -> None:
    with e2e.http() as client:
        response = client.request(method, "/webhook")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_oversized_body_is_refused_before_it_is_read(e2e: E2E) -> None:
    with e2e.http() as client:
        response = client.post("/webhook", content=b"x" * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413

    class Unread:
        def read(self, *_: Any) -> bytes:
            raise AssertionError("the body was read")

    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/webhook",
        "CONTENT_LENGTH": str(100 * MAX_BODY_BYTES),
        "HTTP_X_VERCEL_SIGNATURE": "0" * 40,
        "wsgi.input": Unread(),
        "wsgi.url_scheme": "http",
    }
    answers: list[str] = []
    api.webhook.app(environ, lambda status, headers, *_: answers.append(status))  # type: ignore[arg-type]
    assert answers == ["413 Request Entity Too Large"]


def test_without_client_secret_nothing_is_accepted(e2e: E2E) -> None:
    cfg = install(e2e, "acme")
    body = envelope("integration-configuration.removed", {"configuration": {"id": cfg}})
    os.environ.pop("VERCEL_CLIENT_SECRET")
    reset_services()
    try:
        for signature in (sign(body, E2E_CLIENT_SECRET), sign(body, ""), None):
            response = post(e2e, body, signature)
            assert response.status_code == 500
            assert E2E_CLIENT_SECRET not in response.text
    finally:
        os.environ["VERCEL_CLIENT_SECRET"] = E2E_CLIENT_SECRET
        reset_services()
    assert e2e.services().store.get_installation(cfg) is not None
    assert post(e2e, body).status_code == 200
    assert traces(e2e, cfg) == []


@pytest.mark.parametrize(
    ("signature", "status"),
    [(None, 401), ("", 401), ("0" * 40, 403), ("nonsense", 403), ("\u00e9" * 20, 403)],
)
def test_missing_or_invalid_signature_is_refused_without_detail(
    e2e: E2E, signature: str | None, status: int
) -> None:
    cfg = install(e2e, "acme")
    body = envelope("integration-configuration.removed", {"configuration": {"id": cfg}})
    headers = {} if signature is None else {b"x-vercel-signature": signature.encode("latin-1")}
    with e2e.http() as client:  # real HTTP: the WSGI transport refuses non-ASCII headers
        response = client.post("/webhook", content=body, headers=headers)
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert "signature" not in response.text
    assert e2e.services().store.get_installation(cfg) is not None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"null",
        b'"text"',
        b"{}",
        b'{"id": "x"}',
        b'{"type": "project.created"}',
        b'{"id": "", "type": "project.created"}',
        b'{"id": 5, "type": "project.created"}',
        b'{"id": "x", "type": ["project.created"]}',
        b'{"id": "x", "type": "project.created", "payload": []}',
        b'{"id": "x", "type": "project.created", "payload": "p"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"id": "x", "type": "project.created", "payload": '
        + b"[" * 50_000
        + b"]" * 50_000
        + b"}",
    ],
    ids=lambda b: repr(b[:40]),
)
def test_malformed_events_are_refused_with_400(e2e: E2E, body: bytes) -> None:
    response = post(e2e, body)
    assert response.status_code == 400, response.text
    assert e2e.kv_keys() == []


# -- security: forgeries ------------------------------------------------------------------------


def _forgeries(
    real: list[bytes], secret: str, rng: random.Random
) -> Iterator[tuple[bytes, str | None]]:
    """(body, signature) pairs that must all be refused."""
    good = [(b, sign(b, secret)) for b in real]
    wrong_secrets = [
        "",
        " ",
        secret[:-1],
        secret + "x",
        secret.upper(),
        "dev-client-secret-change-me",
    ]
    wrong_secrets += [rng.randbytes(rng.randint(1, 40)).hex() for _ in range(20)]

    def mutate(body: bytes) -> bytes:
        data = bytearray(body)
        how = rng.randrange(5)
        if how == 0:  # flip one bit
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif how == 1:
            data += b" "
        elif how == 2:
            del data[rng.randrange(len(data))]
        elif how == 3:
            data = bytearray(b" " + bytes(data))
        else:
            i = rng.randrange(len(data))
            data[i:i] = bytes([rng.randrange(32, 127)])
        return bytes(data)

    def modify_field(body: bytes) -> bytes:
        event = json.loads(body)
        field = rng.choice(["id", "type", "createdAt", "payload"])
        if field == "id":
            event["id"] = event["id"] + "x"
        elif field == "type":
            kinds = ["integration-configuration.removed", "project.created", "project.removed"]
            event["type"] = rng.choice([k for k in kinds if k != event["type"]])
        elif field == "createdAt":
            event["createdAt"] = int(event["createdAt"]) + 1
        else:
            event["payload"]["extra"] = rng.random()
        return json.dumps(event, separators=(",", ":")).encode()

    for n in range(1200):
        body, signature = good[n % len(good)]
        kind = n % 12
        if kind == 0:
            yield mutate(body), signature
        elif kind == 1:
            yield body, sign(body, rng.choice(wrong_secrets))
        elif kind == 2:
            yield body, sign(body, "")
        elif kind == 3:
            yield body, signature[: rng.randrange(0, len(signature))]
        elif kind == 4:
            yield body, signature.upper() if signature.upper() != signature else signature[1:]
        elif kind == 5:
            yield body, rng.choice(["sha1=", "sha256=", " ", "0x", "v1,"]) + signature
        elif kind == 6:
            yield body, signature + rng.choice(["0", " ", "\n", "00", "a"])
        elif kind == 7:
            other = good[(n + 1) % len(good)][0]
            yield body, sign(other, secret)
        elif kind == 8:
            yield modify_field(body), signature
        elif kind == 9:
            yield body, None
        elif kind == 10:
            yield body, "".join(rng.choice("0123456789abcdef") for _ in range(40))
        else:
            yield body, sign(mutate(body), secret)


def test_a_thousand_forgeries_are_refused_without_any_effect(e2e: E2E) -> None:
    cfg = install(e2e, "acme")
    install(e2e, "dev-user")
    with held(e2e):
        e2e.emulator.create_project("acme", "forged-target")
        e2e.emulator.rename_project("web", "web-forged", owner="acme")
        e2e.emulator.set_project_access(cfg, "all")
        e2e.emulator.confirm_scope_change(cfg, list(FULL_SCOPES))
        e2e.emulator.deploy("api", owner="acme")
        e2e.emulator.remove_project("docs", owner="acme")
        e2e.emulator.delete_configuration(cfg)
    real = [d["envelope"] for d in deliveries(e2e)]
    bodies = [json.dumps(e, separators=(",", ":")).encode() for e in real]
    kv_before, emulator_before = dump(e2e), e2e.emulator.state()
    e2e.emulator.reset_calls()
    e2e.kv.gateway.reset_stats()

    refused = 0
    for body, signature in _forgeries(bodies, E2E_CLIENT_SECRET, random.Random(1)):
        status, answer = call(body, signature)
        assert status in (401, 403), (body[:80], signature)
        assert set(json.loads(answer)) == {"error"}
        refused += 1
    assert refused >= 1000
    assert e2e.kv.gateway.stats()["requests"] == 0  # refused before any KV access
    assert api_calls(e2e) == 0
    assert dump(e2e) == kv_before
    assert e2e.emulator.state() == emulator_before


# -- at least once ------------------------------------------------------------------------------


def _scope_change(e2e: E2E, cfg: str) -> None:
    e2e.emulator.confirm_scope_change(cfg, list(FULL_SCOPES))


def _blocked(e2e: E2E, cfg: str) -> None:
    e2e.emulator.remove_scopes(cfg, ["read-write:project-env-vars"])
    e2e.emulator.create_project("acme", "blocked-one")


def _newco(e2e: E2E, cfg: str) -> None:
    e2e.emulator.create_team("newco")
    e2e.emulator.create_project("newco", "moved-in")


def _nothing(e2e: E2E, cfg: str) -> None:
    pass


# event type -> (what happens first, delivered normally; what fires the event)
Step = Callable[[E2E, str], None]
SCENARIOS: dict[str, tuple[Step, Step]] = {
    "project.created": (
        _nothing,
        lambda e2e, cfg: _ran(e2e.emulator.create_project("acme", "new")),
    ),
    "project.renamed": (
        _nothing,
        lambda e2e, cfg: _ran(e2e.emulator.rename_project("web", "web-2", owner="acme")),
    ),
    "project.removed": (
        _nothing,
        lambda e2e, cfg: _ran(e2e.emulator.remove_project("docs", owner="acme")),
    ),
    "integration-configuration.permission-upgraded": (
        _nothing,
        lambda e2e, cfg: _ran(e2e.emulator.set_project_access(cfg, "all")),
    ),
    "integration-configuration.scope-change-confirmed": (_blocked, _scope_change),
    "integration-configuration.transferred": (
        _newco,
        lambda e2e, cfg: _ran(e2e.emulator.transfer_configuration(cfg, "newco")),
    ),
    "integration-configuration.removed": (
        _nothing,
        lambda e2e, cfg: _ran(e2e.emulator.delete_configuration(cfg)),
    ),
}


def _ran(_: object) -> None:
    return None


def _world(e2e: E2E, kind: str, copies: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """From a fresh world: deliver `copies` concurrent copies of one fresh event.
    Returns the Vercel calls they made (by route) and the delivery."""
    e2e.emulator.reset()
    e2e.kv.gateway.backend.execute([b"FLUSHDB"])
    selected = kind == "integration-configuration.permission-upgraded"
    cfg = install(
        e2e, "acme", *(("selected", (project_id(e2e, "acme", "web"),)) if selected else ())
    )
    prepare, fire = SCENARIOS[kind]
    prepare(e2e, cfg)
    drain(e2e)
    with held(e2e):
        fire(e2e, cfg)
    delivery = deliveries(e2e, kind)[-1]
    assert delivery["state"] == "skipped"
    e2e.emulator.reset_calls()
    redeliver(e2e, delivery, times=copies)
    drain(e2e)
    assert all(statuses(d)[-1] == 200 for d in deliveries(e2e)[-copies:])
    calls = {route: c["count"] for route, c in e2e.emulator.call_counts()["routes"].items()}
    return calls, delivery


@pytest.mark.parametrize("kind", list(SCENARIOS))
def test_redeliveries_have_their_effects_exactly_once(e2e: E2E, kind: str) -> None:
    """3 concurrent copies of a fresh event cost what one copy costs (it ran once);
    3 more copies, sent one after another, do nothing at all."""
    reference, _ = _world(e2e, kind, copies=1)
    concurrent, delivery = _world(e2e, kind, copies=3)
    assert concurrent == reference
    if kind.startswith("project.") and kind != "project.removed":
        assert any(r.startswith(("POST", "PATCH")) and "/env" in r for r in concurrent)

    state, vercel = dump(e2e), e2e.emulator.state()
    e2e.emulator.reset_calls()
    e2e.kv.gateway.reset_stats()
    for _ in range(3):
        redeliver(e2e, delivery)
        drain(e2e)
    assert [statuses(d) for d in deliveries(e2e)[-3:]] == [[200]] * 3
    assert api_calls(e2e) == 0
    assert dump(e2e) == state
    assert e2e.emulator.state() == vercel
    assert e2e.kv.gateway.stats()["requests"] == 3  # one round trip per duplicate


# -- cost of a no-op --------------------------------------------------------------------------


def test_a_no_op_webhook_costs_at_most_two_kv_round_trips(e2e: E2E) -> None:
    cfg = install(e2e, "acme")
    team = scope_id(e2e, "acme")
    e2e.emulator.create_project("acme", "counted")
    drain(e2e)
    [created] = deliveries(e2e, "project.created")
    gone = {"team": {"id": "team_unknown"}, "project": {"id": "prj_x", "name": "x"}}
    no_ops: list[tuple[str, Callable[[], None]]] = [
        ("duplicate", lambda: redeliver(e2e, created)),
        ("unknown installation", lambda: _ok(post(e2e, envelope("project.created", gone)))),
        (
            "removed installation",
            lambda: _ok(
                post(e2e, envelope("project.removed", {"configuration": {"id": "icfg_gone"}}))
            ),
        ),
        ("deployment", lambda: _ran(e2e.emulator.deploy("web", owner="acme"))),
        ("unnamed", lambda: _ok(post(e2e, envelope("project.created", {"project": {"id": "p"}})))),
        (
            "unknown type",
            lambda: _ok(post(e2e, envelope("team.member.added", {"team": {"id": team}}))),
        ),
    ]
    for name, send in no_ops:
        before = dump(e2e)
        e2e.kv.gateway.reset_stats()
        send()
        drain(e2e)
        trips = e2e.kv.gateway.stats()["requests"]
        assert trips <= 2, (name, trips)
        changed = {k for k in {*before, *dump(e2e)} if before.get(k) != dump(e2e).get(k)}
        assert {k for k in changed if not k.startswith("vi:event:")} == set(), name
    assert e2e.services().store.get_installation(cfg) is not None


def _ok(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text


# -- fuzzing ------------------------------------------------------------------------------------

_KINDS = sorted(HANDLERS)
_KINDS += [a for a, _ in LEGACY] + ["deployment.created", "project.env-variable.created", ""]


def _json(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=6,
    )


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)


def _mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` seven times in eight. (Plain `|` is half and half; `one_of` merges repeats
    of one strategy object, and `flatmap` on integers leans towards the small ones.)"""
    return st.one_of(*(usual.map(lambda x: x) for _ in range(7)), odd)


def _payloads(ids: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Payloads shaped like Vercel's (vercel-api.md §3.3) with any field wrong or absent,
    and payloads of any shape at all."""
    noise = _json(_SCALARS)
    field = ids | _SCALARS
    some = st.lists(field, max_size=3) | noise

    def obj(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.fixed_dictionaries({}, optional=fields) | noise

    shaped = st.fixed_dictionaries(
        {},
        optional={
            "team": obj(id=field),
            "user": obj(id=field),
            "configuration": obj(
                id=field,
                projectSelection=st.sampled_from(["all", "selected", None, 3]),
                projects=some,
                scopes=some,
            ),
            "installationId": field,
            "project": obj(id=field, name=field),
            "projects": obj(added=some, removed=some),
            "newTeamId": field,
            "previousTeamId": field,
            "previousName": field,
        },
    )
    return _mostly(shaped, noise)


@pytest.mark.timeout(600)  # ~70 s of CPU; a loaded two-core runner needs the margin
def test_fuzzed_signed_events_never_cause_a_5xx(e2e: E2E) -> None:
    """10,000 validly signed envelopes, from plausible to absurd, naming real and unknown
    installations, projects and teams: every answer is below 500 and nothing crashes."""
    cfg = install(e2e, "acme")
    install(e2e, "dev-user")
    real = [cfg, scope_id(e2e, "acme"), project_id(e2e, "acme", "web")]
    real.append(e2e.emulator.state()["user"]["id"])
    # Mostly made-up ids (the cheap paths), now and then real ones (the handlers' work).
    ids = st.sampled_from(real + ["icfg_x", "team_x", "prj_x"] * 16)
    kinds = st.sampled_from([*HANDLERS, *(a for a, _ in LEGACY), "deployment.created"])
    envelopes = st.fixed_dictionaries(
        {"id": st.text(min_size=1, max_size=8), "type": kinds | st.text(max_size=20)},
        optional={
            "createdAt": _SCALARS,
            "region": st.none() | st.text(max_size=4),
            "payload": _payloads(ids),
        },
    )
    anything = _json(_SCALARS).map(lambda j: json.dumps(j).encode()) | st.binary(max_size=32)
    bodies = _mostly(envelopes.map(lambda e: json.dumps(e).encode()), anything)
    seen: dict[int, int] = {}

    @settings(
        max_examples=10_000,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        # The same inputs every run (a failure reproduces); `make soak` explores freely.
        derandomize=os.environ.get("SOAK") != "1",
    )
    @given(body=bodies)
    def check(body: bytes) -> None:
        status, answer = call(body, sign(body, E2E_CLIENT_SECRET))
        seen[status] = seen.get(status, 0) + 1
        assert status < 500, (body[:300], answer[:300])

    check()
    assert sum(seen.values()) >= 10_000
    assert seen.get(200, 0) > seen.get(400, 0) > 0  # mostly well-formed: the handlers ran


# -- issue 13: audit lines an operator can find by request id -----------------------------


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_every_refused_delivery_is_an_audit_line_with_its_request_id_and_path(
    e2e: E2E, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh = envelope("project.created", {"project": {"id": "prj_x"}})
    stale = json.loads(fresh)
    stale["createdAt"] -= 49 * 3600 * 1000
    stale_body = json.dumps(stale).encode()
    cases = {
        "missing signature": (fresh, None, 401),
        "bad signature": (fresh, "0" * 40, 403),
        "malformed": (b"{not json", sign(b"{not json", E2E_CLIENT_SECRET), 400),
        "stale": (stale_body, sign(stale_body, E2E_CLIENT_SECRET), 200),
    }
    capsys.readouterr()
    with in_process() as client:
        for n, (body, signature, status) in enumerate(cases.values()):
            headers = {"x-vercel-id": f"iad1::audit{n}"}
            if signature is not None:
                headers["x-vercel-signature"] = signature
            assert client.post("/webhook", content=body, headers=headers).status_code == status
    lines = _lines(capsys.readouterr().out)
    refused = [line for line in lines if line["msg"] == "audit: webhook refused"]
    assert [r["reason"] for r in refused] == list(cases)
    for n, line in enumerate(refused):
        assert (line["event"], line["request_id"], line["path"]) == (
            "webhook_refused",
            f"iad1::audit{n}",
            "/webhook",
        )
        assert line["level"] == "warning"
        assert E2E_CLIENT_SECRET not in json.dumps(line)
        assert "prj_x" not in json.dumps(line) or line["reason"] == "stale"
    # Every line of each request carries its id, the request line included.
    for n in range(len(cases)):
        mine = [line for line in lines if line.get("request_id") == f"iad1::audit{n}"]
        assert {line["msg"] for line in mine} == {"audit: webhook refused", "request"}


def test_install_reinstall_and_uninstall_are_audit_lines(
    e2e: E2E, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    cfg = install(e2e, "acme")
    drain(e2e)
    install(e2e, "acme")  # Vercel sends a returning user through the install again
    drain(e2e)
    e2e.emulator.delete_configuration(cfg, sync=True)
    drain(e2e)
    audit = [
        (line["event"], line.get("configuration_id"), line.get("request_id", ""))
        for line in _lines(capsys.readouterr().out)
        if line["msg"].startswith("audit: ")
    ]
    events = [event for event, *_ in audit if event in ("install", "reinstall", "uninstall")]
    assert events[:2] == ["install", "reinstall"], audit  # the same configuration, again
    assert set(events[2:]) == {"uninstall"}, audit
    for event, configuration_id, request_id in audit:
        if event in ("install", "reinstall", "uninstall"):
            assert configuration_id
            assert request_id.startswith("dev1::")  # the dev server's x-vercel-id


def test_every_line_of_a_delivery_names_its_event_and_configuration(
    e2e: E2E, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = install(e2e, "acme")
    drain(e2e)
    body = envelope(
        "project.created",
        {"configuration": {"id": cfg}, "project": {"id": "prj_new", "name": "new"}},
        event_id="evt_lines_1",
    )
    capsys.readouterr()
    with in_process() as client:
        headers = {
            "x-vercel-id": "iad1::lines",
            "x-vercel-signature": sign(body, E2E_CLIENT_SECRET),
        }
        assert client.post("/webhook", content=body, headers=headers).status_code in (200, 503)
    mine = [x for x in _lines(capsys.readouterr().out) if x.get("request_id") == "iad1::lines"]
    assert [x["msg"] for x in mine][-1] == "request"  # the request line, by request id
    about = mine[:-1]
    assert about  # what the event did: each line names the event and the installation
    for line in about:
        assert (line["event_id"], line["configuration_id"]) == ("evt_lines_1", cfg), line
