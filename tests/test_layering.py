"""The dependency direction is one-way (bot -> core -> supervisor's contract), checked by an
`ast` walk over every module: supervisor/ imports only the standard library (pynvml optional),
core/ never imports bot/ or aiogram, and nothing outside tests/ imports tests."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("supervisor", "core", "bot", "migrations")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def modules_of(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", modules_of("supervisor"), ids=lambda p: p.name)
def test_the_supervisor_imports_only_the_standard_library(path: Path) -> None:
    outside = imported_modules(path) - set(sys.stdlib_module_names) - {"supervisor", "pynvml"}
    assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)}"


@pytest.mark.parametrize("path", modules_of("core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_the_chat_front_end(path: Path) -> None:
    forbidden = imported_modules(path) & {"bot", "aiogram"}
    assert not forbidden, f"{path.relative_to(ROOT)} imports {sorted(forbidden)}"


@pytest.mark.parametrize(
    "path",
    [p for package in PACKAGES for p in modules_of(package)]
    + sorted((ROOT / "bench").glob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_nothing_outside_the_tests_imports_them(path: Path) -> None:
    assert "tests" not in imported_modules(path), f"{path.relative_to(ROOT)} imports tests"
