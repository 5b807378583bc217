import base64

import pytest

from lib.settings import SettingsError, load_settings

KEY = base64.b64encode(bytes(range(32))).decode()
OLD = base64.b64encode(bytes(range(1, 33))).decode()


def env(**over: str) -> dict[str, str]:
    base = {
        "VERCEL_CLIENT_ID": "oac_test",
        "VERCEL_CLIENT_SECRET": "client-secret-value",
        "TOKEN_ENCRYPTION_KEY": KEY,
        "UPSTASH_REDIS_REST_URL": "https://kv.example.com",
        "UPSTASH_REDIS_REST_TOKEN": "kv-token-value",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v != "<unset>"}


def problems(**over: str) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(env(**over))
    return str(info.value)


def test_valid_minimal_environment_loads_with_defaults() -> None:
    s = load_settings(env())
    assert s.client_id == "oac_test"
    assert s.vercel_api_url == "https://api.vercel.com"
    assert s.dashboard_url == "https://vercel.com"
    assert s.kv.source == "UPSTASH_REDIS_REST_URL"
    assert s.key_prefix == "vi:"
    assert len(s.encryption_key.key) == 32


@pytest.mark.parametrize(
    "var", ["VERCEL_CLIENT_ID", "VERCEL_CLIENT_SECRET", "TOKEN_ENCRYPTION_KEY"]
)
def test_missing_required_variable_is_named(var: str) -> None:
    assert f"{var} is not set" in problems(**{var: "<unset>"})


def test_every_problem_is_reported_at_once() -> None:
    msg = problems(VERCEL_CLIENT_ID="<unset>", VERCEL_CLIENT_SECRET="<unset>")
    assert "VERCEL_CLIENT_ID" in msg
    assert "VERCEL_CLIENT_SECRET" in msg


def test_messages_never_contain_values() -> None:
    msg = problems(TOKEN_ENCRYPTION_KEY="not-a-key-but-secret-ish", VERCEL_API_URL="ftp://x")
    assert "not-a-key-but-secret-ish" not in msg
    assert "client-secret-value" not in msg
    assert "TOKEN_ENCRYPTION_KEY must be 32 random bytes" in msg
    assert "VERCEL_API_URL must be an http(s) URL" in msg


def test_kv_falls_back_to_vercel_kv_names() -> None:
    s = load_settings(
        env(
            UPSTASH_REDIS_REST_URL="<unset>",
            UPSTASH_REDIS_REST_TOKEN="<unset>",
            KV_REST_API_URL="https://kv2.example.com",
            KV_REST_API_TOKEN="kv2-token-value",
        )
    )
    assert s.kv.url == "https://kv2.example.com"
    assert s.kv.source == "KV_REST_API_URL"


def test_upstash_names_win_over_vercel_kv_names() -> None:
    s = load_settings(
        env(KV_REST_API_URL="https://other.example.com", KV_REST_API_TOKEN="zzzzzzzz")
    )
    assert s.kv.url == "https://kv.example.com"


def test_prefixed_marketplace_names() -> None:
    s = load_settings(
        env(
            UPSTASH_REDIS_REST_URL="<unset>",
            UPSTASH_REDIS_REST_TOKEN="<unset>",
            KV_ENV_PREFIX="STORAGE_",
            STORAGE_KV_REST_API_URL="https://kv3.example.com",
            STORAGE_KV_REST_API_TOKEN="kv3-token-value",
        )
    )
    assert s.kv.url == "https://kv3.example.com"


def test_read_only_token_is_refused() -> None:
    msg = problems(
        UPSTASH_REDIS_REST_URL="<unset>",
        UPSTASH_REDIS_REST_TOKEN="<unset>",
        KV_REST_API_URL="https://kv.example.com",
        KV_REST_API_TOKEN="ro-token-value",
        KV_REST_API_READ_ONLY_TOKEN="ro-token-value",
    )
    assert "read-only token" in msg


@pytest.mark.parametrize(
    "url", ["rediss://default:pw@kv.example.com:6379", "redis://127.0.0.1:6379"]
)
def test_tcp_redis_url_is_refused(url: str) -> None:
    assert "use the REST URL" in problems(UPSTASH_REDIS_REST_URL=url)


def test_no_kv_is_an_error_never_an_in_memory_store() -> None:
    msg = problems(UPSTASH_REDIS_REST_URL="<unset>", UPSTASH_REDIS_REST_TOKEN="<unset>")
    assert "no KV store configured" in msg
    on_vercel = problems(
        UPSTASH_REDIS_REST_URL="<unset>",
        UPSTASH_REDIS_REST_TOKEN="<unset>",
        VERCEL_ENV="production",
    )
    assert "no KV store configured on Vercel" in on_vercel


def test_half_configured_kv_names_the_missing_half() -> None:
    assert "UPSTASH_REDIS_REST_TOKEN is not set" in problems(UPSTASH_REDIS_REST_TOKEN="<unset>")


def test_plain_http_only_for_localhost() -> None:
    assert "must use https" in problems(VERCEL_API_URL="http://api.example.com")
    s = load_settings(env(VERCEL_API_URL="http://127.0.0.1:4000/"))
    assert s.vercel_api_url == "http://127.0.0.1:4000"


def test_key_id_and_old_keys_for_rotation() -> None:
    s = load_settings(env(TOKEN_ENCRYPTION_KEY=f"k2:{KEY}", TOKEN_ENCRYPTION_KEYS_OLD=f"k1:{OLD}"))
    assert s.encryption_key.key_id == "k2"
    assert [k.key_id for k in s.old_encryption_keys] == ["k1"]
    # Without an explicit id, the id is derived from the key and stable.
    a = load_settings(env()).encryption_key.key_id
    assert a == load_settings(env()).encryption_key.key_id
    assert len(a) == 8


def test_urlsafe_base64_key_is_accepted() -> None:
    raw = bytes([251] * 32)
    s = load_settings(env(TOKEN_ENCRYPTION_KEY=base64.urlsafe_b64encode(raw).decode().rstrip("=")))
    assert s.encryption_key.key == raw


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("KV_TIMEOUT_SECONDS", "soon", "KV_TIMEOUT_SECONDS must be a number of seconds"),
        ("VERCEL_TIMEOUT_SECONDS", "0", "VERCEL_TIMEOUT_SECONDS must be a number of seconds"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be"),
        ("INTEGRATION_SLUG", "bad slug!", "INTEGRATION_SLUG must be"),
        ("KV_KEY_PREFIX", "has space", "KV_KEY_PREFIX must be"),
    ],
)
def test_malformed_values_name_variable_and_form(var: str, value: str, expected: str) -> None:
    assert expected in problems(**{var: value})


def test_require_names_the_missing_optional_variable() -> None:
    s = load_settings(env())
    with pytest.raises(SettingsError, match="ADMIN_TOKEN is not set"):
        s.require("admin_token")
    assert load_settings(env(ADMIN_TOKEN="admin-token-value")).require("admin_token")


def test_repr_hides_secrets() -> None:
    s = load_settings(env(ADMIN_TOKEN="admin-token-value"))
    text = repr(s)
    for secret in ("client-secret-value", "kv-token-value", "admin-token-value"):
        assert secret not in text
