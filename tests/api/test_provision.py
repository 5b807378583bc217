"""/provision through the dev server: admin resync and drift, the cron sweep, and refusals.

Installs go through our real /callback (which provisions with the shipped spec), the
emulator plays Vercel, and the KV gateway plays Upstash — all over real HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lib.app import reset_services
from lib.deadline import Deadline
from tests.conftest import E2E, E2E_ADMIN_TOKEN, E2E_CRON_SECRET

ROOT = Path(__file__).resolve().parents[2]
ADMIN = {"Authorization": f"Bearer {E2E_ADMIN_TOKEN}"}
CRON = {"Authorization": f"Bearer {E2E_CRON_SECRET}"}
SHIPPED_KEYS = {"ACME_API_KEY", "ACME_DASHBOARD_URL", "ACME_PROJECT_ID"}


@pytest.fixture
def client(e2e: E2E) -> Iterator[httpx.Client]:
    with e2e.http() as http:
        yield http


def installed(e2e: E2E, scope: str = "acme", **kwargs: Any) -> str:
    cfg: str = e2e.install(scope, **kwargs)["configurationId"]
    return cfg


def ours(e2e: E2E, cfg: str) -> dict[str, list[dict[str, Any]]]:
    return {
        p["name"]: [e for e in p["env"] if e["configurationId"] == cfg]
        for p in e2e.emulator.state()["projects"]
        if any(e["configurationId"] == cfg for e in p["env"])
    }


def all_values(e2e: E2E, cfg: str) -> set[str]:
    """Every value we provisioned (bar ACME_PROJECT_ID's: it *is* the project id, which a
    report names) and the installation's secrets."""
    values = {
        e["value"]
        for envs in ours(e2e, cfg).values()
        for e in envs
        if e["key"] != "ACME_PROJECT_ID"
    }
    return values | set(e2e.services().store.get_secrets(cfg).values())


def writes(e2e: E2E) -> dict[str, int]:
    routes = e2e.emulator.call_counts()["routes"]
    return {k: v["count"] for k, v in routes.items() if not k.startswith("GET")}


