"""The code exchange: one-shot 30-minute codes bound to client and Redirect URL."""

from __future__ import annotations

import pytest

from tests.dev.emulator.support import Stack


def _code(stack: Stack, scope: str) -> dict:
    return stack.control("POST", "/oauth/code", json={"scope": scope})


def test_team_code_exchanges_for_a_token_bound_to_the_configuration(stack: Stack) -> None:
    team = stack.team()
    minted = _code(stack, team["id"])
    response = stack.exchange(minted["code"])
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token_type", "access_token", "installation_id", "user_id", "team_id"}
    assert body["token_type"] == "Bearer"
    assert body["installation_id"] == minted["configurationId"]
    assert body["installation_id"].startswith("icfg_")
    assert body["team_id"] == team["id"]
    assert body["user_id"] == stack.user()["id"]
    assert response.headers["cache-control"] == "no-store"


def test_personal_code_has_no_team(stack: Stack) -> None:
    minted = _code(stack, stack.user()["id"])
    assert minted["teamId"] is None
    assert stack.exchange(minted["code"]).json()["team_id"] is None


def test_code_is_single_use_with_the_documented_message(stack: Stack) -> None:
    code = _code(stack, stack.user()["id"])["code"]
    assert stack.exchange(code).status_code == 200
    again = stack.exchange(code)
    assert again.status_code == 400
    assert again.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid grant: authorization code is invalid",
    }


def test_code_expires_after_thirty_minutes(stack: Stack) -> None:
    early = _code(stack, stack.user()["id"])["code"]
    late = stack.control("POST", "/oauth/code", json={"scope": stack.user()["id"]})["code"]
    stack.control("POST", "/clock/advance", json={"seconds": 29 * 60})
    assert stack.exchange(early).status_code == 200
    stack.control("POST", "/clock/advance", json={"seconds": 60})
    expired = stack.exchange(late)
    assert expired.status_code == 400
    assert expired.json()["error"] == "invalid_grant"
    assert "expired" in expired.json()["error_description"]


def test_code_is_bound_to_the_redirect_uri_and_survives_a_mismatch(stack: Stack) -> None:
    code = _code(stack, stack.user()["id"])["code"]
    wrong = stack.exchange(code, redirect_uri="https://evil.example/callback")
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert stack.exchange(code).status_code == 200  # the failed attempt did not burn it


@pytest.mark.parametrize("field", ["client_id", "client_secret"])
def test_wrong_client_credentials_are_invalid_client(stack: Stack, field: str) -> None:
    code = _code(stack, stack.user()["id"])["code"]
    response = stack.exchange(code, **{field: "oac_someoneelse"})
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Invalid client: client is invalid",
    }


def test_missing_parameter_and_json_body_are_invalid_request(stack: Stack) -> None:
    client = stack.client()
    missing = client.post("/v2/oauth/access_token", data={"client_id": stack.config.client_id})
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    as_json = client.post("/v2/oauth/access_token", json={"code": "x"})
    assert as_json.status_code == 400
    assert as_json.json()["error"] == "invalid_request"


def test_vercel_style_errors_variant(stack: Stack) -> None:
    stack.control("PATCH", "/config", json={"oauth_error_style": "vercel"})
    response = stack.exchange("not-a-code")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "invalid_grant",
            "message": "Invalid grant: authorization code is invalid",
        }
    }


def test_code_of_a_removed_configuration_is_invalid(stack: Stack) -> None:
    minted = _code(stack, stack.user()["id"])
    stack.control("DELETE", f"/configurations/{minted['configurationId']}")
    assert stack.exchange(minted["code"]).json()["error"] == "invalid_grant"


def test_a_new_code_for_the_same_scope_keeps_the_configuration(stack: Stack) -> None:
    team = stack.team()["id"]
    first, second = _code(stack, team), _code(stack, team)
    assert first["configurationId"] == second["configurationId"]
    assert first["created"] is True
    assert second["created"] is False
    assert first["code"] != second["code"]
    tokens = [stack.exchange(m["code"]).json() for m in (first, second)]
    assert tokens[0]["access_token"] != tokens[1]["access_token"]
    assert {t["installation_id"] for t in tokens} == {first["configurationId"]}
