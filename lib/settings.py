"""Configuration, read from the environment once and validated as a whole.

Everything the integration needs to know about its deployment comes from env vars
(Vercel's dashboard, or `make dev`'s defaults). Validation happens in one place so
that a misconfigured deployment fails closed with a message naming the variable,
instead of failing later with a confusing error deep inside a request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from lib.crypto import EncryptionKey
from lib.log import register_secret

__all__ = [
    "EncryptionKey",
    "KVConfig",
    "Settings",
    "SettingsError",
    "SigninConfig",
    "get_settings",
    "load_settings",
    "reset_settings",
]


class SettingsError(Exception):
    """The deployment is misconfigured. The message names the variables, never their values."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class KVConfig(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    url: str
    token: str = Field(repr=False)
    source: str  # which variables it came from, for /health


# Sign in with Vercel (https://vercel.com/.well-known/oauth-authorization-server): the
# issuer and key set of ID tokens. Fixed here, never read from the environment: a JWKS URL
# someone could change would let them mint ID tokens of their own.
VERCEL_ISSUER = "https://vercel.com"
VERCEL_JWKS_URL = "https://vercel.com/.well-known/jwks"
SIGNIN_VARIABLES = ("VERCEL_APP_CLIENT_ID", "VERCEL_APP_CLIENT_SECRET", "VERCEL_APP_REDIRECT_URI")


class SigninConfig(BaseModel):
    """The Vercel App that signs people in to the configuration page
    (https://vercel.com/docs/sign-in-with-vercel/getting-started)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    client_id: str
    client_secret: str = Field(repr=False)
    redirect_uri: str
    issuer: str = VERCEL_ISSUER
    jwks_url: str = VERCEL_JWKS_URL
    # https://vercel.com/oauth/authorize and https://api.vercel.com/login/oauth/token in
    # production; they follow VERCEL_DASHBOARD_URL / VERCEL_API_URL. Neither can make a
    # forged ID token pass: its signature is checked against `jwks_url` alone.
    authorize_url: str = f"{VERCEL_ISSUER}/oauth/authorize"
    token_url: str = "https://api.vercel.com/login/oauth/token"  # noqa: S105 (a URL)


class Settings(BaseModel):
    """The validated configuration. Optional fields are needed by one endpoint only."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    client_id: str
    client_secret: str = Field(repr=False)
    # During a client-secret rotation in the Integration Console, the old secret may still
    # sign webhooks (whether Vercel signs with both is unknown: vercel-reality.md C1).
    # Accepted for webhook verification only; the code exchange uses `client_secret`.
    client_secret_previous: str | None = Field(default=None, repr=False)
    encryption_key: EncryptionKey
    old_encryption_keys: tuple[EncryptionKey, ...] = ()
    kv: KVConfig
    key_prefix: str = "vi:"
    redirect_uri: str | None = None
    integration_slug: str | None = None
    vercel_api_url: str = "https://api.vercel.com"
    dashboard_url: str = "https://vercel.com"
    cron_secret: str | None = Field(default=None, repr=False)
    admin_token: str | None = Field(default=None, repr=False)
    spec_path: str = "integration.toml"
    kv_timeout_s: float = 2.0
    vercel_timeout_s: float = 10.0
    on_vercel: bool = False
    log_level: str = "INFO"
    signin: SigninConfig | None = None
    # The Sign in with Vercel variables still to set when `signin` is None.
    signin_missing: tuple[str, ...] = SIGNIN_VARIABLES

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        """The secrets a webhook signature is checked against: the current, then the
        previous one while a rotation is under way."""
        if self.client_secret_previous:
            return (self.client_secret, self.client_secret_previous)
        return (self.client_secret,)

    def require(self, field: str) -> str:
        """The value of an optional setting an endpoint cannot work without."""
        value = getattr(self, field)
        if not value:
            raise SettingsError([f"{_ENV_NAMES[field]} is not set"])
        return str(value)


