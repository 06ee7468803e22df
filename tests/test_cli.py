from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from atvdisk import __version__
from atvdisk.cli.main import main
from atvdisk.errors import EXIT_REFUSED, EXIT_USAGE


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_version():
    r = run("--version")
    assert r.exit_code == 0 and __version__ in r.output


def test_help_everywhere():
    r = run("--help")
    assert r.exit_code == 0
    commands = [line.split()[0] for line in r.output.split("Commands:")[1].strip().splitlines()]
    assert {"layouts", "plan"} <= set(commands)
    for command in commands:
        sub = run(command, "--help")
        assert sub.exit_code == 0, command
        assert "Usage: " in sub.output


def test_layouts_lists_bundled_layouts_with_descriptions():
    r = run("layouts")
    assert r.exit_code == 0
    names = {line.split()[0]: line for line in r.output.splitlines()}
    assert set(names) >= {"atv1-openelec", "atv1-factory"}
    assert "OpenELEC" in names["atv1-openelec"]


def test_plan_for_a_size():
    r = run("plan", "--size", "8451072s")
    assert r.exit_code == 0
    assert "4327MB" in r.output
    assert "EFI" in r.output and "40s" in r.output and "69671s" in r.output
    assert "Steps a build takes:" in r.output


def test_plan_json_is_the_plan():
    r = run("plan", "--size", f"{8451072 * 512}", "--json")
    data = json.loads(r.output)
    assert [p["start"] for p in data["partitions"]] == [40, 69672, 888872, 2732072, 8188895]
    assert data["partitions"][4]["end"] == 8451038


def test_plan_of_an_image_file(tmp_path):
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(8451072 * 512)
    before = img.stat()
    r = run("plan", str(img), "--json")
    assert r.exit_code == 0
    assert json.loads(r.output)["total_sectors"] == 8451072
    after = img.stat()
    assert (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)


def test_plan_needs_size_or_target():
    r = CliRunner().invoke(main, ["plan"])
    assert r.exit_code == EXIT_USAGE
    assert "give either --size SIZE or a TARGET" in r.output


def test_layout_error_is_a_message_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[partition]]\nname = "A"\ntype = "ntfs"\nsize = "1MiB"\n')
    r = CliRunner().invoke(main, ["plan", "--size", "4G", "--layout", str(bad)])
    assert r.exit_code == EXIT_USAGE
    assert "unknown partition type 'ntfs'" in r.output
    assert "hint:" in r.output
    assert "Traceback" not in r.output


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[partition]]\nname = "A"\ntype = "ntfs"\nsize = "1MiB"\n')
    r = subprocess.run(
        [sys.executable, "-m", "atvdisk", "--debug", "plan", "--size", "4G", "--layout", str(bad)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == EXIT_USAGE
    assert "Traceback" in r.stderr and "LayoutError" in r.stderr


def test_too_small_disk_exit_code_and_message():
    # One rule for "too small" on every path (README, exit codes): the target is refused, 3.
    r = CliRunner().invoke(main, ["plan", "--size", "1G"])
    assert r.exit_code == EXIT_REFUSED
    assert "a disk of 1074MB is too small for layout atv1-openelec" in r.output
    assert "needs at least 2000MB" in r.output and "disk.min_size" not in r.output
    hint = re.search(r"hint: give --size (\S+) or more", r.output)
    assert hint, r.output
    assert CliRunner().invoke(main, ["plan", "--size", hint.group(1)]).exit_code == 0  # the size it suggests fits
    smaller = f"{int(hint.group(1).removesuffix('MiB')) - 1}MiB"
    assert CliRunner().invoke(main, ["plan", "--size", smaller]).exit_code == EXIT_REFUSED  # and is the least


def test_size_not_whole_sectors_is_refused():
    r = CliRunner().invoke(main, ["plan", "--size", "4327MB"])
    assert r.exit_code == EXIT_USAGE
    assert "4327000000 bytes is not a positive multiple of the 512-byte sector size" in r.output
    assert "hint: give --size 8451171s (4327MB, rounded down to whole sectors), or a size in MiB such as 4126MiB" in r.output
    assert CliRunner().invoke(main, ["plan", "--size", "8451171s"]).exit_code == 0  # which works


@pytest.mark.parametrize("size", ["4 gigs", "0", "-5G"])
def test_bad_size_is_a_usage_error(size):
    r = CliRunner().invoke(main, ["plan", "--size", size])
    assert r.exit_code == EXIT_USAGE
    assert "Invalid value for '--size'" in r.output


def test_missing_target_is_a_usage_error(tmp_path):
    r = CliRunner().invoke(main, ["plan", str(tmp_path / "nope.img")])
    assert r.exit_code == EXIT_USAGE
    assert "no such file or device" in r.output
