"""Environment variables: validation, conflicts, upsert and wire rendering (vercel-api.md §4).

Rules reproduced:
- duplicate = same key + overlapping target (or custom environment) + same `gitBranch`;
  hidden vars and other owners' vars count too (a create conflicts with what the caller
  cannot see, anchors.md §1 "hidden from the list endpoint");
- `upsert=true` (v10 only; v9 ignores it, Sentry PR #118314) updates a var whose target
  set is *exactly* the requested one; any other overlap is 400 `ENV_CONFLICT` (§4.1,
  Sentry PR #118490);
- `sensitive` is refused for `development` (DOC-SENSITIVE); `gitBranch` needs
  `target=["preview"]`; `secret` is refused on create (§4.1: not accepted on create;
  the spec excerpt's enum still lists it);
- encrypted and sensitive values never come back except through the decrypted-by-id
  endpoint, and sensitive not even there (getProjectEnv's first response shape has no
  `value`);
- a team whose `sensitiveEnvironmentVariablePolicy` is "on" gets its plain/encrypted
  production/preview vars stored as `sensitive`, on create and on edit ("the server
  already promotes Production/Preview variables to sensitive silently", Vercel's CLI
  changelog, PR #16041). A plain/encrypted var that also targets development is not
  documented: `sensitive_mixed_targets` rejects it (default), splits it into a
  sensitive production/preview var plus an encrypted development var, keeps it as
  sent, or promotes all of it (a sensitive var that targets development, which Vercel
  otherwise refuses);
- a PATCH that names `key` on a sensitive var is refused (`sensitive_patch_key`),
  since Vercel's CLI stopped sending it for sensitive vars (vercel/vercel 4a5be0b);
- `customEnvironmentIds` must name custom environments of the project;
- rendered vars carry `securityIssues: []`, as Vercel's SDK requires of listed vars.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dev.emulator.config import EmulatorConfig
from dev.emulator.errors import ApiError, bad_request
from dev.emulator.ids import new_id
from dev.emulator.models import TARGETS, Account, EnvVar, Project
from dev.emulator.state import Store

__all__ = [
    "PATCH_FIELDS",
    "EnvInput",
    "conflict_error",
    "create_env",
    "find_overlaps",
    "parse_input",
    "parse_patch",
    "promote",
    "render_env",
    "rule_error",
    "update_env",
]

TYPES = ("system", "secret", "encrypted", "plain", "sensitive")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PATCH_FIELDS = frozenset(
    {"key", "target", "gitBranch", "type", "value", "customEnvironmentIds", "comment"}
)


@dataclass
class EnvInput:
    key: str
    value: str
    type: str
    target: list[str]
    git_branch: str | None
    comment: str | None
    custom_environment_ids: list[str]
    # Set when a team's sensitive policy changed the type: the server's own doing.
    server_promoted: bool = False


def _strings(raw: Any, name: str, allowed: Iterable[str] | None = None) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise bad_request(f"Invalid request: `{name}` should be array of strings.")
    if allowed is not None:
        bad = [x for x in raw if x not in set(allowed)]
        if bad:
            raise bad_request(
                f"Invalid request: `{name}` should be one of {', '.join(allowed)} (got {bad[0]!r})."
            )
    return list(dict.fromkeys(raw))


def _check_fields(raw: dict[str, Any]) -> None:
    if "key" in raw and (not isinstance(raw["key"], str) or not _KEY.match(raw["key"])):
        raise bad_request(
            "Invalid request: `key` must contain only letters, digits and underscores "
            "and must not start with a digit."
        )
    if "value" in raw and not isinstance(raw["value"], str):
        raise bad_request("Invalid request: `value` should be string.")
    if "type" in raw and raw["type"] not in TYPES:
        raise bad_request(f"Invalid request: `type` should be one of {', '.join(TYPES)}.")
    branch = raw.get("gitBranch")
    if branch is not None and (not isinstance(branch, str) or len(branch) > 250):
        raise bad_request(
            "Invalid request: `gitBranch` should be a string of at most 250 characters."
        )
    comment = raw.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > 500):
        raise bad_request(
            "Invalid request: `comment` should be a string of at most 500 characters."
        )


def parse_input(raw: Any) -> EnvInput:
    """One create item, checked against createProjectEnv's request schema."""
    if not isinstance(raw, dict):
        raise bad_request("Invalid request: each environment variable should be an object.")
    for name in ("key", "value", "type"):
        if name not in raw:
            raise bad_request(f"Invalid request: missing required property `{name}`.")
    if "target" not in raw and "customEnvironmentIds" not in raw:
        raise bad_request(
            "Invalid request: should have required property `target` or `customEnvironmentIds`."
        )
    _check_fields(raw)
    return EnvInput(
        key=raw["key"],
        value=raw["value"],
        type=raw["type"],
        target=_strings(raw.get("target", []), "target", TARGETS),
        git_branch=raw.get("gitBranch") or None,
        comment=raw.get("comment"),
        custom_environment_ids=_strings(
            raw.get("customEnvironmentIds", []), "customEnvironmentIds"
        ),
    )