def resync(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/provision", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_vercel_json_declares_the_sweep_cron() -> None:
    config = json.loads((ROOT / "vercel.json").read_text())
    assert {"source": "/provision", "destination": "/api/provision"} in config["rewrites"]
    assert any(c["path"] == "/provision?sweep=1" for c in config["crons"])


def test_resync_one_answers_a_summary_per_project_and_a_rerun_writes_nothing(
    e2e: E2E, client: httpx.Client
) -> None:
    cfg = installed(e2e)  # the callback provisioned all 5 team projects already
    assert len(ours(e2e, cfg)) == 5
    e2e.emulator.drain(timeout=10)  # nothing in flight that could touch the KV meanwhile
    e2e.emulator.reset_calls()
    e2e.kv.gateway.reset_stats()
    data = resync(client, {"configurationId": cfg})
    [inst] = data["installations"]
    assert (inst["configurationId"], inst["outcome"], inst["pending"]) == (cfg, "done", False)
    assert len(inst["projects"]) == 5
    for project in inst["projects"]:
        assert set(project) >= {"created", "updated", "deleted", "unchanged", "conflicts", "errors"}
        assert (project["created"], project["updated"], project["deleted"]) == ([], [], 0)
        assert project["unchanged"] == 5  # development is split off API_KEY and DASHBOARD_URL
        assert project["complete"]
    assert writes(e2e) == {}
    # KV: the installation read, then the reconcile's reads: one load pipeline (the token is
    # in it) and one closing pipeline (still installed? still pending?); the only write is
    # the "last synced" stamp a resync that was asked for leaves (one read pipeline and
    # one guarded script: lib.provisioning.history).
    stats = e2e.kv.gateway.stats()
    assert stats["by_path"] == {"/": 2, "/pipeline": 3}, stats
    assert stats["commands"] == 9, stats


def test_user_var_is_reported_in_the_summary_and_drift_never_clobbered(
    e2e: E2E, client: httpx.Client
) -> None:
    e2e.emulator.add_user_env(
        "web", "ACME_DASHBOARD_URL", "https://mine.example", target=["production"]
    )
    cfg = installed(e2e)
    data = resync(client, {"configurationId": cfg})
    web = next(p for p in data["installations"][0]["projects"] if p["name"] == "web")
    assert web["conflicts"] == [
        {"key": "ACME_DASHBOARD_URL", "targets": ["production"], "gitBranch": None,
         "owner": "hidden"}
    ]  # fmt: skip
    user = [
        e for p in e2e.emulator.state()["projects"] for e in p["env"] if not e["configurationId"]
    ]
    assert [(e["key"], e["value"], e["target"]) for e in user] == [
        ("ACME_DASHBOARD_URL", "https://mine.example", ["production"])
    ]
    # preview and development still got ours
    mine = [e for e in ours(e2e, cfg)["web"] if e["key"] == "ACME_DASHBOARD_URL"]
    assert sorted(sorted(e["target"]) for e in mine) == [["development"], ["preview"]]
    response = client.get("/provision", params={"configurationId": cfg}, headers=ADMIN)
    assert response.status_code == 200
    rows = {r["name"]: r for r in response.json()["drift"]["projects"]}
    assert rows["web"]["conflicts"] == [
        {"key": "ACME_DASHBOARD_URL", "targets": ["production"], "gitBranch": None,
         "owner": "hidden"}
    ]  # fmt: skip
    assert rows["web"]["inSync"] is False  # issue 13: a conflict is never "in sync"
    assert response.json()["drift"]["inSync"] is False
    assert all(r["inSync"] for name, r in rows.items() if name != "web")


def test_status_and_drift_show_keys_and_targets_never_values(
    e2e: E2E, client: httpx.Client
) -> None:
    cfg = installed(e2e)
    # Drift: the user deleted one of our vars on "api".
    victim = next(e for e in ours(e2e, cfg)["api"] if e["key"] == "ACME_PROJECT_ID")
    e2e.emulator.remove_env(victim["id"])
    secrets = all_values(e2e, cfg)
    assert secrets
    e2e.emulator.reset_calls()
    response = client.get("/provision", params={"configurationId": cfg}, headers=ADMIN)
    assert response.status_code == 200
    assert not any(value in response.text for value in secrets)
    body = response.json()
    installation = body["installation"]
    assert installation["configurationId"] == cfg
    assert installation["status"] == "active"
    assert installation["pending"] is False
    assert "sealed_token" not in response.text
    rows = {r["name"]: r for r in body["drift"]["projects"]}
    assert set(rows) == {"web", "api", "docs", "dashboard", "marketing-site"}
    assert rows["api"]["inSync"] is False
    assert body["drift"]["inSync"] is False
    assert rows["api"]["missing"] == [
        {"key": "ACME_PROJECT_ID", "targets": ["production", "preview"]}
    ]
    assert all(rows[n]["inSync"] for n in rows if n != "api")
    assert sorted(rows["web"]["ok"]) == sorted(
        ["ACME_API_KEY", "ACME_API_KEY", "ACME_DASHBOARD_URL", *SHIPPED_KEYS - {"ACME_API_KEY"}]
    )
    assert writes(e2e) == {}  # drift is a dry run
    # A resync repairs it; the summary says so without values either.
    data = resync(client, {"configurationId": cfg})
    assert not any(value in json.dumps(data) for value in secrets)
    api = next(p for p in data["installations"][0]["projects"] if p["name"] == "api")
    assert api["created"] == ["ACME_PROJECT_ID"]


def test_resync_all_and_rotation(e2e: E2E, client: httpx.Client) -> None:
    team, personal = installed(e2e, "acme"), installed(e2e, "dev-user")
    data = resync(client, {"all": True})
    assert sorted(i["configurationId"] for i in data["installations"]) == sorted([team, personal])
    assert all(i["outcome"] == "done" for i in data["installations"])

    old = e2e.services().store.get_secrets(team)["api_key"]
    e2e.emulator.reset_calls()
    data = resync(client, {"configurationId": team, "rotateSecrets": ["api_key"]})
    new = e2e.services().store.get_secrets(team)["api_key"]
    assert new != old
    assert new not in json.dumps(data)
    assert old not in json.dumps(data)
    for project in data["installations"][0]["projects"]:
        assert project["updated"] == ["ACME_API_KEY", "ACME_API_KEY"]
    keys = [e for envs in ours(e2e, team).values() for e in envs if e["key"] == "ACME_API_KEY"]
    assert len(keys) == 10
    assert {e["value"] for e in keys} == {new}
    assert writes(e2e) == {"PATCH /v9/projects/{idOrName}/env/{id}": 10}
    # The personal installation kept its own secret.
    assert e2e.services().store.get_secrets(personal)["api_key"] not in {old, new}


def test_spec_change_deletes_our_removed_var_everywhere_and_keeps_user_vars(
    e2e: E2E, client: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = installed(e2e)
    e2e.emulator.add_user_env("docs", "MY_OWN", "keep me")
    shipped = (ROOT / "integration.toml").read_text()
    removed = shipped[: shipped.index('[[env]]\nkey = "ACME_PROJECT_ID"')]
    spec = tmp_path / "integration.toml"
    spec.write_text(removed)
    monkeypatch.setenv("INTEGRATION_SPEC_PATH", str(spec))
    reset_services()
    data = resync(client, {"configurationId": cfg})
    for project in data["installations"][0]["projects"]:
        assert project["deleted"] == 1
        assert project["created"] == []
    for envs in ours(e2e, cfg).values():
        assert {e["key"] for e in envs} == {"ACME_API_KEY", "ACME_DASHBOARD_URL"}
    docs = next(p for p in e2e.emulator.state()["projects"] if p["name"] == "docs")
    assert [(e["key"], e["value"]) for e in docs["env"] if not e["configurationId"]] == [
        ("MY_OWN", "keep me")
    ]


def test_sweep_resumes_pending_installations(e2e: E2E, client: httpx.Client) -> None:
    cfg = e2e.install("acme", "all")["configurationId"]
    services = e2e.services()
    # A run that ran out of time at once: nothing done, the marker left.
    services.provisioner.reconcile(cfg, Deadline(0))
    assert services.store.pending() == [cfg]
    victim = next(iter(ours(e2e, cfg)["web"]))
    e2e.emulator.remove_env(victim["id"])
    response = client.get("/provision", params={"sweep": "1"}, headers=CRON)
    assert response.status_code == 200, response.text
    [swept] = response.json()["swept"]
    assert (swept["configurationId"], swept["outcome"], swept["pending"]) == (cfg, "done", False)
    assert services.store.pending() == []
    assert len(ours(e2e, cfg)["web"]) == 5
    # Nothing pending: the next sweep does nothing at all on Vercel.
    e2e.emulator.reset_calls()
    response = client.get("/provision", params={"sweep": "1"}, headers=CRON)
    assert response.json() == {"swept": []}
    assert e2e.emulator.call_counts()["total"] == 0


def test_disabled_then_enabled_and_revoked_installations(e2e: E2E, client: httpx.Client) -> None:
    cfg = installed(e2e)
    e2e.emulator.disable_configuration(cfg)
    e2e.emulator.reset_calls()
    data = resync(client, {"configurationId": cfg})
    assert data["installations"][0]["outcome"] == "paused"
    assert e2e.emulator.call_counts()["total"] == 1
    shown = client.get("/provision", params={"configurationId": cfg}, headers=ADMIN).json()
    assert shown["installation"]["status"] == "paused"
    assert shown["installation"]["pending"]
    e2e.emulator.enable_configuration(cfg)
    swept = client.get("/provision", params={"sweep": "1"}, headers=CRON).json()["swept"]
    assert [s["outcome"] for s in swept] == ["done"]
    shown = client.get("/provision", params={"configurationId": cfg}, headers=ADMIN).json()
    assert shown["installation"]["status"] == "active"
    assert not shown["installation"]["pending"]

    store = e2e.services().store
    inst = store.get_installation(cfg)
    assert inst is not None
    store.save_installation(
        inst.model_copy(update={"sealed_token": store.seal_token(cfg, "revoked-token")})
    )
    data = resync(client, {"configurationId": cfg})
    assert data["installations"][0]["outcome"] == "broken"
    shown = client.get("/provision", params={"configurationId": cfg}, headers=ADMIN).json()
    assert shown["installation"]["status"] == "broken"
    assert "reinstall" in shown["installation"]["statusReason"]


@pytest.mark.parametrize(
    ("method", "params", "headers"),
    [
        ("POST", {}, {}),
        ("POST", {}, {"Authorization": "Bearer wrong"}),
        ("POST", {}, CRON),  # the cron secret is not an admin token
        ("GET", {"configurationId": "icfg_" + "x" * 24}, {}),
        (
            "GET",
            {"configurationId": "icfg_" + "x" * 24},
            {"Authorization": f"Basic {E2E_ADMIN_TOKEN}"},
        ),
        ("GET", {"sweep": "1"}, {}),
        ("GET", {"sweep": "1"}, ADMIN),  # nor the other way round
    ],
)
def test_wrong_or_missing_auth_is_401_without_detail(
    e2e: E2E, client: httpx.Client, method: str, params: dict[str, str], headers: dict[str, str]
) -> None:
    cfg = installed(e2e, "dev-user")
    e2e.emulator.reset_calls()
    response = client.request(
        method, "/provision", params=params, headers=headers, json={"configurationId": cfg}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Unauthorized" in response.text
    assert cfg not in response.text
    assert e2e.emulator.call_counts()["total"] == 0


def test_unknown_configuration_is_404(e2e: E2E, client: httpx.Client) -> None:
    response = client.post(
        "/provision", json={"configurationId": "icfg_" + "nope" * 6}, headers=ADMIN
    )
    assert response.status_code == 404
    response = client.get(
        "/provision", params={"configurationId": "icfg_" + "nope" * 6}, headers=ADMIN
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"configurationId": "not-a-config"}, "configurationId must look like icfg_"),
        ({}, "configurationId must look like icfg_"),
        ({"configurationId": "icfg_" + "x" * 24, "colour": 1}, "Unknown field(s): colour"),
        ({"all": False}, "all must be true"),
        ({"all": True, "configurationId": "icfg_" + "x" * 24}, "cannot be combined"),
        ({"configurationId": "icfg_" + "x" * 24, "rotateSecrets": "yes"}, "rotateSecrets must be"),
        ({"configurationId": "icfg_" + "x" * 24, "rotateSecrets": []}, "rotateSecrets must be"),
        (
            {"configurationId": "icfg_" + "x" * 24, "recheckConflicts": "yes"},
            "recheckConflicts must be",
        ),
        ([1, 2], "Body must be a JSON object"),
    ],
)
def test_bad_parameters_are_400_with_a_clear_message(
    e2e: E2E, client: httpx.Client, body: Any, message: str
) -> None:
    response = client.post("/provision", json=body, headers=ADMIN)
    assert response.status_code == 400
    assert message in response.text


