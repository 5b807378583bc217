"""Sign in with Vercel on the emulator, driven over real HTTP the way a product would.

Every ID token is verified independently of the emulator's signer: the JWKS is fetched,
the RSA key rebuilt from `n`/`e`, and the RS256 signature checked with `cryptography`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.dev.emulator.support import Stack

REDIRECT = "http://127.0.0.1:3000/configure"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, _b64(hashlib.sha256(verifier.encode()).digest())


def _params(stack: Stack, challenge: str, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "client_id": stack.config.app_client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid email profile",
        "state": "st-123",
        "nonce": "n-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return {k: v for k, v in params.items() if v is not None}


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _consent(stack: Stack, decision: str = "allow", **overrides: str | None) -> httpx.Response:
    """Open the consent page, then press a button: the redirect back to the App."""
    _, challenge = _pkce()
    return _consent_with(stack, challenge, decision, **overrides)


def _consent_with(
    stack: Stack, challenge: str, decision: str = "allow", **overrides: str | None
) -> httpx.Response:
    params = _params(stack, challenge, **overrides)
    client = stack.client()
    shown = client.get("/oauth/authorize", params=params)
    assert shown.status_code == 200, shown.text
    assert 'value="allow">Allow</button>' in shown.text
    return client.post("/oauth/authorize", data={**params, "decision": decision})


def _code(stack: Stack, **overrides: str | None) -> tuple[str, str]:
    verifier, challenge = _pkce()
    answer = _consent_with(stack, challenge, "allow", **overrides)
    assert answer.status_code == 303
    return _query(answer.headers["location"])["code"], verifier


def _token(stack: Stack, code: str, verifier: str, **overrides: str | None) -> httpx.Response:
    form: dict[str, str | None] = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": stack.config.app_client_id,
        "client_secret": stack.config.app_client_secret,
        **overrides,
    }
    data = {k: v for k, v in form.items() if v is not None}
    return stack.client().post("/login/oauth/token", data=data)


def _verify(stack: Stack, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of an ID token whose RS256 signature the JWKS verifies."""
    head_b64, body_b64, sig_b64 = token.split(".")
    header = json.loads(_unb64(head_b64))
    keys = stack.client().get("/.well-known/jwks").json()["keys"]
    jwk = next(k for k in keys if k["kid"] == header["kid"])
    public = rsa.RSAPublicNumbers(
        int.from_bytes(_unb64(jwk["e"]), "big"), int.from_bytes(_unb64(jwk["n"]), "big")
    ).public_key()
    public.verify(
        _unb64(sig_b64),
        f"{head_b64}.{body_b64}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    return header, json.loads(_unb64(body_b64))


def test_metadata_names_the_emulator_as_issuer_and_its_endpoints(stack: Stack) -> None:
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        meta = stack.client().get(path).json()
        assert meta["issuer"] == stack.url
        assert meta["jwks_uri"] == f"{stack.url}/.well-known/jwks"
        assert meta["authorization_endpoint"] == f"{stack.url}/oauth/authorize"
        assert meta["token_endpoint"] == f"{stack.url}/login/oauth/token"
        assert meta["userinfo_endpoint"] == f"{stack.url}/login/oauth/userinfo"
        assert meta["code_challenge_methods_supported"] == ["S256"]
        assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
        assert {"openid", "email", "profile"} <= set(meta["scopes_supported"])


def test_allow_redirects_with_code_state_and_issuer(stack: Stack) -> None:
    answer = _consent(stack)
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    query = _query(location)
    assert set(query) == {"code", "state", "iss"}
    assert query["state"] == "st-123"
    assert query["iss"] == stack.url


def test_consent_page_names_the_person_and_the_app(stack: Stack) -> None:
    _, challenge = _pkce()
    page = stack.client().get("/oauth/authorize", params=_params(stack, challenge)).text
    assert "Sign in to My Integration" in page
    assert "Dev User" in page
    assert "@dev-user" in page
    assert "Acme Inc" in page
    assert 'value="cancel" class="secondary">Cancel' in page
    stack.control("PUT", "/signed-in-user", json={"username": "outsider"})
    page = stack.client().get("/oauth/authorize", params=_params(stack, challenge)).text
    assert "@outsider" in page
    assert "Acme Inc" not in page


def test_cancel_redirects_with_access_denied_and_state(stack: Stack) -> None:
    answer = _consent(stack, decision="cancel")
    assert answer.status_code == 302
    query = _query(answer.headers["location"])
    assert query["error"] == "access_denied"
    assert query["state"] == "st-123"
    assert "code" not in query
    assert stack.state()["signIn"]["codes"] == 0


def test_token_answer_carries_a_verifiable_id_token_with_the_nonce(stack: Stack) -> None:
    code, verifier = _code(stack)
    answer = _token(stack, code, verifier)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "openid email profile"
    header, claims = _verify(stack, body["id_token"])
    assert header["alg"] == "RS256"
    user = stack.user()
    assert claims["iss"] == stack.url
    assert claims["aud"] == stack.config.app_client_id
    assert claims["sub"] == user["id"]
    assert claims["nonce"] == "n-456"
    assert claims["preferred_username"] == "dev-user"
    assert claims["email"] == "dev-user@example.com"
    assert claims["name"] == "Dev User"
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["nbf"] == claims["iat"]
    assert claims["jti"]


def test_sub_is_the_user_id_of_the_integration_code_exchange(stack: Stack) -> None:
    installation = stack.control("POST", "/oauth/code", json={"scope": stack.team()["id"]})
    exchanged = stack.exchange(installation["code"]).json()
    code, verifier = _code(stack)
    _, claims = _verify(stack, _token(stack, code, verifier).json()["id_token"])
    assert claims["sub"] == exchanged["user_id"]


def test_a_tampered_id_token_fails_verification(stack: Stack) -> None:
    code, verifier = _code(stack)
    token = _token(stack, code, verifier).json()["id_token"]
    head, body, sig = token.split(".")
    claims = json.loads(_unb64(body))
    claims["sub"] = "someone-else"
    forged = f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"
    with pytest.raises(InvalidSignature):
        _verify(stack, forged)


def test_without_nonce_or_openid(stack: Stack) -> None:
    code, verifier = _code(stack, nonce=None)
    _, claims = _verify(stack, _token(stack, code, verifier).json()["id_token"])
    assert "nonce" not in claims
    code, verifier = _code(stack, scope="email")
    body = _token(stack, code, verifier).json()
    assert "id_token" not in body
    assert body["scope"] == "email"


def test_unconfigured_scopes_are_filtered_and_no_scope_means_all(stack: Stack) -> None:
    code, verifier = _code(stack, scope="openid admin")
    assert _token(stack, code, verifier).json()["scope"] == "openid"
    code, verifier = _code(stack, scope=None)
    assert _token(stack, code, verifier).json()["scope"] == " ".join(stack.config.app_scopes)


def test_pkce_mismatch_is_invalid_grant_and_does_not_burn_the_code(stack: Stack) -> None:
    code, verifier = _code(stack)
    other, _ = _pkce()
    wrong = _token(stack, code, other)
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert _token(stack, code, verifier).status_code == 200


def test_missing_verifier_is_invalid_request(stack: Stack) -> None:
    code, _ = _code(stack)
    answer = _token(stack, code, "", code_verifier=None)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


def test_replayed_code_is_invalid_grant(stack: Stack) -> None:
    code, verifier = _code(stack)
    assert _token(stack, code, verifier).status_code == 200
    again = _token(stack, code, verifier)
    assert again.status_code == 400
    assert again.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid grant: authorization code is invalid",
    }


