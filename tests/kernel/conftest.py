"""Fixtures of the kernel tests: the assets prepared once per session, and a bound run_guest.

A test module opts in with ``pytestmark = pytest.mark.kernel`` and uses::

    def test_x(run_guest):                 # run_guest(disks, script, **kw) -> GuestResult
        result = run_guest([image], "guest_blkid")

Asset preparation failures (no network for the kernel package, a missing host tool) FAIL the
tests that need them, with the reason; they never skip.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import pytest

from . import harness
from .assets import GuestAssets
from .errors import AssetError, GuestError, GuestScriptFailed

# (test id, wall seconds, guest uptime at /init, guest uptime when the script started, outcome)
_BOOTS: list[tuple[str, float, float | None, float | None, str]] = []


@pytest.fixture(scope="session")
def guest_assets() -> GuestAssets:
    try:
        return harness.default_assets()
    except AssetError as exc:
        reason = str(exc)
    pytest.fail(f"the kernel-test assets could not be prepared:\n{reason}", pytrace=False)


@pytest.fixture
def run_guest(guest_assets: GuestAssets, request: pytest.FixtureRequest) -> Callable[..., harness.GuestResult]:
    return _recording_runner(guest_assets, request.node.nodeid)


@pytest.fixture(scope="module")
def module_run_guest(guest_assets: GuestAssets, request: pytest.FixtureRequest) -> Callable[..., harness.GuestResult]:
    """For module-scoped fixtures that boot once and serve several tests."""
    return _recording_runner(guest_assets, request.node.nodeid)


def _recording_runner(assets: GuestAssets, label: str) -> Callable[..., harness.GuestResult]:
    @functools.wraps(harness.run_guest)
    def run(*args: object, **kwargs: object) -> harness.GuestResult:
        kwargs.setdefault("assets", assets)
        start = time.monotonic()
        outcome = "raised"
        result = None
        try:
            result = harness.run_guest(*args, **kwargs)  # type: ignore[arg-type]
            outcome = f"status {result.status}"
            return result
        except GuestScriptFailed as exc:
            result = exc.result
            outcome = f"status {result.status}"
            raise
        except GuestError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            init = result.init_uptime if result else None
            ready = result.ready_uptime if result else None
            _BOOTS.append((label, time.monotonic() - start, init, ready, outcome))

    return run


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _BOOTS:
        return
    terminalreporter.section("kernel guest boots")
    for label, seconds, init, ready, outcome in _BOOTS:
        guest = f"kernel to /init {init:.1f} s, to script {ready:.1f} s" if init and ready else "-"
        terminalreporter.write_line(f"{seconds:6.1f} s wall  ({guest})  {outcome:<14} {label}")
    terminalreporter.write_line(f"{len(_BOOTS)} boots, {sum(b[1] for b in _BOOTS):.1f} s in total")