def test_bad_query_and_body_are_400(e2e: E2E, client: httpx.Client) -> None:
    cfg = installed(e2e, "dev-user")
    cases = [
        client.get("/provision", headers=ADMIN),
        client.get("/provision", params={"configurationId": "x"}, headers=ADMIN),
        client.get("/provision", params={"sweep": "yes"}, headers=CRON),
        client.post("/provision", content=b"{not json", headers=ADMIN),
        client.post(
            "/provision", json={"configurationId": cfg, "rotateSecrets": ["nope"]}, headers=ADMIN
        ),
    ]
    assert [r.status_code for r in cases] == [400] * 5
    assert "unknown secret(s): nope" in cases[-1].text
    assert client.put("/provision", headers=ADMIN).status_code == 405


def test_recheck_conflicts_retries_the_blocked_write(e2e: E2E, client: httpx.Client) -> None:
    user = e2e.emulator.add_user_env("web", "ACME_PROJECT_ID", "mine", target=["preview"])
    cfg = installed(e2e)
    e2e.emulator.remove_env(user["env"]["id"])  # the user removed their var
    e2e.emulator.reset_calls()
    resync(client, {"configurationId": cfg})
    assert writes(e2e) == {}  # remembered as taken: no write tried again right away
    data = resync(client, {"configurationId": cfg, "recheckConflicts": True})
    web = next(p for p in data["installations"][0]["projects"] if p["name"] == "web")
    assert web["conflicts"] == []
    assert web["updated"] == ["ACME_PROJECT_ID"]
    mine = [e for e in ours(e2e, cfg)["web"] if e["key"] == "ACME_PROJECT_ID"]
    assert [sorted(e["target"]) for e in mine] == [["preview", "production"]]


