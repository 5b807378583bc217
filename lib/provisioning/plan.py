"""Planning one project's env vars: desired (the spec) against actual (Vercel's list).

Pure: no I/O, so every ownership and conflict rule is tested directly. The plan only
ever touches vars whose `configurationId` is our installation, except for `adopt`,
which the operator must ask for per entry. What it can't know from the list — the
value of an encrypted or sensitive var — it knows from the fingerprint we recorded
when we wrote it: an HMAC of the value, keyed so a fingerprint reveals nothing.

What the list does not show at all — the user's vars when we hold only the
`project-env-vars` scope, and vars Vercel hides from every list — the caller learns when
a write conflicts, and passes back in as `hidden`: those targets are somebody else's,
reported as a clash and left alone, while the free targets are still provisioned.

Two platform quirks are absorbed here (vercel-reality.md §2):
- a team that enforces sensitive variables ("Enforce Sensitive Environment Variables",
  https://vercel.com/docs/environment-variables/sensitive-environment-variables) stores our
  `plain`/`encrypted` production/preview vars as `sensitive`. Such a var satisfies the
  spec: its value is judged by the fingerprint we recorded, and it is never "downgraded"
  (which would be a delete and re-create on every run, and could not stick anyway);
- ownership is the `configurationId`, but a listed var whose id is the one we recorded
  for that slot is ours too, in case Vercel ever reports another `configurationId` for a
  var we created (logged as a warning: it means our ownership rule is wrong).

Custom environments (https://vercel.com/docs/deployments/environments#custom-environments)
are planned like targets: a resolved custom environment id is the pseudo-target
`custom:<id>`, split back into `target` and `customEnvironmentIds` when written.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from lib.log import get_logger
from lib.provisioning.reports import Clash
from lib.provisioning.spec import DesiredVar, Slot
from lib.vercel.models import EnvPatch, EnvSpec, EnvVar

log = get_logger("provisioning")
_CUSTOM = "custom:"

__all__ = ["Plan", "Update", "fingerprint", "plan", "planned_targets", "promoted"]


@dataclass(frozen=True)
class Update:
    env_id: str
    slot: Slot
    patch: EnvPatch
    # The var as listed: the client leaves `key` out of a PATCH of a sensitive var.
    current: EnvVar | None = None


@dataclass
class Plan:
    """What to do, in the order it must be done: deletes, updates, then one batched create."""

    deletes: list[str] = field(default_factory=list)  # env ids (ours, or adopted)
    updates: list[Update] = field(default_factory=list)
    creates: list[tuple[Slot, EnvSpec]] = field(default_factory=list)
    unchanged: list[Slot] = field(default_factory=list)
    clashes: list[Clash] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)  # keys taken over (on_conflict=adopt)
    # slot -> env id of a matched var that needs no create (unchanged or updated).
    matched: dict[Slot, str] = field(default_factory=dict)
    # slot -> the type the spec asks for: recorded with what we write (`t`).
    types: dict[Slot, str] = field(default_factory=dict)

    @property
    def writes(self) -> int:
        return len(self.deletes) + len(self.updates) + (1 if self.creates else 0)


def fingerprint(key: bytes, configuration_id: str, slot: Slot, value: str) -> str:
    """A keyed digest of a value we wrote, to detect change without storing the value."""
    message = f"{configuration_id}\x00{slot}\x00{value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def _branch(var: EnvVar | DesiredVar) -> str | None:
    return var.git_branch or None


def _targets(var: EnvVar) -> set[str]:
    return set(var.target) | {_CUSTOM + c for c in var.custom_environment_ids}


def planned_targets(want: DesiredVar) -> set[str]:
    """What a desired var covers, as the plan counts targets (custom environments too)."""
    return set(want.targets) | {_CUSTOM + c for c in want.custom_environment_ids}


def _split(targets: list[str]) -> tuple[list[str], list[str]]:
    """Planned targets -> (`target`, `customEnvironmentIds`)."""
    standard = [t for t in targets if not t.startswith(_CUSTOM)]
    custom = [t[len(_CUSTOM) :] for t in targets if t.startswith(_CUSTOM)]
    return standard, custom


def promoted(current: str, want: DesiredVar, wrote: str | None = None) -> bool:
    """A var the server made `sensitive` where the spec wants `plain`/`encrypted`: what a
    team enforcing sensitive variables does to production/preview vars. It satisfies the
    spec (never downgraded). Development is never promoted (Vercel refuses sensitive
    there), and the spec splits development off such entries, so a var we wrote for
    development that comes back sensitive is not accepted. `wrote` is the type we
    recorded for this var: when it is `sensitive`, we made it so, and the spec changed
    since (the operator's own downgrade, done by delete and create)."""
    return (
        current == "sensitive"
        and want.type in ("plain", "encrypted")
        and "development" not in want.targets
        and wrote != "sensitive"
    )


def _needs_recreate(current: str, want: DesiredVar, wrote: str | None) -> bool:
    """Vercel cannot PATCH a var into or out of `sensitive`."""
    if promoted(current, want, wrote):
        return False
    return current != want.type and "sensitive" in (current, want.type)


def plan(
    desired: Iterable[DesiredVar],
    actual: Iterable[EnvVar],
    *,
    configuration_id: str,
    recorded: Mapping[Slot, Mapping[str, str]],
    fingerprint_of: Mapping[Slot, str],
    hidden: Mapping[Slot, Collection[str]] | None = None,
) -> Plan:
    """Plan one project. `recorded` is slot -> {"id", "fp"} from our last write;
    `fingerprint_of` is slot -> fingerprint of the desired value now; `hidden` is
    slot -> targets held by a var the list does not show (learnt from a conflict)."""
    hidden = hidden or {}
    result = Plan()
    actual = list(actual)
    recorded_ids = {r["id"] for r in recorded.values() if r.get("id")}
    for var in actual:
        if var.id in recorded_ids and var.configuration_id != configuration_id:
            log.warning(
                "a var we created is listed with another configurationId: kept as ours",
                extra={
                    "configuration_id": configuration_id,
                    "env_id": var.id,
                    "key": var.key,
                    "listed_configuration_id": var.configuration_id,
                },
            )

    def is_ours(var: EnvVar) -> bool:
        return var.configuration_id == configuration_id or var.id in recorded_ids

    ours = [v for v in actual if is_ours(v) and v.id]
    theirs = [v for v in actual if not is_ours(v)]
    taken: set[str] = set()
    desired = list(desired)
    # slot -> the id we recorded for it: a var recorded for one slot is not matched to
    # another slot of the same key (a split entry's parts stay apart).
    slot_of = {
        recorded[d.slot]["id"]: d.slot for d in desired if recorded.get(d.slot, {}).get("id")
    }

    for want in desired:
        targets = planned_targets(want)
        clashing = [
            v
            for v in theirs
            if v.key == want.key and _branch(v) == _branch(want) and _targets(v) & targets
        ]
        if clashing and want.on_conflict == "adopt":
            for var in clashing:
                if var.id and var.id not in result.deletes:
                    result.deletes.append(var.id)
            result.adopted.append(want.key)
        elif clashing:
            for var in clashing:
                result.clashes.append(
                    Clash(
                        key=want.key,
                        targets=tuple(sorted(_targets(var) & targets)),
                        git_branch=_branch(want),
                        owner=var.configuration_id or "user",
                        env_id=var.id,
                    )
                )
                targets -= _targets(var)
        # Two vars never share a key/target/branch: what ours holds can't be hidden.
        held = {
            t
            for v in ours
            if v.key == want.key and _branch(v) == _branch(want)
            for t in _targets(v)
        }
        blocked = (targets & set(hidden.get(want.slot, ()))) - held
        if blocked:
            result.clashes.append(
                Clash(
                    key=want.key,
                    targets=tuple(sorted(blocked)),
                    git_branch=_branch(want),
                    owner="hidden",
                )
            )
            targets -= blocked
        if not targets:
            continue
        wanted_targets = [t for t in want.targets if t in targets] + sorted(
            t for t in targets if t.startswith(_CUSTOM)
        )
        standard, custom = _split(wanted_targets)

        same_key = [
            v
            for v in ours
            if v.id not in taken
            and v.key == want.key
            and _branch(v) == _branch(want)
            and slot_of.get(v.id or "", want.slot) == want.slot
        ]
        # Prefer the var that already covers most of what we want: fewest writes.
        same_key.sort(key=lambda v: (-len(_targets(v) & targets), v.id or ""))
        match = same_key[0] if same_key else None

        record = recorded.get(want.slot, {})
        wrote = record.get("t") if match is not None and record.get("id") == match.id else None
        result.types[want.slot] = want.type
        if match is None or _needs_recreate(match.type, want, wrote):
            if match is not None:
                assert match.id is not None
                taken.add(match.id)
                result.deletes.append(match.id)
            result.creates.append(
                (
                    want.slot,
                    EnvSpec(
                        key=want.key,
                        value=want.value,
                        type=want.type,
                        target=standard or None,
                        git_branch=want.git_branch,
                        comment=want.comment,
                        custom_environment_ids=custom or None,
                    ),
                )
            )
            continue

        assert match.id is not None
        taken.add(match.id)
        result.matched[want.slot] = match.id
        change: dict[str, object] = {}
        if set(match.target) != set(standard):
            change["target"] = standard
        if set(match.custom_environment_ids) != set(custom):
            change["customEnvironmentIds"] = custom
        # What the var's type must be: the spec's, unless the server promoted it.
        keep_type = match.type if promoted(match.type, want, wrote) else want.type
        if match.type != keep_type:
            change["type"] = keep_type
        if (match.comment or None) != (want.comment or None):
            change["comment"] = want.comment or ""
        same_value = (
            record.get("id") == match.id and record.get("fp") == fingerprint_of[want.slot]
        ) or (match.type == "plain" and match.value == want.value)
        if not same_value:
            change["value"] = want.value
            change.setdefault("type", keep_type)  # Vercel wants the type alongside a value
        if change:
            patch = EnvPatch.model_validate(change)
            result.updates.append(Update(match.id, want.slot, patch, current=match))
        else:
            result.unchanged.append(want.slot)

    # Ours, but no longer desired (removed from the spec, or a duplicate): delete.
    for var in ours:
        if var.id not in taken and var.id not in result.deletes:
            assert var.id is not None
            result.deletes.append(var.id)
    return result
