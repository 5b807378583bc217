"""Injected faults and latency: deterministic, REST only, before or after the change."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.dev.emulator.support import Stack

MIX = {"500": 1, "502": 1, "503": 1, "429": 1}


def _statuses(stack: Stack, seed: int, calls: int = 30) -> list[int]:
    api = stack.api(stack.install(stack.user()["id"]))
    stack.control(
        "PUT", "/faults", json={"seed": seed, "rules": [{"probability": 0.5, "kinds": MIX}]}
    )
    return [api.get("/v10/projects").status_code for _ in range(calls)]


def test_same_seed_same_faults(stack: Stack) -> None:
    first = _statuses(stack, seed=7)
    stack.restore()
    second = _statuses(stack, seed=7)
    assert first == second
    assert {200, 500, 502, 503, 429} == set(first)
    stack.restore()
    assert _statuses(stack, seed=8) != first


def test_injected_429_and_503_carry_retry_after(stack: Stack) -> None:
    api = stack.api(stack.install(stack.user()["id"]))
    for kind in ("429", "503"):
        stack.control(
            "PUT",
            "/faults",
            json={"rules": [{"probability": 1, "kinds": [kind], "retryAfter": 2}]},
        )
        response = api.get("/v10/projects")
        assert response.status_code == int(kind)
        assert response.headers["retry-after"] == "2"
    assert api.get("/v10/projects").json()["error"]["code"] == "service_unavailable"


def test_faults_match_routes(stack: Stack) -> None:
    owner = stack.user()["id"]
    api = stack.api(stack.install(owner))
    project = stack.projects_of(owner)[0]["id"]
    stack.control(
        "PUT",
        "/faults",
        json={"rules": [{"route": "POST /v10/projects/*/env", "probability": 1, "kinds": ["500"]}]},
    )
    assert api.get("/v10/projects").status_code == 200
    body = {"key": "K", "value": "v", "type": "plain", "target": ["preview"]}
    assert api.post(f"/v10/projects/{project}/env", json=body).status_code == 500
    assert all(p["env"] == [] for p in stack.state()["projects"])  # struck before the handler


def test_after_faults_apply_the_change_and_lose_the_answer(stack: Stack) -> None:
    owner = stack.user()["id"]
    api = stack.api(stack.install(owner))
    project = stack.projects_of(owner)[0]["id"]
    stack.control(
        "PUT",
        "/faults",
        json={"rules": [{"probability": 1, "kinds": ["502"], "when": "after"}]},
    )
    body = {"key": "K", "value": "v", "type": "plain", "target": ["preview"]}
    assert api.post(f"/v10/projects/{project}/env", json=body).status_code == 502
    env = next(p for p in stack.state()["projects"] if p["id"] == project)["env"]
    assert [e["key"] for e in env] == ["K"]  # created anyway: retrying blindly would conflict


def test_reset_fault_drops_the_connection(stack: Stack) -> None:
    api = stack.api(stack.install(stack.user()["id"]))
    stack.control("PUT", "/faults", json={"rules": [{"probability": 1, "kinds": ["reset"]}]})
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        api.get("/v10/projects")
    calls = stack.control("GET", "/calls")["routes"]["GET /v10/projects"]
    assert calls["statuses"] == {"disconnect": 1}


def test_timeout_fault_holds_then_closes(stack: Stack) -> None:
    api = stack.api(stack.install(stack.user()["id"]))
    stack.control(
        "PUT",
        "/faults",
        json={"rules": [{"probability": 1, "kinds": ["timeout"], "timeoutS": 0.3}]},
    )
    with pytest.raises(httpx.ReadTimeout):
        api.get("/v10/projects", timeout=0.1)
    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/v10/projects", timeout=60)
    # Closed after the 0.3 s hold, long before the client's own 60 s timeout.
    assert 0.25 <= time.monotonic() - started < 20


def test_latency_applies_to_rest_only(stack: Stack) -> None:
    api = stack.api(stack.install(stack.user()["id"]))
    stack.control("PUT", "/latency", json={"ms": 2000})
    started = time.monotonic()
    api.get("/v10/projects")
    rest = time.monotonic() - started
    started = time.monotonic()
    stack.control("GET", "/state")
    control = time.monotonic() - started
    assert rest >= 2.0
    assert control < 1.0  # no latency at all; a loaded runner's scheduling is not 1 s


def test_control_api_never_faults(stack: Stack) -> None:
    stack.control("PUT", "/faults", json={"rules": [{"probability": 1, "kinds": ["500"]}]})
    for _ in range(5):
        stack.control("GET", "/state")
    assert stack.control("GET", "/faults")["injected"] == {}


def test_invalid_fault_rules_are_refused(stack: Stack) -> None:
    client = stack.client()
    bad = client.put("/_emulator/faults", json={"rules": [{"probability": 2}]})
    assert bad.status_code == 400
    bad = client.put("/_emulator/faults", json={"rules": [{"kinds": ["teapot"]}]})
    assert bad.status_code == 400
