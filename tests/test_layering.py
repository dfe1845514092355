"""The dependency direction is one-way (bot -> core -> supervisor's contract), checked by an
`ast` walk over every module: supervisor/ imports only the standard library (pynvml optional),
core/ never imports bot/ or aiogram, and nothing outside tests/ imports tests. Inside core/
the modules stand in layers (docs/layers.md) that import only downwards, with no circle; no
module in core/, bot/ or supervisor/ is over 300 lines, no function over 50."""

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


# core/'s modules in layers, lowest first (docs/layers.md says what each layer is). A module
# imports only from its own layer or a lower one; a new module must be given a layer here.
LAYERS: dict[str, tuple[str, ...]] = {
    "values": (
        "errors", "vocab", "models", "durations", "text", "retry_after", "protocol", "ports",
        "memory", "findings", "cadence", "outputs", "topics", "actions", "bounded", "links",
        "metric_history",
    ),
    "rules": (
        "rules", "hard_rules", "soft_rules", "gpu_onset", "silence", "deadline", "disk", "cost",
        "kept", "transitions", "exit_plan", "exit_effects", "decide", "outside", "gate",
        "messages", "endings", "statusline", "check_failures", "instance", "collect_report",
        "batching", "answers", "throughput", "slowdown_cost", "baseline", "gpu_work",
    ),
    "settings": ("config", "config_sections", "run_settings"),
    "adapters": (
        "store", "store_db", "store_rows", "store_outbox", "store_batch", "store_buttons",
        "store_checks",
        "migrate", "ssh", "ssh_pool", "ssh_channels", "hostkeys", "capped", "local", "providers",
        "scheduling", "console", "ping", "sdnotify", "supervisor_client", "supervisor_answer",
        "supervisor_session", "session_link", "chart", "gc_pace",
    ),
    "engine": (
        "watcher", "exits", "teardown", "launch", "waiter", "outbox", "control", "settings",
        "health", "notices", "tasks", "upkeep", "service", "collect", "collect_list", "pull",
        "run_chart",
    ),
    "root": ("runtime", "root", "cli", "cli_args", "demo", "demo_assets", "collect_cli"),
}  # fmt: skip
LAYER_ORDER = tuple(LAYERS)


def dotted(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def layer_of(module: str) -> str | None:
    """The layer of core.X or of anything inside the package core.X (core.providers.vast)."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "core":
        return None
    return next((layer for layer, names in LAYERS.items() if parts[1] in names), None)


def own_imports(path: Path) -> set[str]:
    """The package's own modules `path` imports anywhere in it (a function-local or
    TYPE_CHECKING import counts too), relative imports resolved, `from core import x` and
    `from core.x import y` counted as the modules they name when those are modules."""
    module, package = dotted(path), dotted(path).split(".")[0]
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == package)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                base = f"{anchor}.{base}" if base else anchor
            if base.split(".")[0] != package:
                continue
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if is_module(f"{base}.{a.name}"))
    return found - {module}


def is_module(name: str) -> bool:
    path = ROOT / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


@pytest.mark.parametrize("path", modules_of("core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_core_module_has_a_layer(path: Path) -> None:
    if dotted(path) != "core":
        assert layer_of(dotted(path)) is not None, f"give {dotted(path)} a layer in LAYERS"


def upward(module: str, imports: set[str]) -> list[str]:
    """The imports of `module` that sit in a higher layer than its own."""
    mine = layer_of(module)
    if mine is None:
        return []
    return sorted(
        f"{name} ({theirs})"
        for name in imports
        if (theirs := layer_of(name)) and LAYER_ORDER.index(theirs) > LAYER_ORDER.index(mine)
    )


@pytest.mark.parametrize("path", modules_of("core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_only_its_own_layer_or_lower(path: Path) -> None:
    bad = upward(dotted(path), own_imports(path))
    assert not bad, f"{dotted(path)} ({layer_of(dotted(path))}) imports a higher layer: {bad}"


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle in an import graph (module -> the modules it imports), or None."""
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> list[str] | None:
        if module in trail:
            return [*trail[trail.index(module) :], module]
        if module in done or module not in graph:
            return None
        for name in sorted(graph[module]):
            if name == module.rpartition(".")[0]:
                continue  # a module importing its own package's __init__ is no circle
            if (cycle := visit(name, [*trail, module])) is not None:
                return cycle
        done.add(module)
        return None

    return next((c for m in sorted(graph) if (c := visit(m, [])) is not None), None)


