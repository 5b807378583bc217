"""The Vercel client against scripted transports: endpoints, teamId, errors, retries.

Flows through real HTTP against the emulator are in test_vercel_emulator.py; here every
answer is scripted with httpx.MockTransport so each rule can be pinned exactly, and time
is a fake clock whose sleep only records the wait.
"""

from __future__ import annotations

import email.utils
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from openapi_schema_validator import OAS30Validator

from dev.openapi import document, inline_refs
from lib.deadline import Deadline
from lib.vercel import transport
from lib.vercel.client import VercelClient
from lib.vercel.errors import (
    BadRequest,
    ConfigurationDisabled,
    Conflict,
    DeadlineExceeded,
    EnvConflict,
    Forbidden,
    InvalidClient,
    InvalidCode,
    MissingScope,
    NotFound,
    OAuthError,
    PaymentRequired,
    RateLimited,
    ServerError,
    Unauthorized,
    UnexpectedResponse,
    VercelError,
    VercelUnavailable,
)
from lib.vercel.models import (
    CustomEnvironment,
    EnvPatch,
    EnvSpec,
    EnvVar,
    PermissionMissing,
    Team,
    TeamMember,
)
from lib.vercel.oauth import exchange_code
from lib.vercel.transport import RetryPolicy

TOKEN = "vca_TOPSECRET_token_0123456789"
CLIENT_SECRET = "oac_secret_DO_NOT_LEAK_42"
CODE = "code_single_use_9876"
BASE = "https://api.vercel.test"

Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    """Monotonic + wall clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_800_000_000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> float:
        return self.wall + (self.mono - 1000.0)

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.mono += seconds

    def deadline(self, seconds: float) -> Deadline:
        return Deadline(seconds, clock=self.monotonic)

    def policy(self, *, jitter: float = 1.0, max_attempts: int = 4) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=max_attempts,
            backoff=0.5,
            max_backoff=8.0,
            sleep=self.sleep,
            random=lambda: jitter,
            now=self.now,
        )


class Recorder:
    """A MockTransport handler that records requests and replays scripted answers."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def make_client(
    handler: Handler,
    fake: FakeTime,
    *,
    team_id: str | None = "team_abc",
    seconds: float = 30.0,
    **policy: Any,
) -> VercelClient:
    return VercelClient(
        TOKEN,
        team_id=team_id,
        base_url=BASE,
        deadline=fake.deadline(seconds),
        retry=fake.policy(**policy),
        transport=httpx.MockTransport(handler),
    )