def parse_patch(raw: Any) -> dict[str, Any]:
    """editProjectEnv's body: every field optional, no others (additionalProperties: false)."""
    if not isinstance(raw, dict):
        raise bad_request("Invalid request: the body should be an object.")
    extra = sorted(set(raw) - PATCH_FIELDS)
    if extra:
        raise bad_request(f"Invalid request: should NOT have additional property `{extra[0]}`.")
    _check_fields(raw)
    if "target" in raw:
        raw["target"] = _strings(raw["target"], "target", TARGETS)
    if "customEnvironmentIds" in raw:
        raw["customEnvironmentIds"] = _strings(raw["customEnvironmentIds"], "customEnvironmentIds")
    return raw


def rule_error(inp: EnvInput, *, creating: bool) -> ApiError | None:
    """Semantic rules that the schema cannot express; None when the var is acceptable."""
    if creating and inp.type == "secret":
        return bad_request(
            "Secrets are deprecated: create a `sensitive` environment variable instead.",
            key=inp.key,
        )
    if not inp.target and not inp.custom_environment_ids:
        return bad_request("An environment variable needs at least one target.", key=inp.key)
    if inp.type == "sensitive" and "development" in inp.target and not inp.server_promoted:
        return bad_request(
            "Sensitive environment variables cannot be created for the Development environment.",
            key=inp.key,
            target=inp.target,
        )
    if inp.git_branch is not None and inp.target != ["preview"]:
        return bad_request(
            "An environment variable with a `gitBranch` must have target=preview only.",
            key=inp.key,
            gitBranch=inp.git_branch,
        )
    return None


def find_overlaps(
    envs: Iterable[EnvVar],
    key: str,
    target: list[str],
    git_branch: str | None,
    custom_environment_ids: list[str],
    exclude: str | None = None,
) -> list[EnvVar]:
    return [
        e
        for e in envs
        if e.id != exclude
        and e.key == key
        and e.git_branch == git_branch
        and (
            set(e.target) & set(target)
            or set(e.custom_environment_ids) & set(custom_environment_ids)
        )
    ]


def conflict_error(
    config: EmulatorConfig,
    key: str,
    target: list[str],
    git_branch: str | None,
    status: int | None = None,
) -> ApiError:
    """ENV_CONFLICT as Terraform parses it (`key`, `envVarKey`, `target`, `gitBranch`)."""
    if config.env_conflict_code in ("ENV_ALREADY_EXISTS", "EXISTING_KEY_AND_TARGET"):
        message = (
            "Another Environment Variable with the same Name and Environment exists in your "
            "project. Remove it or choose a different Name or Environment."
        )
    else:
        # Verbatim shape of the 2026 CLI report (VV-16588), JavaScript's "undefined" included.
        message = (
            f"A variable with the name `{key}` already exists for the target "
            f"{','.join(target)} on branch {git_branch or 'undefined'}"
        )
    error = ApiError(
        status or config.env_conflict_status,
        config.env_conflict_code,
        message,
        key=key,
        envVarKey=key,
        target=target,
    )
    if git_branch is not None:  # a non-nullable string in `failed[].error`: absent, not null
        error.extra["gitBranch"] = git_branch
    return error


