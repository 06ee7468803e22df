"""The suite runs on every core (pytest-xdist, `.ci/setup test` passes `-n auto`) only because of
tests/conftest.py's scheduler: a module is one unit of work (its module-scoped image or qemu
boot made once) and every module with a root test joins the one serial unit `root` (loop
devices, partition nodes and /run/lock/atvdisk are shared by the whole machine). Checked here on
the real suite's marks and on a small suite run by pytest-xdist itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
try:
    from conftest import ROOT_GROUP, unit_of  # the suite's own rules, not a copy
finally:
    sys.path.remove(str(ROOT / "tests"))


def test_every_root_test_of_the_suite_runs_in_the_serial_unit(request):
    """The controller decides from the modules' source (it collects nothing): that must agree
    with the marks pytest collected, for every root test of this run."""
    rootpath = request.config.rootpath
    root_items = [item for item in request.session.items if item.get_closest_marker("root")]
    wrong = [item.nodeid for item in root_items if unit_of(item.nodeid, rootpath) != ROOT_GROUP]
    assert not wrong, f"root tests the scheduler would run beside others: {wrong}"
    # So does every module that runs the emulated ATV: its mount namespace copies every mount of
    # the machine, a root test's mounts included, and keeps their loop devices busy.
    run_script = getattr(sys.modules.get("atv_sandbox"), "run_script", None)
    sandbox = {
        item.nodeid.split("::", 1)[0]
        for item in request.session.items
        if run_script and getattr(item.module, "run_script", None) is run_script
    }
    assert all(unit_of(f"{module}::x", rootpath) == ROOT_GROUP for module in sandbox), sandbox
    # Kernel and other modules stay units of their own (one qemu boot per module).
    for item in request.session.items:
        if not item.get_closest_marker("root") and unit_of(item.nodeid, rootpath) != ROOT_GROUP:
            assert unit_of(item.nodeid, rootpath) == item.nodeid.split("::", 1)[0]


LOOP_MODULE = """
import os, time, pytest

@pytest.mark.root
@pytest.mark.parametrize("n", range(3))
def test_loop(n):
    start = time.monotonic()
    time.sleep(0.2)
    with open(os.environ["LOG"], "a") as log:
        log.write(f"test {__name__} {os.getpid()} {start} {time.monotonic()}\\n")

def test_plain_in_a_root_module():
    with open(os.environ["LOG"], "a") as log:
        log.write(f"test {__name__} {os.getpid()} 0 0\\n")
"""

PLAIN_MODULE = """
import os, time, pytest

@pytest.fixture(scope="module")
def built():
    with open(os.environ["LOG"], "a") as log:
        log.write(f"fixture {__name__} {os.getpid()} 0 0\\n")
    time.sleep(0.3)

@pytest.mark.parametrize("n", range(4))
def test_plain(built, n):
    with open(os.environ["LOG"], "a") as log:
        log.write(f"test {__name__} {os.getpid()} 0 0\\n")
"""


def test_xdist_runs_root_modules_one_after_the_other_and_each_module_on_one_worker(tmp_path):
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    root: loop devices\n    kernel: qemu\n")
    for name in ("test_loop_a", "test_loop_b"):
        (tmp_path / f"{name}.py").write_text(LOOP_MODULE)
    for name in ("test_plain_c", "test_plain_d", "test_plain_e"):
        (tmp_path / f"{name}.py").write_text(PLAIN_MODULE)
    log = tmp_path / "log"
    env = {k: v for k, v in os.environ.items() if k != "ATVDISK_NO_SKIPS"} | {"LOG": str(log)}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         "-n", "2", "--dist", "loadfile", "--no-loadscope-reorder", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 workers" in r.stdout and "20 passed" in r.stdout, r.stdout
    records = [line.split() for line in log.read_text().splitlines()]
    workers: dict[str, set[str]] = defaultdict(set)
    for kind, module, pid, _, _ in records:
        workers[module].add(pid)
    # Both root modules (all their tests, root or not) on one worker, one test at a time.
    assert workers["test_loop_a"] == workers["test_loop_b"] and len(workers["test_loop_a"]) == 1, records
    loops = sorted((float(s), float(e)) for kind, m, _, s, e in records if m.startswith("test_loop") and float(e))
    assert len(loops) == 6 and all(end <= nxt for (_, end), (nxt, _) in zip(loops, loops[1:])), loops
    # Every other module is one unit: its module fixture made once, all its tests on one worker.
    for module in ("test_plain_c", "test_plain_d", "test_plain_e"):
        assert len(workers[module]) == 1, (module, records)
        assert sum(1 for kind, m, *_ in records if kind == "fixture" and m == module) == 1, records
    assert len(set().union(*workers.values())) == 2, records  # and the run really was parallel
