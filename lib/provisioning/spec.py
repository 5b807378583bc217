"""The operator's declaration of what every project gets: `integration.toml`.

The spec is validated completely at load, against the rules Vercel enforces, so a bad
spec fails at deploy time with a message naming the entry and the field, instead of
failing per project at provisioning time with an opaque API error.

One rule is resolved rather than refused: Vercel does not allow `sensitive` for the
development target. A `sensitive` entry that also targets development is split into a
`sensitive` production/preview variable and an `encrypted` development variable with
the same key. That is the safest thing Vercel allows (secrets stay unreadable where they
matter, and local development still gets them), and it is what an operator who writes
"sensitive everywhere" means.

A `plain`/`encrypted` entry that targets development and something else is split the
same way (same type, development written separately): a team that enforces sensitive
variables promotes production/preview vars to `sensitive`, and what Vercel does with one
var that also targets development is undocumented (vercel-reality.md §2.1), so the server
never has to decide.

`targets` may also name a project's custom environments by slug
(https://vercel.com/docs/deployments/environments#custom-environments); provisioning
resolves them per project to `customEnvironmentIds`, and a project without one is
reported, not failed.
"""

from __future__ import annotations

import os
import re
import secrets as _secrets
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "TARGETS",
    "DesiredVar",
    "EnvEntry",
    "SecretEntry",
    "Slot",
    "Spec",
    "SpecError",
    "TemplateContext",
    "load_spec",
    "parse_spec",
]

EnvType = Literal["sensitive", "encrypted", "plain"]
Target = Literal["production", "preview", "development"]
TARGETS: tuple[Target, ...] = ("production", "preview", "development")
_E = TypeVar("_E", bound=BaseModel)

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")
_RESERVED_PREFIXES = ("VERCEL_", "NOW_")
_RESERVED = frozenset(
    {
        "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME", "LAMBDA_TASK_ROOT",
        "TZ", "CI", "VERCEL",
    }
)  # fmt: skip
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_CONTEXT_FIELDS = (
    "configuration_id", "installation_id", "team_id", "user_id", "owner_id",
    "project_id", "project_name",
)  # fmt: skip
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]{1,250}$")
# A custom environment's slug as written in `targets`: lower-case letters, digits and '-'.
_CUSTOM_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


class SpecError(Exception):
    """The spec is invalid. The message names the file, the entry and the field."""


class SecretEntry(BaseModel):
    """A per-installation secret, minted once at install and rotatable on demand."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    bytes: int = Field(default=32, ge=16, le=128)
    prefix: str = Field(default="", max_length=32, pattern=r"^[A-Za-z0-9_-]*$")
    encoding: Literal["base64url", "hex"] = "base64url"

    def mint(self) -> str:
        raw = _secrets.token_bytes(self.bytes)
        body = raw.hex() if self.encoding == "hex" else _secrets.token_urlsafe(self.bytes)
        return self.prefix + body


class EnvEntry(BaseModel):
    """One `[[env]]` entry as the operator wrote it."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    key: str
    value: str = Field(max_length=65536)
    type: EnvType = "encrypted"
    # The standard targets, and custom environments by slug (checked in `_check_entry`).
    targets: tuple[str, ...] = TARGETS
    git_branch: str | None = None
    comment: str | None = Field(default=None, max_length=500)
    on_conflict: Literal["skip", "adopt"] = "skip"

    @property
    def standard_targets(self) -> tuple[Target, ...]:
        return tuple(t for t in TARGETS if t in self.targets)

    @property
    def custom_environments(self) -> tuple[str, ...]:
        return tuple(t for t in self.targets if t not in TARGETS)


