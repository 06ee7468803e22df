"""Suite-wide rules.

With ATVDISK_NO_SKIPS=1 (set by `.ci/setup test`, so by CI) any skipped test fails the run: CI
is root with loop devices, qemu and every tool installed, so a skip there can only hide a
missing dependency. So does an expected failure (xfail, whether it then fails or passes): a test
that is allowed to fail checks nothing. Skips are counted from the test reports themselves
(collection included), not from the terminal's statistics, so no output option hides them.
Under pytest-xdist (`-n`) the reports of every worker reach the controller's hooks, which keep
the count; the workers themselves leave the verdict to it.

Parallel runs (`.ci/setup test` passes `-n auto`; pyproject sets `--dist loadfile`): a test
module is one unit of work, so its module-scoped fixtures (a built image, a qemu boot) are made
once, on one worker. Every module with a `root` test (loop devices, partition nodes, mounts,
/run/lock/atvdisk, checks that nothing is left attached), and every module that runs the
emulated ATV (a mount namespace: it holds every mount while it lives), joins the one unit
`root`: those run one after the other on a single worker, never beside each other. The root unit and then the
kernel (qemu) modules are handed out first, the longest units before the many short ones.
(Done by our own scheduler: xdist's `loadgroup` marks do not survive pytest 9.2's node ids.)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

_NOT_RUN: list[tuple[str, str]] = []  # (node id, why) of every test that was skipped or xfailed
_BOOTS: list[tuple] = []  # the kernel tests' qemu boots, from their reports (tests/kernel/conftest.py)
BOOT_PROPERTY = "kernel guest boot"

ROOT_GROUP = "root"


def _why(report) -> str:
    if hasattr(report, "wasxfail"):
        return f"xfail ({report.wasxfail or 'no reason'}), {'passed' if report.passed else 'failed'}"
    longrepr = report.longrepr
    return str(longrepr[-1] if isinstance(longrepr, tuple) else longrepr)


def pytest_runtest_logreport(report) -> None:
    if report.skipped or hasattr(report, "wasxfail"):
        _NOT_RUN.append((report.nodeid, _why(report)))
    _BOOTS.extend(tuple(value) for name, value in report.user_properties if name == BOOT_PROPERTY)


def pytest_collectreport(report) -> None:
    if report.skipped:
        _NOT_RUN.append((report.nodeid, _why(report)))


def pytest_terminal_summary(terminalreporter) -> None:
    if not _BOOTS:
        return
    terminalreporter.section("kernel guest boots")
    for label, seconds, init, ready, outcome in _BOOTS:
        guest = f"kernel to /init {init:.1f} s, to script {ready:.1f} s" if init and ready else "-"
        terminalreporter.write_line(f"{seconds:6.1f} s wall  ({guest})  {outcome:<14} {label}")
    terminalreporter.write_line(f"{len(_BOOTS)} boots, {sum(b[1] for b in _BOOTS):.1f} s in total")


def _is_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("ATVDISK_NO_SKIPS") != "1" or not _NOT_RUN or _is_xdist_worker(session.config):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.ensure_newline()
        reporter.write_sep("=", f"{len(_NOT_RUN)} test(s) skipped or xfailed: not allowed here (ATVDISK_NO_SKIPS=1)", red=True)
        for nodeid, why in _NOT_RUN:
            reporter.write_line(f"  {nodeid}: {why}")
    session.exitstatus = 1


# What puts a module in the serial unit, as its source says it: root tests (pytest.mark.root,
# or test_target_helpers.root_only), and the emulated ATV (atv_sandbox: a private mount namespace
# holds a copy of every mount of the machine while it lives, so a root test's umount beside it
# would leave the loop device busy, still attached after the test).
SERIAL_MARKS = ("pytest.mark.root", "root_only", "atv_sandbox")


@functools.cache
def is_serial_module(path: Path) -> bool:
    """Does this test module have root tests, or use a mount namespace? Read from its source,
    because the xdist controller collects nothing; test_parallel_suite.py checks it against the
    collected root marks."""
    try:
        text = path.read_text()
    except OSError:
        return False
    return any(mark in text for mark in SERIAL_MARKS)


def unit_of(nodeid: str, rootpath: Path) -> str:
    """The unit of work a test belongs to under xdist: `root`, or its module."""
    module = nodeid.split("::", 1)[0]
    return ROOT_GROUP if is_serial_module(rootpath / module) else module


def _rank(unit: str) -> int:
    """Hand-out order: the serial root unit, then the qemu boots, then the rest."""
    return 0 if unit == ROOT_GROUP else 1 if unit.startswith("tests/kernel/") else 2


def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModuleScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid, self.config.rootpath)

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config, items) -> None:
    """On an xdist worker: the longest units first. xdist hands the units out in the order the
    workers collected them (with --no-loadscope-reorder), and its indices refer to the workers'
    item order, so the order is set here, the same on every worker (a stable sort keeps each
    module's tests in their own order)."""
    if _is_xdist_worker(config):
        items.sort(key=lambda item: _rank(unit_of(item.nodeid, config.rootpath)))
