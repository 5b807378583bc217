"""The Vercel client against the emulator, over real HTTP on 127.0.0.1.

The unit tests pin each rule with scripted answers; these prove the client and the
emulator agree on the wire (endpoints, shapes, teamId, errors) and that under the
emulator's injected faults retries happen, stop at the deadline and never repeat an
unsafe request. Waits go through an injected sleep that advances the emulator's clock
(rate-limit buckets refill on it) instead of sleeping for real.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from dev.emulator import Emulator, EmulatorConfig, create_app
from dev.serve import RunningServer, start
from lib.deadline import Deadline
from lib.vercel.client import VercelClient
from lib.vercel.errors import (
    ConfigurationDisabled,
    DeadlineExceeded,
    EnvConflict,
    Forbidden,
    InvalidClient,
    InvalidCode,
    MissingScope,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    VercelUnavailable,
)
from lib.vercel.models import (
    EnvPatch,
    EnvSpec,
    OAuthToken,
    PermissionMissing,
    Team,
    TeamMember,
)
from lib.vercel.oauth import exchange_code
from lib.vercel.transport import RetryPolicy

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never visited: codes come from the control API
CONTROL_TIMEOUT = httpx.Timeout(10.0)


@dataclass
class Sleeper:
    """The client's sleep: records each wait and moves the emulator's clock by it."""

    control: httpx.Client
    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.control.post("/_emulator/clock/advance", json={"seconds": seconds}).raise_for_status()


@dataclass
class World:
    emulator: Emulator
    server: RunningServer
    control: httpx.Client
    sleeper: Sleeper
    baseline: dict[str, Any]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def config(self) -> EmulatorConfig:
        return self.emulator.config

    def policy(self, max_attempts: int = 4) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=max_attempts, backoff=0.01, max_backoff=0.05, sleep=self.sleeper
        )

    def post(self, path: str, body: Any = None, *, method: str = "POST") -> Any:
        response = self.control.request(method, "/_emulator" + path, json=body or {})
        response.raise_for_status()
        return response.json()

    def faults(self, *rules: dict[str, Any], seed: int = 0) -> None:
        self.post("/faults", {"rules": list(rules), "seed": seed}, method="PUT")

    def calls(self, route: str, *, settle: float = 0.0) -> int:
        """Calls of `route` so far; `settle` waits for one parked in an injected timeout
        (the emulator counts a call when it ends)."""
        give_up = time.monotonic() + settle
        while True:
            routes = self.control.get("/_emulator/calls").json()["routes"]
            count = int(routes.get(route, {}).get("count", 0))
            if count or time.monotonic() >= give_up:
                return count
            time.sleep(0.05)

    def code(self, scope: str = "acme", **body: Any) -> dict[str, Any]:
        return dict(self.post("/oauth/code", {"scope": scope, "redirectUri": REDIRECT_URI, **body}))

    def exchange(self, code: str, seconds: float = 10.0, **overrides: Any) -> OAuthToken:
        args: dict[str, Any] = {
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "redirect_uri": REDIRECT_URI,
            "base_url": self.url,
            "deadline": Deadline(seconds),
            "retry": self.policy(),
            **overrides,
        }
        return exchange_code(code, **args)

    def install(self, scope: str = "acme", **body: Any) -> tuple[OAuthToken, VercelClient]:
        token = self.exchange(self.code(scope, **body)["code"])
        return token, self.client(token)

    def client(
        self, token: OAuthToken, seconds: float = 10.0, team_id: str | None = "same"
    ) -> VercelClient:
        return VercelClient(
            token.access_token.get_secret_value(),
            team_id=token.team_id if team_id == "same" else team_id,
            base_url=self.url,
            deadline=Deadline(seconds),
            retry=self.policy(),
        )


@pytest.fixture(scope="module")
def _world() -> Iterator[World]:
    emulator = create_app(EmulatorConfig(redirect_uri=REDIRECT_URI, time_scale=0.001))
    server = start(emulator)
    emulator.configure(public_url=server.url)
    control = httpx.Client(base_url=server.url, timeout=CONTROL_TIMEOUT, trust_env=False)
    world = World(emulator, server, control, Sleeper(control), emulator.config.public())
    yield world
    emulator.reset()  # wakes calls parked in an injected timeout before the server stops
    control.close()
    server.stop()
    emulator.close()


@pytest.fixture
def world(_world: World) -> Iterator[World]:
    _world.emulator.reset()
    _world.sleeper.waits.clear()
    yield _world
    _world.emulator.reset()
    _world.emulator.configure(**_world.baseline)


def state(world: World) -> dict[str, Any]:
    return dict(world.control.get("/_emulator/state").json())


def seeded_projects(world: World, owner: str) -> set[str]:
    return {p["id"] for p in state(world)["projects"] if p["accountId"] == owner}


# --------------------------------------------------------------------------- happy paths


def test_team_install_end_to_end(world: World) -> None:
    minted = world.code("acme")
    token = world.exchange(minted["code"])
    assert token.installation_id == minted["configurationId"]
    assert token.team_id == minted["teamId"]
    assert token.team_id is not None

    world.emulator.configure(projects_page_size=2)
    client = world.client(token)
    projects = client.list_projects()
    assert {p.id for p in projects} == seeded_projects(world, token.team_id)
    assert len(projects) == 5
    assert world.calls("GET /v10/projects") == 1  # limit=100 fits one page

    config = client.get_configuration(token.installation_id)
    assert config.id == token.installation_id
    assert config.all_projects
    assert token.installation_id in {c.id for c in client.list_configurations()}


def test_pagination_over_real_http(world: World) -> None:
    _, client = world.install("acme")
    world.emulator.configure(projects_page_size=2, projects_max_limit=2)
    assert len(client.list_projects()) == 5
    assert world.calls("GET /v10/projects") == 3


def test_personal_install_sends_no_team_id(world: World) -> None:
    user = state(world)["user"]
    token, client = world.install(user["slug"])
    assert token.team_id is None
    assert {p.id for p in client.list_projects()} == seeded_projects(world, user["id"])


def test_env_lifecycle(world: World) -> None:
    token, client = world.install("acme")
    project = client.list_projects()[0]

    created = client.create_env(
        project.name,
        EnvSpec(key="API_URL", value="https://x.test", type="encrypted", target="production"),
    )
    (var,) = created.created
    assert created.failed == []
    assert var.configuration_id == token.installation_id
    assert var.id is not None

    listed = client.list_env(project.id)
    assert [e.key for e in listed.envs] == ["API_URL"]
    assert listed.envs[0].value != "https://x.test"  # encrypted values are not returned in lists

    assert client.get_env_decrypted(project.id, var.id).value == "https://x.test"
    edited = client.edit_env(
        project.id, var.id, EnvPatch(value="https://y.test", target=["production", "preview"])
    )
    assert edited is not None
    assert sorted(edited.target) == ["preview", "production"]
    assert client.get_env_decrypted(project.id, var.id).value == "https://y.test"

    client.delete_env(project.id, var.id)
    assert client.list_env(project.id).envs == []
    with pytest.raises(NotFound):
        client.delete_env(project.id, var.id)


def test_batch_create_with_a_conflict_is_a_partial_success(world: World) -> None:
    _, client = world.install("acme")
    project = client.list_projects()[0].id
    client.create_env(project, EnvSpec(key="A", value="1", type="plain", target=["production"]))

    result = client.create_env(
        project,
        [
            EnvSpec(key="A", value="2", type="plain", target=["production"]),
            EnvSpec(key="B", value="3", type="plain", target=["preview"], git_branch="feat"),
        ],
    )
    assert [e.key for e in result.created] == ["B"]
    (failure,) = result.failed
    assert failure.is_conflict
    assert (failure.key, failure.target) == ("A", ["production"])


@pytest.mark.parametrize(("status", "code"), [(400, "ENV_CONFLICT"), (403, "ENV_ALREADY_EXISTS")])
def test_single_create_conflict_in_each_variant(world: World, status: int, code: str) -> None:
    world.emulator.configure(env_conflict_status=status, env_conflict_code=code)
    _, client = world.install("acme")
    project = client.list_projects()[0].id
    spec = EnvSpec(key="DUP", value="1", type="plain", target=["production", "preview"])
    client.create_env(project, spec)
    with pytest.raises(EnvConflict) as caught:
        client.create_env(project, spec)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.key == "DUP"
    assert set(caught.value.target) >= {"production"}


def test_upsert_with_the_same_targets_updates_in_place(world: World) -> None:
    _, client = world.install("acme")
    project = client.list_projects()[0].id
    spec = EnvSpec(key="U", value="1", type="encrypted", target=["production"])
    first = client.create_env(project, spec).created[0]
    again = client.create_env(project, [spec.model_copy(update={"value": "2"})], upsert=True)
    assert again.failed == []
    assert first.id is not None
    assert client.get_env_decrypted(project, first.id).value == "2"


# --------------------------------------------------------------------------- the code exchange


@pytest.mark.parametrize("style", ["oauth", "vercel"])
def test_exchange_errors_in_both_styles(world: World, style: str) -> None:
    world.emulator.configure(oauth_error_style=style)
    code = world.code()["code"]
    with pytest.raises(InvalidClient):
        world.exchange(code, client_secret="wrong")
    with pytest.raises(InvalidCode):
        world.exchange(code, redirect_uri="http://127.0.0.1:9/elsewhere")
    world.exchange(code)
    with pytest.raises(InvalidCode):
        world.exchange(code)  # single use
    with pytest.raises(InvalidCode):
        world.exchange("not-a-code")


def test_expired_code(world: World) -> None:
    code = world.code()["code"]
    world.post("/clock/advance", {"seconds": 31 * 60})
    with pytest.raises(InvalidCode):
        world.exchange(code)


def test_exchange_is_not_repeated_when_the_answer_is_lost(world: World) -> None:
    """The emulator spends the code, then drops the answer: a retry could only fail."""
    code = world.code()["code"]
    world.faults(
        {
            "route": "POST /v2/oauth/access_token",
            "probability": 1,
            "kinds": ["502"],
            "when": "after",
        }
    )
    with pytest.raises(ServerError):
        world.exchange(code)
    assert world.calls("POST /v2/oauth/access_token") == 1
    world.faults()
    with pytest.raises(InvalidCode):
        world.exchange(code)


def test_exchange_retries_a_refused_connection() -> None:
    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    waits: list[float] = []
    with pytest.raises(VercelUnavailable) as caught:
        exchange_code(
            "code",
            client_id="c",
            client_secret="s",
            redirect_uri=REDIRECT_URI,
            base_url=f"http://127.0.0.1:{port}",
            deadline=Deadline(5),
            retry=RetryPolicy(max_attempts=3, backoff=0.01, sleep=waits.append),
        )
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(waits) == 2  # three attempts: nothing was ever sent


# --------------------------------------------------------------------------- auth and scoping


def test_team_token_without_team_id_is_a_scope_error(world: World) -> None:
    token, _ = world.install("acme")
    with pytest.raises(MissingScope) as caught:
        world.client(token, team_id=None).list_projects()
    assert caught.value.status == 403


def test_disabled_configuration(world: World) -> None:
    token, client = world.install("acme")
    world.post(f"/configurations/{token.installation_id}/disable")
    with pytest.raises(ConfigurationDisabled):
        client.list_projects()
    world.post(f"/configurations/{token.installation_id}/enable")
    assert client.list_projects()


@pytest.mark.parametrize("status", [401, 403])
def test_deleted_configuration_token_is_unauthorized(world: World, status: int) -> None:
    world.emulator.configure(invalid_token_status=status)
    token, client = world.install("acme")
    world.post(f"/configurations/{token.installation_id}", method="DELETE")  # the owner's
    with pytest.raises(Unauthorized) as caught:
        client.list_projects()
    assert caught.value.status == status


def test_removed_scope_is_a_missing_scope(world: World) -> None:
    token, client = world.install("acme")
    world.post(
        f"/configurations/{token.installation_id}/scopes/remove",
        {"scopes": ["read-write:project-env-vars"]},
    )
    project = client.list_projects()[0].id
    with pytest.raises(MissingScope):
        client.list_env(project)


def test_selected_projects_only(world: World) -> None:
    (team,) = (t["id"] for t in state(world)["teams"] if t["slug"] == "acme")
    allowed, *others = sorted(seeded_projects(world, team))
    _, client = world.install("acme", projectSelection="selected", projects=[allowed])
    assert [p.id for p in client.list_projects()] == [allowed]
    with pytest.raises(Forbidden) as caught:
        client.list_env(others[0])
    assert type(caught.value) is Forbidden
    with pytest.raises(NotFound):
        client.get_project("no-such-project")


# --------------------------------------------------------------------------- faults


def test_reads_retry_through_injected_faults(world: World) -> None:
    _, client = world.install("acme")
    world.faults(
        {"route": "GET /v10/projects", "probability": 0.6, "kinds": ["500", "502", "503", "reset"]},
        seed=7,
    )
    for _ in range(5):
        assert len(client.list_projects()) == 5
    assert world.calls("GET /v10/projects") > 5  # some calls failed and were retried
    assert world.sleeper.waits


def test_reads_give_up_after_max_attempts(world: World) -> None:
    _, client = world.install("acme")
    world.faults({"route": "GET /v10/projects", "probability": 1, "kinds": ["503"]})
    with pytest.raises(ServerError):
        client.list_projects()
    assert world.calls("GET /v10/projects") == 4


@pytest.mark.parametrize("kind", ["502", "reset", "timeout"])
def test_env_create_is_not_repeated_after_a_lost_answer(world: World, kind: str) -> None:
    """The var is created, then the answer is lost: repeating would conflict."""
    _, client = world.install("acme")
    project = client.list_projects()[0].id
    world.faults(
        {
            "route": "POST /v10/projects/*/env",
            "probability": 1,
            "kinds": [kind],
            "when": "after",
            "timeoutS": 1.5,
        }
    )
    started = time.monotonic()
    with pytest.raises((ServerError, VercelUnavailable, DeadlineExceeded)):
        client.with_deadline(Deadline(1.0)).create_env(
            project, [EnvSpec(key="ONCE", value="v", type="plain", target=["preview"])]
        )
    # Not retried: one 1 s attempt, not the four a retry policy would allow.
    assert time.monotonic() - started < 5
    assert world.calls("POST /v10/projects/{idOrName}/env", settle=3.0) == 1
    world.faults()
    assert [e.key for e in client.list_env(project).envs] == ["ONCE"]


def test_env_create_waits_out_a_rate_limit(world: World) -> None:
    _, client = world.install("acme")
    project = client.list_projects()[0].id
    world.post(
        "/rate-limits",
        {"rules": [{"route": "POST /v10/projects/*/env", "capacity": 1, "windowS": 10}]},
        method="PUT",
    )
    client.create_env(project, EnvSpec(key="A", value="1", type="plain", target=["preview"]))
    result = client.with_deadline(Deadline(60)).create_env(
        project, EnvSpec(key="B", value="1", type="plain", target=["preview"])
    )
    assert [e.key for e in result.created] == ["B"]
    assert world.calls("POST /v10/projects/{idOrName}/env") == 3
    (wait,) = world.sleeper.waits
    assert 10.0 <= wait <= 10.1  # Retry-After: the bucket refills one call in 10 s


def test_rate_limit_longer_than_the_deadline_fails_fast(world: World) -> None:
    _, client = world.install("acme")
    world.post(
        "/rate-limits",
        {"rules": [{"route": "GET /v10/projects", "capacity": 1, "windowS": 60}]},
        method="PUT",
    )
    client.list_projects()
    with pytest.raises(DeadlineExceeded) as caught:
        client.with_deadline(Deadline(5)).list_projects()
    assert isinstance(caught.value.last_error, RateLimited)
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 5
    assert world.sleeper.waits == []


def test_latency_beyond_the_deadline(world: World) -> None:
    _, client = world.install("acme")
    world.post("/latency", {"ms": 20_000}, method="PUT")
    started = time.monotonic()
    with pytest.raises((DeadlineExceeded, VercelUnavailable)):
        client.with_deadline(Deadline(0.5)).list_projects()
    assert time.monotonic() - started < 10  # the 0.5 s deadline, not the 20 s latency


# --------------------------------------------------------------------------- Vercel's variants
# Each of the emulator's variants for Vercel's undocumented or newly observed behaviour
# (vercel-reality.md), switched as `PATCH /_emulator/config` would, and the client right
# under every one.


def team_of(world: World, slug: str = "acme") -> dict[str, Any]:
    (team,) = (t for t in state(world)["teams"] if t["slug"] == slug)
    return dict(team)


def remove_scopes(world: World, configuration_id: str, *scopes: str) -> None:
    world.post(f"/configurations/{configuration_id}/scopes/remove", {"scopes": list(scopes)})


@pytest.mark.parametrize("style", ["vercel", "descriptive"])
def test_missing_permission_in_each_wording_is_a_missing_scope(world: World, style: str) -> None:
    world.emulator.configure(permission_error_style=style)
    token, client = world.install("acme")
    project = client.list_projects()[0].id
    remove_scopes(world, token.installation_id, "read-write:project-env-vars")
    calls: list[Callable[[], object]] = [
        lambda: client.list_env(project),
        lambda: client.create_env(
            project, [EnvSpec(key="K", value="v", type="plain", target="preview")]
        ),
        lambda: client.create_env(
            project, EnvSpec(key="K", value="v", type="plain", target="preview")
        ),
    ]
    for call in calls:
        with pytest.raises(MissingScope) as caught:
            call()
        assert (caught.value.status, caught.value.code) == (403, "forbidden")
    remove_scopes(world, token.installation_id, "read:project")
    with pytest.raises(MissingScope):
        client.list_projects()


@pytest.mark.parametrize("style", ["vercel", "descriptive"])
def test_a_project_outside_the_selection_is_not_a_missing_permission(
    world: World, style: str
) -> None:
    """Project-level, so the product reports that project and carries on with the others."""
    world.emulator.configure(permission_error_style=style)
    (team,) = (t["id"] for t in state(world)["teams"] if t["slug"] == "acme")
    allowed, other, *_ = sorted(seeded_projects(world, team))
    _, client = world.install("acme", projectSelection="selected", projects=[allowed])
    for call in (
        lambda: client.list_env(other),
        lambda: client.get_project(other),
        lambda: client.list_custom_environments(other),
        lambda: client.create_env(
            other, [EnvSpec(key="K", value="v", type="plain", target="preview")]
        ),
    ):
        with pytest.raises(Forbidden) as caught:
            call()
        assert type(caught.value) is Forbidden
    assert client.list_env(allowed).envs == []


@pytest.mark.parametrize("all_failed", ["created", "error"])
@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "ENV_CONFLICT"), (403, "ENV_ALREADY_EXISTS"), (400, "EXISTING_KEY_AND_TARGET")],
)
def test_a_batch_whose_every_item_fails_is_a_result(
    world: World, all_failed: str, status: int, code: str
) -> None:
    world.emulator.configure(
        env_all_failed=all_failed, env_conflict_status=status, env_conflict_code=code
    )
    _, client = world.install("acme")
    project = client.list_projects()[0].id
    first = [
        EnvSpec(key="A", value="1", type="plain", target=["production"]),
        EnvSpec(key="B", value="2", type="encrypted", target=["preview"], git_branch="feat"),
    ]
    assert len(client.create_env(project, first).created) == 2
    world.emulator.reset_calls()
    again = [s.model_copy(update={"value": "3"}) for s in first]
    result = client.create_env(project, again)
    assert result.created == []
    assert result.nothing_created
    assert result.error_status == (None if all_failed == "created" else status)
    assert [(f.key, f.code, f.is_conflict) for f in result.failed] == [
        ("A", code, True),
        ("B", code, True),
    ]
    assert result.failed[0].target == ["production"]
    assert result.failed[1].git_branch == "feat"
    assert world.calls("POST /v10/projects/{idOrName}/env") == 1
    # A mix still answers 201 in both variants: one created, one failed.
    mixed = client.create_env(
        project, [again[0], EnvSpec(key="C", value="4", type="plain", target=["preview"])]
    )
    assert [e.key for e in mixed.created] == ["C"]
    assert [f.key for f in mixed.failed] == ["A"]
    assert mixed.error_status is None


@pytest.mark.parametrize("all_failed", ["created", "error"])
def test_a_batch_failing_for_another_reason_is_a_result_too(world: World, all_failed: str) -> None:
    world.emulator.configure(env_all_failed=all_failed)
    _, client = world.install("acme")
    project = client.list_projects()[0].id
    unknown = EnvSpec.model_validate(
        {"key": "K", "value": "v", "type": "plain", "customEnvironmentIds": ["env_nope"]}
    )
    result = client.create_env(project, [unknown])
    assert result.created == []
    (failure,) = result.failed
    assert not failure.is_conflict
    assert failure.code == "bad_request"
    assert result.error_status == (None if all_failed == "created" else 400)


@pytest.mark.parametrize("paging", ["timestamp", "token"])
def test_projects_paging_in_each_shape(world: World, paging: str) -> None:
    world.emulator.configure(projects_pagination=paging, projects_page_size=2, projects_max_limit=2)
    token, client = world.install("acme")
    assert token.team_id is not None
    for i in range(3):  # 8 projects: four pages of two
        world.emulator.create_project("acme", f"extra-{i}")
    world.emulator.reset_calls()
    projects = client.list_projects()
    assert {p.id for p in projects} == seeded_projects(world, token.team_id)
    assert len(projects) == 8
    assert world.calls("GET /v10/projects") == 4


@pytest.mark.parametrize("key_rule", ["reject", "allow"])
def test_patching_a_sensitive_var_without_key(world: World, key_rule: str) -> None:
    world.emulator.configure(sensitive_patch_key=key_rule)
    _, client = world.install("acme")
    project = client.list_projects()[0].id
    (var,) = client.create_env(
        project, EnvSpec(key="S", value="1", type="sensitive", target=["production"])
    ).created
    assert var.id is not None
    assert var.type == "sensitive"
    # Every way a caller may phrase it: key in the patch, with or without the listed var.
    client.edit_env(project, var.id, EnvPatch(key="S", value="2", type="sensitive"))
    client.edit_env(project, var.id, EnvPatch(key="S", value="3"), current=var)
    edited = client.edit_env(project, var.id, {"value": "4", "comment": "rotated"}, current=var)
    assert edited is not None
    assert (edited.key, edited.type, edited.comment) == ("S", "sensitive", "rotated")
    # A plain var still gets its key: a rename is a PATCH of `key`.
    (plain,) = client.create_env(
        project, EnvSpec(key="P", value="1", type="plain", target=["preview"])
    ).created
    assert plain.id is not None
    renamed = client.edit_env(project, plain.id, EnvPatch(key="P2"), current=plain)
    assert renamed is not None
    assert renamed.key == "P2"


def test_the_emulator_does_refuse_key_on_a_sensitive_patch(world: World) -> None:
    """Proof the test above can fail: the same PATCH with `key`, sent by hand, is a 400."""
    world.emulator.configure(sensitive_patch_key="reject")
    token, client = world.install("acme")
    project = client.list_projects()[0].id
    (var,) = client.create_env(
        project, EnvSpec(key="S", value="1", type="sensitive", target=["production"])
    ).created
    answer = httpx.patch(
        f"{world.url}/v9/projects/{project}/env/{var.id}",
        params={"teamId": token.team_id or ""},
        json={"key": "S", "value": "2", "type": "sensitive"},
        headers={"Authorization": f"Bearer {token.access_token.get_secret_value()}"},
        timeout=CONTROL_TIMEOUT,
    )
    assert answer.status_code == 400


def test_custom_environments(world: World) -> None:
    _, client = world.install("acme")
    project = client.list_projects()[0]
    assert client.list_custom_environments(project.id) == []
    world.post(
        f"/projects/{project.id}/custom-environments", {"slug": "staging", "description": "QA"}
    )
    world.post(f"/projects/{project.id}/custom-environments", {"slug": "qa"})
    customs = {c.slug: c for c in client.list_custom_environments(project.name)}
    assert set(customs) == {"staging", "qa"}
    staging, qa = customs["staging"], customs["qa"]
    assert staging.description == "QA"
    assert staging.id != qa.id

    result = client.create_env(
        project.id,
        [
            EnvSpec.model_validate(
                {
                    "key": "STAGE",
                    "value": "v",
                    "type": "encrypted",
                    "customEnvironmentIds": [staging.id],
                    "comment": "for QA",
                }
            )
        ],
    )
    (var,) = result.created
    assert var.custom_environment_ids == [staging.id]
    assert var.comment == "for QA"
    assert var.id is not None
    edited = client.edit_env(
        project.id, var.id, EnvPatch(custom_environment_ids=[staging.id, qa.id])
    )
    assert edited is not None
    assert sorted(edited.custom_environment_ids) == sorted([staging.id, qa.id])
    (listed,) = client.list_env(project.id).envs
    assert sorted(listed.custom_environment_ids) == sorted([staging.id, qa.id])
    assert listed.comment == "for QA"


@pytest.mark.parametrize("policy", ["default", "on", "off"])
def test_get_team_and_its_policy(world: World, policy: str) -> None:
    token, client = world.install("acme")
    assert token.team_id is not None
    world.post("/teams/acme", {"sensitiveEnvironmentVariablePolicy": policy}, method="PATCH")
    team = client.get_team(token.team_id)
    assert isinstance(team, Team)
    assert (team.id, team.slug, team.name) == (token.team_id, "acme", team_of(world)["name"])
    assert team.sensitive_environment_variable_policy == policy
    assert team.enforces_sensitive_env is (policy == "on")


@pytest.mark.parametrize("style", ["vercel", "descriptive"])
def test_team_reads_without_team_read_are_permission_missing(world: World, style: str) -> None:
    world.emulator.configure(permission_error_style=style)
    token, client = world.install("acme")
    assert token.team_id is not None
    remove_scopes(world, token.installation_id, "read:team")
    for outcome in (
        client.get_team(token.team_id),
        client.team_members(token.team_id),
        client.team_member(token.team_id, token.user_id),
    ):
        assert isinstance(outcome, PermissionMissing)
        assert (outcome.permission, outcome.status) == ("read:team", 403)
    assert client.list_projects()  # the rest of the installation is untouched
    world.post(f"/configurations/{token.installation_id}/scopes/confirm", {"scopes": ["read:team"]})
    assert isinstance(client.get_team(token.team_id), Team)


def test_team_members(world: World) -> None:
    token, client = world.install("acme")
    assert token.team_id is not None
    world.post("/users", {"username": "carol", "name": "Carol", "email": "carol@example.com"})
    world.post("/teams/acme/members/carol", {"role": "VIEWER"}, method="PUT")
    members = client.team_members(token.team_id)
    assert isinstance(members, list)
    by_name = {m.username: m for m in members}
    assert by_name["dev-user"].uid == token.user_id
    assert by_name["dev-user"].role == "OWNER"
    assert by_name["carol"].role == "VIEWER"
    assert "outsider" not in by_name
    viewers = client.team_members(token.team_id, role="VIEWER")
    assert isinstance(viewers, list)
    assert [m.username for m in viewers] == ["carol"]

    me = client.team_member(token.team_id, token.user_id)
    assert isinstance(me, TeamMember)
    assert me.username == "dev-user"
    outsider = next(u for u in state(world)["users"] if u["slug"] == "outsider")
    assert client.team_member(token.team_id, outsider["id"]) is None
    world.post("/teams/acme/members/carol", method="DELETE")
    carol = by_name["carol"].uid
    assert client.team_member(token.team_id, carol) is None


MIXED_OUTCOMES: dict[str, list[tuple[str, list[str]]]] = {
    "reject": [],
    "split": [("sensitive", ["preview", "production"]), ("encrypted", ["development"])],
    "keep": [("plain", ["development", "preview", "production"])],
    "promote_all": [("sensitive", ["development", "preview", "production"])],
}


@pytest.mark.parametrize("all_failed", ["created", "error"])
@pytest.mark.parametrize("mixed", sorted(MIXED_OUTCOMES))
def test_a_team_enforcing_sensitive_vars(world: World, mixed: str, all_failed: str) -> None:
    """The server promotes production/preview vars; what it does with one that also
    targets development is each variant's guess. The client reads every outcome."""
    world.emulator.configure(sensitive_mixed_targets=mixed, env_all_failed=all_failed)
    token, client = world.install("acme")
    assert token.team_id is not None
    world.post("/teams/acme", {"sensitiveEnvironmentVariablePolicy": "on"}, method="PATCH")
    team = client.get_team(token.team_id)
    assert isinstance(team, Team)
    assert team.enforces_sensitive_env
    project = client.list_projects()[0].id

    (promoted,) = client.create_env(
        project, [EnvSpec(key="ID", value="1", type="plain", target=["production", "preview"])]
    ).created
    assert promoted.type == "sensitive"
    assert promoted.id is not None
    edited = client.edit_env(project, promoted.id, EnvPatch(key="ID", value="2"), current=promoted)
    assert edited is not None
    assert edited.type == "sensitive"

    everywhere = EnvSpec(
        key="URL", value="u", type="plain", target=["production", "preview", "development"]
    )
    result = client.create_env(project, [everywhere])
    got = sorted(((e.type, sorted(e.target)) for e in result.created), key=lambda t: t[1])
    assert got == sorted(MIXED_OUTCOMES[mixed], key=lambda t: t[1])
    if mixed == "reject":
        (failure,) = result.failed
        assert (failure.code, failure.key, failure.is_conflict) == ("bad_request", "URL", False)
        assert result.error_status == (None if all_failed == "created" else 400)
    else:
        assert result.failed == []
    listed = client.list_env(project).envs
    assert {e.key for e in listed} == {"ID"} | ({"URL"} if mixed != "reject" else set())