def test_storage_down_is_503_with_retry_after(e2e: E2E, client: httpx.Client) -> None:
    cfg = installed(e2e, "dev-user")
    e2e.kv.gateway.set_faults(error_rate=1.0)
    try:
        response = client.post("/provision", json={"configurationId": cfg}, headers=ADMIN)
    finally:
        e2e.kv.gateway.clear_faults()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "10"


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_a_deeply_nested_body_is_a_400_not_a_500(
    e2e: E2E, client: httpx.Client, opener: str
) -> None:
    """Issue 11, invariant 8: bad input from the operator is a 400, as on /webhook."""
    body = opener * 100_000
    got = client.post("/provision", content=body, headers=ADMIN)
    assert got.status_code == 400, got.text[:200]
    assert "JSON" in got.json()["error"]["message"]


# -- issue 13: last synced / rotated, one naming style, JSON errors, a paged list ----------


def test_status_says_when_it_was_last_synced_and_rotated(e2e: E2E, client: httpx.Client) -> None:
    cfg = installed(e2e)  # the install's reconcile wrote everything: a sync
    shown = client.get("/provision", params={"configurationId": cfg}, headers=ADMIN).json()
    first = shown["installation"]["lastSyncedAt"]
    assert first is not None
    assert shown["installation"]["lastRotatedAt"] is None
    resync(client, {"configurationId": cfg})  # asked for, wrote nothing: still a sync
    shown = client.get("/provision", params={"configurationId": cfg}, headers=ADMIN).json()
    assert shown["installation"]["lastSyncedAt"] > first
    before = shown["installation"]["lastSyncedAt"]
    resync(client, {"configurationId": cfg, "rotateSecrets": True})
    shown = client.get("/provision", params={"configurationId": cfg}, headers=ADMIN).json()
    assert shown["installation"]["lastRotatedAt"] >= before
    assert shown["installation"]["lastSyncedAt"] >= shown["installation"]["lastRotatedAt"]