class TemplateContext(BaseModel):
    """What a value template can refer to for one installation and project."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    configuration_id: str
    team_id: str | None = None
    user_id: str
    project_id: str
    project_name: str
    secrets: Mapping[str, str] = Field(default_factory=dict, repr=False)

    @property
    def owner_id(self) -> str:
        return self.team_id or self.user_id


@dataclass(frozen=True, order=True)
class Slot:
    """The identity of one desired var across runs: its key, its git branch, and which
    part of its entry it is (an entry split by Vercel's rules has two). Stored as
    `key|branch|part`, the field name of the var's entry in the project record, so that
    form is a compatibility contract (`str` writes it, `parse` reads it)."""

    key: str
    git_branch: str | None = None
    part: int = 0

    def __str__(self) -> str:
        return f"{self.key}|{self.git_branch or ''}|{self.part}"

    @classmethod
    def parse(cls, text: str) -> Slot:
        # A key has no `|` (`_KEY`) and the part is a number, so the branch is what is
        # between the first and the last `|`, whatever it holds.
        key, _, rest = text.partition("|")
        branch, _, part = rest.rpartition("|")
        return cls(key, branch or None, int(part) if part.isdigit() else 0)


class DesiredVar(BaseModel):
    """One env var record that should exist on a project, value rendered."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    slot: Slot
    key: str
    value: str = Field(repr=False)
    type: EnvType
    targets: tuple[Target, ...]
    git_branch: str | None = None
    comment: str | None = None
    on_conflict: Literal["skip", "adopt"] = "skip"
    # Custom environments by slug, as the spec names them; provisioning resolves them per
    # project into `custom_environment_ids` (what Vercel's `customEnvironmentIds` holds).
    custom_environments: tuple[str, ...] = ()
    custom_environment_ids: tuple[str, ...] = ()


class Spec(BaseModel):
    """The validated spec. `env` is already split by Vercel's rules."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    env: tuple[EnvEntry, ...]
    secrets: Mapping[str, SecretEntry] = Field(default_factory=dict)
    operator_env: Mapping[str, str] = Field(default_factory=dict, repr=False)

    @property
    def custom_environments(self) -> frozenset[str]:
        """Every custom environment slug the spec names (empty: no lookup is needed)."""
        return frozenset(slug for entry in self.env for slug in entry.custom_environments)

    def mint_secrets(self, names: list[str] | None = None) -> dict[str, str]:
        """Fresh values for the named secrets (all when None)."""
        chosen = self.secrets if names is None else {n: self.secrets[n] for n in names}
        return {name: entry.mint() for name, entry in chosen.items()}

    def desired(self, ctx: TemplateContext) -> list[DesiredVar]:
        """The env var records one project should have.

        A value that renders empty (say `{team_id}` on a personal account) is left out:
        Vercel refuses empty values, and an absent variable is what "empty" means to the
        code reading it."""
        out: list[DesiredVar] = []
        seen: dict[tuple[str, str | None], int] = {}
        for entry in self.env:
            n = seen[(entry.key, entry.git_branch)] = (
                seen.get((entry.key, entry.git_branch), -1) + 1
            )
            value = _render(entry.value, ctx, self.operator_env)
            if not value:
                continue
            out.append(
                DesiredVar(
                    slot=Slot(entry.key, entry.git_branch, n),
                    key=entry.key,
                    value=value,
                    type=entry.type,
                    targets=entry.standard_targets,
                    git_branch=entry.git_branch,
                    comment=entry.comment,
                    on_conflict=entry.on_conflict,
                    custom_environments=entry.custom_environments,
                )
            )
        return out


def _render(template: str, ctx: TemplateContext, operator_env: Mapping[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name.startswith("secret."):
            return ctx.secrets[name[7:]]
        if name.startswith("env."):
            return operator_env[name[4:]]
        if name == "installation_id":
            return ctx.configuration_id
        value = getattr(ctx, name)
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(sub, template)


def _check_template(
    where: str, template: str, secrets: Mapping[str, SecretEntry], env: Mapping[str, str]
) -> dict[str, str]:
    """Validate placeholders; returns the operator env vars the template uses."""
    used: dict[str, str] = {}
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name is None:
            continue
        if name.startswith("secret."):
            if name[7:] not in secrets:
                raise SpecError(
                    f"{where}: value uses {{{name}}} but [secrets.{name[7:]}] is not declared"
                )
        elif name.startswith("env."):
            var = name[4:]
            if var not in env or not env[var]:
                raise SpecError(
                    f"{where}: value uses {{{name}}} but environment variable {var} is not set"
                )
            used[var] = env[var]
        elif name not in _CONTEXT_FIELDS:
            allowed = ", ".join(f"{{{f}}}" for f in _CONTEXT_FIELDS)
            raise SpecError(
                f"{where}: unknown placeholder {{{name}}} (use {allowed}, "
                "{secret.NAME}, {env.NAME}; write {{ and }} for literal braces)"
            )
    return used


def _split_development(entry: EnvEntry) -> list[EnvEntry]:
    """Development written as its own var: encrypted for a sensitive entry (Vercel refuses
    sensitive there), the entry's own type otherwise."""
    if "development" not in entry.targets:
        return [entry]
    rest = tuple(t for t in entry.targets if t != "development")
    dev_type = "encrypted" if entry.type == "sensitive" else entry.type
    dev = entry.model_copy(update={"type": dev_type, "targets": ("development",)})
    if not rest:
        return [dev]
    return [entry.model_copy(update={"targets": rest}), dev]


def parse_spec(data: Mapping[str, object], *, source: str, env: Mapping[str, str]) -> Spec:
    """Validate a parsed TOML document. Every error names `source`, the entry and the field."""
    # [integration] is the product identity (lib/product.py validates it), not provisioning.
    unknown = set(data) - {"env", "secrets", "integration"}
    if unknown:
        raise SpecError(f"{source}: unknown top-level table(s): {', '.join(sorted(unknown))}")
    raw_secrets = data.get("secrets", {})
    if not isinstance(raw_secrets, dict):
        raise SpecError(f"{source}: [secrets] must be a table of tables")
    secrets: dict[str, SecretEntry] = {}
    for name, raw in raw_secrets.items():
        where = f"{source}: [secrets.{name}]"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
            raise SpecError(f"{where}: name must be letters, digits and '_'")
        secrets[name] = _validate(SecretEntry, raw, where)

    raw_env = data.get("env", [])
    if not isinstance(raw_env, list) or not raw_env:
        raise SpecError(f"{source}: declare at least one [[env]] entry")
    entries: list[EnvEntry] = []
    operator_env: dict[str, str] = {}
    for index, raw in enumerate(raw_env):
        label = raw.get("key", "?") if isinstance(raw, dict) else "?"
        where = f"{source}: [[env]] #{index + 1} ({label})"
        entry = _validate(EnvEntry, raw, where)
        _check_entry(entry, where)
        operator_env.update(_check_template(where, entry.value, secrets, env))
        entries.extend(_split_development(entry))
    _check_overlaps(entries, source)
    return Spec(env=tuple(entries), secrets=secrets, operator_env=operator_env)


def _validate(model: type[_E], raw: object, where: str) -> _E:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: must be a table")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "entry"
        raise SpecError(f"{where}: field '{field}': {first['msg']}") from None


def _check_entry(entry: EnvEntry, where: str) -> None:
    if not _KEY.match(entry.key):
        raise SpecError(
            f"{where}: field 'key': must be letters, digits and '_', not starting with a digit"
        )
    if entry.key.upper() in _RESERVED or entry.key.upper().startswith(_RESERVED_PREFIXES):
        raise SpecError(f"{where}: field 'key': {entry.key} is reserved by Vercel")
    if not entry.targets:
        raise SpecError(f"{where}: field 'targets': at least one of {', '.join(TARGETS)}")
    for target in entry.custom_environments:
        if not _CUSTOM_SLUG.match(target):
            raise SpecError(
                f"{where}: field 'targets': {target!r} is neither {', '.join(TARGETS)} nor "
                "a custom environment slug (lower-case letters, digits and '-', as in "
                "the environment's URL on Vercel)"
            )
    if len(set(entry.targets)) != len(entry.targets):
        raise SpecError(f"{where}: field 'targets': a target is listed twice")
    if entry.git_branch is not None:
        if entry.targets != ("preview",):
            raise SpecError(
                f"{where}: field 'git_branch': Vercel allows a branch only with "
                'targets = ["preview"]'
            )
        if not _BRANCH.match(entry.git_branch):
            raise SpecError(f"{where}: field 'git_branch': not a valid branch name")
    if not entry.value:
        raise SpecError(f"{where}: field 'value': must not be empty (Vercel refuses empty values)")


def _check_overlaps(entries: list[EnvEntry], source: str) -> None:
    seen: dict[tuple[str, str | None, str], str] = {}
    for entry in entries:
        for target in entry.targets:
            ident = (entry.key, entry.git_branch, target)
            if ident in seen:
                raise SpecError(
                    f"{source}: {entry.key} is declared twice for target {target}"
                    + (f" on branch {entry.git_branch}" if entry.git_branch else "")
                )
            seen[ident] = entry.key


_cache: dict[tuple[str, float], Spec] = {}
_cache_lock = threading.Lock()


def load_spec(path: str | Path, env: Mapping[str, str] | None = None) -> Spec:
    """Load and validate the spec at `path` (relative paths resolve from the project root)."""
    file = Path(path)
    if not file.is_absolute():
        file = Path(__file__).resolve().parents[2] / file
    try:
        mtime = file.stat().st_mtime
    except OSError:
        raise SpecError(
            f"{file.name}: spec file not found at {file} (set INTEGRATION_SPEC_PATH)"
        ) from None
    cache_key = (str(file), mtime)
    with _cache_lock:
        if env is None and cache_key in _cache:
            return _cache[cache_key]
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{file.name}: not valid TOML: {exc}") from None
    spec = parse_spec(data, source=file.name, env=os.environ if env is None else env)
    if env is None:
        with _cache_lock:
            _cache[cache_key] = spec
    return spec
