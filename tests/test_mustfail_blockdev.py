"""Every must-fail input is refused before the first write (issue 11, item 3).

The cases are in tests/mustfail.py (how to add one is explained there). Each is built:

- onto a 64 MiB loop device full of random bytes (root): the exit code and message must be the
  expected ones, and the device's bytes, read back with O_DIRECT (past the page cache), unchanged;
- with --dry-run onto an image path: the same exit code and message, and no file made.

Builds run in this process (click's CliRunner), so a case costs its own work, not an interpreter.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from blockdev_check import device_digest, filled_loop_device
from click.testing import CliRunner
from mustfail import DISK_BYTES, MustFail, all_cases

from atvdisk.cli.main import main

CASES = all_cases()
IDS = [c.name for c in CASES]


def cli(*args: object) -> tuple[int, str]:
    r = CliRunner().invoke(main, [str(a) for a in args], env={"SOURCE_DATE_EPOCH": "1300000000"})
    return r.exit_code, r.stderr


def check_refusal(case: MustFail, code: int, err: str) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    assert code in case.codes(), f"exit {code}, expected {case.codes()}: {err}"
    assert re.search(case.message, err), f"{case.message!r} not in: {err}"


def test_the_list_is_not_empty():
    names = {c.name for c in CASES}
    assert len(names) == len(CASES), "case names must be unique"
    assert len(CASES) >= 100
    assert any(n.startswith("hfs/") for n in names) and any(n.startswith("layouts-fail/") for n in names)


@pytest.fixture(scope="module")
def random_disk(tmp_path_factory):
    with filled_loop_device(tmp_path_factory.mktemp("mustfail"), DISK_BYTES, seed=11) as dev:
        yield dev


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root")
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_refused_on_a_block_device_leaves_it_unchanged(case: MustFail, tmp_path: Path, random_disk: str) -> None:
    args = case.setup(tmp_path)
    before = device_digest(random_disk)
    code, err = cli("build", random_disk, "--yes", *args)
    after = device_digest(random_disk)
    check_refusal(case, code, err)
    assert after == before, f"{case.name}: refused (exit {code}) AFTER writing to the device"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_dry_run_refuses_it_the_same_way(case: MustFail, tmp_path: Path) -> None:
    args = case.setup(tmp_path)
    img = tmp_path / "out" / "disk.img"
    img.parent.mkdir()
    code, err = cli("build", img, "--size", str(DISK_BYTES), "--dry-run", *args)
    check_refusal(case, code, err)
    assert not any(img.parent.iterdir())