def test_every_field_is_camel_case_and_project_id_keeps_its_old_name(
    e2e: E2E, client: httpx.Client
) -> None:
    cfg = installed(e2e)
    answers = [
        resync(client, {"configurationId": cfg}),
        client.get("/provision", params={"configurationId": cfg}, headers=ADMIN).json(),
        client.get("/provision", params={"installations": "1"}, headers=ADMIN).json(),
    ]
    allowed = {"project_id"}  # kept beside projectId: the interface only grows

    def keys(value: Any) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        if isinstance(value, list):
            return {k for v in value for k in keys(v)}
        return set()

    found = set().union(*(keys(a) for a in answers))
    assert {k for k in found if "_" in k} == allowed
    for project in answers[0]["installations"][0]["projects"]:
        assert project["projectId"] == project["project_id"]


@pytest.mark.parametrize(
    ("params", "headers", "status"),
    [
        ({"configurationId": "icfg_" + "x" * 24}, {}, 401),
        ({}, ADMIN, 400),
        ({"configurationId": "icfg_" + "nope" * 6}, ADMIN, 404),
        ({"installations": "1", "limit": "0"}, ADMIN, 400),
    ],
)
def test_errors_are_json_whatever_the_client_accepts(
    e2e: E2E, client: httpx.Client, params: dict[str, str], headers: dict[str, str], status: int
) -> None:
    got = client.get("/provision", params=params, headers={**headers, "Accept": "*/*"})
    assert got.status_code == status
    assert got.headers["content-type"].startswith("application/json")
    assert got.json()["error"]["status"] == status


