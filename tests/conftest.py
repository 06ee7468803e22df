"""Suite-wide rules.

With ATVDISK_NO_SKIPS=1 (set by `.ci/setup test`, so by CI) any skipped test fails the run: CI
is root with loop devices, qemu and every tool installed, so a skip there can only hide a
missing dependency.
"""

from __future__ import annotations

import os


def pytest_sessionfinish(session, exitstatus):  # noqa: ANN001, ANN201 - pytest hook
    if os.environ.get("ATVDISK_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.ensure_newline()
        reporter.write_sep("=", f"{len(skipped)} test(s) skipped: not allowed here (ATVDISK_NO_SKIPS=1)", red=True)
        for report in skipped:
            reporter.write_line(f"  {report.nodeid}: {report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr}")
        session.exitstatus = 1
