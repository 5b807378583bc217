"""The reconciler against Vercel as it really is (issue 12), over real HTTP to the emulator.

Each test switches the emulator to the variant it is about (a team enforcing sensitive
variables and its four undocumented mixed-target behaviours, an all-fail array create
answered 201 or with an error status, custom environments, Vercel's missing-permission
wording) and proves the product right under every one of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lib.deadline import Deadline
from lib.provisioning.spec import Spec, TemplateContext
from lib.vercel.models import Project
from tests.conftest import E2E
from tests.lib.provisioning.test_reconcile import (
    SCOPE_TEAM,
    SCOPE_USER,
    Wire,
    install,
    project_envs,
    provisioner,
    report_of,
    spec_of,
    vercel_writes,
)

MIXED = ("reject", "split", "keep", "promote_all")
# Every kind of entry: plain everywhere (split off development), encrypted for
# production/preview only, sensitive everywhere (split), plain development only.
POLICY_SPEC: dict[str, Any] = {
    "secrets": {"k": {"bytes": 16}},
    "env": [
        {"key": "PLAIN_ALL", "value": "p-{project_name}", "type": "plain"},
        {"key": "ENC_PP", "value": "e-{project_id}", "targets": ["production", "preview"]},
        {"key": "SENS", "value": "{secret.k}", "type": "sensitive"},
        {"key": "DEV_ONLY", "value": "d", "type": "plain", "targets": ["development"]},
    ],
}
# Vercel's wording of a missing permission: no scope, no project named.
VERCEL_403 = {
    "error": {"code": "forbidden", "message": "You don't have permission to access this resource."}
}


@pytest.fixture
def world(e2e: E2E) -> Iterator[E2E]:
    """A fresh emulated world; the variants and team settings a test sets are undone."""
    e2e.emulator.reset()
    e2e.kv.gateway.backend.execute([b"FLUSHDB"])
    try:
        yield e2e
    finally:
        e2e.emulator.configure(
            sensitive_mixed_targets="reject", env_all_failed="created", sensitive_patch_key="reject"
        )
        e2e.emulator.drain(10)
        e2e.emulator.reset()


def ours(e2e: E2E, cfg: str) -> dict[str, list[tuple[str, str, tuple[str, ...], str]]]:
    return {
        name: sorted(
            (e["key"], e["type"], tuple(sorted(e["target"])), e["value"])
            for e in envs
            if e["configurationId"] == cfg
        )
        for name, envs in project_envs(e2e).items()
    }


def assert_policy_converged(e2e: E2E, spec: Spec, cfg: str, names: set[str]) -> None:
    """Every record of the spec on every project, development as the spec's type and
    production/preview promoted to sensitive by the server: nothing else."""
    inst = e2e.services().store.load(cfg)[0]
    secrets = e2e.services().store.get_secrets(cfg)

    got = ours(e2e, cfg)
    for p in e2e.emulator.state()["projects"]:
        if p["name"] not in names:
            continue
        ctx = TemplateContext(
            configuration_id=cfg,
            team_id=inst.team_id,
            user_id=inst.user_id,
            project_id=p["id"],
            project_name=p["name"],
            secrets=secrets,
        )
        want = sorted(
            (
                d.key,
                d.type if "development" in d.targets else "sensitive",
                tuple(sorted(d.targets)),
                d.value,
            )
            for d in spec.desired(ctx)
        )
        assert [(k, t, tg) for k, t, tg, _ in got[p["name"]]] == [
            (k, t, tg) for k, t, tg, _ in want
        ]


@pytest.mark.parametrize("mixed", MIXED)
def test_policy_on_first_run_provisions_second_run_writes_nothing(world: E2E, mixed: str) -> None:
    world.emulator.configure(sensitive_mixed_targets=mixed)
    world.emulator.set_team(SCOPE_TEAM, policy="on")
    spec = spec_of(POLICY_SPEC)
    inst = install(world, SCOPE_TEAM, spec=spec)
    names = {
        p["name"] for p in world.emulator.state()["projects"] if p["accountId"] == inst.owner_id
    }

    first = provisioner(world, spec).reconcile(inst.configuration_id, Deadline(30))
    assert first.outcome == "done", first.as_dict()
    assert all(not p.errors and not p.conflicts for p in first.projects)
    assert_policy_converged(world, spec, inst.configuration_id, names)

    world.emulator.reset_calls()
    wire = Wire()
    second = provisioner(world, spec, wire).reconcile(inst.configuration_id, Deadline(30))
    assert second.outcome == "done"
    assert wire.writes() == []
    assert vercel_writes(world) == {}
    assert all(p.writes == 0 and p.unchanged == 6 for p in second.projects)


@pytest.mark.parametrize("mixed", MIXED)
def test_policy_on_a_new_value_is_patched_into_the_promoted_var(world: E2E, mixed: str) -> None:
    """The promoted var keeps its id: a PATCH of its value, type left sensitive (Vercel
    refuses a PATCH out of sensitive), then quiet again."""
    world.emulator.configure(sensitive_mixed_targets=mixed)
    world.emulator.set_team(SCOPE_TEAM, policy="on")
    v1 = spec_of({"env": [{"key": "URL", "value": "a", "type": "plain"}]})
    v2 = spec_of({"env": [{"key": "URL", "value": "b", "type": "plain"}]})
    inst = install(world, SCOPE_TEAM, spec=v1)
    cfg = inst.configuration_id
    provisioner(world, v1).reconcile(cfg, Deadline(30))
    before = {n: [(e[0], e[1], e[2]) for e in envs] for n, envs in ours(world, cfg).items() if envs}
    world.emulator.reset_calls()
    report = provisioner(world, v2).reconcile(cfg, Deadline(30))
    assert report.outcome == "done", report.as_dict()
    projects = len(before)
    # Two records per project (production/preview, development): both PATCHed in place.
    assert vercel_writes(world) == {"PATCH /v9/projects/{idOrName}/env/{id}": 2 * projects}
    after = ours(world, cfg)
    for name, shapes in before.items():
        assert [(k, t, tg) for k, t, tg, _ in after[name]] == shapes
        assert {v for *_, v in after[name]} == {"b"}
    world.emulator.reset_calls()
    provisioner(world, v2).reconcile(cfg, Deadline(30))
    assert vercel_writes(world) == {}


@pytest.mark.parametrize("all_failed", ["created", "error"])
def test_an_array_create_that_fails_entirely_is_per_var_conflicts(
    world: E2E, all_failed: str
) -> None:
    """Every item of a project's create is refused (a var we cannot see holds the key):
    201 with `failed[]`, or an error status whose body carries it. Either way the targets
    are recorded as held, the other projects are provisioned, and the rerun is quiet."""
    world.emulator.configure(env_all_failed=all_failed)
    world.emulator.add_user_env("my-blog", "SOLO", "theirs", target=["production", "preview"])
    spec = spec_of(
        {
            "env": [
                {"key": "SOLO", "value": "x", "type": "plain", "targets": ["production", "preview"]}
            ]
        }
    )
    inst = install(world, SCOPE_USER, spec=spec)
    report = provisioner(world, spec).reconcile(inst.configuration_id, Deadline(30))
    assert report.outcome == "done", report.as_dict()
    blog = report_of(report, "my-blog")
    assert blog.errors == []
    assert blog.complete
    assert [c.as_dict() for c in blog.conflicts] == [
        {"key": "SOLO", "targets": ["preview", "production"], "gitBranch": None, "owner": "hidden"}
    ]
    mine = ours(world, inst.configuration_id)
    assert mine["my-blog"] == []
    assert all(
        envs == [("SOLO", "plain", ("preview", "production"), "x")]
        for n, envs in mine.items()
        if n != "my-blog" and n in {r.name for r in report.projects}
    )
    world.emulator.reset_calls()
    again = provisioner(world, spec).reconcile(inst.configuration_id, Deadline(30))
    assert vercel_writes(world) == {}
    assert report_of(again, "my-blog").conflicts == blog.conflicts


class VercelWording(Wire):
    """Real HTTP, with the emulator's 403 for one project rewritten into Vercel's generic
    missing-permission wording (which names no project): what Vercel answers for a
    project outside a selected-projects installation is not documented."""

    project_id: str = ""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if response.status_code == 403 and f"/projects/{self.project_id}/" in str(request.url):
            return httpx.Response(403, json=VERCEL_403)
        return response


def _selected_install(e2e: E2E, spec: Spec) -> tuple[Any, dict[str, str]]:
    ids = {p["name"]: p["id"] for p in e2e.emulator.state()["projects"]}
    inst = install(e2e, SCOPE_USER, "selected", (ids["portfolio"], ids["my-blog"]), spec)
    return inst, ids


def test_missing_permission_on_a_deselected_project_is_that_projects_only(world: E2E) -> None:
    spec = spec_of({"env": [{"key": "A", "value": "x", "targets": ["production"]}]})
    inst, ids = _selected_install(world, spec)
    # The user takes my-blog out of the selection; our copy of it is stale still.
    world.emulator.set_project_access(inst.configuration_id, "selected", [ids["portfolio"]])
    wire = VercelWording()
    wire.project_id = ids["my-blog"]
    # A run for projects named by an event that predates the change (the listing would
    # already leave my-blog out).
    named = [Project(id=ids[n], name=n) for n in ("portfolio", "my-blog")]
    report = provisioner(world, spec, wire).reconcile(
        inst.configuration_id, Deadline(30), projects=named, installation=inst
    )
    assert report.outcome == "done", report.as_dict()
    blog = report_of(report, "my-blog")
    assert blog.notes == ["no longer selected for this installation: left alone"]
    assert blog.complete
    assert report_of(report, "portfolio").created == ["A"]
    assert any("/v1/integrations/configuration/" in url for _, url in wire.calls)


def test_missing_permission_on_a_selected_project_still_blocks_the_installation(
    world: E2E,
) -> None:
    spec = spec_of({"env": [{"key": "A", "value": "x", "targets": ["production"]}]})
    inst, _ = _selected_install(world, spec)
    world.emulator.remove_scopes(inst.configuration_id, ["read-write:project-env-vars"])
    wire = Wire()
    report = provisioner(world, spec, wire, concurrency=1).reconcile(
        inst.configuration_id, Deadline(30)
    )
    assert report.outcome == "blocked"
    assert report.reason is not None
    assert report.reason.startswith("missing permission")
    assert any("/v1/integrations/configuration/" in url for _, url in wire.calls)
    assert ours(world, inst.configuration_id)["portfolio"] == []


CUSTOM_SPEC: dict[str, Any] = {
    "env": [
        {"key": "STAGE_URL", "value": "s", "type": "plain", "targets": ["production", "staging"]},
        {"key": "ONLY_STAGING", "value": "o", "type": "plain", "targets": ["staging"]},
    ]
}


def test_custom_environments_resolved_per_project_and_a_missing_one_is_a_note(
    world: E2E,
) -> None:
    staging = world.emulator.add_custom_environment("web", "staging", owner=SCOPE_TEAM)
    env_id = staging["customEnvironment"]["id"]
    spec = spec_of(CUSTOM_SPEC)
    inst = install(world, SCOPE_TEAM, spec=spec)
    cfg = inst.configuration_id
    wire = Wire()
    report = provisioner(world, spec, wire).reconcile(cfg, Deadline(30))
    assert report.outcome == "done", report.as_dict()
    listed = {
        name: sorted(
            (e["key"], tuple(sorted(e["target"])), tuple(e.get("customEnvironmentIds") or ()))
            for e in envs
            if e["configurationId"] == cfg
        )
        for name, envs in project_envs(world).items()
    }
    assert listed["web"] == [
        ("ONLY_STAGING", (), (env_id,)),
        ("STAGE_URL", ("production",), (env_id,)),
    ]
    for p in report.projects:
        if p.name == "web":
            assert p.notes == []
        else:
            assert listed[p.name] == [("STAGE_URL", ("production",), ())]
            assert p.notes == ["custom environment(s) not on this project, skipped: staging"]
        assert p.complete
        assert p.errors == []
    # One custom-environments read per project, because the spec names one.
    lookups = [u for m, u in wire.calls if m == "GET" and "/custom-environments" in u]
    assert len(lookups) == len(report.projects)
    world.emulator.reset_calls()
    provisioner(world, spec).reconcile(cfg, Deadline(30))
    assert vercel_writes(world) == {}


def test_no_custom_environment_in_the_spec_means_no_lookup(world: E2E) -> None:
    spec = spec_of({"env": [{"key": "A", "value": "x", "targets": ["production"]}]})
    inst = install(world, SCOPE_TEAM, spec=spec)
    wire = Wire()
    provisioner(world, spec, wire).reconcile(inst.configuration_id, Deadline(30))
    assert not [u for _, u in wire.calls if "custom-environments" in u]
