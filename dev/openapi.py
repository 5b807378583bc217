"""Vercel's published OpenAPI excerpts (`dev/vercel-openapi/`), ready for validation.

The emulator's contract tests check its responses against them and the client's contract
tests check its request bodies; both need the same two things: a parsed document, and its
schemas with their in-file `$ref`s inlined (validators here don't follow references).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SPEC_DIR", "document", "inline_refs"]

SPEC_DIR = Path(__file__).resolve().parent / "vercel-openapi"


@cache
def document(file: str) -> dict[str, Any]:
    """One excerpt, parsed (libyaml's safe loader when present: getProjects is large)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loaded = yaml.load((SPEC_DIR / file).read_text(), Loader=loader)  # noqa: S506 - a safe loader
    if not isinstance(loaded, dict):
        raise ValueError(f"{file} is not an OpenAPI document")
    return loaded


def inline_refs(node: Any, root: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """`node` with every `#/…` reference replaced by what it points to in `root`."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/"):
                raise ValueError(f"external $ref {ref}")
            if ref in seen:
                raise ValueError(f"recursive $ref {ref}")
            target: Any = root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            return inline_refs(target, root, (*seen, ref))
        return {k: inline_refs(v, root, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [inline_refs(v, root, seen) for v in node]
    return node
