"""Installation state in KV: the only module that knows a key or sends a command.

Everything else asks the store for an operation by its intention (claim an event, store an
installation with its indexes, …); each operation is one KV round trip unless its
docstring says otherwise, and multi-key writes that must not be seen half done are one
MULTI/EXEC transaction (Upstash REST `/multi-exec`:
https://upstash.com/docs/redis/features/restapi#transactions). Read-only batches are
pipelines (https://upstash.com/docs/redis/features/restapi#pipelining).

Key layout (every key under the configurable prefix `p`, default `vi:`). This layout and
the stored values are a compatibility contract with data that deployed versions already
wrote (tests/lib/kv/test_store.py reads records in exactly this form): change it only
with a reader for the old form.

    p:inst:<configurationId>      JSON installation record (token sealed), see `records`
    p:owner:<teamId|userId>       SET of configuration ids owned by that scope
    p:all                         SET of every configuration id (sweeps, resync all)
    p:secrets:<configurationId>   HASH name -> sealed per-installation secret
    p:projects:<configurationId>  HASH projectId -> JSON provisioning record
    p:pending                     ZSET configurationId -> when work was left unfinished
    p:event:<eventId>             dedupe mark: "processing:<lease id>" (60 s) or "done" (48 h)
    p:state:<sha256(state)[:32]>  "used": a signed install state (lib.install) was spent,
                                  for the rest of its life. (Earlier versions kept the state
                                  itself here, as JSON under its own id, for 10 minutes; no
                                  longer read, it expires by itself.)
    p:code:<sha256(code)[:32]>    claim on an install code: "pending" while one request
                                  exchanges it (60 s), then "done:<sha256(cfg)[:24]>" (30 min)
    p:gone:<sha256(cfg)[:32]>     uninstall tombstone, "1", for `GONE_TTL_S` (72 h): named by
                                  a digest, so nothing left behind names the installation

Uninstall is final. `delete_installation` writes the tombstone in the script that
deletes every key of the installation, and every write of an installation's keys (record,
owner and `all` indexes, secrets, projects hash, pending mark) is one server-side Lua
script (`EVALSHA`, falling back to `EVAL` on NOSCRIPT; both supported by Upstash:
https://upstash.com/docs/redis/overall/rediscompatibility) that first checks the
tombstone and refuses when it is there. Redis runs a script atomically
(https://redis.io/docs/latest/develop/interactive/programmability/eval-intro/), so no
write can slip between an uninstall's check and its delete: a refused write raises `Gone`
and the caller stops. The tombstone outlives Vercel's 24 h webhook retries and the 48 h
dedupe window, so no redelivery, sweep or page action can bring the installation back;
a re-install gets a new configuration id from Vercel.

No lost update: the record is rewritten by compare-and-set on its exact stored bytes (the
script compares `GET` with what the writer read), with a bounded retry that re-reads and
re-applies the caller's pure change function (`update_installation`; an install's
refresh merges the same way, `complete_install`). No version field is
needed, so records written by earlier versions are read and updated as they are. A
reconcile's record of a project is compared the same way, field by field of its hash
(`record_project`). Other writes touch one field each (a hash entry, a set member, a ZSET
score) and need no CAS.

Sealed values are `v1.<key id>.<base64(nonce + AES-GCM ciphertext)>` (see `lib.crypto`),
bound to their place by the associated data `token:<cfg>` or `secret:<cfg>:<name>`.

Everything an installation owns is reachable from its configuration id and owner, so
uninstall can delete it all in one transaction. The owner index is a set, not a
string, so a late event for an old installation can never erase the mapping of a new
one on the same scope.

Retries: every operation here is declared idempotent to the KV client (retried once on
a transport failure) except where its docstring says why not.
"""

from __future__ import annotations

import hashlib
import secrets as _secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from lib.crypto import CryptoError, Keyring
from lib.kv.client import KV, Arg, KVCommandError, KVUnavailable, set_succeeded
from lib.kv.records import Installation, ProjectRecord, StoreError, parse_record
from lib.log import register_secret

__all__ = [
    "CODE_CLAIM_TTL_S",
    "CODE_DONE_TTL_S",
    "EVENT_DONE_TTL_S",
    "EVENT_LEASE_TTL_S",
    "GONE_TTL_S",
    "CodeProgress",
    "Contended",
    "EventClaim",
    "Gone",
    "InstallClaim",
    "Store",
    "Stored",
]

# Vercel retries a webhook for 24 h; remember a processed event for twice that.
EVENT_DONE_TTL_S = 48 * 3600
# A webhook run that dies keeps its event for at most this long.
EVENT_LEASE_TTL_S = 60
# A request that dies mid-exchange frees its install code after this.
CODE_CLAIM_TTL_S = 60
# How long a used install code remembers which installation it made.
CODE_DONE_TTL_S = 30 * 60
# An uninstall's tombstone outlives Vercel's 24 h of webhook retries and the 48 h dedupe
# window (events older than that are refused unread, see lib.webhooks.receive).
GONE_TTL_S = 72 * 3600
# Compare-and-set attempts before a writer gives up (retryable) on a contended record.
CAS_ATTEMPTS = 8

# KEYS[1] the tombstone, KEYS[2] the record. ARGV[1] the mode: "none" writes blindly,
# "exists" only while the record exists, "cas" only while it equals ARGV[2] byte for byte
# ("" = absent), "hcas" only while the record exists and field ARGV[3] of the hash
# KEYS[3] equals ARGV[2]. Then the writes (from ARGV[3], or ARGV[4] for "hcas"), each as
# <argc> <arg>... . Replies "ok", or what refused it: "gone", "missing", "conflict".
_GUARDED_WRITE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'gone' end
local mode = ARGV[1]
local i = 3
if mode == 'cas' then
  local current = redis.call('GET', KEYS[2])
  if not current then current = '' end
  if current ~= ARGV[2] then return 'conflict' end
elseif mode == 'exists' or mode == 'hcas' then
  if redis.call('EXISTS', KEYS[2]) == 0 then return 'missing' end
  if mode == 'hcas' then
    local current = redis.call('HGET', KEYS[3], ARGV[3])
    if not current then current = '' end
    if current ~= ARGV[2] then return 'conflict' end
    i = 4
  end
