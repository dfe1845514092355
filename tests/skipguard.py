"""A skipped test is never a silent pass: the summary lists every skip with its reason, loudly,
and with SLEEPWATCH_FAIL_ON_SKIP=1 (set by .ci/run) each skip is reported as a failure, so a
machine without sshd cannot turn the SSH tests into a green run."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

FAIL_ON_SKIP = "SLEEPWATCH_FAIL_ON_SKIP"


def _strict() -> bool:
    return os.environ.get(FAIL_ON_SKIP, "") not in ("", "0")


def _reason(report: pytest.TestReport) -> str:
    longrepr: Any = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        if _strict():
            report.outcome = "failed"
            report.longrepr = f"skipped, and {FAIL_ON_SKIP} is set: {_reason(report)}"


_SKIPS: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPS.append((report.nodeid, _reason(report)))


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    # A module that skips itself at import (`allow_module_level=True`) is skipped at collection,
    # where no test report is made: count it, and under the strict flag fail it.
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if report.skipped and _strict():
        report.outcome = "failed"
        report.longrepr = f"skipped, and {FAIL_ON_SKIP} is set: {_reason(report)}"  # type: ignore[arg-type]


def pytest_collectreport(report: pytest.CollectReport) -> None:
    # Called where the summary is written: in this process, or in the xdist controller.
    if report.skipped:
        _SKIPS.append((report.nodeid, _reason(report)))  # type: ignore[arg-type]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _SKIPS:
        return
    reasons: dict[str, list[str]] = {}
    for nodeid, reason in _SKIPS:
        reasons.setdefault(reason, []).append(nodeid)
    terminalreporter.section(f"{len(_SKIPS)} TESTS WERE SKIPPED: NOT A FULL PASS", sep="!")
    for reason, nodeids in reasons.items():
        terminalreporter.write_line(f"{len(nodeids)} skipped because: {reason}", red=True)
        for nodeid in nodeids:
            terminalreporter.write_line(f"    {nodeid}")
    terminalreporter.write_line(
        f"(.ci/run sets {FAIL_ON_SKIP}=1 and fails on any skip)", yellow=True
    )
