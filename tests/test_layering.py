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


# -- the pure decision ------------------------------------------------------------------------
# A check is decided by pure code (core/decide.py, core/exit_plan.py and the rules they
# compose) and applied by the watcher and the exit handler: the deciding modules import no
# adapter and no I/O library, not even through another module.
PURE_MODULES = (
    "core.decide",
    "core.exit_plan",
    "core.rules",
    "core.findings",
    "core.silence",
    "core.soft_rules",
    "core.cadence",
    "core.memory",
    "core.transitions",
    "core.deadline",
    "core.statusline",
    "core.messages",
    "core.text",
    "core.vocab",
)
ADAPTERS = (
    "core.ssh",
    "core.hostkeys",
    "core.store",
    "core.migrate",
    "core.scheduling",
    "core.providers",
    "core.local",
    "core.console",
    "core.outbox",
    "core.supervisor_client",
    "core.waiter",
    "core.teardown",
    "core.watcher",
    "core.exits",
    "core.service",
    "core.runtime",
    "core.launch",
    "core.health",
    "core.control",
    "core.settings",
    "core.cli",
    "core.demo",
)
IO_LIBRARIES = frozenset(
    {"asyncio", "aiosqlite", "sqlite3", "asyncssh", "aiohttp", "apscheduler", "aiogram"}
    | {"socket", "subprocess", "logging", "os", "time", "random"}
)


def full_imports(module: str) -> set[str]:
    """Every module `module` imports, by its full dotted name (absolute imports only)."""
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def is_adapter(module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in ADAPTERS)


def reachable_from(module: str) -> set[tuple[str, str]]:
    """Every (importer, imported) edge reachable from `module` through core's own modules."""
    edges: set[tuple[str, str]] = set()
    todo, seen = [module], {module}
    while todo:
        current = todo.pop()
        for name in full_imports(current):
            edges.add((current, name))
            if name.startswith("core.") and name not in seen and not is_adapter(name):
                seen.add(name)
                todo.append(name)
    return edges


@pytest.mark.parametrize("module", PURE_MODULES)
def test_the_pure_decision_imports_no_adapter_and_no_io(module: str) -> None:
    bad = sorted(
        f"{importer} imports {name}"
        for importer, name in reachable_from(module)
        if is_adapter(name) or name.split(".")[0] in IO_LIBRARIES
    )
    assert not bad, "; ".join(bad)


def test_the_layering_rule_sees_an_adapter_import() -> None:
    """The rule above can fail: the watcher (an applier) reaches the store and asyncio."""
    names = {name for _, name in reachable_from("core.watcher")}
    assert {"core.store", "asyncio"} <= names