end
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 'ok'
"""
_GUARDED_SHA = hashlib.sha1(_GUARDED_WRITE.encode()).hexdigest()  # noqa: S324 - Redis' script id
# Uninstall. KEYS[1] the tombstone, KEYS[2..4] the record, secrets and projects, KEYS[5]
# `all`, KEYS[6] pending, KEYS[7..] owner indexes the caller knows. ARGV[1] the id, ARGV[2]
# the tombstone's TTL, ARGV[3] the owner index prefix: the index of the owner the record
# names now is derived from the record itself (cjson, built into Redis' Lua and Upstash's).
_DELETE = """
local raw = redis.call('GET', KEYS[2])
if raw then
  local ok, record = pcall(cjson.decode, raw)
  if ok and type(record) == 'table' and type(record['owner_id']) == 'string' then
    redis.call('SREM', ARGV[3] .. record['owner_id'], ARGV[1])
  end
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[2])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('SREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
for i = 7, #KEYS do redis.call('SREM', KEYS[i], ARGV[1]) end
return 'ok'
"""
# KEYS[1] the pending ZSET. Removes ARGV[1] only if its score is not later than ARGV[2];
# answers 1 when no mark is left (also when there was none), 0 when a later one stays.
_CLEAR_PENDING = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then
  return 1
end
if tonumber(score) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
"""
_Mode = Literal["none", "exists", "cas", "hcas"]

_Cmd = list[Arg]

_EVENT_DONE = "done"
_LEASE = "processing:"
_CODE_PENDING = "pending"
_CODE_DONE = "done:"
_STATE_USED = "used"


class Gone(Exception):
    """The installation was uninstalled (or is not stored): nothing of it may be written.
    Callers stop what they were doing for it; it is not a failure to retry."""

    def __init__(self, configuration_id: str, why: str = "gone") -> None:
        super().__init__(f"installation {why}")
        self.configuration_id = configuration_id
        self.why = why


class Contended(KVUnavailable):
    """Compare-and-set lost `CAS_ATTEMPTS` times in a row: retry later."""


CodeProgress = Literal["pending", "done", "mismatch", "gone"]
"""Where another request's use of an install code stands: still exchanging, done for
this installation, done for another one, or given up (its claim deleted or expired)."""


@dataclass(frozen=True)
class Stored:
    """An installation as read, with whether it has unfinished work."""

    installation: Installation
    pending: bool


@dataclass(frozen=True)
class EventClaim:
    """The outcome of `Store.claim_event`.

    `status` is "ours" (this run holds the lease), "done" (processed before: a
    redelivery) or "busy" (another run holds the lease). The installation lookup made in
    the same round trip is read with `Store.event_installations`.
    """

    status: Literal["ours", "done", "busy"]
    configuration_id: str | None
    _found: tuple[Any, ...]


@dataclass(frozen=True)
class InstallClaim:
    """The outcome of `Store.claim_install`: the code's claim and the state it marked used.

    `ours` is False when another request already holds the code; `peer` then says where
    it stood. `state_fresh` is True when this claim marked the install state used (False:
    there was none, it had expired, or it was used before), so that
    `Store.undo_install_claim` gives back only a mark of its own; the installation
    already stored is read with `Store.claimed_installation`.
    """

    configuration_id: str
    ours: bool
    peer: CodeProgress
    state_fresh: bool
    gone: bool
    _code_key: str
    _state_key: str | None
    _existing_raw: str | None


class Store:
    """Typed access to installation state. All multi-key work is one round trip.

    `kv` is the client the store sends through; tests spy on it and corrupt records
    through it. Nothing outside this package calls it.
    """

    def __init__(self, kv: KV, keyring: Keyring, prefix: str = "vi:") -> None:
        self.kv = kv
        self._keyring = keyring
        self._p = prefix

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    # -- keys ---------------------------------------------------------------------------

    def key(self, kind: str, ident: str = "") -> str:
        """The key of one item of the layout above (tests use it to reach raw records)."""
        return f"{self._p}{kind}:{ident}" if ident else f"{self._p}{kind}"

    def _code_key(self, code: str) -> str:
        return self.key("code", hashlib.sha256(code.encode()).hexdigest()[:32])

    def gone_key(self, configuration_id: str) -> str:
        """The uninstall tombstone's key: a digest, never the id itself."""
        return self.key("gone", hashlib.sha256(configuration_id.encode()).hexdigest()[:32])

    # -- guarded writes ---------------------------------------------------------------------

    # Whether the script is known to be cached by the server (EVAL caches it): then the
    # shorter EVALSHA is sent. Shared by the process; a stale True costs one NOSCRIPT.
    _script_cached: ClassVar[bool] = False

    def _guarded(
        self,
        configuration_id: str,
        writes: Sequence[_Cmd],
        *,
        mode: _Mode = "none",
        expected: str | None = None,
        field: tuple[str, str] | None = None,
    ) -> bool:
        """Run `writes` unless the installation is tombstoned (raises `Gone`), or, by
        `mode`, not stored (raises `Gone` with why "not stored") or no longer `expected`
        (returns False: the compare-and-set lost). "hcas" compares `field` (hash key,
        field) instead of the record. One round trip; idempotent, since every write it
        carries states an end result."""
        keys = [self.gone_key(configuration_id), self.key("inst", configuration_id)]
        args: list[Arg] = [mode, expected or ""]
        if field is not None:
            keys.append(field[0])
            args.append(field[1])
        for command in writes:
            args.append(len(command))
            args.extend(command)
        reply = None
        if Store._script_cached:
            try:
                reply = self.kv.call(
                    "EVALSHA", _GUARDED_SHA, len(keys), *keys, *args, idempotent=True
                )
            except KVCommandError as exc:
                if "NOSCRIPT" not in str(exc):
                    raise
        if reply is None:
            reply = self.kv.call("EVAL", _GUARDED_WRITE, len(keys), *keys, *args, idempotent=True)
            Store._script_cached = True
        if reply == "ok":
            return True
        if reply == "conflict":
            return False
        if reply in ("gone", "missing"):
            raise Gone(configuration_id, "gone" if reply == "gone" else "not stored")
        raise StoreError(f"unexpected reply from the guarded write: {str(reply)[:40]!r}")

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
        """An installation record in its stored JSON form (raises `StoreError`)."""
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
        projects = {pid: _project(v, pid) for pid, v in _pairs(raw_projects).items()}
        return inst, secrets, projects

    def _resealed(self, installation: Installation) -> Installation:
        """The record with its token sealed by the current key: a token sealed with a
        retired key is resealed whenever its installation is written (key rotation)."""
        if not self._keyring.needs_reseal(installation.sealed_token):
            return installation
        cfg = installation.configuration_id
        token = self._keyring.open_text(installation.sealed_token, aad=f"token:{cfg}")
        return installation.model_copy(update={"sealed_token": self.seal_token(cfg, token)})

    def _installation_writes(self, installation: Installation) -> list[_Cmd]:
        cfg = installation.configuration_id
        return [
            ["SET", self.key("inst", cfg), self._resealed(installation).model_dump_json()],
            ["SADD", self.key("owner", installation.owner_id), cfg],
            ["SADD", self.key("all"), cfg],
        ]

    def save_installation(
        self,
        installation: Installation,
        *,
        secrets: Mapping[str, str] | None = None,
        pending: bool = True,
    ) -> None:
        """Store the record, its indexes, any new secrets and (by default) its pending
        mark in one guarded script. Raises `Gone` when it was uninstalled. Writes
        blindly: changes to a stored record go through `update_installation`."""
        cfg = installation.configuration_id
        commands = self._installation_writes(installation)
        commands += self._secret_writes(cfg, secrets or {}, only_new=True)
        if pending:
            commands.append(self._pending_write(cfg))
        self._guarded(cfg, commands)

    def update_installation(
        self,
        configuration_id: str,
        change: Callable[[Installation], Installation | None],
        *,
        pending: bool = False,
    ) -> tuple[Installation, Installation | None] | None:
        """Apply `change` to the stored record by compare-and-set on its exact bytes.

        `change` must be pure: it is re-applied to a fresh read when another writer got
        in first (at most `CAS_ATTEMPTS` times, then `Contended`). It returns the new
        record, or None to leave it as it is (a refused or no-op change). An owner change
        moves the owner index in the same script; `pending` marks work to do. Returns
        (record as read, record written or None), None when no record is stored; raises
        `Gone` after an uninstall. Two round trips per attempt (read, script)."""
        inst_key, gone_key = self.key("inst", configuration_id), self.gone_key(configuration_id)
        for _ in range(CAS_ATTEMPTS):
            raw, gone = self.kv.pipeline([["GET", inst_key], ["EXISTS", gone_key]], idempotent=True)
            if gone:
                raise Gone(configuration_id)
            if raw is None:
                return None
            before = self.parse_installation(raw, configuration_id)
            after = change(before)
            if after is None:
                return before, None
            after = self._resealed(after)
            writes = self._installation_writes(after)
            if after.owner_id != before.owner_id:
                writes.append(["SREM", self.key("owner", before.owner_id), configuration_id])
            if pending:
                writes.append(self._pending_write(configuration_id))
            if self._guarded(configuration_id, writes, mode="cas", expected=str(raw)):
                return before, after
        raise Contended("the installation record kept changing under this write")

    def set_status(
        self,
        configuration_id: str,
        status: Literal["active", "paused", "broken"],
        reason: str | None,
    ) -> Installation | None:
        """Record a status change; returns the updated installation (None if unknown).
        Never recreates a record that an uninstall deleted (raises `Gone` then)."""

        def change(inst: Installation) -> Installation | None:
            if inst.status == status and inst.status_reason == reason:
                return None
            update = {"status": status, "status_reason": reason, "updated_at": time.time()}
            return inst.model_copy(update=update)

        result = self.update_installation(configuration_id, change)
        if result is None:
            return None
        before, after = result
        return after or before

    def installations_for_owner(self, owner_id: str) -> list[str]:
        """The owner index of one team or user, sorted."""
        members = self.kv.call("SMEMBERS", self.key("owner", owner_id), idempotent=True)
        return sorted(members or [])

    def all_installations(self) -> list[str]:
        return sorted(self.kv.call("SMEMBERS", self.key("all"), idempotent=True) or [])

    def installations(self, configuration_ids: Sequence[str]) -> list[Stored]:
        """The installations that exist among `configuration_ids`, in that order, with
        their pending marks: one round trip."""
        commands: list[_Cmd] = []
        for cfg in configuration_ids:
            commands += [["GET", self.key("inst", cfg)], ["ZSCORE", self.key("pending"), cfg]]
        replies = self.kv.pipeline(commands, idempotent=True)
        return [
            Stored(self.parse_installation(replies[2 * n], cfg), replies[2 * n + 1] is not None)
            for n, cfg in enumerate(configuration_ids)
            if replies[2 * n]
        ]

    def delete_installation(self, configuration_id: str, owner_ids: list[str]) -> None:
        """Uninstall: remove every key of the installation and leave its tombstone, in one
        server-side script. From then on every guarded write for it raises `Gone`.

        The owner indexes named by the caller are left, and so is the one the record
        names at this moment: the caller may know an owner from before a transfer that
        moved the installation meanwhile, and the new owner's index must not keep the id
        (it has no TTL)."""
        cfg = configuration_id
        keys = [
            self.gone_key(cfg),
            self.key("inst", cfg),
            self.key("secrets", cfg),
            self.key("projects", cfg),
            self.key("all"),
            self.key("pending"),
            *(self.key("owner", owner) for owner in sorted(set(owner_ids))),
        ]
        args: list[Arg] = [cfg, GONE_TTL_S, f"{self._p}owner:"]
        self.kv.call("EVAL", _DELETE, len(keys), *keys, *args, idempotent=True)

    # -- per-installation secrets ---------------------------------------------------------

    def _secret_writes(
        self, configuration_id: str, secrets: Mapping[str, str], *, only_new: bool
    ) -> list[_Cmd]:
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
        """Replace secrets (rotation) of a stored installation (else raises `Gone`)."""
        commands = self._secret_writes(configuration_id, secrets, only_new=False)
        if commands:
            self._guarded(configuration_id, commands, mode="exists")

    def add_secrets(self, configuration_id: str, secrets: Mapping[str, str]) -> None:
        """Add secrets that don't exist yet; concurrent minters agree on the first value.
        Only for a stored installation (else raises `Gone`)."""
        commands = self._secret_writes(configuration_id, secrets, only_new=True)
        if commands:
            self._guarded(configuration_id, commands, mode="exists")

    def fingerprint_key(self) -> bytes:
        """The key for value fingerprints (see `lib.provisioning.plan.fingerprint`)."""
        return self._keyring.derive("fingerprint")

    # -- provisioning records -------------------------------------------------------------

    def get_projects(self, configuration_id: str) -> dict[str, ProjectRecord]:
        raw = self.kv.call("HGETALL", self.key("projects", configuration_id), idempotent=True)
        return {pid: _project(value, pid) for pid, value in _pairs(raw).items()}

    def put_project(self, configuration_id: str, record: ProjectRecord) -> None:
        """Record one project's provisioning (raises `Gone` unless the installation is
        stored: a run that outlives an uninstall writes nothing)."""
        key = self.key("projects", configuration_id)
        write: _Cmd = ["HSET", key, record.project_id, record.model_dump_json()]
        self._guarded(configuration_id, [write], mode="exists")

    def record_project(
        self, configuration_id: str, record: ProjectRecord, previous: ProjectRecord | None
    ) -> bool:
        """Record what a reconcile wrote to one project, by compare-and-set against the
        record it read (`previous`, as returned by `load`/`get_projects`; None: there was
        none). Raises `Gone` unless the installation is stored.

        When another run recorded this project meanwhile, the two records are merged.
        Where both wrote a slot with different values (one with secrets read before a
        rotation, the other after) neither knows which write Vercel kept: that slot keeps
        no fingerprint, the installation is marked pending in the same script, and False
        is returned, so the next run writes it again (a var without a fingerprint is never
        taken as unchanged). One round trip; two more per lost attempt, `Contended` after
        `CAS_ATTEMPTS`."""
        cfg, pid = configuration_id, record.project_id
        key = self.key("projects", cfg)
        expected = previous.stored if previous is not None else None
        writes: list[_Cmd] = [["HSET", key, pid, record.model_dump_json()]]
        if self._guarded(cfg, writes, mode="hcas", expected=expected, field=(key, pid)):
            return True
        for _ in range(CAS_ATTEMPTS):
            raw = self.kv.call("HGET", key, pid, idempotent=True)
            merged, dropped = _merged(record, None if raw is None else _project(raw, pid))
            writes = [["HSET", key, pid, merged.model_dump_json()]]
            if dropped:
                writes.append(self._pending_write(cfg))
            if self._guarded(cfg, writes, mode="hcas", expected=raw, field=(key, pid)):
                return not dropped
        raise Contended("the project record kept changing under this write")

    def forget_project(self, configuration_id: str, project_id: str) -> None:
        self.kv.call("HDEL", self.key("projects", configuration_id), project_id, idempotent=True)

    # -- unfinished work -------------------------------------------------------------------

    def _pending_write(self, configuration_id: str) -> _Cmd:
        return ["ZADD", self.key("pending"), time.time(), configuration_id]

    def mark_pending(self, configuration_id: str) -> None:
        """Mark a stored installation's work unfinished (raises `Gone` unless stored)."""
        self._guarded(configuration_id, [self._pending_write(configuration_id)], mode="exists")

    def clear_pending(self, configuration_id: str, *, started: float) -> bool:
        """Clear the pending mark after a full run that began at `started` finished every
        project, unless the mark is later than that: a concurrent run marked work it could
        not finish after this one had started, and this run may not have covered it. One
        server-side compare-and-remove; True when no mark is left (removed now, by an
        attempt whose answer was lost, or there was none), False when a later mark stays.
        (A run scoped to some projects never clears it: the caller does not ask.)"""
        cleared = self.kv.call(
            "EVAL",
            _CLEAR_PENDING,
            1,
            self.key("pending"),
            configuration_id,
            repr(started),
            idempotent=True,
        )
        return bool(cleared)

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

    def settle_reconcile(self, configuration_id: str, *, pending: bool) -> tuple[bool, bool]:
        """After a reconcile, in one round trip: mark the installation pending (when
        `pending`) or read whether it is, and check that it still exists (an uninstall may
        have landed meanwhile). Returns (exists, was marked pending before)."""
        if pending:
            try:
                self.mark_pending(configuration_id)
            except Gone:
                return False, False
            return True, False
        exists, marked = self.kv.pipeline(
            [
                ["EXISTS", self.key("inst", configuration_id)],
                ["ZSCORE", self.key("pending"), configuration_id],
            ],
            idempotent=True,
        )
        return bool(exists), marked is not None

    # -- webhook dedupe ---------------------------------------------------------------------

    def claim_event(
        self, event_id: str, *, configuration_id: str | None, owner_id: str | None
    ) -> EventClaim:
        """Take the event's lease and look its installation up, in one round trip: the
        installation and its pending mark when the event names a configuration, else the
        owner's index (read with `event_installations`, one more round trip)."""
        lease = _LEASE + _secrets.token_hex(8)
        claim: _Cmd = ["SET", self.key("event", event_id), lease]
        claim += ["NX", "GET", "EX", EVENT_LEASE_TTL_S]
        lookup: list[_Cmd]
        if configuration_id:
            lookup = [
                ["GET", self.key("inst", configuration_id)],
                ["ZSCORE", self.key("pending"), configuration_id],
            ]
        else:
            lookup = [["SMEMBERS", self.key("owner", owner_id or "")]]
        # Idempotent although SET NX is not: the lease value is ours alone, so a replay
        # after a lost answer sees it and knows the claim succeeded.
        previous, *found = self.kv.pipeline([claim, *lookup], idempotent=True)
        status: Literal["ours", "done", "busy"] = (
            "done"
            if previous == _EVENT_DONE
            else "busy"
            if previous is not None and previous != lease
            else "ours"
        )
        return EventClaim(status, configuration_id or None, tuple(found))

    def event_installations(self, claim: EventClaim) -> list[Stored]:
        """The installations an event claimed by `claim_event` is about (no round trip
        when it named a configuration; one when it named only an owner who has some)."""
        if claim.configuration_id:
            raw, score = claim._found
            if not raw:
                return []
            inst = self.parse_installation(raw, claim.configuration_id)
            return [Stored(inst, score is not None)]
        return self.installations(sorted(claim._found[0] or []))

    def settle_event(
        self, event_id: str, *, done: bool, still_installed: Sequence[str] = ()
    ) -> list[bool]:
        """Mark the event done (or give its lease back for a redelivery when not `done`)
        and, in the same round trip, tell which of `still_installed` still exist."""
        key = self.key("event", event_id)
        mark: _Cmd = ["SET", key, _EVENT_DONE, "EX", EVENT_DONE_TTL_S] if done else ["DEL", key]
        replies = self.kv.pipeline(
            [mark, *(["EXISTS", self.key("inst", cfg)] for cfg in still_installed)],
            idempotent=True,
        )
        return [bool(r) for r in replies[1:]]

    def release_event(self, event_id: str) -> None:
        """Give up a lease so Vercel's redelivery can run the event again."""
        self.kv.call("DEL", self.key("event", event_id), idempotent=True)

    # -- one-time states and install codes ----------------------------------------------------

    def claim_install(
        self, code: str, configuration_id: str, state: str | None, state_ttl_s: int = 0
    ) -> InstallClaim:
        """Claim an install code, read the installation and mark the signed install state
        used (for `state_ttl_s`, its remaining life; not when 0), in one transaction: two
        requests with the same link must not split the code's claim and the state between
        them (each would then refuse the other). Not retried: the replay of a mark that
        was set would read as "already used"."""
        code_key = self._code_key(code)
        state_key = self._state_key(state) if state and state_ttl_s > 0 else None
        commands: list[_Cmd] = [
            ["SET", code_key, _CODE_PENDING, "NX", "GET", "EX", CODE_CLAIM_TTL_S],
            ["GET", self.key("inst", configuration_id)],
            ["EXISTS", self.gone_key(configuration_id)],
        ]
        if state_key:
            commands.append(["SET", state_key, _STATE_USED, "NX", "EX", state_ttl_s])
        replies = self.kv.transaction(commands)
        previous, existing_raw = replies[0], replies[1]
        return InstallClaim(
            configuration_id=configuration_id,
            ours=previous is None,
            peer=self._progress(previous, configuration_id),
            state_fresh=bool(state_key) and set_succeeded(replies[3]),
            gone=bool(replies[2]),
            _code_key=code_key,
            _state_key=state_key,
            _existing_raw=existing_raw,
        )

    def _state_key(self, state: str) -> str:
        return self.key("state", hashlib.sha256(state.encode()).hexdigest()[:32])

    def claimed_installation(self, claim: InstallClaim) -> Installation | None:
        """The installation stored when the code was claimed (raises `StoreError`)."""
        raw = claim._existing_raw
        return self.parse_installation(raw, claim.configuration_id) if raw else None

    def install_progress(self, claim: InstallClaim) -> CodeProgress:
        """Where the request holding this code stands now (one GET)."""
        got = self.kv.call("GET", claim._code_key, idempotent=True)
        return self._progress(got, claim.configuration_id)

    @staticmethod
    def _progress(value: Any, configuration_id: str) -> CodeProgress:
        if value is None:
            return "gone"
        text = str(value)
        if text == _CODE_PENDING:
            return "pending"
        if text == _code_done(configuration_id):
            return "done"
        return "mismatch" if text.startswith(_CODE_DONE) else "gone"

    def undo_install_claim(
        self, claim: InstallClaim, *, release_code: bool, restore_state: bool
    ) -> None:
        """Give back what `claim_install` took, in one round trip: the code (when
        `release_code`) and the state's "used" mark this claim set (when `restore_state`)."""
        commands: list[_Cmd] = []
        if release_code:
            commands.append(["DEL", claim._code_key])
        if restore_state and claim._state_key and claim.state_fresh:
            commands.append(["DEL", claim._state_key])
        if commands:
            self.kv.pipeline(commands, idempotent=True)

    def complete_install(
        self,
        claim: InstallClaim,
        build: Callable[[Installation | None], Installation | None],
        *,
        configuration_id: str,
        secrets: Mapping[str, str],
    ) -> tuple[Installation | None, Installation | None]:
        """Store a new or refreshed installation in one guarded script: the record `build`
        makes from the one stored, its indexes (it leaves the index of the owner stored
        until now, when that changes), the secrets it lacks, the pending mark and the
        code's "done" mark. Always stored pending (issue 11, invariant 6): the callback's
        provisioning clears the mark, and the sweep finishes an interrupted one.

        No lost update: the script compares the stored record with the bytes read at the
        claim (as `update_installation` does), so a webhook that moved or rescoped the
        installation while the code was being exchanged is not overwritten: the record is
        read again and `build` merges with it (`build` must be pure). One round trip when
        nobody got in first (the claim read the record; a claim made under another id
        costs one read), two more per lost attempt, `Contended` after `CAS_ATTEMPTS`.

        Returns (record as read, record written); written is None when `build` refuses,
        and then nothing is written and the code is not marked. Raises `Gone` when it was
        uninstalled meanwhile (nothing written then either)."""
        cfg = configuration_id
        inst_key, gone_key = self.key("inst", cfg), self.gone_key(cfg)
        raw: str | None = claim._existing_raw
        for attempt in range(CAS_ATTEMPTS):
            if attempt or cfg != claim.configuration_id:
                raw, gone = self.kv.pipeline(
                    [["GET", inst_key], ["EXISTS", gone_key]], idempotent=True
                )
                if gone:
                    raise Gone(cfg)
            before = None if raw is None else self.parse_installation(raw, cfg)
            after = build(before)
            if after is None:
                return before, None
            writes = self._installation_writes(after)
            writes += self._secret_writes(cfg, secrets, only_new=True)
            if before is not None and before.owner_id != after.owner_id:
                writes.append(["SREM", self.key("owner", before.owner_id), cfg])
            writes.append(self._pending_write(cfg))
            writes.append(["SET", claim._code_key, _code_done(cfg), "EX", CODE_DONE_TTL_S])
            if self._guarded(cfg, writes, mode="cas", expected=raw or ""):
                return before, after
        raise Contended("the installation record kept changing under this install")


def _project(raw: str, project_id: str) -> ProjectRecord:
    """A provisioning record, remembering the bytes it was read from (for
    `Store.record_project`'s compare-and-set)."""
    record = parse_record(ProjectRecord, raw, project_id)
    record.stored = raw
    return record


def _merged(record: ProjectRecord, current: ProjectRecord | None) -> tuple[ProjectRecord, bool]:
    """`record` merged over `current` (another run's record of the same project), and
    whether a fingerprint was dropped: each slot's entry from both, this run's fields
    winning; where both runs recorded the slot with another var or another value, no
    fingerprint is kept (see `plan`: a var is unchanged only when its recorded
    fingerprint matches). A project removal recorded meanwhile stays."""
    base = current.env if current is not None else {}
    env: dict[str, dict[str, str]] = {}
    dropped = False
    for slot in {**base, **record.env}:
        theirs, ours = base.get(slot, {}), record.env.get(slot, {})
        entry = {**theirs, **ours}
        if (
            theirs
            and ours
            and (theirs.get("id"), theirs.get("fp")) != (ours.get("id"), ours.get("fp"))
        ):
            dropped = dropped or "fp" in entry
            entry.pop("fp", None)
        env[slot] = entry
    removed_at = record.removed_at or (current.removed_at if current is not None else None)
    return record.model_copy(update={"env": env, "removed_at": removed_at}), dropped


def _pairs(raw: Any) -> dict[str, str]:
    """HGETALL replies as a flat list [k1, v1, k2, v2, …] over REST."""
    if not raw:
        return {}
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    return {str(raw[i]): str(raw[i + 1]) for i in range(0, len(raw) - 1, 2)}


def _code_done(configuration_id: str) -> str:
    """The code's "done" mark. It names the installation by digest only, so nothing left
    in KV after an uninstall (the mark lives 30 minutes) contains its id."""
    return _CODE_DONE + hashlib.sha256(configuration_id.encode()).hexdigest()[:24]
