"""Installation state in KV: what we know about every installation of the integration.

Key layout (every key under the configurable prefix `p`, default `vi:`):

    p:inst:<configurationId>      JSON installation record (token sealed)
    p:owner:<teamId|userId>       SET of configuration ids owned by that scope
    p:all                         SET of every configuration id (sweeps, resync all)
    p:secrets:<configurationId>   HASH name -> sealed per-installation secret
    p:projects:<configurationId>  HASH projectId -> JSON provisioning record
    p:pending                     ZSET configurationId -> when work was left unfinished
    p:event:<eventId>             dedupe mark: "processing:<lease id>" (60 s) or "done" (48 h)
    p:state:<id>                  one-time install state (consumed with GETDEL)
    p:code:<sha256(code)[:32]>    claim on an install code: "pending" while one request
                                  exchanges it (60 s), then "done:<sha256(cfg)[:24]>" (30 min)

Everything an installation owns is reachable from its configuration id and owner, so
uninstall can delete it all in one transaction. The owner index is a set, not a
string, so a late event for an old installation can never erase the mapping of a new
one on the same scope.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Literal

from lib.crypto import CryptoError, Keyring
from lib.kv.client import KV, get_kv, set_succeeded
from lib.kv.records import Installation, ProjectRecord, StoreError, parse_record
from lib.log import register_secret
from lib.settings import Settings

__all__ = [
    "EVENT_DONE_TTL_S",
    "Store",
    "open_store",
]

# Vercel retries a webhook for 24 h; remember a processed event for twice that.
EVENT_DONE_TTL_S = 48 * 3600


class Store:
    """Typed access to installation state. All multi-key work is one round trip."""

    def __init__(self, kv: KV, keyring: Keyring, prefix: str = "vi:") -> None:
        self.kv = kv
        self._keyring = keyring
        self._p = prefix

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    # -- keys ---------------------------------------------------------------------------

    def key(self, kind: str, ident: str = "") -> str:
        return f"{self._p}{kind}:{ident}" if ident else f"{self._p}{kind}"

    # -- installations --------------------------------------------------------------------

    def seal_token(self, configuration_id: str, token: str) -> str:
        return self._keyring.seal(token, aad=f"token:{configuration_id}")

    def token(self, installation: Installation) -> str:
        """The installation's access token, unsealed (and masked in logs from now on)."""
        token = self._keyring.open_text(
            installation.sealed_token, aad=f"token:{installation.configuration_id}"
        )
        register_secret(token)
        return token

    def get_installation(self, configuration_id: str) -> Installation | None:
        raw = self.kv.call("GET", self.key("inst", configuration_id), idempotent=True)
        return None if raw is None else self.parse_installation(raw, configuration_id)

    @staticmethod
    def parse_installation(raw: str, configuration_id: str) -> Installation:
        """An installation record read by a caller's own pipeline."""
        return parse_record(Installation, raw, configuration_id)

    def load(
        self, configuration_id: str
    ) -> tuple[Installation | None, dict[str, str], dict[str, ProjectRecord]]:
        """Installation, secrets and provisioning records in one round trip."""
        raw_inst, raw_secrets, raw_projects = self.kv.pipeline(
            [
                ["GET", self.key("inst", configuration_id)],
                ["HGETALL", self.key("secrets", configuration_id)],
                ["HGETALL", self.key("projects", configuration_id)],
            ],
            idempotent=True,
        )
        if raw_inst is None:
            return None, {}, {}
        inst = parse_record(Installation, raw_inst, configuration_id)
        secrets = self._open_secrets(configuration_id, raw_secrets)
        projects = {
            pid: parse_record(ProjectRecord, v, pid) for pid, v in _pairs(raw_projects).items()
        }
        return inst, secrets, projects

    def installation_commands(self, installation: Installation) -> list[list[str | int | float]]:
        """The writes that store `installation` and its indexes (compose into a transaction)."""
        cfg = installation.configuration_id
        return [
            ["SET", self.key("inst", cfg), installation.model_dump_json()],
            ["SADD", self.key("owner", installation.owner_id), cfg],
            ["SADD", self.key("all"), cfg],
        ]

    def save_installation(
        self, installation: Installation, *, secrets: Mapping[str, str] | None = None
    ) -> None:
        """Store the record, its indexes and any new secrets atomically."""
        commands = self.installation_commands(installation)
        commands += self.secret_commands(
            installation.configuration_id, secrets or {}, only_new=True
        )
        self.kv.transaction(commands, idempotent=True)

    def set_status(
        self,
        configuration_id: str,
        status: Literal["active", "paused", "broken"],
        reason: str | None,
    ) -> Installation | None:
        """Record a status change; returns the updated installation (None if unknown)."""
        inst = self.get_installation(configuration_id)
        if inst is None:
            return None
        if inst.status == status and inst.status_reason == reason:
            return inst
        inst = inst.model_copy(
            update={"status": status, "status_reason": reason, "updated_at": time.time()}
        )
        # SET XX: never recreate a record that an uninstall deleted meanwhile.
        self.kv.call(
            "SET", self.key("inst", configuration_id), inst.model_dump_json(), "XX", idempotent=True
        )
        return inst

    def installations_for_owner(self, owner_id: str) -> list[str]:
        members = self.kv.call("SMEMBERS", self.key("owner", owner_id), idempotent=True)
        return sorted(members or [])

    def all_installations(self) -> list[str]:
        return sorted(self.kv.call("SMEMBERS", self.key("all"), idempotent=True) or [])

    def delete_installation(self, configuration_id: str, owner_ids: list[str]) -> None:
        """Remove every key of the installation in one transaction."""
        commands: list[list[str | int | float]] = [
            ["DEL", self.key("inst", configuration_id)],
            ["DEL", self.key("secrets", configuration_id)],
            ["DEL", self.key("projects", configuration_id)],
            ["SREM", self.key("all"), configuration_id],
            ["ZREM", self.key("pending"), configuration_id],
        ]
        commands += [["SREM", self.key("owner", owner), configuration_id] for owner in owner_ids]
        self.kv.transaction(commands, idempotent=True)

    # -- per-installation secrets ---------------------------------------------------------

    def secret_commands(
        self, configuration_id: str, secrets: Mapping[str, str], *, only_new: bool
    ) -> list[list[str | int | float]]:
        op = "HSETNX" if only_new else "HSET"
        key = self.key("secrets", configuration_id)
        return [
            [op, key, name, self._keyring.seal(value, aad=f"secret:{configuration_id}:{name}")]
            for name, value in secrets.items()
        ]

    def get_secrets(self, configuration_id: str) -> dict[str, str]:
        raw = self.kv.call("HGETALL", self.key("secrets", configuration_id), idempotent=True)
        return self._open_secrets(configuration_id, raw)

    def _open_secrets(self, configuration_id: str, raw: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, sealed in _pairs(raw).items():
            try:
                value = self._keyring.open_text(sealed, aad=f"secret:{configuration_id}:{name}")
            except CryptoError as exc:
                raise StoreError(
                    f"secret {name!r} of {configuration_id} cannot be opened: {exc}"
                ) from None
            register_secret(value)
            out[name] = value
        return out

    def set_secrets(self, configuration_id: str, secrets: Mapping[str, str]) -> None:
        """Replace secrets (rotation)."""
        commands = self.secret_commands(configuration_id, secrets, only_new=False)
        if commands:
            self.kv.pipeline(commands, idempotent=True)

    def add_secrets(self, configuration_id: str, secrets: Mapping[str, str]) -> None:
        """Add secrets that don't exist yet; concurrent minters agree on the first value."""
        commands = self.secret_commands(configuration_id, secrets, only_new=True)
        if commands:
            self.kv.pipeline(commands, idempotent=True)

    def fingerprint_key(self) -> bytes:
        """The key for value fingerprints (see `env_plan.fingerprint`)."""
        return self._keyring.derive("fingerprint")

    # -- provisioning records -------------------------------------------------------------

    def get_projects(self, configuration_id: str) -> dict[str, ProjectRecord]:
        raw = self.kv.call("HGETALL", self.key("projects", configuration_id), idempotent=True)
        return {pid: parse_record(ProjectRecord, value, pid) for pid, value in _pairs(raw).items()}

    def put_project(self, configuration_id: str, record: ProjectRecord) -> None:
        self.kv.call(
            "HSET",
            self.key("projects", configuration_id),
            record.project_id,
            record.model_dump_json(),
            idempotent=True,
        )

    def forget_project(self, configuration_id: str, project_id: str) -> None:
        self.kv.call("HDEL", self.key("projects", configuration_id), project_id, idempotent=True)

    # -- unfinished work -------------------------------------------------------------------

    def pending_command(
        self, configuration_id: str, when: float | None = None
    ) -> list[str | int | float]:
        """The write that marks unfinished work (compose into a transaction)."""
        return [
            "ZADD",
            self.key("pending"),
            time.time() if when is None else when,
            configuration_id,
        ]

    def mark_pending(self, configuration_id: str) -> None:
        self.kv.call(*self.pending_command(configuration_id), idempotent=True)

    def clear_pending(self, configuration_id: str) -> None:
        self.kv.call("ZREM", self.key("pending"), configuration_id, idempotent=True)

    def is_pending(self, configuration_id: str) -> bool:
        return (
            self.kv.call("ZSCORE", self.key("pending"), configuration_id, idempotent=True)
            is not None
        )

    def pending(self, limit: int = 100) -> list[str]:
        """Installations with unfinished work, oldest first."""
        return list(
            self.kv.call("ZRANGE", self.key("pending"), 0, limit - 1, idempotent=True) or []
        )

    # -- webhook dedupe ---------------------------------------------------------------------

    def release_event(self, event_id: str) -> None:
        """Give up a lease so Vercel's redelivery can run the event again."""
        self.kv.call("DEL", self.key("event", event_id), idempotent=True)

    # -- one-time states ----------------------------------------------------------------------

    def put_state(self, state_id: str, payload: Mapping[str, Any], ttl_s: int) -> bool:
        """Store a one-time state; False if the id already exists (never overwrite)."""
        ok = self.kv.call(
            "SET", self.key("state", state_id), json.dumps(payload), "NX", "EX", ttl_s
        )
        return set_succeeded(ok)

    def take_state(self, state_id: str) -> dict[str, Any] | None:
        """Consume a state: the first caller gets it, every later caller gets None."""
        raw = self.kv.call("GETDEL", self.key("state", state_id))
        if raw is None:
            return None
        value = json.loads(raw)
        return value if isinstance(value, dict) else None


def _pairs(raw: Any) -> dict[str, str]:
    """HGETALL replies as a flat list [k1, v1, k2, v2, …] over REST."""
    if not raw:
        return {}
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    return {str(raw[i]): str(raw[i + 1]) for i in range(0, len(raw) - 1, 2)}


def open_store(settings: Settings) -> Store:
    """The store for this deployment: the shared KV client and the configured keys."""
    keyring = Keyring(settings.encryption_key, settings.old_encryption_keys)
    return Store(get_kv(settings), keyring, settings.key_prefix)