def test_wrong_redirect_uri_at_the_token_endpoint_is_invalid_grant(stack: Stack) -> None:
    code, verifier = _code(stack)
    answer = _token(stack, code, verifier, redirect_uri="http://127.0.0.1:3000/other")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_code_expires_after_ten_minutes(stack: Stack) -> None:
    early, early_verifier = _code(stack)
    late, late_verifier = _code(stack)
    stack.control("POST", "/clock/advance", json={"seconds": 9 * 60})
    assert _token(stack, early, early_verifier).status_code == 200
    stack.control("POST", "/clock/advance", json={"seconds": 61})
    expired = _token(stack, late, late_verifier)
    assert expired.status_code == 400
    assert "expired" in expired.json()["error_description"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "cl_unknown"},
        {"client_id": "cl_ünïcode"},
        {"client_secret": "wrong"},
        {"client_secret": "wröng"},
        {"client_secret": None},
    ],
)
def test_unknown_client_or_wrong_secret_is_invalid_client(
    stack: Stack, overrides: dict[str, str | None]
) -> None:
    code, verifier = _code(stack)
    answer = _token(stack, code, verifier, **overrides)
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert answer.headers["www-authenticate"].startswith("Basic")
    assert _token(stack, code, verifier).status_code == 200  # not consumed


