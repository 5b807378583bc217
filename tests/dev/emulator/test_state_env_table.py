"""The var table's per-project index (state.EnvTable) behind Store.project_envs."""

from __future__ import annotations

import pytest

from dev.emulator.models import EnvVar
from dev.emulator.state import EnvTable


def test_the_emulator_var_table_keeps_each_projects_vars_in_order() -> None:
    """The per-project index behind Store.project_envs follows every write the same way a
    scan of the table would."""

    def var(env_id: str, project: str) -> EnvVar:
        return EnvVar(
            id=env_id,
            project_id=project,
            key="K",
            value="v",
            type="plain",
            target=["production"],
            git_branch=None,
            comment=None,
            custom_environment_ids=[],
            configuration_id=None,
            created_at=0,
            updated_at=0,
            created_by=None,
        )

    table = EnvTable()

    def scan(project: str) -> list[str]:
        return [e.id for e in table.values() if e.project_id == project]

    for env_id, project in [("a", "p"), ("b", "q"), ("c", "p"), ("d", "p")]:
        table[env_id] = var(env_id, project)
    del table["a"]
    assert table.pop("c").id == "c"
    assert table.pop("zz", None) is None
    table["a"] = var("a", "p")
    table["d"] = var("d", "p")  # replaced in place: keeps its position
    for project in ("p", "q", "r"):
        assert [e.id for e in table.of_project(project)] == scan(project)
    table["b"] = var("b", "p")  # an id reused for another project: falls back to the scan
    assert [e.id for e in table.of_project("p")] == scan("p") == ["b", "d", "a"]
    assert table.of_project("q") == []
    table.clear()
    assert table.of_project("p") == []
    with pytest.raises(NotImplementedError):
        table.update({"x": var("x", "p")})
