"""What the command line prints, as a user or a script sees it (issue 14): one error style,
errors as JSON with --json, global options after the subcommand, -q / -v / -vv, NO_COLOR and
terminals (through a real pseudo-terminal), the progress lines of a build in a log."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

ESC = "\x1b"


def atvdisk(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "atvdisk", *args], capture_output=True, text=True, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, timeout=300)


def in_terminal(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[int, str]:
    """Run atvdisk with stdin, stdout and stderr on a pseudo-terminal; (exit code, all it wrote)."""
    full_env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    full_env.update({"TERM": "xterm", "COLUMNS": "100", "LINES": "30"})
    full_env.update(env or {})
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "atvdisk", *args], stdin=follower, stdout=follower, stderr=follower, env=full_env, cwd=cwd, close_fds=True)
    os.close(follower)
    out = bytearray()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=60), out.decode(errors="replace")


# -- one error style ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message, code",
    [
        (["build"], "Missing argument 'TARGET'", 2),  # click's own usage error
        (["--bogus"], "No such option '--bogus'", 2),  # the group's options
        (["nosuch"], "No such command 'nosuch'", 2),
        (["plan", "--size", "1M"], "is too small for layout", 3),  # atvdisk's DiskTooSmall: a refused target
        (["plan", "--size", "4X"], "Invalid value for '--size'", 2),
    ],
)
def test_every_error_has_one_style(args: list[str], message: str, code: int) -> None:
    r = atvdisk(*args)
    assert r.returncode == code
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0].startswith("atvdisk: error: ") and message in lines[0], r.stderr
    assert "Usage:" not in r.stderr and "Error:" not in r.stderr  # click's style is gone
    assert re.match(r"  hint: \S", lines[-1]), r.stderr
    assert all(line.startswith("  ") for line in lines[1:]), r.stderr


def test_a_usage_error_shows_the_usage_and_where_help_is() -> None:
    r = atvdisk("build")
    assert "  usage: atvdisk build [OPTIONS] TARGET" in r.stderr.splitlines()
    assert "'atvdisk build --help'" in r.stderr


def test_an_internal_error_says_so_and_hides_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from atvdisk.cli import main as cli_main

    def broken(layout_name: str):  # noqa: ANN202
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli_main, "load_layout", broken)
    r = CliRunner().invoke(cli_main.main, ["plan", "--size", "4G"])
    assert r.exit_code == 1
    assert "atvdisk: internal error: ZeroDivisionError: a bug" in r.stderr
    assert "--debug" in r.stderr and "Traceback" not in r.stderr
    r = CliRunner().invoke(cli_main.main, ["plan", "--size", "4G", "--debug"])
    assert r.exit_code == 1 and "Traceback" in r.stderr


# -- --json: errors are JSON on stdout too ------------------------------------------------------


@pytest.mark.parametrize(
    "args, code, kind",
    [
        (["build", "--json"], 2, "usage"),
        (["plan", "--size", "1M", "--json"], 3, "refused"),  # too small: a refused target on every path
        (["plan", "--json", "--size", "1M", "--layout", "nosuch"], 2, "layout"),
        (["verify", "nonexistent.img", "--json"], 2, "usage"),
        (["build", "x.img", "--size", "4G", "--openelec", "nonexistent", "--example", "--json"], 2, "input"),
        (["build", "x.img", "--size", "4G", "--json"], 2, "usage"),  # inputs missing
    ],
)
def test_json_errors_are_json_on_stdout(tmp_path: Path, args: list[str], code: int, kind: str) -> None:
    r = atvdisk(*args, cwd=tmp_path)
    assert r.returncode == code, r.stderr
    doc = json.loads(r.stdout)
    assert doc["format"] == "atvdisk-error/1"
    assert doc["exit_code"] == code and doc["error"] == kind
    assert doc["message"] and doc["message"] in r.stderr  # the same words for a person
    assert "hint" in doc and (doc["hint"] is None or doc["hint"] in r.stderr)
    assert not list(tmp_path.iterdir())  # nothing was written


def test_json_refusal_of_an_existing_image(tmp_path: Path) -> None:
    (tmp_path / "x.img").write_bytes(b"keep")
    r = atvdisk("build", "x.img", "--size", "4G", "--example", "--json", cwd=tmp_path)
    assert r.returncode == 3
    doc = json.loads(r.stdout)
    assert (doc["exit_code"], doc["error"]) == (3, "refused") and "--force" in doc["hint"]
    assert (tmp_path / "x.img").read_bytes() == b"keep"


def test_without_json_errors_leave_stdout_empty() -> None:
    r = atvdisk("plan", "--size", "1M")
    assert r.returncode == 3 and r.stdout == ""


# -- global options anywhere, -q / -v / -vv -----------------------------------------------------


def _build(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return atvdisk("build", "demo.img", "--size", "2G", "--example", "--seed", "cli", *extra, cwd=tmp_path, env=env)


def test_quiet_prints_the_one_line_result_only(tmp_path: Path) -> None:
    r = _build(tmp_path, "-q")  # after the subcommand
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert len(r.stdout.splitlines()) == 1
    assert re.fullmatch(r"Built demo\.img: 5 partitions on 2147MB in \d+\.\d s, verified \(\d+ checks\)\.\n", r.stdout)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 GiB image of the sample payload, built once for the commands that read one."""
    d = tmp_path_factory.mktemp("built")
    r = atvdisk("build", "demo.img", "--size", "2G", "--example", "--seed", "cli", "-q", cwd=d)
    assert r.returncode == 0, r.stderr
    return d / "demo.img"


