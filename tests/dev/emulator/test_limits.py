"""Per-route token buckets and the documented 429."""

from __future__ import annotations

import time

from tests.dev.emulator.support import Stack


def test_bucket_answers_the_documented_429_with_retry_after(stack: Stack) -> None:
    api = stack.api(stack.install(stack.user()["id"]))
    stack.control(
        "PUT",
        "/rate-limits",
        json={"rules": [{"route": "GET /v10/projects", "capacity": 2, "windowS": 60}]},
    )
    assert [api.get("/v10/projects").status_code for _ in range(2)] == [200, 200]
    limited = api.get("/v10/projects")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "30"
    error = limited.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["message"].startswith("The rate limit of 2 exceeded for 'GET /v10/projects'")
    limit = error["limit"]
    assert limit["remaining"] == 0
    assert limit["total"] == 2
    assert 29 <= limit["reset"] - time.time() <= 31
    assert abs(limit["resetMs"] - limit["reset"] * 1000) < 1000


def test_buckets_are_per_route(stack: Stack) -> None:
    owner = stack.user()["id"]
    api = stack.api(stack.install(owner))
    project = stack.projects_of(owner)[0]["id"]
    stack.control(
        "PUT", "/rate-limits", json={"rules": [{"route": "*", "capacity": 1, "windowS": 60}]}
    )
    assert api.get("/v10/projects").status_code == 200
    assert api.get("/v10/projects").status_code == 429
    assert api.get(f"/v10/projects/{project}/env").status_code == 200


def test_bucket_refills_with_time(stack: Stack) -> None:
    api = stack.api(stack.install(stack.user()["id"]))
    stack.control(
        "PUT",
        "/rate-limits",
        json={"rules": [{"route": "GET /v10/*", "capacity": 1, "windowS": 10}]},
    )
    assert api.get("/v10/projects").status_code == 200
    assert api.get("/v10/projects").status_code == 429
    stack.control("POST", "/clock/advance", json={"seconds": 10})
    assert api.get("/v10/projects").status_code == 200


def test_rate_limit_headers_only_when_asked(stack: Stack) -> None:
    api = stack.api(stack.install(stack.user()["id"]))
    stack.control("PUT", "/rate-limits", json={"rules": [{"capacity": 5, "windowS": 60}]})
    assert "x-ratelimit-limit" not in api.get("/v10/projects").headers
    stack.control("PATCH", "/config", json={"rate_limit_headers": True})
    headers = api.get("/v10/projects").headers
    assert headers["x-ratelimit-limit"] == "5"
    assert headers["x-ratelimit-remaining"] == "3"


def test_control_api_is_never_limited(stack: Stack) -> None:
    stack.control("PUT", "/rate-limits", json={"rules": [{"capacity": 1, "windowS": 60}]})
    for _ in range(3):
        stack.control("GET", "/state")
    assert stack.control("DELETE", "/rate-limits") == {"rules": []}