def ok(body: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def err(status: int, code: str | None = None, message: str = "", **extra: Any) -> httpx.Response:
    fields: dict[str, Any] = {"message": message, **extra}
    if code is not None:
        fields["code"] = code
    return httpx.Response(status, json={"error": fields})


def env(key: str = "K", env_id: str = "env_1", **extra: Any) -> dict[str, Any]:
    return {"id": env_id, "key": key, "type": "encrypted", "value": "ct", "target": ["production"]}


def project(pid: str, name: str | None = None) -> dict[str, Any]:
    return {"id": pid, "name": name or pid, "accountId": "team_abc", "updatedAt": 1}


def config(cid: str = "icfg_1") -> dict[str, Any]:
    return {"id": cid, "integrationId": "oac_1", "ownerId": "team_abc", "scopes": []}


def spec(key: str = "K") -> EnvSpec:
    return EnvSpec(key=key, value="v", type="encrypted", target=["production", "preview"])


def query(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.url.query.decode())


# --------------------------------------------------------------------------- endpoints


def api_answer(request: httpx.Request) -> httpx.Response:
    """A tiny Vercel: the right shape for every endpoint the client calls."""
    path, method = request.url.path, request.method
    if path == "/v10/projects":
        return ok({"projects": [project("prj_1")], "pagination": {"count": 1, "next": None}})
    if path == "/v1/integrations/configurations":
        return ok([config()])
    if path.startswith("/v1/integrations/configuration/"):
        return httpx.Response(204) if method == "DELETE" else ok(config())
    if path.endswith("/env") and method == "GET":
        return ok({"envs": [env()]})
    if path.endswith("/env") and method == "POST":
        return ok({"created": [env()], "failed": []}, status=201)
    if "/env/" in path:
        return ok(env())
    if path.startswith("/v9/projects/"):
        return ok(project("prj_1"))
    return httpx.Response(404)


def call_everything(client: VercelClient) -> None:
    client.list_projects()
    client.get_project("prj_1")
    client.list_env("prj_1")
    client.create_env("prj_1", spec())
    client.create_env("prj_1", [spec("A"), spec("B")], upsert=True)
    client.get_env_decrypted("prj_1", "env_1")
    client.edit_env("prj_1", "env_1", EnvPatch(value="new"))
    client.delete_env("prj_1", "env_1")
    client.get_configuration("icfg_1")
    client.list_configurations()
    client.delete_configuration("icfg_1")


def test_every_call_of_a_team_client_carries_team_id_and_token(fake: FakeTime) -> None:
    recorder = Recorder(api_answer)
    call_everything(make_client(recorder, fake, team_id="team_abc"))
    assert len(recorder.requests) == 11
    for request in recorder.requests:
        assert query(request)["teamId"] == ["team_abc"], request.url
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert TOKEN not in str(request.url)


def test_a_personal_client_sends_no_team_id(fake: FakeTime) -> None:
    recorder = Recorder(api_answer)
    call_everything(make_client(recorder, fake, team_id=None))
    assert recorder.requests
    assert all("teamId" not in query(r) for r in recorder.requests)


def test_endpoint_versions_and_methods(fake: FakeTime) -> None:
    recorder = Recorder(api_answer)
    call_everything(make_client(recorder, fake))
    seen = [(r.method, r.url.path) for r in recorder.requests]
    assert seen == [
        ("GET", "/v10/projects"),
        ("GET", "/v9/projects/prj_1"),
        ("GET", "/v10/projects/prj_1/env"),
        ("POST", "/v10/projects/prj_1/env"),
        ("POST", "/v10/projects/prj_1/env"),
        ("GET", "/v1/projects/prj_1/env/env_1"),
        ("PATCH", "/v9/projects/prj_1/env/env_1"),
        ("DELETE", "/v9/projects/prj_1/env/env_1"),
        ("GET", "/v1/integrations/configuration/icfg_1"),
        ("GET", "/v1/integrations/configurations"),
        ("DELETE", "/v1/integrations/configuration/icfg_1"),
    ]
    single, batch = recorder.requests[3], recorder.requests[4]
    assert "upsert" not in query(single)
    assert query(batch)["upsert"] == ["true"]
    assert isinstance(json.loads(single.content), dict)
    assert [item["key"] for item in json.loads(batch.content)] == ["A", "B"]
    assert query(recorder.requests[9])["view"] == ["account"]
    assert json.loads(recorder.requests[6].content) == {"value": "new"}


def test_ids_and_names_cannot_change_the_path(fake: FakeTime) -> None:
    recorder = Recorder(api_answer)
    client = make_client(recorder, fake)
    client.get_project("my app/../../v2/user?x=1")
    assert recorder.requests[0].url.raw_path.startswith(b"/v9/projects/my%20app%2F..%2F..%2Fv2")
    with pytest.raises(ValueError, match="path segment"):
        client.get_project("..")
    with pytest.raises(ValueError, match="path segment"):
        client.delete_env("prj_1", "")


def test_shared_http_client_holds_no_token(fake: FakeTime) -> None:
    shared = transport._shared.get()
    assert shared is transport._shared.get()
    assert "authorization" not in shared.headers
    client = VercelClient(TOKEN, team_id=None, base_url=BASE, deadline=fake.deadline(1))
    assert TOKEN not in repr(client)
    assert TOKEN not in repr(vars(client).get("_own_http"))


def test_constructor_validation(fake: FakeTime) -> None:
    with pytest.raises(ValueError, match="token"):
        VercelClient("", team_id=None, base_url=BASE, deadline=fake.deadline(1))
    with pytest.raises(ValueError, match="base_url"):
        VercelClient("t", team_id=None, base_url="api.vercel.com", deadline=fake.deadline(1))


def test_with_deadline_rebinds_only_the_deadline(fake: FakeTime) -> None:
    recorder = Recorder(api_answer)
    client = make_client(recorder, fake)
    expired = client.with_deadline(fake.deadline(0))
    with pytest.raises(DeadlineExceeded):
        expired.get_project("prj_1")
    assert recorder.requests == []
    client.get_project("prj_1")
    assert expired.team_id == client.team_id == "team_abc"
    assert client.deadline is not expired.deadline


# --------------------------------------------------------------------------- pagination


def test_projects_follow_pagination_to_the_end_without_a_page_cap(fake: FakeTime) -> None:
    pages = 60

    def answer(request: httpx.Request) -> httpx.Response:
        cursor = query(request).get("from", ["0"])[0]
        n = int(cursor)
        nxt = n + 1 if n + 1 < pages else None
        return ok({"projects": [project(f"prj_{n}")], "pagination": {"count": 1, "next": nxt}})

    recorder = Recorder(answer)
    projects = make_client(recorder, fake).list_projects()
    assert [p.id for p in projects] == [f"prj_{n}" for n in range(pages)]
    assert all(query(r)["limit"] == ["100"] for r in recorder.requests)


def test_projects_continuation_tokens_and_duplicates(fake: FakeTime) -> None:
    recorder = Recorder(
        ok(
            {"projects": [project("a"), project("b")], "pagination": {"count": 2, "next": "TOKEN2"}}
        ),
        ok({"projects": [project("b"), project("c")], "pagination": {"count": 2, "next": None}}),
    )
    projects = make_client(recorder, fake).list_projects()
    assert [p.id for p in projects] == ["a", "b", "c"]
    assert query(recorder.requests[1])["from"] == ["TOKEN2"]


@pytest.mark.parametrize("body", [[project("a")], None])
def test_projects_bare_array_or_null_body(fake: FakeTime, body: Any) -> None:
    answer = ok(body) if body is not None else httpx.Response(200)
    projects = make_client(Recorder(answer), fake).list_projects()
    assert [p.id for p in projects] == ([] if body is None else ["a"])


@pytest.mark.parametrize("cursor", [42, "MFRGGZDFMZTWQ2LK", "1700000000000"])
def test_a_server_repeating_its_cursor_is_caught(fake: FakeTime, cursor: int | str) -> None:
    """Timestamps and opaque continuation tokens alike (getProjects documents both)."""
    looping = ok({"projects": [project("a")], "pagination": {"count": 1, "next": cursor}})
    recorder = Recorder(looping)
    with pytest.raises(UnexpectedResponse, match="repeats cursor"):
        make_client(recorder, fake).list_projects()
    assert len(recorder.requests) == 2
    assert query(recorder.requests[1])["from"] == [str(cursor)]


def test_env_list_shapes(fake: FakeTime) -> None:
    paged = Recorder(
        ok({"envs": [env("A", "e1")], "pagination": {"count": 1, "next": 7, "prev": None}}),
        ok({"envs": [env("B", "e2")], "pagination": {"count": 1, "next": None, "prev": 7}}),
    )
    listed = make_client(paged, fake).list_env("web")
    assert [e.key for e in listed.envs] == ["A", "B"]
    assert query(paged.requests[1])["until"] == ["7"]

    hidden = make_client(Recorder(ok({"envs": [], "hiddenProductionEnvCount": 3})), fake)
    assert hidden.list_env("web").hidden_production_env_count == 3

    single = make_client(Recorder(ok(env("ONLY"))), fake)
    assert [e.key for e in single.list_env("web").envs] == ["ONLY"]


# --------------------------------------------------------------------------- env create


def test_create_env_partial_failure_is_a_result_not_an_error(fake: FakeTime) -> None:
    body = {
        "created": env("A"),
        "failed": [
            {
                "error": {
                    "code": "ENV_CONFLICT",
                    "message": "exists",
                    "key": "B",
                    "target": ["production"],
                    "gitBranch": None,
                }
            }
        ],
    }
    result = make_client(Recorder(ok(body, status=201)), fake).create_env(
        "p", [spec("A"), spec("B")]
    )
    assert [e.key for e in result.created] == ["A"]
    assert [(f.key, f.target, f.is_conflict) for f in result.failed] == [
        ("B", ["production"], True)
    ]


def failure(key: str, code: str = "ENV_CONFLICT", **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": "no", "key": key, **extra}}


@pytest.mark.parametrize(
    ("status", "code", "codes"),
    [
        (400, "ENV_CONFLICT", ["ENV_CONFLICT", "ENV_CONFLICT"]),
        (403, "ENV_ALREADY_EXISTS", ["ENV_ALREADY_EXISTS", "bad_request"]),
        (409, "EXISTING_KEY_AND_TARGET", ["EXISTING_KEY_AND_TARGET", "ENV_CONFLICT"]),
        (400, "bad_request", ["bad_request", "ENV_CONFLICT"]),
    ],
)
def test_all_failed_error_answer_is_a_result_item_by_item(
    fake: FakeTime, status: int, code: str, codes: list[str]
) -> None:
    """Every item failed: an error status with `{error, failed}` (vercel-reality.md D2)."""
    failed = [failure("A", codes[0], target=["production"]), failure("B", codes[1])]
    answer = httpx.Response(
        status, json={"error": {"code": code, "message": "no", "key": "A"}, "failed": failed}
    )
    recorder = Recorder(answer)
    result = make_client(recorder, fake).create_env("p", [spec("A"), spec("B")])
    assert result.nothing_created
    assert result.error_status == status
    assert [(f.key, f.code) for f in result.failed] == [("A", codes[0]), ("B", codes[1])]
    assert result.failed[0].target == ["production"]
    assert [f.is_conflict for f in result.failed] == [c != "bad_request" for c in codes]
    assert len(recorder.requests) == 1


def test_a_201_result_has_no_error_status(fake: FakeTime) -> None:
    body = {"created": [], "failed": [failure("A")], "status": "ignored"}
    result = make_client(Recorder(ok(body, status=201)), fake).create_env("p", [spec("A")])
    assert result.error_status is None
    assert result.nothing_created


def test_an_object_create_error_is_still_raised(fake: FakeTime) -> None:
    """An object body's conflict stays an exception (the documented single-create case)."""
    body = {"error": {"code": "ENV_CONFLICT"}, "failed": [failure("A")]}
    with pytest.raises(EnvConflict):
        make_client(Recorder(httpx.Response(400, json=body)), fake).create_env("p", spec("A"))


@pytest.mark.parametrize(
    ("answer", "cls"),
    [
        (httpx.Response(400, json={"error": {"code": "ENV_CONFLICT"}}), EnvConflict),
        (httpx.Response(400, json={"error": {"code": "x"}, "failed": []}), BadRequest),
        (httpx.Response(400, json={"error": {"code": "x"}, "failed": [{"no": 1}]}), BadRequest),
        (httpx.Response(400, json={"failed": [failure("A")]}), BadRequest),  # no `error`
        (
            httpx.Response(500, json={"error": {"code": "x"}, "failed": [failure("A")]}),
            ServerError,
        ),
        (
            httpx.Response(429, json={"error": {"code": "x"}, "failed": [failure("A")]}),
            RateLimited,
        ),
    ],
)
def test_error_answers_without_readable_items_are_raised(
    fake: FakeTime, answer: httpx.Response, cls: type[VercelError]
) -> None:
    with pytest.raises(cls):
        make_client(Recorder(answer), fake, max_attempts=1).create_env("p", [spec("A")])


def test_create_env_with_nothing_to_create_sends_nothing(fake: FakeTime) -> None:
    recorder = Recorder(api_answer)
    result = make_client(recorder, fake).create_env("p", [])
    assert result.created == []
    assert result.failed == []
    assert recorder.requests == []


def test_create_env_accepts_mappings_and_validates_them(fake: FakeTime) -> None:
    recorder = Recorder(api_answer)
    client = make_client(recorder, fake)
    client.create_env("p", {"key": "K", "value": "v", "type": "plain", "target": "preview"})
    assert json.loads(recorder.requests[0].content)["target"] == ["preview"]
    with pytest.raises(ValueError, match="development"):
        client.create_env(
            "p", [{"key": "K", "value": "v", "type": "sensitive", "target": "development"}]
        )
    assert len(recorder.requests) == 1


@pytest.mark.parametrize("status", [400, 403, 409])
@pytest.mark.parametrize("code", ["ENV_CONFLICT", "ENV_ALREADY_EXISTS", "EXISTING_KEY_AND_TARGET"])
def test_env_conflict_on_every_documented_status(fake: FakeTime, status: int, code: str) -> None:
    answer = err(
        status,
        code,
        "A variable with the name `K` already exists for the target production on branch undefined",
        key="K",
        envVarKey="K",
        target=["production"],
        gitBranch="feat",
        envVarId="env_9",
    )
    recorder = Recorder(answer)
    with pytest.raises(EnvConflict) as caught:
        make_client(recorder, fake).create_env("p", spec())
    conflict = caught.value
    assert (conflict.status, conflict.code) == (status, code)
    assert (conflict.key, conflict.target, conflict.git_branch) == ("K", ["production"], "feat")
    assert conflict.env_var_id == "env_9"
    assert not conflict.retryable
    assert len(recorder.requests) == 1


# --------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("answer", "cls", "code", "retryable"),
    [
        (err(400, "bad_request", "invalid"), BadRequest, "bad_request", False),
        (err(405, "method_unknown", "only GET"), BadRequest, "method_unknown", False),
        (
            err(401, "unauthorized", "The request is not authorized."),
            Unauthorized,
            "unauthorized",
            False,
        ),
        (
            err(403, "forbidden", "Not authorized", invalidToken=True),
            Unauthorized,
            "forbidden",
            False,
        ),
        (
            err(
                403,
                "forbidden",
                "The request is missing an authentication token",
                missingToken=True,
            ),
            Unauthorized,
            "forbidden",
            False,
        ),
        (err(402, "PAYMENT_REQUIRED", "pay"), PaymentRequired, "PAYMENT_REQUIRED", False),
        (
            err(403, "forbidden", "You don't have permission to access this resource."),
            MissingScope,
            "forbidden",
            False,
        ),
        (
            err(403, "forbidden", "You don't have permission", action="create", resource="project"),
            MissingScope,
            "forbidden",
            False,
        ),
        (
            err(403, "forbidden", "Not authorized: the integration is missing the scope x."),
            MissingScope,
            "forbidden",
            False,
        ),
        (
            err(403, "forbidden", "You don't have permission to this project.", projectId="p"),
            Forbidden,
            "forbidden",
            False,
        ),
        (
            err(403, "forbidden", "Not authorized: no access to the project.", projectId="p"),
            Forbidden,
            "forbidden",
            False,
        ),
        (err(403, "forbidden", "Not authorized"), Forbidden, "forbidden", False),
        (
            err(409, "EXISTING_KEY_AND_TARGET", "exists"),
            EnvConflict,
            "EXISTING_KEY_AND_TARGET",
            False,
        ),
        (
            err(
                403,
                "forbidden",
                'Not authorized: Trying to access resource under scope "acme".',
                scope="acme",
                teamId=None,
            ),
            MissingScope,
            "forbidden",
            False,
        ),
        (
            err(403, "team_unauthorized", "You are not authorized"),
            MissingScope,
            "team_unauthorized",
            False,
        ),
        (
            err(403, "integration_configuration_disabled", "Not authorized"),
            ConfigurationDisabled,
            "integration_configuration_disabled",
            False,
        ),
        (err(404, "not_found", "Could not find the project"), NotFound, "not_found", False),
        (httpx.Response(410), NotFound, "not_found", False),
        (err(409, None, "The project is being transfered"), Conflict, "conflict", False),
        (err(429, "rate_limited", "slow down"), RateLimited, "rate_limited", True),
        (err(500, "internal_server_error", "oops"), ServerError, "internal_server_error", True),
        (httpx.Response(502, text="<html>bad gateway</html>"), ServerError, "server_error", True),
        (
            httpx.Response(403, json={"err": {"code": "forbidden", "message": "x"}}),
            Forbidden,
            "forbidden",
            False,
        ),
        (
            httpx.Response(404, json={"status": 404, "code": "not_found", "message": "x"}),
            NotFound,
            "not_found",
            False,
        ),
    ],
)
def test_error_mapping(
    fake: FakeTime, answer: httpx.Response, cls: type[VercelError], code: str, retryable: bool
) -> None:
    with pytest.raises(cls) as caught:
        make_client(Recorder(answer), fake, max_attempts=1).get_project("prj_1")
    error = caught.value
    assert type(error) is cls
    assert (error.status, error.code, error.retryable) == (answer.status_code, code, retryable)
    assert "GET /v9/projects/prj_1" in str(error)


def test_configuration_disabled_is_a_forbidden(fake: FakeTime) -> None:
    answer = err(403, "integration_configuration_disabled", "disabled")
    with pytest.raises(Forbidden):
        make_client(Recorder(answer), fake).list_projects()


@pytest.mark.parametrize(
    ("answer", "call"),
    [
        (httpx.Response(200, text="not json"), lambda c: c.get_project("prj_1")),
        (ok({"id": "prj_1"}), lambda c: c.get_project("prj_1")),  # no name
        (ok({"projects": "nope"}), lambda c: c.list_projects()),
        (ok({"envs": [{"id": "e"}]}), lambda c: c.list_env("p")),  # no key
        (ok({"configurations": None}), lambda c: c.list_configurations()),
    ],
)
def test_malformed_success_bodies(
    fake: FakeTime, answer: httpx.Response, call: Callable[[VercelClient], object]
) -> None:
    client = make_client(Recorder(answer), fake)
    with pytest.raises(UnexpectedResponse):
        call(client)


def sensitive_var(key: str = "K") -> EnvVar:
    return EnvVar.model_validate(
        {"id": "env_1", "key": key, "type": "sensitive", "target": ["production"]}
    )


@pytest.mark.parametrize(
    ("patch", "current", "sent"),
    [
        (EnvPatch(key="K", value="v", type="sensitive"), None, {"value": "v", "type": "sensitive"}),
        (EnvPatch(key="K", value="v"), "sensitive", {"value": "v"}),
        (EnvPatch(key="K", value="v"), None, {"key": "K", "value": "v"}),
        (
            EnvPatch(key="NEW", value="v", type="plain"),
            None,
            {"key": "NEW", "value": "v", "type": "plain"},
        ),
    ],
)
def test_a_sensitive_patch_never_sends_key(
    fake: FakeTime, patch: EnvPatch, current: str | None, sent: dict[str, Any]
) -> None:
    """Vercel refuses `key` in a PATCH of a sensitive var; its CLI leaves it out."""
    recorder = Recorder(api_answer)
    make_client(recorder, fake).edit_env(
        "p", "env_1", patch, current=sensitive_var() if current else None
    )
    assert json.loads(recorder.requests[0].content) == sent


def test_renaming_a_sensitive_var_is_refused_before_sending(fake: FakeTime) -> None:
    recorder = Recorder(api_answer)
    with pytest.raises(ValueError, match="renamed"):
        make_client(recorder, fake).edit_env(
            "p", "env_1", EnvPatch(key="OTHER", value="v"), current=sensitive_var()
        )
    assert recorder.requests == []


def test_edit_env_null_answer_is_none(fake: FakeTime) -> None:
    client = make_client(Recorder(httpx.Response(200, text="null")), fake)
    assert client.edit_env("p", "e", {"value": "x"}) is None
    assert (
        make_client(Recorder(httpx.Response(200)), fake).edit_env("p", "e", {"value": "x"}) is None
    )


# --------------------------------------------------------------------------- retries


def test_get_retries_5xx_with_exponential_full_jitter(fake: FakeTime) -> None:
    recorder = Recorder(err(503), err(502), err(500), ok(project("prj_1")))
    got = make_client(recorder, fake, jitter=1.0).get_project("prj_1")
    assert got.id == "prj_1"
    assert len(recorder.requests) == 4
    assert fake.sleeps == [0.5, 1.0, 2.0]  # random() = 1.0: the top of each jitter window


def test_full_jitter_draws_from_zero_to_the_window(fake: FakeTime) -> None:
    recorder = Recorder(err(503), err(503), ok(project("prj_1")))
    make_client(recorder, fake, jitter=0.25).get_project("prj_1")
    assert fake.sleeps == [0.125, 0.25]


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(backoff=0.5, max_backoff=8.0, random=lambda: 1.0)
    assert [policy.wait(n, None) for n in (1, 5, 6, 30)] == [0.5, 8.0, 8.0, 8.0]


def test_gives_up_after_max_attempts_with_the_last_error(fake: FakeTime) -> None:
    recorder = Recorder(err(503, "unavailable"))
    with pytest.raises(ServerError) as caught:
        make_client(recorder, fake, max_attempts=3).list_configurations()
    assert caught.value.status == 503
    assert len(recorder.requests) == 3
    assert len(fake.sleeps) == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
    ],
)
def test_get_retries_transport_errors(fake: FakeTime, failure: Exception) -> None:
    recorder = Recorder(failure, ok(config()))
    assert make_client(recorder, fake).get_configuration("icfg_1").id == "icfg_1"
    assert len(recorder.requests) == 2