def test_client_secret_basic_works(stack: Stack) -> None:
    code, verifier = _code(stack)
    basic = base64.b64encode(
        f"{stack.config.app_client_id}:{stack.config.app_client_secret}".encode()
    ).decode()
    answer = stack.client().post(
        "/login/oauth/token",
        headers={"Authorization": f"Basic {basic}"},
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert answer.status_code == 200, answer.text


def test_unsupported_grant_and_non_form_body(stack: Stack) -> None:
    code, verifier = _code(stack)
    answer = _token(stack, code, verifier, grant_type="refresh_token")
    assert answer.json()["error"] == "unsupported_grant_type"
    as_json = stack.client().post("/login/oauth/token", json={"code": code})
    assert as_json.status_code == 400
    assert as_json.json()["error"] == "invalid_request"


def test_unknown_client_or_redirect_uri_shows_an_error_page(stack: Stack) -> None:
    _, challenge = _pkce()
    client = stack.client()
    for overrides in (
        {"client_id": "cl_unknown"},
        {"client_id": "cl_ünïcode"},
        {"client_id": None},
        {"redirect_uri": "https://evil.example/callback"},
        {"redirect_uri": REDIRECT + "/"},
    ):
        answer = client.get("/oauth/authorize", params=_params(stack, challenge, **overrides))
        assert answer.status_code == 400
        assert "location" not in answer.headers
        assert 'role="alert"' in answer.text
        posted = client.post(
            "/oauth/authorize", data={**_params(stack, challenge, **overrides), "decision": "allow"}
        )
        assert posted.status_code == 400
    assert stack.state()["signIn"]["codes"] == 0


@pytest.mark.parametrize(
    ("overrides", "description"),
    [
        ({"response_type": None}, "Parameter 'response_type'. Required"),
        (
            {"response_type": "token"},
            "Parameter 'response_type'. Invalid enum value. Expected 'code', received 'token'",
        ),
        ({"code_challenge": None}, "Parameter 'code_challenge'. Required"),
        ({"code_challenge": "short"}, "between 43 and 128"),
        ({"code_challenge_method": "plain"}, "Expected 'S256', received 'plain'"),
        ({"code_challenge_method": None}, "code_challenge_method"),
    ],
)
def test_bad_parameters_redirect_with_invalid_request(
    stack: Stack, overrides: dict[str, str | None], description: str
) -> None:
    _, challenge = _pkce()
    answer = stack.client().get("/oauth/authorize", params=_params(stack, challenge, **overrides))
    assert answer.status_code == 302
    query = _query(answer.headers["location"])
    assert query["error"] == "invalid_request"
    assert description in query["error_description"]
    assert query["state"] == "st-123"


def test_key_rotation_changes_the_kid_and_drops_the_old_key(stack: Stack) -> None:
    code, verifier = _code(stack)
    old_token = _token(stack, code, verifier).json()["id_token"]
    old_kid, _ = _verify(stack, old_token)
    rotated = stack.control("POST", "/oidc/rotate-key", json={})
    assert rotated["kid"] != old_kid["kid"]
    assert rotated["kids"] == [rotated["kid"]]
    code, verifier = _code(stack)
    header, _ = _verify(stack, _token(stack, code, verifier).json()["id_token"])
    assert header["kid"] == rotated["kid"]
    with pytest.raises(StopIteration):  # the old kid is no longer published
        _verify(stack, old_token)
    kept = stack.control("POST", "/oidc/rotate-key", json={"retainPrevious": True})
    assert kept["kids"] == [kept["kid"], rotated["kid"]]
    keys = stack.client().get("/.well-known/jwks").json()["keys"]
    assert [k["kid"] for k in keys] == kept["kids"]
    assert all(k["kty"] == "RSA" and k["alg"] == "RS256" for k in keys)


def test_signed_in_user_switch_changes_sub(stack: Stack) -> None:
    assert stack.control("GET", "/signed-in-user")["username"] == "dev-user"
    switched = stack.control("PUT", "/signed-in-user", json={"username": "outsider"})
    assert switched["username"] == "outsider"
    assert switched["teams"] == []
    code, verifier = _code(stack)
    _, claims = _verify(stack, _token(stack, code, verifier).json()["id_token"])
    outsider = next(u for u in stack.state()["users"] if u["slug"] == "outsider")
    assert claims["sub"] == outsider["id"]
    assert claims["preferred_username"] == "outsider"
    missing = stack.client().put("/_emulator/signed-in-user", json={"username": "nobody"})
    assert missing.status_code == 404
    stack.control("POST", "/reset")
    assert stack.control("GET", "/signed-in-user")["username"] == "dev-user"


def test_userinfo_and_revocation(stack: Stack) -> None:
    code, verifier = _code(stack)
    access = _token(stack, code, verifier).json()["access_token"]
    bearer = stack.client(headers={"Authorization": f"Bearer {access}"})
    info = bearer.get("/login/oauth/userinfo")
    assert info.status_code == 200
    assert info.json()["sub"] == stack.user()["id"]
    assert info.json()["email"] == "dev-user@example.com"
    revoked = stack.client().post(
        "/login/oauth/token/revoke",
        auth=(stack.config.app_client_id, stack.config.app_client_secret),
        data={"token": access},
    )
    assert revoked.status_code == 200
    gone = bearer.get("/login/oauth/userinfo")
    assert gone.status_code == 401
    assert gone.json()["error"] == "invalid_token"


def test_access_token_expires_after_an_hour(stack: Stack) -> None:
    code, verifier = _code(stack)
    access = _token(stack, code, verifier).json()["access_token"]
    stack.control("POST", "/clock/advance", json={"seconds": 3600})
    answer = stack.client(headers={"Authorization": f"Bearer {access}"}).get(
        "/login/oauth/userinfo"
    )
    assert answer.status_code == 401


def test_the_token_endpoint_takes_injected_faults(stack: Stack) -> None:
    stack.control(
        "PUT",
        "/faults",
        json={"rules": [{"route": "POST /login/oauth/token", "probability": 1, "kinds": ["500"]}]},
    )
    code, verifier = _code(stack)
    assert _token(stack, code, verifier).status_code == 500
    stack.control("DELETE", "/faults")
    assert _token(stack, code, verifier).status_code == 200
