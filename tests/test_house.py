"""The house as the README draws it: layers, Prefect only where it belongs, no import cycles.

import-linter reads packages from disk, and the repository keeps flows/, tasks/ and templates/
at the top; so the package is laid out here as the wheel lays it out (pyproject's package-dir
mapping), and the contracts in pyproject.toml are checked against that.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


@pytest.fixture(scope="module")
def installed_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``amends`` as a wheel installs it."""
    site = tmp_path_factory.mktemp("site")
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "amends", site / "amends", ignore=skip)
    mapping = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in mapping.items():
        shutil.copytree(ROOT / folder, site.joinpath(*package.split(".")), ignore=skip)
    return site


def test_the_import_contracts_hold(installed_layout: Path) -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache", str(PYPROJECT)],
        cwd=installed_layout,
        env={**os.environ, "PYTHONPATH": str(installed_layout)},
        capture_output=True,
        text=True,
    )
    assert "Contracts: 2 kept, 0 broken." in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0


# The import graph, read in a fresh process: this one has amends imported from the checkout.
DUMP_GRAPH = """
import json, grimp
graph = grimp.build_graph("amends", cache_dir=None)
print(json.dumps({m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}))
"""


def _cycles(imports: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in imports[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(imports):
        if module not in index:
            visit(module)
    return groups


def test_no_module_imports_itself_through_others(installed_layout: Path) -> None:
    dumped = subprocess.run(
        [sys.executable, "-c", DUMP_GRAPH],
        cwd=installed_layout,
        env={**os.environ, "PYTHONPATH": str(installed_layout)},
        capture_output=True,
        text=True,
        check=True,
    )
    imports = json.loads(dumped.stdout)
    assert {"amends.flows.incident", "amends.recovery.stages"} <= imports.keys()
    # The command line's package imports its groups to register them: no cycle to untangle.
    imports["amends.cli"] = []
    assert _cycles(imports) == []


def test_a_cycle_is_found() -> None:
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]


def test_the_wheel_lists_every_package() -> None:
    """pyproject names the packages one by one (flows, tasks and templates live elsewhere in
    the repository), folders of data included: a new folder it forgets would be missing from
    every install."""
    setuptools = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]
    roots = {"amends": ROOT / "amends"} | {
        package: ROOT / folder for package, folder in setuptools["package-dir"].items()
    }
    found = set()
    for package, root in roots.items():
        for folder in [root, *root.rglob("*")]:
            if folder.is_dir() and folder.name != "__pycache__":
                found.add(".".join((package, *folder.relative_to(root).parts)))
    assert found == set(setuptools["packages"])