def test_transport_errors_become_vercel_unavailable(fake: FakeTime) -> None:
    recorder = Recorder(httpx.ReadTimeout("slow"))
    with pytest.raises(VercelUnavailable) as caught:
        make_client(recorder, fake, max_attempts=2).get_project("p")
    assert caught.value.status is None
    assert caught.value.retryable
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("PATCH", lambda c: c.edit_env("p", "e", EnvPatch(value="v"))),
        ("DELETE", lambda c: c.delete_env("p", "e")),
        ("DELETE", lambda c: c.delete_configuration("icfg_1")),
    ],
)
def test_patch_and_delete_by_id_are_retried(
    fake: FakeTime, method: str, call: Callable[[VercelClient], object]
) -> None:
    recorder = Recorder(httpx.ReadTimeout("lost answer"), err(502), api_answer)
    call(make_client(recorder, fake))
    assert [r.method for r in recorder.requests] == [method] * 3


@pytest.mark.parametrize(
    "failure",
    [
        err(500),
        err(502),
        err(503),
        httpx.ReadTimeout("the request was sent"),
        httpx.WriteTimeout("half sent"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset by peer"),
    ],
)
def test_env_create_is_never_repeated_when_it_may_have_been_processed(
    fake: FakeTime, failure: httpx.Response | Exception
) -> None:
    recorder = Recorder(failure, ok({"created": [], "failed": []}, status=201))
    with pytest.raises((ServerError, VercelUnavailable)):
        make_client(recorder, fake).create_env("p", [spec("A"), spec("B")])
    assert len(recorder.requests) == 1
    assert fake.sleeps == []


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("no SYN-ACK"), err(429, "rate_limited")],
)
def test_env_create_is_retried_when_it_cannot_have_been_processed(
    fake: FakeTime, failure: httpx.Response | Exception
) -> None:
    recorder = Recorder(failure, ok({"created": [env("A")], "failed": []}, status=201))
    result = make_client(recorder, fake).create_env("p", [spec("A")])
    assert [e.key for e in result.created] == ["A"]
    assert len(recorder.requests) == 2
    assert recorder.requests[0].content == recorder.requests[1].content