def test_installations_are_listed_a_page_at_a_time(e2e: E2E, client: httpx.Client) -> None:
    cfgs = sorted(installed(e2e, scope) for scope in ("acme", "dev-user"))
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params = {"installations": "1", "limit": "1", **({"cursor": cursor} if cursor else {})}
        got = client.get("/provision", params=params, headers=ADMIN)
        assert got.status_code == 200, got.text
        page = got.json()
        assert len(page["installations"]) == 1
        assert page["total"] == 2
        seen += [i["configurationId"] for i in page["installations"]]
        for item in page["installations"]:
            assert {"status", "pending", "lastSyncedAt", "lastRotatedAt"} <= set(item)
            assert "sealed" not in json.dumps(item)
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == cfgs  # each once, in order, and the last page says so


def test_installations_are_listed_by_owner(e2e: E2E, client: httpx.Client) -> None:
    team, personal = installed(e2e, "acme"), installed(e2e, "dev-user")
    everyone = client.get("/provision", params={"installations": "1"}, headers=ADMIN).json()
    owners = {i["configurationId"]: i["ownerId"] for i in everyone["installations"]}
    for cfg, other in ((team, personal), (personal, team)):
        params = {"installations": "1", "owner": owners[cfg]}
        page = client.get("/provision", params=params, headers=ADMIN).json()
        assert [i["configurationId"] for i in page["installations"]] == [cfg]
        assert (page["total"], page["nextCursor"]) == (1, None)
        assert other not in json.dumps(page)
    params = {"installations": "1", "owner": "team_nobody"}
    nobody = client.get("/provision", params=params, headers=ADMIN).json()
    assert nobody == {"installations": [], "nextCursor": None, "total": 0}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"installations": "1", "owner": "team/../x"}, "owner must be a team or user id"),
        ({"installations": "yes"}, "installations must be 1"),
        ({"installations": "1", "limit": "201"}, "limit must be a whole number from 1 to 200"),
        ({"installations": "1", "limit": "-1"}, "limit must be"),
        ({"installations": "1", "cursor": "x"}, "cursor must be"),
    ],
)
def test_bad_paging_is_400(
    e2e: E2E, client: httpx.Client, params: dict[str, str], message: str
) -> None:
    got = client.get("/provision", params=params, headers=ADMIN)
    assert got.status_code == 400
    assert message in got.json()["error"]["message"]


def test_the_list_needs_the_admin_token(e2e: E2E, client: httpx.Client) -> None:
    assert client.get("/provision", params={"installations": "1"}).status_code == 401
    got = client.get("/provision", params={"installations": "1"}, headers=CRON)
    assert got.status_code == 401


def test_operator_actions_are_audit_lines_with_the_configuration_on_every_line(
    e2e: E2E, client: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = installed(e2e)
    capsys.readouterr()
    resync(client, {"configurationId": cfg})
    resync(client, {"configurationId": cfg, "rotateSecrets": True})
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    audit = [(x["event"], x["configuration_id"]) for x in lines if x["msg"].startswith("audit:")]
    assert audit == [("resync", cfg), ("rotation", cfg)]
    provision = [x for x in lines if x.get("path") == "/provision"]
    assert provision
    assert {x["configuration_id"] for x in provision} == {cfg}  # the request line too
    assert all(x["request_id"].startswith("dev1::") for x in provision)
