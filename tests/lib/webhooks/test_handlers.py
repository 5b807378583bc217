"""lib/webhooks/handlers.py: each handler's decisions, with the store on the real KV gateway and a
scripted Vercel client and provisioner. End to end proof is in tests/api/test_webhook.py."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from lib.app import Services
from lib.crypto import EncryptionKey, Keyring
from lib.deadline import Deadline
from lib.kv.client import KV
from lib.kv.records import Installation, ProjectRecord
from lib.kv.store import Gone, Store
from lib.provisioning.reports import InstallationReport
from lib.vercel.errors import (
    ConfigurationDisabled,
    NotFound,
    ServerError,
    Unauthorized,
    VercelError,
)
from lib.vercel.models import IntegrationConfiguration, Project
from lib.webhooks import handlers as events
from lib.webhooks.handlers import Event, Target

KEY = EncryptionKey(key_id="k1", key=bytes(range(32)))
T0 = 1_700_000_000_000  # an event's createdAt, epoch ms


@dataclass
class FakeClient:
    """Answers get_project / get_configuration from a script (value or error)."""

    project: Project | VercelError | None = None
    configuration: IntegrationConfiguration | VercelError | None = None
    asked: list[str] = field(default_factory=list)

    def get_project(self, project_id: str) -> Project:
        self.asked.append(f"project {project_id}")
        return cast(Project, _answer(self.project))

    def get_configuration(self, configuration_id: str) -> IntegrationConfiguration:
        self.asked.append(f"configuration {configuration_id}")
        return cast(IntegrationConfiguration, _answer(self.configuration))


def _answer(value: Any) -> Any:
    if isinstance(value, VercelError):
        raise value
    assert value is not None, "not scripted"
    return value


@dataclass
class FakeProvisioner:
    store: Store
    client_: FakeClient
    outcome: str = "done"
    runs: list[dict[str, Any]] = field(default_factory=list)

    def client(self, inst: Installation, deadline: Deadline) -> FakeClient:
        return self.client_

    def reconcile(self, cfg: str, deadline: Deadline, **scope: Any) -> InstallationReport:
        inst = scope.pop("installation")
        assert deadline.remaining() <= events._WORK_BUDGET_S
        self.runs.append({"cfg": cfg, "team": inst.team_id, **scope})
        return InstallationReport(cfg, outcome=self.outcome)  # type: ignore[arg-type]

    def forget_projects(self, cfg: str, ids: list[str]) -> None:
        for project_id in ids:
            self.store.forget_project(cfg, project_id)


@dataclass
class World:
    store: Store
    client: FakeClient
    provisioner: FakeProvisioner

    @property
    def services(self) -> Services:
        return cast(Services, self)


@pytest.fixture
def world(kv: Any) -> World:
    store = Store(KV(kv.url, kv.token), Keyring(KEY), prefix="e:")
    client = FakeClient()
    return World(store, client, FakeProvisioner(store, client))


def installed(world: World, **changes: Any) -> Target:
    fields: dict[str, Any] = {
        "configuration_id": "icfg_1",
        "owner_id": "team_1",
        "team_id": "team_1",
        "user_id": "user_1",
        "sealed_token": world.store.seal_token("icfg_1", "vca_token"),
        "project_selection": "all",
    }
    fields.update(changes)
    pending = fields.pop("pending", False)
    inst = Installation(**fields)
    world.store.save_installation(inst)
    return Target(inst, pending=pending)


def event(kind: str, created: float | None = T0, **payload: Any) -> Event:
    return Event("evt", kind, created, payload, None, None)


def run(world: World, e: Event, target: Target | None) -> str:
    return events.HANDLERS[e.type](e, target, world.services, Deadline(20))


# -- small parts ------------------------------------------------------------------------------


def test_event_time_reads_epoch_milliseconds() -> None:
    assert events._event_time(event("x", T0)) == T0 / 1000
    assert events._event_time(event("x", 1_700_000_000)) == 1_700_000_000
    for odd in (None, float("nan"), -1.0, 0.0):
        assert events._event_time(event("x", odd)) is None  # unknown, not "now"
    ahead = events._event_time(event("x", (time.time() + 3600) * 1000))
    assert ahead is not None
    assert ahead <= time.time()  # a clock ahead of ours is taken as now


def test_a_future_created_at_does_not_hold_back_later_facts(world: World) -> None:
    world.client.configuration = ConfigurationDisabled("x", status=403)  # payload decides
    target = installed(world)
    ahead = event(
        "integration-configuration.permission-upgraded",
        (time.time() + 3600) * 1000,
        configuration={"id": "icfg_1", "projectSelection": "selected", "projects": ["a"]},
    )
    assert run(world, ahead, target) == "applied"
    inst = world.store.get_installation("icfg_1")
    assert inst is not None
    assert inst.projects_at <= time.time()
    later = event(
        "integration-configuration.permission-upgraded",
        (time.time() + 1) * 1000,
        configuration={"id": "icfg_1", "projectSelection": "all"},
    )
    assert run(world, later, Target(inst)) == "applied"
    inst = world.store.get_installation("icfg_1")
    assert inst is not None
    assert inst.project_selection == "all"


@pytest.mark.parametrize("kind", ["permission-upgraded", "transferred"])
def test_an_event_of_unknown_age_never_wins_a_watermark(world: World, kind: str) -> None:
    world.client.configuration = ConfigurationDisabled("x", status=403)  # payload decides
    target = installed(world, owner_at=10.0, projects_at=10.0, scopes_at=10.0)
    unknown = event(
        f"integration-configuration.{kind}",
        None,
        newTeamId="team_2",
        configuration={"id": "icfg_1", "projectSelection": "selected", "projects": ["a"]},
    )
    run(world, unknown, target)
    inst = world.store.get_installation("icfg_1")
    assert inst is not None
    assert (inst.owner_id, inst.project_selection) == ("team_1", "all")
    assert (inst.owner_at, inst.projects_at, inst.scopes_at) == (10.0, 10.0, 10.0)


def test_a_removal_of_unknown_age_holds_back_no_later_creation(world: World) -> None:
    world.client.project = Project(id="prj_1", name="web")
    target = installed(world)
    removed = event("project.removed", None, project={"id": "prj_1", "name": "web"})
    assert run(world, removed, target) == "applied"
    created = event("project.created", T0, project={"id": "prj_1", "name": "web"})
    assert run(world, created, target) == "applied"  # asked Vercel: the project is there
    assert world.provisioner.runs[-1]["projects"] == [Project(id="prj_1", name="web")]


def test_event_fields_are_read_defensively() -> None:
    e = event("x", team={"id": 5}, project={"id": "p", "name": ""}, ids=["a", 3, "", "b" * 200])
    assert e.text("team", "id") is None
    assert e.text("project", "id") == "p"
    assert e.text("project", "name") is None
    assert e.text("nothing", "here") is None
    assert e.get("ids", "deeper") is None
    assert e.ids("ids") == ["a"]
    assert events._project(e) == Project(id="p", name="p")


def test_work_resumes_when_pending_or_paused(world: World) -> None:
    assert not installed(world).resume
    assert installed(world, pending=True).resume
    assert installed(world, status="paused").resume
    assert not installed(world, status="broken").resume


# -- project.* ------------------------------------------------------------------------------


def test_project_created_provisions_the_project_under_its_current_name(world: World) -> None:
    world.client.project = Project(id="prj_1", name="renamed-since")
    created = event("project.created", project={"id": "prj_1", "name": "original"})
    assert run(world, created, installed(world)) == "applied"
    [only] = world.provisioner.runs
    assert only["projects"] == [Project(id="prj_1", name="renamed-since")]


def test_a_project_gone_from_vercel_is_forgotten(world: World) -> None:
    target = installed(world)
    world.store.put_project("icfg_1", ProjectRecord(project_id="prj_1"))
    world.client.project = NotFound("gone", status=404)
    assert run(world, event("project.renamed", project={"id": "prj_1"}), target) == "applied"
    assert world.store.get_projects("icfg_1") == {}
    assert world.provisioner.runs == []


@pytest.mark.parametrize(
    "trouble", [ServerError("x", status=500), ConfigurationDisabled("x", status=403)]
)
def test_when_vercel_will_not_say_the_payload_is_used(world: World, trouble: VercelError) -> None:
    world.client.project = trouble
    created = event("project.created", project={"id": "prj_1", "name": "as-sent"})
    run(world, created, installed(world))
    assert world.provisioner.runs[0]["projects"] == [Project(id="prj_1", name="as-sent")]


def test_a_partial_reconcile_asks_for_a_retry(world: World) -> None:
    world.client.project = Project(id="prj_1", name="a")
    world.provisioner.outcome = "partial"
    assert run(world, event("project.created", project={"id": "prj_1"}), installed(world)) == (
        "retry"
    )
    for stopped in ("paused", "broken", "blocked", "unknown"):
        world.provisioner.outcome = stopped
        assert run(world, event("project.created", project={"id": "prj_1"}), installed(world)) == (
            "applied"
        )


def test_removed_before_created_wins_by_created_at(world: World) -> None:
    target = installed(world)
    removed = event("project.removed", T0 + 5, project={"id": "prj_1", "name": "a"})
    assert run(world, removed, target) == "applied"
    record = world.store.get_projects("icfg_1")["prj_1"]
    assert record.removed_at == (T0 + 5) / 1000
    assert record.env == {}
    for kind in ("project.created", "project.renamed"):
        late = event(kind, T0, project={"id": "prj_1", "name": "a"})
        assert run(world, late, target) == "ignored"
    assert world.provisioner.runs == []
    assert world.client.asked == []


def test_an_installation_with_leftover_work_is_reconciled_in_full(world: World) -> None:
    created = event("project.created", project={"id": "prj_1"})
    run(world, created, installed(world, pending=True))
    run(world, event("project.removed", project={"id": "prj_2"}), installed(world, pending=True))
    assert world.provisioner.runs == [{"cfg": "icfg_1", "team": "team_1"}]
    assert world.client.asked == []


def test_project_events_for_unknown_installations_or_projects_are_ignored(world: World) -> None:
    target = installed(world, project_selection="selected", project_ids=["prj_a"])
    assert run(world, event("project.created", project={"id": "prj_1"}), None) == "ignored"
    assert run(world, event("project.created", project={"name": "x"}), target) == "ignored"
    assert run(world, event("project.created", project={"id": "prj_b"}), target) == "ignored"
    assert run(world, event("project.removed", project={"id": "prj_1"}), None) == "ignored"
    assert world.provisioner.runs == []
    assert world.store.get_projects("icfg_1") == {}


# -- integration-configuration.* -----------------------------------------------------------


def _live(**changes: Any) -> IntegrationConfiguration:
    return IntegrationConfiguration.model_validate({"id": "icfg_1", **changes})


def test_permission_change_takes_access_from_vercel_not_the_payload(world: World) -> None:
    """Two quick changes may arrive swapped: the stale one must not win."""
    target = installed(world, project_selection="selected", project_ids=["a"])
    for pid in ("a", "b", "c"):
        world.store.put_project("icfg_1", ProjectRecord(project_id=pid))
    world.client.configuration = _live(projectSelection="selected", projects=["c"], scopes=["s"])
    stale = event(
        "integration-configuration.permission-upgraded",
        configuration={"id": "icfg_1", "projectSelection": "selected", "projects": ["a", "b"]},
        projects={"added": ["b"], "removed": ["c"]},
    )
    assert run(world, stale, target) == "applied"
    inst = world.store.get_installation("icfg_1")
    assert inst is not None
    assert (inst.project_selection, inst.project_ids) == ("selected", ["c"])
    assert inst.scopes == ["s"]
    assert set(world.store.get_projects("icfg_1")) == {"a", "b", "c"}  # c is still reachable
    assert world.provisioner.runs == []  # b is not reachable any more: nothing to add


def test_permission_change_provisions_what_was_added(world: World) -> None:
    target = installed(world, project_selection="selected", project_ids=["a"])
    world.store.put_project("icfg_1", ProjectRecord(project_id="a"))
    world.client.configuration = _live(projectSelection="selected", projects=["b"])
    upgraded = event(
        "integration-configuration.permission-upgraded",
        projects={"added": ["b"], "removed": ["a"]},
    )
    assert run(world, upgraded, target) == "applied"
    assert world.store.get_projects("icfg_1") == {}
    assert world.provisioner.runs == [{"cfg": "icfg_1", "team": "team_1", "only": ["b"]}]


def test_permission_change_to_all_reconciles_everything(world: World) -> None:
    world.client.configuration = _live(projectSelection="all")
    upgraded = event("integration-configuration.permission-upgraded", projects={"added": []})
    run(world, upgraded, installed(world, project_selection="selected", project_ids=["a"]))
    assert world.provisioner.runs == [{"cfg": "icfg_1", "team": "team_1"}]
    inst = world.store.get_installation("icfg_1")
    assert inst is not None
    assert (inst.project_selection, inst.project_ids) == ("all", [])


@pytest.mark.parametrize("kind", ["permission-upgraded", "scope-change-confirmed", "transferred"])
def test_vercel_saying_the_configuration_is_gone_is_an_uninstall(world: World, kind: str) -> None:
    world.client.configuration = NotFound("x")  # asked with every team it may belong to
    with pytest.raises(Gone):
        run(world, event(f"integration-configuration.{kind}", newTeamId="team_2"), installed(world))
    assert world.store.kv.call("KEYS", "e:*") == [world.store.gone_key("icfg_1")]
    assert world.provisioner.runs == []


@pytest.mark.parametrize("kind", ["permission-upgraded", "scope-change-confirmed", "transferred"])
def test_a_refused_token_marks_the_installation_broken_and_keeps_it(
    world: World, kind: str
) -> None:
    # A 401 says our token is not accepted (now), not that the configuration is gone:
    # no tombstone, so a reinstall of the same configuration is not refused.
    world.client.configuration = Unauthorized("x", status=401)
    run(world, event(f"integration-configuration.{kind}", newTeamId="team_2"), installed(world))
    inst = world.store.get_installation("icfg_1")
    assert inst is not None
    assert (inst.status, inst.status_reason) == ("broken", events.REINSTALL)
    assert world.store.kv.call("EXISTS", world.store.gone_key("icfg_1")) == 0


def test_when_vercel_refuses_the_payload_gives_the_access(world: World) -> None:
    world.client.configuration = ConfigurationDisabled("x", status=403)
    upgraded = event(
        "integration-configuration.permission-upgraded",
        configuration={"id": "icfg_1", "projectSelection": "selected", "projects": ["x", 1]},
        projects={"added": ["x"]},
    )
    assert run(world, upgraded, installed(world)) == "applied"
    inst = world.store.get_installation("icfg_1")
    assert inst is not None
    assert (inst.project_selection, inst.project_ids) == ("selected", ["x"])
    assert world.provisioner.runs[0]["only"] == ["x"]


def test_a_transient_failure_to_read_the_configuration_is_retried(world: World) -> None:
    world.client.configuration = ServerError("x", status=502)
    before = installed(world, scopes=["old"])
    for kind in ("permission-upgraded", "scope-change-confirmed"):
        assert run(world, event(f"integration-configuration.{kind}"), before) == "retry"
    assert world.store.get_installation("icfg_1") == before.installation
    assert world.provisioner.runs == []


def test_scope_change_records_scopes_and_reconciles_only_when_blocked(world: World) -> None:
    world.client.configuration = _live(scopes=["read:project", "read-write:project-env-vars"])
    confirmed = event(
        "integration-configuration.scope-change-confirmed", configuration={"scopes": ["stale"]}
    )
    assert run(world, confirmed, installed(world)) == "applied"
    inst = world.store.get_installation("icfg_1")
    assert inst is not None
    assert inst.scopes == ["read:project", "read-write:project-env-vars"]
    assert world.provisioner.runs == []
    blocked = installed(world, status="paused", status_reason="missing permission (forbidden)")
    assert run(world, confirmed, blocked) == "applied"
    assert world.provisioner.runs == [{"cfg": "icfg_1", "team": "team_1"}]


def test_transfer_moves_the_owner_index_and_reconciles_in_the_new_team(world: World) -> None:
    target = installed(world)
    world.client.configuration = _live(projectSelection="selected", projects=[])
    moved = event(
        "integration-configuration.transferred",
        configuration={"id": "icfg_1"},
        previousTeamId="team_1",
        newTeamId="team_2",
    )
    assert run(world, moved, target) == "applied"
    store = world.store
    assert store.installations_for_owner("team_2") == ["icfg_1"]
    assert store.installations_for_owner("team_1") == []
    inst = store.get_installation("icfg_1")
    assert inst is not None
    assert (inst.owner_id, inst.team_id, inst.project_ids) == (
        "team_2",
        "team_2",
        [],
    )
    assert world.provisioner.runs == [{"cfg": "icfg_1", "team": "team_2"}]
    assert run(world, moved, Target(inst)) == "applied"  # a redelivery ends the same
    assert store.installations_for_owner("team_1") == []


def _transfer(created: float = T0) -> Event:
    return event(
        "integration-configuration.transferred",
        created,
        configuration={"id": "icfg_1"},
        previousTeamId="team_1",
        newTeamId="team_2",
    )


@pytest.mark.parametrize(
    ("selection", "projects_at", "ids"),
    [
        ("selected", T0 / 1000 - 1, []),  # the former team's projects mean nothing now
        ("selected", T0 / 1000 + 1, ["q"]),  # a newer choice (of the new team) wins
        ("all", T0 / 1000 - 1, []),  # stays all
    ],
)
def test_a_transfer_vercel_cannot_describe_keeps_no_project_of_the_former_team(
    world: World, selection: str, projects_at: float, ids: list[str]
) -> None:
    world.client.configuration = ConfigurationDisabled("x", status=403)  # payload decides
    kept = ["q"] if projects_at > T0 / 1000 else ["p"] if selection == "selected" else []
    target = installed(
        world, project_selection=selection, project_ids=kept, projects_at=projects_at
    )
    assert run(world, _transfer(), target) == "applied"
    inst = world.store.get_installation("icfg_1")
    assert inst is not None
    assert (inst.owner_id, inst.project_selection, inst.project_ids) == ("team_2", selection, ids)
    assert inst.projects_at == max(projects_at, T0 / 1000 if selection == "selected" else 0.0)


@pytest.mark.parametrize(
    ("stored_team", "owner_at", "ids"),
    [
        ("team_2", T0 / 1000 + 1, []),  # chosen in team_1, which it left since: dropped
        ("team_1", T0 / 1000 - 1, ["p"]),  # chosen in team_2 before we knew of the move
    ],
)
def test_a_late_choice_names_no_project_of_a_team_the_installation_left(
    world: World, stored_team: str, owner_at: float, ids: list[str]
) -> None:
    """The payload's project ids belong to its `team.id`; its access mode holds."""
    world.client.configuration = ConfigurationDisabled("x", status=403)  # payload decides
    target = installed(world, owner_id=stored_team, team_id=stored_team, owner_at=owner_at)
    other = "team_1" if stored_team == "team_2" else "team_2"
    chosen = event(
        "integration-configuration.permission-upgraded",
        T0,
        team={"id": other},
        configuration={"id": "icfg_1", "projectSelection": "selected", "projects": ["p"]},
    )
    assert run(world, chosen, target) == "applied"
    inst = world.store.get_installation("icfg_1")
    assert inst is not None
    assert (inst.project_selection, inst.project_ids) == ("selected", ids)


def test_uninstall_deletes_everything_even_without_a_record(world: World) -> None:
    installed(world)
    world.store.add_secrets("icfg_1", {"s": "v"})
    world.store.put_project("icfg_1", ProjectRecord(project_id="p"))
    world.store.mark_pending("icfg_1")
    world.store.kv.call("DEL", world.store.key("inst", "icfg_1"))
    removed = Event(
        "evt",
        "integration-configuration.removed",
        T0,
        {"team": {"id": "team_1"}, "user": {"id": "user_1"}},
        "icfg_1",
        "team_1",
    )
    assert run(world, removed, None) == "applied"
    assert world.store.kv.call("KEYS", "e:*") == [world.store.gone_key("icfg_1")]
    assert run(world, event("integration-configuration.removed"), None) == "ignored"