def test_4xx_are_not_retried(fake: FakeTime) -> None:
    recorder = Recorder(err(404, "not_found"))
    with pytest.raises(NotFound):
        make_client(recorder, fake).get_project("missing")
    assert len(recorder.requests) == 1


def test_429_retry_after_seconds_is_honoured(fake: FakeTime) -> None:
    limited = httpx.Response(
        429, json={"error": {"code": "rate_limited", "message": "x"}}, headers={"Retry-After": "7"}
    )
    recorder = Recorder(limited, ok(project("p")))
    make_client(recorder, fake, jitter=0.0).get_project("p")
    assert fake.sleeps == [7.0]


def test_429_retry_after_http_date_is_honoured(fake: FakeTime) -> None:
    when = email.utils.formatdate(fake.now() + 12, usegmt=True)
    limited = httpx.Response(429, headers={"Retry-After": when})
    recorder = Recorder(limited, ok(project("p")))
    make_client(recorder, fake, jitter=0.0).get_project("p")
    assert fake.sleeps == [pytest.approx(12.0, abs=1.0)]


def test_429_limit_reset_epoch_seconds_is_honoured(fake: FakeTime) -> None:
    limit = {"remaining": 0, "reset": int(fake.now()) + 9, "total": 6}
    recorder = Recorder(
        err(429, "rate_limited", "The rate limit of 6 exceeded", limit=limit), ok(project("p"))
    )
    make_client(recorder, fake, jitter=0.0).get_project("p")
    assert fake.sleeps == [pytest.approx(9.0)]