def _same_sensitivity(old: str, new: str) -> bool:
    return (old == "sensitive") == (new == "sensitive")


_PROMOTED = frozenset({"production", "preview"})


def promote(
    config: EmulatorConfig, account: Account | None, inp: EnvInput
) -> tuple[EnvInput, EnvInput | None]:
    """What a team's "on" sensitive policy stores for `inp`: the var itself, promoted,
    plus, with the "split" variant, a second (development) var. Raises for "reject"."""
    if account is None or account.sensitive_env_policy != "on":
        return inp, None
    if inp.type not in ("plain", "encrypted") or not set(inp.target) & _PROMOTED:
        return inp, None
    if "development" not in inp.target:
        inp.type, inp.server_promoted = "sensitive", True
        return inp, None
    mode = config.sensitive_mixed_targets
    if mode == "keep":
        return inp, None
    if mode == "promote_all":  # the server ignores its own no-sensitive-in-development rule
        inp.type, inp.server_promoted = "sensitive", True
        return inp, None
    if mode == "reject":
        raise bad_request(
            "This team enforces sensitive environment variables: a variable for "
            "Production or Preview cannot also target Development. Create them separately.",
            key=inp.key,
            target=inp.target,
        )
    development = EnvInput(
        key=inp.key,
        value=inp.value,
        type="encrypted",
        target=["development"],
        git_branch=None,
        comment=inp.comment,
        custom_environment_ids=[],
    )
    inp.type, inp.server_promoted = "sensitive", True
    inp.target = [t for t in inp.target if t != "development"]
    return inp, development


def check_custom_environments(store: Store, project: Project, ids: list[str]) -> None:
    known = {c.id for c in store.project_custom_environments(project.id)}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise bad_request(
            f"Invalid request: custom environment {unknown[0]!r} does not exist in the project.",
            customEnvironmentId=unknown[0],
        )


def create_env(
    store: Store,
    config: EmulatorConfig,
    project: Project,
    inp: EnvInput,
    *,
    configuration_id: str | None,
    actor: str | None,
    upsert: bool,
    may_modify: Callable[[EnvVar], bool] | None = None,
    hidden: bool = False,
) -> EnvVar:
    """Create (or, with `upsert`, update in place) one var; raises ApiError.

    `may_modify(env) -> bool` says whether the caller may overwrite an existing var
    through upsert (its own, or any with the global env scope). Call under the lock.
    """
    error = rule_error(inp, creating=True)
    if error is not None:
        raise error
    check_custom_environments(store, project, inp.custom_environment_ids)
    overlaps = find_overlaps(
        store.project_envs(project.id),
        inp.key,
        inp.target,
        inp.git_branch,
        inp.custom_environment_ids,
    )
    if overlaps and upsert:
        existing = overlaps[0]
        exact = (
            len(overlaps) == 1
            and set(existing.target) == set(inp.target)
            and set(existing.custom_environment_ids) == set(inp.custom_environment_ids)
        )
        if not (may_modify is not None and may_modify(existing)) or existing.hidden:
            raise conflict_error(config, inp.key, _overlap(overlaps, inp), inp.git_branch)
        if not exact:
            raise conflict_error(config, inp.key, _overlap(overlaps, inp), inp.git_branch, 400)
        if not _same_sensitivity(existing.type, inp.type):
            raise bad_request(
                "The type of an environment variable cannot change to or from `sensitive`.",
                key=inp.key,
            )
        existing.value = inp.value
        existing.type = inp.type
        existing.comment = inp.comment if inp.comment is not None else existing.comment
        existing.ciphertext = store.new_ciphertext()
        existing.updated_at = store.clock.tick_ms()
        existing.updated_by = actor
        return existing
    if overlaps:
        raise conflict_error(config, inp.key, _overlap(overlaps, inp), inp.git_branch)
    now = store.clock.tick_ms()
    env = EnvVar(
        id=new_id("", length=16),
        project_id=project.id,
        key=inp.key,
        value=inp.value,
        type=inp.type,
        target=list(inp.target),
        git_branch=inp.git_branch,
        comment=inp.comment,
        custom_environment_ids=list(inp.custom_environment_ids),
        configuration_id=configuration_id,
        created_at=now,
        updated_at=now,
        created_by=actor,
        ciphertext=store.new_ciphertext(),
        hidden=hidden,
    )
    store.envs[env.id] = env
    return env