@pytest.mark.parametrize(
    "args, result",
    [
        (["verify", "{img}"], r"{img}: verified, \d+ checks passed\."),
        (["write", "{img}", "{dir}/copy.img", "--size", "3G"], r"Wrote {img} to {dir}/copy\.img: \S+ \w+ written \(.* of them zeros\) in \d+\.\d s, verified \(\d+ checks, read back from the disk\)\."),
        (["backup", "{img}", "{dir}/bk.img"], r"Backed {img} \(2\.0 GiB\) up to {dir}/bk\.img: \S+ MiB read, \S+ MiB stored, in \d+\.\d s\."),
        (["extract", "{img}", "-o", "{dir}/r.tar.gz"], r"partition 2 \(Recovery, atvrecv, volume 'Recovery'\): \d+ files, \d+ directories, 0 symlinks, .* -> {dir}/r\.tar\.gz"),
        (["mkhfs", "{dir}/v.hfs", "--size", "8M", "--volume-name", "V"], r"{dir}/v\.hfs: HFS\+ volume 'V', 8\.0 MiB; 0 files, 0 folders, .* used"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else "",
)
def test_quiet_prints_each_commands_one_line_result(built: Path, tmp_path: Path, args: list[str], result: str) -> None:
    """-q: the one-line result on stdout and nothing else (warnings excepted), for every command
    that has a result; without -q the same line, and the steps or details on stderr."""
    fill = {"img": str(built), "dir": str(tmp_path)}
    argv = [a.format(**fill) for a in args]
    expected = result.format(**{k: re.escape(v) for k, v in fill.items()})
    q = atvdisk(*argv, "-q")
    assert q.returncode == 0, q.stderr
    assert re.fullmatch(expected + "\n", q.stdout), q.stdout
    assert all(line.startswith("warning: ") for line in q.stderr.splitlines()), q.stderr
    for f in tmp_path.iterdir():
        f.unlink()
    normal = atvdisk(*argv)
    assert normal.returncode == 0, normal.stderr
    assert re.fullmatch(expected + "\n", normal.stdout), normal.stdout
    if args[0] != "mkhfs":  # mkhfs has nothing more to say
        assert len(normal.stderr.splitlines()) > len(q.stderr.splitlines()), normal.stderr


def test_normal_output_in_a_log_is_plain_step_lines(tmp_path: Path) -> None:
    r = _build(tmp_path)
    assert r.returncode == 0, r.stderr
    assert ESC not in r.stderr + r.stdout
    assert r.stdout.startswith("Built demo.img")
    steps = re.findall(r"^\[\s*(\d+)/(\d+)\] (?!done)(.*)$", r.stderr, re.M)
    numbers = [int(n) for n, _, _ in steps]
    total = int(steps[0][1])
    assert numbers == list(range(1, total + 1)), r.stderr  # every step announced once, in order
    descriptions = [d for _, _, d in steps]
    assert descriptions[0].startswith("write the sample payload")
    assert descriptions[1].startswith("check the inputs")
    assert descriptions[-1].startswith("verify")
    assert any(d.startswith("partition 3 OSBoot: HFS+") for d in descriptions)
    done = re.findall(r"^\[\s*(\d+)/\d+\] done in \d+\.\d s(?:, job (\d+)% done)?", r.stderr, re.M)
    assert sorted(int(n) for n, _ in done) == numbers  # and reported finished
    assert done[-1][1] == "100"
    assert "$ mke2fs" not in r.stderr  # the commands run: only with -v


def test_verbose_shows_the_commands_and_vv_their_output(tmp_path: Path) -> None:
    v = _build(tmp_path, "-v")
    assert v.returncode == 0, v.stderr
    assert re.search(r"^\$ mke2fs .*demo", v.stderr, re.M), v.stderr
    assert re.search(r"^\$ mkfs\.fat ", v.stderr, re.M)
    (tmp_path / "demo.img").unlink()
    vv = atvdisk("-v", "build", "demo.img", "--size", "2G", "--example", "--seed", "cli", "-v", cwd=tmp_path)  # -v twice, either side
    assert vv.returncode == 0, vv.stderr
    # the tools' own output, under their names; what looks alarming but is expected, explained
    assert re.search(r"^  mkswap: Setting up swapspace version 1", vv.stderr, re.M), vv.stderr
    assert re.search(r"^  mkswap: .*can be rejected by kernel.*\(expected: ", vv.stderr, re.M)
    assert re.search(r"^  mkfs\.fat: Warning: block count mismatch.*\(expected: ", vv.stderr, re.M)
    assert "block count mismatch" not in v.stderr and "rejected by kernel" not in v.stderr


def test_help_says_what_verbose_does() -> None:
    r = atvdisk("build", "--help")
    assert "-v, --verbose" in r.stdout and "-q, --quiet" in r.stdout
    assert "every command run" in r.stdout


# -- colour and escape codes: only on a terminal, never with NO_COLOR ---------------------------


def test_a_terminal_gets_colour_and_no_color_gets_none() -> None:
    code, screen = in_terminal("plan", "--size", "1M")
    assert code == 3
    assert f"{ESC}[" in screen and "atvdisk: error: " in re.sub(r"\x1b\[[0-9;]*m", "", screen)
    code, screen = in_terminal("plan", "--size", "1M", env={"NO_COLOR": "1"})
    assert code == 3
    assert ESC not in screen and "atvdisk: error: " in screen


def test_no_color_build_in_a_terminal_has_no_escape_codes(tmp_path: Path) -> None:
    code, screen = in_terminal("build", "demo.img", "--size", "2G", "--example", "--seed", "cli", env={"NO_COLOR": "1"}, cwd=tmp_path)
    assert code == 0, screen
    assert ESC not in screen
    assert "Built demo.img" in screen
    # the status line is rewritten with carriage returns, and shows the job's percentage
    assert "\r" in screen and re.search(r"\d+%", screen)


# -- messages that say what to do -------------------------------------------------------------


def test_missing_inputs_are_reported_together_by_their_options(tmp_path: Path) -> None:
    r = atvdisk("build", "x.img", "--size", "4G", cwd=tmp_path)
    assert r.returncode == 2
    first = r.stderr.splitlines()[0]
    assert first == "atvdisk: error: missing inputs for layout atv1-openelec: --openelec, --restore and --recovery"
    for option in ("--openelec: ", "--restore: atv_restore.tar.gz", "--recovery: atv_recovery.tar.gz"):
        assert f"\n  {option}" in r.stderr
    assert "--example" in r.stderr.splitlines()[-1] and "contents[" not in r.stderr
    restore = tmp_path / "r.tar.gz"
    restore.write_bytes(b"")
    r = atvdisk("build", "x.img", "--size", "4G", "--restore", str(restore), cwd=tmp_path)
    assert "missing inputs for layout atv1-openelec: --openelec and --recovery" in r.stderr
    assert not (tmp_path / "x.img").exists()


def test_a_4096_byte_sector_disk_with_a_512_byte_layout() -> None:
    r = atvdisk("plan", "--size", "4G", "--sector-size", "4096")
    assert r.returncode == 2
    assert r.stderr.startswith("atvdisk: error: layout atv1-openelec is laid out in 512-byte sectors and does not fit a disk of 4295MB, which has 4096-byte sectors")
    assert "--sector-size 512" in r.stderr.splitlines()[-1]
    assert atvdisk("plan", "--size", "4G", "--sector-size", "512").returncode == 0  # which works