@pytest.mark.parametrize("package", ["core", "bot", "supervisor"])
def test_no_import_circle(package: str) -> None:
    cycle = import_cycle({dotted(p): own_imports(p) for p in modules_of(package)})
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_layer_rules_see_an_upward_import_and_a_circle() -> None:
    """The rules above can fail: a rule importing the watcher is upward, the watcher importing
    the store is not; a two-module loop and a longer one are circles."""
    assert upward("core.decide", {"core.watcher", "core.vocab"}) == ["core.watcher (engine)"]
    assert upward("core.watcher", own_imports(ROOT / "core" / "watcher.py")) == []
    assert "core.store" in own_imports(ROOT / "core" / "watcher.py")
    assert import_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


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


# -- providers --------------------------------------------------------------------------------
# Generic code reaches a cloud only through core.ports.Provider, resolved per run
# (`provider_for`); the adapters and their registry are known to the composition roots alone,
# so a provider is added by writing its module and registering it, nothing else.
# bot.init is the root of `sleepwatch init`: it builds the Vast adapter to check a key, no run.
PROVIDER_ROOTS = frozenset({"core.root", "core.runtime", "core.cli", "core.demo", "bot.init"})


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


@pytest.mark.parametrize(
    "path",
    [p for package in ("core", "bot") for p in modules_of(package)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_only_the_composition_roots_know_the_provider_adapters(path: Path) -> None:
    module = module_name(path)
    if module.startswith("core.providers") or module in PROVIDER_ROOTS:
        return
    known = sorted(n for n in full_imports(module) if n.split(".")[:2] == ["core", "providers"])
    assert not known, f"{module} imports {known}: ask the run's provider (provider_for) instead"


def test_the_provider_rule_sees_an_adapter_import() -> None:
    assert "core.providers.registry" in full_imports("core.runtime")


# -- the pure decision ------------------------------------------------------------------------
# A check is decided by pure code (core/decide.py, core/outside.py, core/exit_plan.py and the
# rules they compose: the "values" and "rules" layers) and applied by the engine (the watcher,
# the exit handler): those layers import no I/O library, and by the layer rule no adapter.
IO_LIBRARIES = frozenset(
    {"asyncio", "aiosqlite", "sqlite3", "asyncssh", "aiohttp", "apscheduler", "aiogram"}
    | {"socket", "subprocess", "logging", "os", "time", "random", "pydantic_settings"}
)
PURE_LAYERS = ("values", "rules")


def pure_modules() -> list[Path]:
    return [p for p in modules_of("core") if layer_of(dotted(p)) in PURE_LAYERS]


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_pure_decision_does_no_io(path: Path) -> None:
    io = imported_modules(path) & IO_LIBRARIES
    assert not io, f"{path.relative_to(ROOT)} imports {sorted(io)}"


def test_the_decision_and_the_exit_plan_are_pure_layers() -> None:
    pure = {dotted(p) for p in pure_modules()}
    assert {"core.decide", "core.outside", "core.exit_plan", "core.rules"} <= pure
    assert layer_of("core.watcher") == layer_of("core.exits") == "engine"
    assert "asyncio" in imported_modules(ROOT / "core" / "watcher.py")  # the rule can fail


# Sizes (issue 15): a module a newcomer can read in one sitting, a function that fits a screen.
# STYLE.md aims lower (about 250 and 40); these are the limits nothing may cross.
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 50
SIZED = [p for package in ("core", "bot", "supervisor") for p in modules_of(package)]


def module_lines(text: str) -> int:
    return len(text.splitlines())


def long_functions(text: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """`name (N lines)` for every function or method (nested ones too) longer than `limit`,
    counted from its `def` line to its last line."""
    tree = ast.parse(text)
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > limit
    ]


@pytest.mark.parametrize("path", SIZED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_300_lines(path: Path) -> None:
    lines = module_lines(path.read_text(encoding="utf-8"))
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines: split it"


@pytest.mark.parametrize("path", SIZED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_is_over_50_lines(path: Path) -> None:
    long = long_functions(path.read_text(encoding="utf-8"))
    assert not long, f"{path.relative_to(ROOT)}: {', '.join(long)}"


def test_the_size_rules_see_a_long_module_and_a_long_function() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(50))
    text = f"def short():\n    return 1\n\n\nasync def long():\n{body}\n"
    assert long_functions(text) == ["long (51 lines)"]
    assert long_functions(text, limit=51) == []
    assert module_lines("\n" * 301) == 301 > MAX_MODULE_LINES