def _overlap(overlaps: list[EnvVar], inp: EnvInput) -> list[str]:
    taken = {t for e in overlaps for t in e.target}
    return [t for t in inp.target if t in taken] or list(inp.target)


def update_env(
    store: Store,
    config: EmulatorConfig,
    env: EnvVar,
    changes: dict[str, Any],
    actor: str | None,
    account: Account | None = None,
) -> EnvVar:
    """PATCH semantics: merge, re-check the rules and conflicts, then apply. Under the lock.

    `account` is the project's owner: its sensitive policy may promote the var."""
    if env.type == "sensitive" and "key" in changes and config.sensitive_patch_key == "reject":
        raise bad_request(
            "Invalid request: `key` cannot be changed on a sensitive environment variable; "
            "send the PATCH without `key`.",
            key=env.key,
        )
    merged = EnvInput(
        key=changes.get("key", env.key),
        value=changes.get("value", env.value),
        type=changes.get("type", env.type),
        target=changes.get("target", env.target),
        git_branch=changes.get("gitBranch", env.git_branch) or None,
        comment=changes.get("comment", env.comment),
        custom_environment_ids=changes.get("customEnvironmentIds", env.custom_environment_ids),
    )
    if merged.type == "secret" and env.type != "secret":
        raise bad_request("Secrets are deprecated: use the `sensitive` type.", key=merged.key)
    promoted = False
    if env.type != "sensitive" and merged.type != "sensitive":
        merged, split = promote(config, account, merged)
        if split is not None:  # an edit cannot become two vars
            raise bad_request(
                "This team enforces sensitive environment variables: a variable for "
                "Production or Preview cannot also target Development.",
                key=merged.key,
            )
        promoted = merged.type == "sensitive"
    if not promoted and not _same_sensitivity(env.type, merged.type):
        raise bad_request(
            "The type of an environment variable cannot change to or from `sensitive`; "
            "remove it and create it again.",
            key=merged.key,
        )
    error = rule_error(merged, creating=False)
    if error is not None:
        raise error
    project = store.projects.get(env.project_id)
    if project is not None and "customEnvironmentIds" in changes:
        check_custom_environments(store, project, merged.custom_environment_ids)
    overlaps = find_overlaps(
        store.project_envs(env.project_id),
        merged.key,
        merged.target,
        merged.git_branch,
        merged.custom_environment_ids,
        exclude=env.id,
    )
    if overlaps:
        raise conflict_error(config, merged.key, _overlap(overlaps, merged), merged.git_branch)
    if merged.value != env.value:
        env.ciphertext = store.new_ciphertext()
    env.key, env.value, env.type = merged.key, merged.value, merged.type
    env.target, env.git_branch, env.comment = list(merged.target), merged.git_branch, merged.comment
    env.custom_environment_ids = list(merged.custom_environment_ids)
    env.updated_at = store.clock.tick_ms()
    env.updated_by = actor
    return env


def render_env(env: EnvVar, *, decrypted: bool = False) -> dict[str, Any]:
    """The wire shape. `decrypted` is the by-id endpoint (getProjectEnv)."""
    out: dict[str, Any] = {
        "id": env.id,
        "key": env.key,
        "type": env.type,
        "target": list(env.target),
        "configurationId": env.configuration_id,
        "createdAt": env.created_at,
        "updatedAt": env.updated_at,
        "createdBy": env.created_by,
        "updatedBy": env.updated_by,
        "securityIssues": [],
    }
    readable = env.type in ("plain", "system")
    if decrypted and env.type != "sensitive":
        out["value"] = env.value
        out["decrypted"] = True
    elif decrypted:
        out["decrypted"] = False  # sensitive: no value at all, ever
    else:
        out["value"] = env.value if readable else env.ciphertext
        out["decrypted"] = False
    if env.git_branch is not None:
        out["gitBranch"] = env.git_branch
    if env.comment is not None:
        out["comment"] = env.comment
    out["customEnvironmentIds"] = list(env.custom_environment_ids)
    return out