_ENV_NAMES = {
    "redirect_uri": "VERCEL_REDIRECT_URI",
    "integration_slug": "INTEGRATION_SLUG",
    "cron_secret": "CRON_SECRET",
    "admin_token": "ADMIN_TOKEN",
}

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _parse_key(raw: str, name: str) -> EncryptionKey:
    """`[key-id:]base64(32 bytes)`. Without an id, one is derived from the key itself."""
    key_id, _, material = raw.strip().rpartition(":")
    try:
        key = base64.b64decode(material + "=" * (-len(material) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        material_std = material.replace("-", "+").replace("_", "/")
        try:
            key = base64.b64decode(material_std + "=" * (-len(material_std) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
    if len(key) != 32:
        raise SettingsError(
            [
                f"{name} must be 32 random bytes in base64 (generate one with "
                '`python3 -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"`)'
            ]
        )
    if key_id and not key_id.replace("-", "").replace("_", "").isalnum():
        raise SettingsError([f"{name}: key id before ':' must be letters, digits, '-' or '_'"])
    return EncryptionKey(key_id=key_id or hashlib.sha256(key).hexdigest()[:8], key=key)


def _check_url(value: str, name: str, problems: list[str]) -> str:
    parts = urlsplit(value)
    local = parts.hostname in _LOCAL_HOSTS
    if parts.scheme not in ("https", "http") or not parts.hostname:
        problems.append(f"{name} must be an http(s) URL")
    elif parts.scheme == "http" and not local:
        problems.append(f"{name} must use https (http is only allowed for localhost)")
    return value.rstrip("/")


def _resolve_kv(env: Mapping[str, str], problems: list[str]) -> KVConfig | None:
    """UPSTASH_REDIS_REST_* first, then KV_REST_API_* (optionally prefixed)."""
    prefix = env.get("KV_ENV_PREFIX", "")
    candidates = [
        ("UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN"),
        (f"{prefix}KV_REST_API_URL", f"{prefix}KV_REST_API_TOKEN"),
    ]
    for url_var, token_var in candidates:
        url, token = env.get(url_var, "").strip(), env.get(token_var, "").strip()
        if not url and not token:
            continue
        if not url or not token:
            missing = url_var if not url else token_var
            problems.append(f"{missing} is not set (it must accompany the other)")
            return None
        if urlsplit(url).scheme in ("redis", "rediss"):
            problems.append(
                f"{url_var} is a redis:// URL; use the REST URL (https://…), not KV_URL/REDIS_URL"
            )
            return None
        if token == env.get(f"{prefix}KV_REST_API_READ_ONLY_TOKEN", "").strip():
            problems.append(f"{token_var} is the read-only token; the integration needs to write")
            return None
        return KVConfig(url=_check_url(url, url_var, problems), token=token, source=url_var)
    where = "on Vercel " if env.get("VERCEL_ENV") else ""
    problems.append(
        f"no KV store configured {where}(set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN, "
        "or connect an Upstash Redis store, which sets KV_REST_API_URL and KV_REST_API_TOKEN)"
    )
    return None


def _loopback_override(env: Mapping[str, str], name: str, problems: list[str]) -> str | None:
    """A `*_DEV` override of Vercel's issuer or JWKS URL: honoured only when it points at
    this machine (the local stack's emulator); anything else fails closed."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or parts.hostname not in _LOCAL_HOSTS:
        problems.append(
            f"{name} may only point at this machine (localhost, 127.0.0.1 or ::1) for local "
            f"development; in production Sign in with Vercel always uses {VERCEL_ISSUER}: "
            "unset it"
        )
        return None
    return raw.rstrip("/")


def _signin(
    env: Mapping[str, str], api_url: str, dash_url: str, problems: list[str]
) -> tuple[SigninConfig | None, tuple[str, ...]]:
    """Sign in with Vercel's App, or None and the variables still missing."""
    values = {name: env.get(name, "").strip() for name in SIGNIN_VARIABLES}
    issuer = _loopback_override(env, "VERCEL_OIDC_ISSUER_DEV", problems)
    jwks = _loopback_override(env, "VERCEL_OIDC_JWKS_URL_DEV", problems)
    if (issuer is None) != (jwks is None) and not problems:
        problems.append("VERCEL_OIDC_ISSUER_DEV and VERCEL_OIDC_JWKS_URL_DEV go together")
    missing = tuple(name for name, value in values.items() if not value)
    if missing:
        return None, missing
    redirect = _check_url(values["VERCEL_APP_REDIRECT_URI"], "VERCEL_APP_REDIRECT_URI", problems)
    register_secret(values["VERCEL_APP_CLIENT_SECRET"], permanent=True)
    return (
        SigninConfig(
            client_id=values["VERCEL_APP_CLIENT_ID"],
            client_secret=values["VERCEL_APP_CLIENT_SECRET"],
            redirect_uri=redirect,
            issuer=issuer or VERCEL_ISSUER,
            jwks_url=jwks or VERCEL_JWKS_URL,
            authorize_url=f"{dash_url}/oauth/authorize",
            token_url=f"{api_url}/login/oauth/token",
        ),
        (),
    )


def _float(env: Mapping[str, str], name: str, default: float, problems: list[str]) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 60:
        problems.append(f"{name} must be a number of seconds between 0 and 60")
        return default
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Validate the whole environment, reporting every problem at once."""
    env = os.environ if env is None else env
    problems: list[str] = []

    def required(name: str) -> str:
        value = env.get(name, "").strip()
        if not value:
            problems.append(f"{name} is not set")
        return value

    client_id = required("VERCEL_CLIENT_ID")
    client_secret = required("VERCEL_CLIENT_SECRET")
    previous_secret = env.get("VERCEL_CLIENT_SECRET_PREVIOUS", "").strip() or None
    if previous_secret == client_secret:
        previous_secret = None  # not rotating after all
    raw_key = required("TOKEN_ENCRYPTION_KEY")
    key: EncryptionKey | None = None
    old_keys: list[EncryptionKey] = []
    try:
        key = _parse_key(raw_key, "TOKEN_ENCRYPTION_KEY") if raw_key else None
        for i, raw in enumerate(filter(None, env.get("TOKEN_ENCRYPTION_KEYS_OLD", "").split(","))):
            old_keys.append(_parse_key(raw, f"TOKEN_ENCRYPTION_KEYS_OLD[{i}]"))
    except SettingsError as exc:
        problems.extend(exc.problems)
    kv = _resolve_kv(env, problems)

    optional = {field: env.get(var, "").strip() or None for field, var in _ENV_NAMES.items()}
    if optional["redirect_uri"]:
        optional["redirect_uri"] = _check_url(
            optional["redirect_uri"], "VERCEL_REDIRECT_URI", problems
        )
    slug = optional["integration_slug"]
    if slug and not all(c.isalnum() or c == "-" for c in slug):
        problems.append("INTEGRATION_SLUG must be letters, digits and '-'")
    api_url = _check_url(
        env.get("VERCEL_API_URL", "https://api.vercel.com"), "VERCEL_API_URL", problems
    )
    dash_url = _check_url(
        env.get("VERCEL_DASHBOARD_URL", "https://vercel.com"), "VERCEL_DASHBOARD_URL", problems
    )
    key_prefix = env.get("KV_KEY_PREFIX", "vi:")
    if len(key_prefix) > 32 or any(c.isspace() for c in key_prefix):
        problems.append("KV_KEY_PREFIX must be at most 32 characters without spaces")
    kv_timeout = _float(env, "KV_TIMEOUT_SECONDS", 2.0, problems)
    vercel_timeout = _float(env, "VERCEL_TIMEOUT_SECONDS", 10.0, problems)
    level = env.get("LOG_LEVEL", "INFO").upper()
    signin, signin_missing = _signin(env, api_url, dash_url, problems)
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append("LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")

    if problems or key is None or kv is None:
        raise SettingsError(problems)

    for secret in (
        client_secret,
        previous_secret,
        kv.token,
        optional["cron_secret"],
        optional["admin_token"],
    ):
        register_secret(secret, permanent=True)
    return Settings(
        client_id=client_id,
        client_secret=client_secret,
        client_secret_previous=previous_secret,
        encryption_key=key,
        old_encryption_keys=tuple(old_keys),
        kv=kv,
        key_prefix=key_prefix,
        redirect_uri=optional["redirect_uri"],
        integration_slug=slug,
        vercel_api_url=api_url,
        dashboard_url=dash_url,
        cron_secret=optional["cron_secret"],
        admin_token=optional["admin_token"],
        spec_path=env.get("INTEGRATION_SPEC_PATH", "integration.toml"),
        kv_timeout_s=kv_timeout,
        vercel_timeout_s=vercel_timeout,
        on_vercel=bool(env.get("VERCEL_ENV")),
        log_level=level,
        signin=signin,
        signin_missing=signin_missing,
    )


_cached: Settings | None = None
_cache_lock = threading.Lock()


def get_settings() -> Settings:
    """The process's settings, validated on first use (never at import time)."""
    global _cached
    if _cached is None:
        with _cache_lock:
            if _cached is None:
                _cached = load_settings()
    return _cached


def reset_settings() -> None:
    """Forget the cached settings (tests and the dev server change the environment)."""
    global _cached
    with _cache_lock:
        _cached = None
