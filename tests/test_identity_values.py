"""The seed and SOURCE_DATE_EPOCH: one rule each, wherever they come from (--seed, a layout's
disk.seed, the environment for build and mkhfs, a disk's manifest), refused before anything is
written, with a message that names the value."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atvdisk.errors import LayoutError
from atvdisk.layout.schema import (
    EPOCH_MAX,
    SEED_MAX,
    IdentityValueError,
    check_epoch,
    check_seed,
    parse_layout,
)


def atvdisk(*args, env=None, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"} | (env or {})
    return subprocess.run([sys.executable, "-m", "atvdisk", *map(str, args)], capture_output=True, text=True, env=full_env, cwd=cwd)


@pytest.mark.parametrize("good", ["0", "1700000000", str(EPOCH_MAX), " 12\n", 0, EPOCH_MAX])
def test_epochs_date_can_print_are_taken(good):
    assert check_epoch(good) == int(str(good).strip())


@pytest.mark.parametrize("bad", ["-1", "-0", "", "abc", "1.5", "1e9", "+5", "0x10", "١٢", "１２", str(EPOCH_MAX + 1), "9" * 5000, -1, EPOCH_MAX + 1, True, 1.0, None])
def test_other_epochs_are_refused(bad):
    with pytest.raises(IdentityValueError, match="SOURCE_DATE_EPOCH"):
        check_epoch(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_an_epoch_is_taken_exactly_when_it_is_a_whole_number_of_seconds_in_range(text):
    """Oracle: Python's int() over ASCII digits only, within 0..EPOCH_MAX."""
    t = text.strip()
    expected = t.isascii() and t.isdigit() and int(t) <= EPOCH_MAX
    try:
        got = check_epoch(text)
    except IdentityValueError:
        assert not expected
    else:
        assert expected and got == int(t)


@pytest.mark.parametrize("good", ["a", "shop-2024-001", "s" * SEED_MAX, "ünïcödé seed"])
def test_seeds_are_printable_text(good):
    assert check_seed(good) == good


@pytest.mark.parametrize("bad", ["", "s" * (SEED_MAX + 1), "a\nb", "a\x1b[2Jb", "tab\there", "\u202eevil", 7, None])
def test_other_seeds_are_refused(bad):
    with pytest.raises(IdentityValueError, match="printable characters"):
        check_seed(bad)


def test_a_layout_seed_follows_the_same_rule():
    text = '[disk]\nseed = "{}"\n[[partition]]\nname = "A"\ntype = "linux"\nsize = "rest"\nfs = {{ kind = "ext4" }}\n'
    assert parse_layout(text.format("s" * SEED_MAX)).disk.seed == "s" * SEED_MAX
    with pytest.raises(LayoutError, match="printable characters") as e:
        parse_layout(text.format("bad\\u001bseed"))
    assert e.value.where == "disk.seed"


@pytest.mark.parametrize("epoch", ["-5", "99999999999999", "soon"])
def test_build_and_mkhfs_refuse_a_bad_epoch_before_writing(tmp_path, epoch):
    r = atvdisk("build", "x.img", "--size", "4G", "--example", env={"SOURCE_DATE_EPOCH": epoch}, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert f"atvdisk: error: SOURCE_DATE_EPOCH={epoch!r}" in r.stderr or f"SOURCE_DATE_EPOCH={epoch} " in r.stderr
    assert "Traceback" not in r.stderr
    r = atvdisk("mkhfs", "y.hfs", "--size", "8M", env={"SOURCE_DATE_EPOCH": epoch}, cwd=tmp_path)
    assert r.returncode == 2 and "SOURCE_DATE_EPOCH" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, no image left


def test_build_refuses_a_bad_seed(tmp_path):
    r = atvdisk("build", "x.img", "--size", "4G", "--example", "--seed", "a\x1b[2J", cwd=tmp_path)
    assert r.returncode == 2 and "printable characters" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []
