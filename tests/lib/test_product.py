"""Product identity (lib/product.py): integration.toml's [integration] table, validated."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.product import (
    FIELDS,
    Product,
    ProductError,
    get_product,
    load_product,
    parse_product,
    reset_product,
)
from lib.provisioning.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]

VALID = {
    "name": "Zeta for Vercel",
    "company": "Zeta",
    "support_email": "help@zeta.example",
    "homepage_url": "https://zeta.example/",
    "docs_url": "/docs",
    "privacy_url": "https://zeta.example/legal/privacy?lang=en",
}


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    reset_product()
    yield
    reset_product()


def test_the_committed_table_is_valid_and_the_spec_loader_ignores_it() -> None:
    product = load_product(ROOT / "integration.toml")
    assert product.name
    assert product.company
    assert product.support_mailto == f"mailto:{product.support_email}"
    load_spec(ROOT / "integration.toml", {})  # [integration] is not an unknown table


def test_a_valid_table() -> None:
    product = parse_product({"integration": VALID}, source="x.toml")
    assert product == Product(**VALID)


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        (None, "[integration]: missing"),
        ("Zeta", "must be a table"),
        ({**VALID, "slogan": "x"}, "unknown field(s) slogan"),
        *[({k: v for k, v in VALID.items() if k != f}, f"{f} is required") for f in FIELDS],
        ({**VALID, "name": "   "}, "name is required"),
        ({**VALID, "name": 3}, "name is required"),
        ({**VALID, "name": " Zeta"}, "name must be one line"),
        ({**VALID, "company": "Ze\nta"}, "company must be one line"),
        ({**VALID, "name": "Z" * 201}, "at most 200 characters"),
        ({**VALID, "support_email": "help"}, "support_email = 'help' is not an e-mail"),
        ({**VALID, "support_email": "a@b"}, "is not an e-mail"),
        ({**VALID, "support_email": "<a@b.example>"}, "is not an e-mail"),
        ({**VALID, "docs_url": "docs"}, "docs_url = 'docs' is not a site path"),
        ({**VALID, "docs_url": "//evil.example/docs"}, "docs_url"),
        ({**VALID, "homepage_url": "http://zeta.example/"}, "homepage_url"),
        ({**VALID, "privacy_url": "javascript:alert(1)"}, "privacy_url"),
        ({**VALID, "privacy_url": '/p"><script>'}, "privacy_url"),
    ],
)
def test_invalid_tables_name_the_field(table: object, fragment: str) -> None:
    data = {} if table is None else {"integration": table}
    with pytest.raises(ProductError) as caught:
        parse_product(data, source="x.toml")
    assert str(caught.value).startswith("x.toml: [integration]")
    assert fragment in str(caught.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ProductError, match="not found"):
        load_product(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[integration\n")
    with pytest.raises(ProductError, match="not valid TOML"):
        load_product(broken)


def _write(path: Path, name: str) -> None:
    lines = [f'{k} = "{name if k == "name" else v}"' for k, v in VALID.items()]
    path.write_text("[integration]\n" + "\n".join(lines) + "\n")


def test_get_product_reads_the_spec_path_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "spec.toml"
    _write(spec, "First")
    monkeypatch.setenv("INTEGRATION_SPEC_PATH", str(spec))
    assert get_product().name == "First"
    _write(spec, "Second")
    assert get_product().name == "First"  # cached: warm invocations read nothing
    reset_product()
    assert get_product().name == "Second"


def test_get_product_defaults_to_the_committed_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTEGRATION_SPEC_PATH", raising=False)
    assert get_product() == load_product(ROOT / "integration.toml")


def test_importing_reads_no_file() -> None:
    env = {**os.environ, "INTEGRATION_SPEC_PATH": "/nonexistent/integration.toml"}
    code = "import lib.product, lib.web.pages.layout; print('ok')"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr
