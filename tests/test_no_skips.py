"""CI's rule that nothing is skipped (tests/conftest.py under ATVDISK_NO_SKIPS=1), checked on
small suites run by pytest itself: every way a test can end up not run makes the run fail and is
named, and a suite that runs everything still passes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

WAYS = {
    "skipif": "import pytest\n\n@pytest.mark.skipif(True, reason='loop devices need root')\ndef test_x():\n    pass\n",
    "skip-call": "import pytest\n\ndef test_x():\n    pytest.skip('tmux is not installed')\n",
    "skip-fixture": "import pytest\n\n@pytest.fixture\ndef disk():\n    pytest.skip('no loop device')\n\ndef test_x(disk):\n    pass\n",
    "module-skip": "import pytest\n\npytest.skip('qemu missing', allow_module_level=True)\n\ndef test_x():\n    pass\n",
    "importorskip": "import pytest\n\npytest.importorskip('atvdisk_no_such_module')\n\ndef test_x():\n    pass\n",
    "xfail-fails": "import pytest\n\n@pytest.mark.xfail(reason='known bug')\ndef test_x():\n    assert False\n",
    "xfail-passes": "import pytest\n\n@pytest.mark.xfail(reason='known bug')\ndef test_x():\n    pass\n",
    "xfail-call": "import pytest\n\ndef test_x():\n    pytest.xfail('not today')\n",
}


def run_suite(tmp_path: Path, body: str, *, no_skips: bool, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_suite.py").write_text(body)
    (tmp_path / "test_other.py").write_text("def test_runs():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "ATVDISK_NO_SKIPS"}
    if no_skips:
        env["ATVDISK_NO_SKIPS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *extra, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("way", sorted(WAYS))
def test_a_test_not_run_fails_the_ci_run_and_is_named(tmp_path, way):
    r = run_suite(tmp_path, WAYS[way], no_skips=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"1 test\(s\) skipped or xfailed: not allowed here \(ATVDISK_NO_SKIPS=1\)", r.stdout), r.stdout
    assert "test_suite.py" in r.stdout.split("not allowed here")[1]


@pytest.mark.parametrize("way", sorted(WAYS))
def test_without_the_variable_a_test_not_run_is_reported_only(tmp_path, way):
    r = run_suite(tmp_path, WAYS[way], no_skips=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not allowed here" not in r.stdout


@pytest.mark.parametrize("extra", [(), ("-q",), ("-qq",), ("-p", "no:terminal")])
def test_quiet_or_no_terminal_output_does_not_hide_a_skip(tmp_path, extra):
    r = run_suite(tmp_path, WAYS["skipif"], no_skips=True, extra=extra)
    assert r.returncode == 1, r.stdout + r.stderr


XDIST = ("-n", "2", "--dist", "loadfile", "--no-loadscope-reorder", "-ra")  # as .ci/setup runs the suite


def test_under_xdist_every_way_on_any_worker_fails_the_run_and_is_named(tmp_path):
    """Under pytest-xdist the tests run in worker processes: their skips and xfails (collection
    included) must still reach the rule, each once, and -ra still lists them."""
    for way, body in WAYS.items():
        (tmp_path / f"test_way_{way.replace('-', '_')}.py").write_text(body)
    r = run_suite(tmp_path, "def test_y():\n    pass\n", no_skips=True, extra=XDIST)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"2 workers", r.stdout), r.stdout  # really distributed
    assert f"{len(WAYS)} test(s) skipped or xfailed: not allowed here (ATVDISK_NO_SKIPS=1)" in r.stdout, r.stdout
    named = r.stdout.split("not allowed here", 1)[1]
    for way in WAYS:
        assert f"test_way_{way.replace('-', '_')}.py" in named, (way, r.stdout)
    summary = r.stdout.split("short test summary info", 1)[1]
    assert "SKIPPED" in summary and "XFAIL" in summary and "XPASS" in summary, r.stdout


def test_under_xdist_a_suite_that_runs_everything_passes(tmp_path):
    r = run_suite(tmp_path, "def test_y():\n    assert 1 + 1 == 2\n", no_skips=True, extra=XDIST)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 workers" in r.stdout and "2 passed" in r.stdout


def test_a_suite_that_runs_everything_passes(tmp_path):
    r = run_suite(tmp_path, "def test_y():\n    assert 1 + 1 == 2\n", no_skips=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed" in r.stdout


def test_ci_runs_the_suite_with_the_rule():
    # .ci/run -> .ci/setup test -> pytest with ATVDISK_NO_SKIPS=1 on every core (the workers'
    # skips are counted: test_under_xdist_*), and nothing deselected.
    assert "exec .ci/setup test" in (ROOT / ".ci" / "run").read_text()
    setup = (ROOT / ".ci" / "setup").read_text()
    test_branch = setup.split("    test)", 1)[1].split(";;", 1)[0]
    command = [line.strip() for line in test_branch.splitlines() if "-m pytest" in line]
    assert command == ['ATVDISK_NO_SKIPS=1 .venv/bin/python -m pytest -n auto "$@"']
    # The suite's own options keep a parallel run safe: one unit per module, loop devices serial.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--dist loadfile --no-loadscope-reorder" in config["addopts"] and "-ra" in config["addopts"].split()
