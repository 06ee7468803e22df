"""Suite-wide rules.

With ATVDISK_NO_SKIPS=1 (set by `.ci/setup test`, so by CI) any skipped test fails the run: CI
is root with loop devices, qemu and every tool installed, so a skip there can only hide a
missing dependency. So does an expected failure (xfail, whether it then fails or passes): a test
that is allowed to fail checks nothing. Skips are counted from the test reports themselves
(collection included), not from the terminal's statistics, so no output option hides them.
"""

from __future__ import annotations

import os

_NOT_RUN: list[tuple[str, str]] = []  # (node id, why) of every test that was skipped or xfailed


def _why(report) -> str:
    if hasattr(report, "wasxfail"):
        return f"xfail ({report.wasxfail or 'no reason'}), {'passed' if report.passed else 'failed'}"
    longrepr = report.longrepr
    return str(longrepr[-1] if isinstance(longrepr, tuple) else longrepr)


def pytest_runtest_logreport(report) -> None:
    if report.skipped or hasattr(report, "wasxfail"):
        _NOT_RUN.append((report.nodeid, _why(report)))


def pytest_collectreport(report) -> None:
    if report.skipped:
        _NOT_RUN.append((report.nodeid, _why(report)))


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("ATVDISK_NO_SKIPS") != "1" or not _NOT_RUN:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.ensure_newline()
        reporter.write_sep("=", f"{len(_NOT_RUN)} test(s) skipped or xfailed: not allowed here (ATVDISK_NO_SKIPS=1)", red=True)
        for nodeid, why in _NOT_RUN:
            reporter.write_line(f"  {nodeid}: {why}")
    session.exitstatus = 1