def test_429_limit_reset_ms_is_preferred_for_precision(fake: FakeTime) -> None:
    now_ms = int(fake.now() * 1000)
    limit = {"remaining": 0, "reset": now_ms // 1000 + 3, "resetMs": now_ms + 2500, "total": 6}
    recorder = Recorder(err(429, "rate_limited", limit=limit), ok(project("p")))
    make_client(recorder, fake, jitter=0.0).get_project("p")
    assert fake.sleeps == [pytest.approx(2.5)]


def test_retry_after_wins_over_limit_reset_being_immune_to_clock_skew(fake: FakeTime) -> None:
    limit = {"remaining": 0, "reset": int(fake.now()) + 3600}  # Vercel's clock an hour ahead
    limited = httpx.Response(
        429,
        json={"error": {"code": "rate_limited", "message": "x", "limit": limit}},
        headers={"Retry-After": "6"},
    )
    make_client(Recorder(limited, ok(project("p"))), fake, jitter=0.0).get_project("p")
    assert fake.sleeps == [6.0]


def test_a_reset_in_the_past_waits_nothing(fake: FakeTime) -> None:
    limit = {"remaining": 0, "reset": int(fake.now()) - 100}
    recorder = Recorder(err(429, "rate_limited", limit=limit), ok(project("p")))
    make_client(recorder, fake, jitter=0.0).get_project("p")
    assert fake.sleeps == [0.0]


def test_retry_after_on_503_is_honoured(fake: FakeTime) -> None:
    busy = httpx.Response(503, headers={"Retry-After": "3"})
    make_client(Recorder(busy, ok(project("p"))), fake, jitter=0.0).get_project("p")
    assert fake.sleeps == [3.0]


def test_rate_limit_longer_than_the_deadline_fails_fast(fake: FakeTime) -> None:
    limited = httpx.Response(
        429, json={"error": {"code": "rate_limited", "message": "x"}}, headers={"Retry-After": "60"}
    )
    recorder = Recorder(limited)
    with pytest.raises(DeadlineExceeded) as caught:
        make_client(recorder, fake, seconds=10).get_project("p")
    assert fake.sleeps == []  # never sleeps past the deadline
    assert len(recorder.requests) == 1
    assert isinstance(caught.value.last_error, RateLimited)
    assert caught.value.retry_after == 60.0
    assert caught.value.retryable


def test_retries_stop_at_the_deadline(fake: FakeTime) -> None:
    recorder = Recorder(err(503))
    with pytest.raises(DeadlineExceeded) as caught:
        make_client(recorder, fake, seconds=2.0, max_attempts=100).get_project("p")
    assert sum(fake.sleeps) < 2.0
    assert fake.sleeps == [0.5, 1.0]  # a third wait (2.0 s) would cross the deadline
    assert isinstance(caught.value.last_error, ServerError)
    assert caught.value.status == 503


def test_an_expired_deadline_sends_nothing(fake: FakeTime) -> None:
    recorder = Recorder(api_answer)
    with pytest.raises(DeadlineExceeded) as caught:
        make_client(recorder, fake, seconds=0).list_projects()
    assert recorder.requests == []
    assert caught.value.last_error is None
    assert caught.value.code == "deadline_exceeded"


def test_timeouts_are_capped_by_the_deadline(fake: FakeTime) -> None:
    recorder = Recorder(ok(project("p")))
    make_client(recorder, fake, seconds=1.5).get_project("p")
    timeouts = recorder.requests[0].extensions["timeout"]
    assert timeouts == {"connect": 1.5, "read": 1.5, "write": 1.5, "pool": 1.5}

    roomy = Recorder(ok(project("p")))
    make_client(roomy, fake, seconds=300).get_project("p")
    assert roomy.requests[0].extensions["timeout"] == {
        "connect": 3.0,
        "read": 15.0,
        "write": 10.0,
        "pool": 3.0,
    }


def test_pagination_shares_one_deadline(fake: FakeTime) -> None:
    def slow_page(request: httpx.Request) -> httpx.Response:
        fake.mono += 4.0  # each page costs 4 s
        n = int(query(request).get("from", ["0"])[0])
        return ok({"projects": [project(f"p{n}")], "pagination": {"count": 1, "next": n + 1}})

    recorder = Recorder(slow_page)
    with pytest.raises(DeadlineExceeded):
        make_client(recorder, fake, seconds=10).list_projects()
    assert len(recorder.requests) == 3


# --------------------------------------------------------------------------- code exchange


def exchange(handler: Handler, fake: FakeTime, **policy: Any) -> Any:
    return exchange_code(
        CODE,
        client_id="oac_client",
        client_secret=CLIENT_SECRET,
        redirect_uri="https://example.test/callback",
        base_url=BASE + "/",
        deadline=fake.deadline(30),
        transport=httpx.MockTransport(handler),
        retry=fake.policy(**policy),
    )


TOKEN_BODY = {
    "token_type": "Bearer",
    "access_token": TOKEN,
    "installation_id": "icfg_1",
    "user_id": "user_1",
    "team_id": "team_abc",
}


def test_exchange_code_posts_the_form(fake: FakeTime) -> None:
    recorder = Recorder(ok(TOKEN_BODY))
    token = exchange(recorder, fake)
    assert token.access_token.get_secret_value() == TOKEN
    assert (token.installation_id, token.user_id, token.team_id) == ("icfg_1", "user_1", "team_abc")
    (request,) = recorder.requests
    assert (request.method, str(request.url)) == ("POST", f"{BASE}/v2/oauth/access_token")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in request.headers
    assert parse_qs(request.content.decode()) == {
        "client_id": ["oac_client"],
        "client_secret": [CLIENT_SECRET],
        "code": [CODE],
        "redirect_uri": ["https://example.test/callback"],
    }


@pytest.mark.parametrize(
    ("answer", "cls"),
    [
        (
            ok(
                {
                    "error": "invalid_grant",
                    "error_description": "Invalid grant: authorization code is invalid",
                },
                400,
            ),
            InvalidCode,
        ),
        (
            ok(
                {
                    "error": "invalid_client",
                    "error_description": "Invalid client: client is invalid",
                },
                401,
            ),
            InvalidClient,
        ),
        (
            ok({"error": "invalid_client", "error_description": "Invalid client"}, 400),
            InvalidClient,
        ),
        (ok({"error": "unauthorized_client"}, 400), InvalidClient),
        (err(400, "invalid_grant", "code expired"), InvalidCode),
        (err(400, "invalid_code", "The code is invalid"), InvalidCode),
        (err(400, "bad_request", "Invalid grant: authorization code is invalid"), InvalidCode),
        (err(403, "forbidden", "Invalid client_secret"), InvalidClient),
        (err(401, "unauthorized", "Not authorized"), InvalidClient),
        (httpx.Response(400, text="Bad Request"), OAuthError),
        (
            ok({"error": "invalid_request", "error_description": "missing parameter"}, 400),
            OAuthError,
        ),
        (err(500, "internal_server_error"), ServerError),
        (httpx.Response(503, text="down"), ServerError),
        (err(429, "rate_limited"), RateLimited),
    ],
)
def test_exchange_errors_of_every_shape(
    fake: FakeTime, answer: httpx.Response, cls: type[VercelError]
) -> None:
    recorder = Recorder(answer, ok(TOKEN_BODY))
    with pytest.raises(cls) as caught:
        exchange(recorder, fake)
    assert type(caught.value) is cls
    assert caught.value.status == answer.status_code
    assert len(recorder.requests) == 1  # a code is single use: nothing is repeated


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("sent, no answer"),
        httpx.RemoteProtocolError("Server disconnected"),
        httpx.WriteError("broken pipe"),
    ],
)
def test_exchange_is_not_repeated_once_it_may_have_arrived(
    fake: FakeTime, failure: Exception
) -> None:
    recorder = Recorder(failure, ok(TOKEN_BODY))
    with pytest.raises(VercelUnavailable):
        exchange(recorder, fake)
    assert len(recorder.requests) == 1