VARIANTS: list[dict[str, Any]] = [
    {},
    {"permission_error_style": "descriptive", "env_all_failed": "error"},
    {"projects_pagination": "token", "projects_page_size": 2, "projects_max_limit": 2},
    {"env_conflict_status": 403, "env_conflict_code": "ENV_ALREADY_EXISTS"},
    {"env_conflict_code": "EXISTING_KEY_AND_TARGET", "env_list_page_size": 1},
    {"sensitive_patch_key": "allow", "honour_list_decrypt": True, "rate_limit_headers": True},
    {"invalid_token_status": 403, "sensitive_mixed_targets": "split"},
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(v) or "defaults")
def test_every_read_parses_under_every_variant(world: World, variant: dict[str, Any]) -> None:
    """Every operation the client has, on a world with all kinds of data in it: the typed
    models accept whatever the emulator (itself checked by Vercel's SDK) answers."""
    world.emulator.configure(**variant)
    token, client = world.install("acme")
    assert token.team_id is not None
    world.post("/teams/acme", {"sensitiveEnvironmentVariablePolicy": "on"}, method="PATCH")
    projects = client.list_projects()
    assert len(projects) == 5
    project = client.get_project(projects[0].name)
    world.post(f"/projects/{project.id}/custom-environments", {"slug": "staging"})
    (custom,) = client.list_custom_environments(project.id)
    specs = [
        EnvSpec(key="P", value="p", type="plain", target=["development"], comment="c"),
        EnvSpec(key="E", value="e", type="encrypted", target=["preview"], git_branch="b"),
        EnvSpec(key="S", value="s", type="sensitive", target=["production"]),
        EnvSpec.model_validate(
            {"key": "C", "value": "c", "type": "encrypted", "customEnvironmentIds": [custom.id]}
        ),
    ]
    created = client.create_env(project.id, specs)
    assert created.failed == []
    assert len(created.created) == 4
    world.post(
        f"/projects/{project.id}/env", {"key": "USER_VAR", "value": "x", "target": ["production"]}
    )
    listed = client.list_env(project.id)
    assert {"P", "E", "S", "C"} <= {e.key for e in listed.envs}
    for var in created.created:
        assert var.id is not None
        client.get_env_decrypted(project.id, var.id)
        client.edit_env(project.id, var.id, EnvPatch(comment="edited"), current=var)
    config = client.get_configuration(token.installation_id)
    assert config.id == token.installation_id
    assert client.list_configurations()
    assert isinstance(client.get_team(token.team_id), Team)
    members = client.team_members(token.team_id)
    assert isinstance(members, list)
    assert members
    for var in created.created:
        assert var.id is not None
        client.delete_env(project.id, var.id)
