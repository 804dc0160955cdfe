"""Imports point inward: `core/` never imports a transport or the outer packages."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"telegram", "aiohttp", "bot", "webhooks", "collectbot", "apscheduler"}
PURE_FORBIDDEN = FORBIDDEN | {"tortoise", "core.db", "core.services"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _violations(folder: str, forbidden: set[str]) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_core_imports_no_transport_and_no_outer_package():
    assert _violations("core", FORBIDDEN) == []


def test_domain_rules_are_pure():
    assert _violations("core/domain", PURE_FORBIDDEN) == []


def test_the_check_sees_the_files_it_guards():
    assert len(list((ROOT / "core").rglob("*.py"))) > 10