def test_exchange_is_retried_when_nothing_was_sent(fake: FakeTime) -> None:
    recorder = Recorder(httpx.ConnectError("refused"), httpx.ConnectTimeout("t"), ok(TOKEN_BODY))
    assert exchange(recorder, fake).installation_id == "icfg_1"
    assert len(recorder.requests) == 3


def test_exchange_malformed_answer_does_not_echo_the_token(fake: FakeTime) -> None:
    with pytest.raises(UnexpectedResponse) as caught:
        exchange(Recorder(ok({"access_token": TOKEN})), fake)
    assert "installation_id" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# --------------------------------------------------------------------------- secrets


def leaky(status: int, code: str | None, **extra: Any) -> httpx.Response:
    """An adversarial server that echoes every secret it has seen into its error."""
    return err(
        status, code, f"bad token {TOKEN} secret {CLIENT_SECRET} code {CODE}", echo=TOKEN, **extra
    )


SECRET_CASES: list[tuple[httpx.Response | Exception, type[VercelError]]] = [
    (leaky(400, "bad_request"), BadRequest),
    (leaky(401, "unauthorized"), Unauthorized),
    (leaky(403, "forbidden", invalidToken=True), Unauthorized),
    (leaky(402, "PAYMENT_REQUIRED"), PaymentRequired),
    (leaky(403, "forbidden"), Forbidden),
    (leaky(403, "missing_scope"), MissingScope),
    (leaky(403, "integration_configuration_disabled"), ConfigurationDisabled),
    (leaky(404, "not_found"), NotFound),
    (leaky(409, None), Conflict),
    (leaky(409, "ENV_ALREADY_EXISTS", key=TOKEN), EnvConflict),
    (leaky(429, "rate_limited"), RateLimited),
    (leaky(500, "internal_server_error"), ServerError),
    (httpx.ConnectError(f"refused {TOKEN}"), VercelUnavailable),
    (ok({"id": TOKEN}), UnexpectedResponse),
]


