"""The `sleepwatch` script's entry point (pyproject's [project.scripts]); it runs before
anything else of sleepwatch is imported, then hands over to `bot.app.main`.

sleepwatch installs top-level packages with common names (core, bot, supervisor, migrations).
Another distribution can install a package of the same name over ours: `pip install supervisor`
puts supervisord's `supervisor/__init__.py` where ours was, and the watcher would then upload a
broken supervisor to the instance, or find no migrations. Each of our packages carries
`__distribution__ = "sleepwatch"`; a package without it stops the script with a message that
names it and says what to do. Standard library only: nothing here may depend on the packages
it checks.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

OUR_PACKAGES = ("core", "bot", "supervisor", "migrations")
MARK = "__distribution__"
DISTRIBUTION = "sleepwatch"


def foreign_packages(
    names: Sequence[str] = OUR_PACKAGES,
    import_module: Callable[[str], ModuleType] = importlib.import_module,
) -> list[str]:
    """One line per package that is not sleepwatch's (missing, failing to import, or without
    the mark); empty when all are ours."""
    problems = []
    for name in names:
        try:
            module = import_module(name)
        except Exception as exc:  # a foreign package may fail in any way on import
            problems.append(f"`{name}` cannot be imported ({type(exc).__name__}: {exc})")
            continue
        if getattr(module, MARK, None) != DISTRIBUTION:
            where = getattr(module, "__file__", None) or "a namespace package"
            problems.append(f"`{name}` is not sleepwatch's (it comes from {where})")
    return problems


def refusal(problems: Sequence[str]) -> str:
    return (
        "sleepwatch: refusing to start: "
        + "; ".join(problems)
        + ". Another installed distribution owns a package of the same name (`pip install "
        "supervisor` installs supervisord as `supervisor`). Install sleepwatch in a virtual "
        "environment of its own (or reinstall it there after removing the other one)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    problems = foreign_packages()
    if problems:
        print(refusal(problems), file=sys.stderr)
        return 2
    from bot.app import main as app_main

    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main())
