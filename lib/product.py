"""Who this integration is, in one place: the `[integration]` table of integration.toml.

The product name, the company behind it, the support address and the homepage, docs and
privacy URLs are what Vercel's integration console asks for when the integration is
listed (https://vercel.com/docs/integrations/create-integration/submit-integration) and
what every page shows. The functions' pages read them through `get_product()`; the static
pages in public/ are generated from the same table by `make pages` (dev/pages.py).

Nothing is read at import time: the file is read on first use and kept for the process.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FIELDS",
    "Product",
    "ProductError",
    "get_product",
    "load_product",
    "parse_product",
    "reset_product",
]

ROOT = Path(__file__).resolve().parents[1]

# Field -> what it must be, for error messages.
FIELDS: dict[str, str] = {
    "name": "the product name shown on every page",
    "company": "who provides it (the footer's copyright line)",
    "support_email": "an e-mail address",
    "homepage_url": 'a site path such as "/" or an https:// URL',
    "docs_url": 'a site path such as "/docs" or an https:// URL',
    "privacy_url": 'a site path such as "/privacy" or an https:// URL',
}

_EMAIL = re.compile(r"[^@\s<>\"']+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
# A path on this site (not "//host", which a browser reads as another site), or https.
_URL = re.compile(r"(/(?!/)|https://[A-Za-z0-9.-]+(/|$))[^\s<>\"'\\]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ProductError(ValueError):
    """The `[integration]` table is missing or invalid; the message says which field."""


@dataclass(frozen=True)
class Product:
    name: str
    company: str
    support_email: str
    homepage_url: str
    docs_url: str
    privacy_url: str

    @property
    def support_mailto(self) -> str:
        return f"mailto:{self.support_email}"


def parse_product(data: Mapping[str, object], *, source: str) -> Product:
    """The `[integration]` table of a parsed integration.toml, validated."""
    table = data.get("integration")
    where = f"{source}: [integration]"
    if table is None:
        raise ProductError(f"{where}: missing; declare {', '.join(FIELDS)}")
    if not isinstance(table, dict):
        raise ProductError(f"{where}: must be a table")
    unknown = sorted(set(table) - set(FIELDS))
    if unknown:
        raise ProductError(f"{where}: unknown field(s) {', '.join(unknown)}")
    values: dict[str, str] = {}
    for field, meaning in FIELDS.items():
        value = table.get(field)
        if not isinstance(value, str) or not value.strip():
            raise ProductError(f"{where}: {field} is required ({meaning})")
        if value != value.strip() or _CONTROL.search(value) or len(value) > 200:
            raise ProductError(
                f"{where}: {field} must be one line of at most 200 characters, "
                "without leading or trailing spaces"
            )
        if field == "support_email" and not _EMAIL.fullmatch(value):
            raise ProductError(f"{where}: {field} = {value!r} is not {meaning}")
        if field.endswith("_url") and not _URL.fullmatch(value):
            raise ProductError(f"{where}: {field} = {value!r} is not {meaning}")
        values[field] = value
    return Product(**values)


def load_product(path: str | Path) -> Product:
    """Read and validate `path` (relative paths resolve from the project root)."""
    file = Path(path)
    if not file.is_absolute():
        file = ROOT / file
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError:
        raise ProductError(
            f"{file.name}: not found at {file} (set INTEGRATION_SPEC_PATH)"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProductError(f"{file.name}: not valid TOML: {exc}") from None
    return parse_product(data, source=file.name)


@functools.cache
def _cached(path: str) -> Product:
    return load_product(path)


def get_product() -> Product:
    """The product identity of this deployment, read once per process.

    Reads the same file as the provisioning spec (`INTEGRATION_SPEC_PATH`, default
    integration.toml) straight from the environment rather than through `Settings`: the
    error pages shown when settings are invalid carry the product name too.
    """
    return _cached(os.environ.get("INTEGRATION_SPEC_PATH") or "integration.toml")


def reset_product() -> None:
    """Forget the cached identity (tests; a process that changed INTEGRATION_SPEC_PATH)."""
    _cached.cache_clear()