@pytest.mark.parametrize(("answer", "cls"), SECRET_CASES)
def test_no_error_or_log_line_contains_the_token(
    fake: FakeTime,
    caplog: pytest.LogCaptureFixture,
    answer: httpx.Response | Exception,
    cls: type[VercelError],
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(cls) as caught:
        make_client(Recorder(answer), fake, max_attempts=2).get_project("p")
    assert_clean(caught.value, caplog)
    if caught.value.status is not None and caught.value.status >= 400:
        assert "bad token [redacted]" in str(caught.value)  # the message is kept, scrubbed


def test_deadline_error_does_not_contain_the_token(
    fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DeadlineExceeded) as caught:
        make_client(Recorder(leaky(503, "x")), fake, seconds=1.0).get_project("p")
    assert_clean(caught.value, caplog)
    assert caught.value.last_error is not None
    assert_clean(caught.value.last_error, caplog)


@pytest.mark.parametrize(
    "answer",
    [
        ok(
            {"error": "invalid_grant", "error_description": f"code {CODE} secret {CLIENT_SECRET}"},
            400,
        ),
        ok({"error": "invalid_client", "error_description": f"secret {CLIENT_SECRET}"}, 401),
        leaky(500, "internal_server_error"),
        httpx.ConnectError(f"refused {CLIENT_SECRET}"),
    ],
)
def test_exchange_errors_do_not_contain_secrets(
    fake: FakeTime, caplog: pytest.LogCaptureFixture, answer: httpx.Response | Exception
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(VercelError) as caught:
        exchange(Recorder(answer), fake, max_attempts=2)
    assert_clean(caught.value, caplog, secrets=(CLIENT_SECRET, CODE))


def assert_clean(
    error: VercelError, caplog: pytest.LogCaptureFixture, secrets: tuple[str, ...] = (TOKEN,)
) -> None:
    for secret in secrets:
        assert secret not in str(error)
        assert secret not in repr(error)
        assert secret not in json.dumps(error.details, default=str)
        assert secret not in caplog.text


# --------------------------------------------------------------------------- contract


def request_schema(file: str, path: str, method: str) -> OAS30Validator:
    root = document(file)
    operation = root["paths"][path][method]
    schema = inline_refs(operation["requestBody"]["content"]["application/json"]["schema"], root)
    return OAS30Validator(schema)


@pytest.fixture(scope="module")
def create_schema() -> OAS30Validator:
    return request_schema("createProjectEnv.yaml", "/v10/projects/{idOrName}/env", "post")


@pytest.fixture(scope="module")
def edit_schema() -> OAS30Validator:
    return request_schema("editProjectEnv.yaml", "/v9/projects/{idOrName}/env/{id}", "patch")


def sent_bodies(fake: FakeTime, action: Callable[[VercelClient], object]) -> Iterator[Any]:
    recorder = Recorder(api_answer)
    action(make_client(recorder, fake))
    for request in recorder.requests:
        yield json.loads(request.content)


CREATE_BODIES: list[Any] = [
    spec(),
    [spec("A"), spec("B")],
    EnvSpec(
        key="B", value="v", type="plain", target="preview", git_branch="feature-1", comment="why"
    ),
    [EnvSpec(key="C", value="v", type="sensitive", target=["production"]), spec("D")],
    EnvSpec(key="E", value="v", type="plain", custom_environment_ids=["env_123"]),
    EnvSpec(key="F", value="", type="system", target=["development"]),
]


@pytest.mark.parametrize("items", CREATE_BODIES)
def test_env_create_bodies_match_the_openapi_schema(
    fake: FakeTime, create_schema: OAS30Validator, items: Any
) -> None:
    (body,) = sent_bodies(fake, lambda c: c.create_env("prj_1", items, upsert=True))
    assert isinstance(body, list) == isinstance(items, list)
    create_schema.validate(body)


@pytest.mark.parametrize(
    "patch",
    [
        EnvPatch(value="new"),
        EnvPatch(target=["production", "preview"], type="encrypted", value="x", comment="c"),
        EnvPatch(git_branch=None, target="preview"),
        EnvPatch(key="RENAMED", custom_environment_ids=["env_1"], git_branch="b"),
    ],
)
def test_env_edit_bodies_match_the_openapi_schema(
    fake: FakeTime, edit_schema: OAS30Validator, patch: EnvPatch
) -> None:
    (body,) = sent_bodies(fake, lambda c: c.edit_env("prj_1", "env_1", patch))
    edit_schema.validate(body)


def test_the_contract_validator_does_reject_bad_bodies(
    create_schema: OAS30Validator, edit_schema: OAS30Validator
) -> None:
    assert not create_schema.is_valid({"key": "K", "type": "plain", "target": ["preview"]})
    assert not create_schema.is_valid({"key": "K", "value": "v", "type": "plain"})
    assert not create_schema.is_valid(
        [{"key": "K", "value": "v", "type": "plain", "target": ["prod"]}]
    )
    assert not edit_schema.is_valid({"value": "v", "unknown": True})


def test_call_timeout_follows_the_operator_setting() -> None:
    timeout = transport.call_timeout(4.0)
    assert (timeout.read, timeout.write, timeout.connect, timeout.pool) == (4.0, 4.0, 3.0, 3.0)
    short = transport.call_timeout(1.0)
    assert (short.read, short.connect) == (1.0, 1.0)


# --------------------------------------------------------------------------- teams, custom envs


def team_body(**extra: Any) -> dict[str, Any]:
    return {"id": "team_abc", "slug": "acme", "name": "Acme", "unknownField": {"x": 1}, **extra}


@pytest.mark.parametrize(
    ("extra", "policy", "enforces"),
    [({}, None, False), ({"sensitiveEnvironmentVariablePolicy": "on"}, "on", True)]
    + [({"sensitiveEnvironmentVariablePolicy": p}, p, False) for p in ("off", "default", "new")],
)
def test_get_team(
    fake: FakeTime, extra: dict[str, Any], policy: str | None, enforces: bool
) -> None:
    recorder = Recorder(ok(team_body(**extra)))
    team = make_client(recorder, fake).get_team("team_abc")
    assert isinstance(team, Team)
    assert (team.id, team.slug, team.name) == ("team_abc", "acme", "Acme")
    assert team.sensitive_environment_variable_policy == policy
    assert team.enforces_sensitive_env is enforces
    (request,) = recorder.requests
    assert (request.method, request.url.path) == ("GET", "/v2/teams/team_abc")
    assert query(request)["teamId"] == ["team_abc"]


@pytest.mark.parametrize(
    "answer",
    [
        err(403, "forbidden", "You don't have permission to access this resource."),
        err(403, "forbidden", "Not authorized: the integration is missing the scope read:team."),
        err(
            403,
            "forbidden",
            'Not authorized: Trying to access resource under scope "x".',
            scope="x",
        ),
    ],
)
def test_team_reads_without_the_permission_are_an_outcome(
    fake: FakeTime, answer: httpx.Response
) -> None:
    recorder = Recorder(answer)
    client = make_client(recorder, fake)
    for outcome in (
        client.get_team("team_abc"),
        client.team_members("team_abc"),
        client.team_member("team_abc", "u1"),
    ):
        assert isinstance(outcome, PermissionMissing)
        assert (outcome.permission, outcome.status) == ("read:team", 403)
        assert TOKEN not in repr(outcome)
    assert len(recorder.requests) == 3  # 403 is not retried


@pytest.mark.parametrize(
    ("answer", "cls"),
    [
        (err(403, "integration_configuration_disabled", "x"), ConfigurationDisabled),
        (err(401, "unauthorized", "x"), Unauthorized),
        (err(404, "not_found", "x"), NotFound),
        (err(503, "x", "down"), ServerError),
    ],
)
def test_other_team_read_failures_are_raised(
    fake: FakeTime, answer: httpx.Response, cls: type[VercelError]
) -> None:
    client = make_client(Recorder(answer), fake, max_attempts=1)
    with pytest.raises(cls):
        client.get_team("team_abc")
    with pytest.raises(cls):
        client.team_members("team_abc")


def members_answer(request: httpx.Request) -> httpx.Response:
    """Three pages of two, newest first, paged by `until` (getTeamMembers)."""
    until = query(request).get("until")
    rest = [i for i in range(6) if until is None or 10 - i < int(until[0])]
    page, more = rest[:2], len(rest) > 2
    members = [
        {"uid": f"u{i}", "username": f"n{i}", "role": "MEMBER", "createdAt": 10 - i} for i in page
    ]
    pagination = {"count": 2, "hasNext": more, "next": 10 - page[-1] if more else None}
    return ok({"members": members, "pagination": pagination})


def test_team_members_follow_pagination(fake: FakeTime) -> None:
    recorder = Recorder(members_answer)
    members = make_client(recorder, fake).team_members("team_abc", role="MEMBER", search="n")
    assert isinstance(members, list)
    assert [(m.uid, m.username, m.role) for m in members] == [
        (f"u{i}", f"n{i}", "MEMBER") for i in range(6)
    ]
    assert len(recorder.requests) == 3
    first = query(recorder.requests[0])
    assert (first["limit"], first["role"], first["search"]) == (["100"], ["MEMBER"], ["n"])
    assert recorder.requests[0].url.path == "/v3/teams/team_abc/members"


def test_team_member_stops_paging_once_found(fake: FakeTime) -> None:
    recorder = Recorder(members_answer)
    client = make_client(recorder, fake)
    member = client.team_member("team_abc", "u2")
    assert isinstance(member, TeamMember)
    assert member.uid == "u2"
    assert len(recorder.requests) == 2
    assert client.team_member("team_abc", "nobody") is None
    assert len(recorder.requests) == 5


def test_list_custom_environments(fake: FakeTime) -> None:
    body = {
        "accountLimit": {"total": 12},
        "environments": [
            {
                "id": "env_staging",
                "slug": "staging",
                "type": "preview",
                "description": "QA",
                "branchMatcher": {"type": "equals", "pattern": "staging"},
                "domains": [],
                "createdAt": 1,
                "updatedAt": 2,
                "somethingNew": True,
            }
        ],
    }
    recorder = Recorder(ok(body))
    (custom,) = make_client(recorder, fake).list_custom_environments("web app")
    assert isinstance(custom, CustomEnvironment)
    assert (custom.id, custom.slug, custom.type, custom.description) == (
        "env_staging",
        "staging",
        "preview",
        "QA",
    )
    assert custom.branch_matcher is not None
    assert custom.branch_matcher.pattern == "staging"
    assert recorder.requests[0].url.raw_path.startswith(
        b"/v9/projects/web%20app/custom-environments"
    )
    empty = make_client(Recorder(ok({"accountLimit": {"total": 12}})), fake)
    assert empty.list_custom_environments("p") == []


def test_custom_environment_ids_are_sent_on_create_and_edit(fake: FakeTime) -> None:
    recorder = Recorder(api_answer)
    client = make_client(recorder, fake)
    client.create_env(
        "p",
        [
            EnvSpec.model_validate(
                {"key": "K", "value": "v", "type": "encrypted", "customEnvironmentIds": ["env_s"]}
            )
        ],
    )
    client.edit_env("p", "env_1", EnvPatch(custom_environment_ids=["env_s", "env_t"]))
    assert json.loads(recorder.requests[0].content)[0]["customEnvironmentIds"] == ["env_s"]
    assert json.loads(recorder.requests[1].content) == {"customEnvironmentIds": ["env_s", "env_t"]}
