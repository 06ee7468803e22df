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

# Boots made in this process and not yet attached to a test report: (test id, wall seconds, guest
# uptime at /init, guest uptime when the script started, outcome). The report carries them to
# tests/conftest.py, which prints them at the end (under pytest-xdist, from every worker).
_BOOTS: list[tuple[str, float, float | None, float | None, str]] = []
BOOT_PROPERTY = "kernel guest boot"  # the name of the report's user property


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """The boots made while a test (or its fixtures) ran travel with that phase's report: a
    worker's reports reach the controller, its module globals do not."""
    outcome = yield
    report = outcome.get_result()
    if _BOOTS:
        # A new list: the report shares item.user_properties with the test's other phases.
        report.user_properties = [*report.user_properties, *((BOOT_PROPERTY, boot) for boot in _BOOTS)]
        _BOOTS.clear()
