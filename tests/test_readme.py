"""Every example in the README is true when run (issue 14).

The README's ```sh blocks are read from README.md itself and run, line by line, as a user would
type them: through bash, in a real pseudo-terminal (the confirmation before erasing a disk is
answered by typing the device's name, as the README says), each block in a fresh directory
holding the files it names: demo.img (as `.ci/setup demo` leaves it), the OpenELEC releases (3.2.4 and 4.2.1 tarballs, 3.2.4 unpacked)
and the restore and recovery tarballs, made from the sample payload; `...` in a command stands
for the file of the option before it. The README's disks are loop devices over sparse files:
/dev/sdf and /dev/sdh blank 8 GiB "cards", /dev/sdg an old ATV disk (atv1-factory, built
before the test; the README promises it is never written, and the test checks that).

A line the test does not run is in NOT_RUN with the reason, and the test fails when a NOT_RUN
entry is gone from the README or a README line is neither run nor listed: a new example is run
from the day it is written. The boot script, the error example and the plan figures quoted in
the README are compared with what atvdisk prints.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BIN = Path(sys.executable).parent  # .venv/bin: atvdisk is there

NOT_RUN = {
    ".ci/setup demo": "the set-up itself: CI runs .ci/setup test, which installs what demo installs",
    ".ci/setup test": "the set-up itself: it is what CI runs (.ci/run)",
    "apt install python3-venv python3-dev gcc pkg-config libparted-dev parted e2fsprogs dosfstools mtools util-linux mount fdisk udev pipx": "installs system packages; test_install_packages_are_the_set_ups checks the list",
    "PIPX_HOME=/opt/pipx PIPX_BIN_DIR=/usr/local/bin pipx install .": "installs system-wide from PyPI (.ci/setup installs the same package into .venv)",
    'eval "$(_ATVDISK_COMPLETE=bash_source atvdisk)"': "tests/test_docs.py loads it into bash and completes with it",
    'eval "$(_ATVDISK_COMPLETE=zsh_source atvdisk)"': "tests/test_docs.py loads it into zsh (compinit) and completes with it",
    "_ATVDISK_COMPLETE=fish_source atvdisk | source": "tests/test_docs.py loads it into fish and completes with fish's complete -C",
    "man -l man/atvdisk.1": "tests/test_docs.py renders the page with groff and checks it",
    ".venv/bin/python tools/mutation.py atvdisk/layout/units.py": "minutes of mutants; tests/test_mutation_harness.py runs the tool",
    ".venv/bin/python tools/mutation.py atvdisk/fs/gpt.py --sample 0 -j 2": "minutes of mutants; tests/test_mutation_harness.py runs the tool",
    ".venv/bin/python tools/mutation.py atvdisk/fs/gpt.py --only 17 --show": "tests/test_mutation_harness.py runs the tool",
    ".venv/bin/python tools/mutation.py atvdisk/fs/ext4.py --tests tests/test_build_image.py": "minutes of mutants; tests/test_mutation_harness.py runs the tool",
}

DISKS = {"sdf": 8 << 30, "sdg": 4 << 30, "sdh": 8 << 30}


def sh_blocks() -> list[tuple[int, list[str]]]:
    """The README's ```sh blocks: (line number, the commands: continuations joined, comments
    and blank lines left out)."""
    blocks: list[tuple[int, list[str]]] = []
    lines = README.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            start, body = i + 1, []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if body and body[0].startswith("#!"):
                i += 1
                continue  # a script shown, not commands: test_the_readme_boot_script_is_the_generated_one
            text = "\n".join(body).replace("\\\n", " ")
            commands = [_strip_comment(line) for line in text.splitlines()]
            blocks.append((start + 1, [c for c in commands if c]))
        i += 1
    return blocks


def _strip_comment(line: str) -> str:
    """The line without its trailing comment (a # outside quotes), whitespace normalised."""
    end = len(line)
    quote = None
    for pos, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (pos == 0 or line[pos - 1].isspace()):
            end = pos
            break
    return " ".join(line[:end].split())


# -- the fixture world -----------------------------------------------------------------------


def _data_digest(path: Path) -> str:
    """sha256 of a sparse file's data extents and where they are (a write anywhere changes it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        fd, size, pos = f.fileno(), os.fstat(f.fileno()).st_size, 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            h.update(f"{start}-{end}".encode())
            f.seek(start)
            left = end - start
            while left:
                chunk = f.read(min(left, 4 << 20))
                h.update(chunk)
                left -= len(chunk)
            pos = end
    return h.hexdigest()


def atvdisk(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "atvdisk", *args], capture_output=True, text=True, cwd=cwd, stdin=subprocess.DEVNULL, timeout=600)
    assert r.returncode == 0, f"atvdisk {' '.join(args)}: {r.stderr}"
    return r


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the README's commands name, made from the sample payload."""
    from atvdisk.inputs.sample import write_sample

    d = tmp_path_factory.mktemp("inputs")
    sample = write_sample(str(d / "sample"))
    release = d / "OpenELEC" / "target"  # `OpenELEC/`: the release tarball unpacked
    shutil.copytree(sample.openelec, release)
    for version, target in (("3.2.4", release), ("4.2.1", sample.openelec4)):
        with tarfile.open(d / f"OpenELEC-ATV.i386-{version}.tar", "w") as tar:
            for f in sorted(Path(target).iterdir()):
                tar.add(f, arcname=f"OpenELEC-ATV.i386-{version}/target/{f.name}")
    shutil.copy(sample.restore, d / "atv_restore.tar.gz")
    shutil.copy(sample.recovery, d / "atv_recovery.tar.gz")
    atvdisk("build", "demo.img", "--size", "4G", "--example", "-q", cwd=d)  # what .ci/setup demo leaves
    (d / "boot").mkdir()
    (d / "boot" / "hello.txt").write_text("a file for mkhfs --from ./boot\n")
    return d


@pytest.fixture(scope="module")
def disks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """/dev/sdf, /dev/sdg, /dev/sdh as loop devices; sdg holds an old ATV disk (Apple's layout)."""
    d = tmp_path_factory.mktemp("disks")
    atvdisk("build", "old-disk.img", "--size", str(DISKS["sdg"]), "--layout", "atv1-factory", "--example", "--seed", "old", "-q", cwd=d)
    devices: dict[str, str] = {}
    try:
        for name, size in DISKS.items():
            backing = d / ("old-disk.img" if name == "sdg" else f"{name}.img")
            if name != "sdg":
                with open(backing, "wb") as f:
                    f.truncate(size)
            devices[name] = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True, check=True).stdout.strip()
        devices["old-disk.img"] = str(d / "old-disk.img")
        yield devices
    finally:
        for name, dev in devices.items():
            if dev.startswith("/dev/loop"):
                subprocess.run(["losetup", "-d", dev], capture_output=True)


def in_terminal(command: str, cwd: Path, devices: dict[str, str]) -> tuple[int, str]:
    """Run ``command`` with bash in a pseudo-terminal; type a device's name when asked to (only
    one of the test's loop devices)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TMUX")}
    env.update({"TERM": "xterm", "COLUMNS": "100", "LINES": "40", "PATH": f"{BIN}:{env.get('PATH', '')}"})
    leader, follower = pty.openpty()
    proc = subprocess.Popen(["bash", "--norc", "--noprofile", "-c", command], stdin=follower, stdout=follower, stderr=follower, cwd=cwd, env=env, close_fds=True, start_new_session=True)
    os.close(follower)
    out = bytearray()
    answered = 0
    ours = {os.path.basename(v) for v in devices.values() if v.startswith("/dev/loop")}
    deadline = time.monotonic() + 600
    try:
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
                asked = re.findall(r"Type the device name \((\w+)\)", out.decode(errors="replace"))
                if len(asked) > answered:
                    assert asked[-1] in ours, f"asked to erase {asked[-1]}, which is not a test device"
                    os.write(leader, asked[-1].encode() + b"\n")
                    answered += 1
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
    finally:
        os.close(leader)
    return proc.wait(timeout=60), out.decode(errors="replace")


def localise(command: str, devices: dict[str, str], inputs: Path) -> str:
    """The README's command for this machine: its disks are the test's loop devices, `...` is the
    file of the option before it."""
    files = {"--openelec": "OpenELEC-ATV.i386-3.2.4.tar", "--restore": "atv_restore.tar.gz", "--recovery": "atv_recovery.tar.gz"}
    command = re.sub(r"(--openelec|--restore|--recovery) \.\.\.", lambda m: f"{m.group(1)} {files[m.group(1)]}", command)
    command = re.sub(r"/dev/(sd[fgh])\b", lambda m: devices[m.group(1)], command)
    assert not re.search(r"/dev/(sd|hd|vd|nvme|mmcblk)", command), f"a README command names a disk the test does not replace: {command}"
    assert "..." not in command, command
    return command


def _prepare_block(workdir: Path, inputs: Path, devices: dict[str, str], commands: list[str]) -> None:
    workdir.mkdir()
    # What the block makes itself is not there before it (as for a user who starts with it).
    made = {m.group(1) for c in commands for m in [re.match(r"atvdisk (?:build|backup \S+) (\S+)", c)] if m}
    if any(re.match(r"atvdisk extract \S+$", c) for c in commands):
        made.add("atv_restore.tar.gz")
    for f in inputs.iterdir():
        if f.name == "sample" or f.name in made:
            continue
        (workdir / f.name).symlink_to(f)
    (workdir / "old-disk.img").symlink_to(devices["old-disk.img"])


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="the README's disks are loop devices: root")
def test_every_readme_example_runs(tmp_path: Path, inputs: Path, disks: dict[str, str]) -> None:
    old_disk = _data_digest(Path(disks["old-disk.img"]))
    listed = {c for _, commands in sh_blocks() for c in commands}
    gone = set(NOT_RUN) - listed
    assert not gone, f"NOT_RUN lists commands the README no longer has: {gone}"
    failures: list[str] = []
    ran: list[str] = []
    for line, commands in sh_blocks():
        workdir = tmp_path / f"block-{line}"
        _prepare_block(workdir, inputs, disks, commands)
        for command in commands:
            if command in NOT_RUN:
                continue
            local = localise(command, disks, inputs)
            code, screen = in_terminal(local, workdir, disks)
            ran.append(command)
            if code != 0 or "Traceback" in screen:
                failures.append(f"README line ~{line}: {command}\n  ran: {local}\n  exit {code}:\n{screen[-3000:]}")
                break  # the block's later commands build on this one
            for check in CLAIMS.get(command, ()):
                problem = check(workdir, disks)
                if problem:
                    failures.append(f"README line ~{line}: {command}\n  {problem}")
    assert not failures, "\n\n".join(failures)
    assert len(ran) >= 20, ran  # the README's examples were found and run
    assert _data_digest(Path(disks["old-disk.img"])) == old_disk, "the old disk (/dev/sdg) was written"


# What a README line promises besides succeeding (in its comment or the text around it).


def _restore_from_old_disk(workdir: Path, disks: dict[str, str]) -> str | None:
    with tarfile.open(workdir / "atv_restore.tar.gz") as tar:
        names = set(tar.getnames())
    return None if {"boot.efi", "com.apple.Boot.plist"} <= names else f"atv_restore.tar.gz holds {sorted(names)[:10]}"


def _sparse_backup(workdir: Path, disks: dict[str, str]) -> str | None:
    st = os.stat(workdir / "old-atv-0042.img")
    return None if st.st_size == DISKS["sdg"] and st.st_blocks * 512 < st.st_size // 20 else f"the backup occupies {st.st_blocks * 512} of {st.st_size} bytes"


def _compressed_with_bmap(workdir: Path, disks: dict[str, str]) -> str | None:
    missing = [n for n in ("atv-3.2.4.img.xz", "atv-3.2.4.img.bmap") if not (workdir / n).exists()]
    return f"missing {missing}" if missing or (workdir / "atv-3.2.4.img").exists() else None


def _media_took_the_extra_space(workdir: Path, disks: dict[str, str]) -> str | None:
    table = json.loads(subprocess.run(["sfdisk", "--json", disks["sdf"]], capture_output=True, text=True, check=True).stdout)["partitiontable"]
    media, swap = table["partitions"][3], table["partitions"][4]
    size = DISKS["sdf"] // 512
    if swap["start"] + swap["size"] != size - 34 + 1 or media["size"] * 512 < 6 << 30:
        return f"Media did not grow to the 8 GiB card: {table['partitions']}"
    return None


CLAIMS = {
    "atvdisk extract /dev/sdg": [_restore_from_old_disk],
    "atvdisk backup /dev/sdg old-atv-0042.img": [_sparse_backup],
    "atvdisk build atv-3.2.4.img --size 3700MiB --openelec OpenELEC-ATV.i386-3.2.4.tar --restore atv_restore.tar.gz --recovery atv_recovery.tar.gz --bmap --compress xz": [_compressed_with_bmap],
    "atvdisk write atv-3.2.4.img.xz /dev/sdf": [_media_took_the_extra_space],
    "atvdisk write atv.img /dev/sdf": [_media_took_the_extra_space],
}


def test_every_readme_line_is_run_or_listed() -> None:
    """Without root too: the README's commands are all atvdisk's or listed in NOT_RUN (with
    the tools its examples pipe into)."""
    for line, commands in sh_blocks():
        for command in commands:
            runnable = command.startswith("atvdisk ") or command.startswith("bmaptool copy ")
            assert runnable or command in NOT_RUN, f"README line ~{line}: {command!r} is neither run by test_every_readme_example_runs nor in NOT_RUN"


def test_the_readme_boot_script_is_the_generated_one(tmp_path: Path) -> None:
    """The README shows the generated script shortened: each of its lines (`...` standing for
    any text, `5f0e...` for an identifier, a comment after two spaces being the README's) is a
    line of the script that `build --dry-run` prints, in the same order; `...` alone stands for
    lines left out."""
    (script,) = [c for _, c in _fenced("sh") if c.startswith("#!/bin/sh")]
    r = subprocess.run([sys.executable, "-m", "atvdisk", "build", "x.img", "--size", "4G", "--example", "--dry-run"], capture_output=True, text=True, cwd=tmp_path, check=True)
    printed = r.stdout.split("\nBoot script (", 1)[1].split("\n", 1)[1]
    generated = []
    for line in printed.splitlines():
        if not line.startswith("  ") and line.strip():
            break
        generated.append(line[2:])
    at = 0
    for shown in script.splitlines():
        if shown.strip() == "...":
            continue
        shown = re.sub(r"[0-9a-f]+\.\.\.", "...", re.sub(r"\s{2,}#.*$", "", shown))  # an identifier shortened: any
        pattern = re.escape(shown).replace(re.escape("..."), ".*")
        while at < len(generated) and not re.fullmatch(pattern, generated[at]):
            at += 1
        assert at < len(generated), f"the README's boot script line {shown!r} is not in the generated script (in this order):\n" + "\n".join(generated)
        at += 1


def test_the_readme_error_example_is_what_atvdisk_prints(tmp_path: Path) -> None:
    text = README.read_text()
    example = re.search(r"\n((    atvdisk: error: missing inputs.*\n)(      .*\n)+)", text)
    assert example, "the README's error example is gone"
    expected = "\n".join(line[4:] for line in example.group(1).splitlines())
    (tmp_path / "atv_restore.tar.gz").write_bytes(b"")
    r = subprocess.run([sys.executable, "-m", "atvdisk", "build", "x.img", "--size", "4G", "--restore", "atv_restore.tar.gz"], capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"})
    assert r.returncode == 2
    assert r.stderr.strip() == expected.strip()


def test_the_readme_plan_figures_for_the_original_cf_card() -> None:
    text = " ".join(README.read_text().split())
    claim = re.search(r"`atvdisk plan --size 8451072s` gives partitions (.*?) \((.*?), as parted prints them\); sectors (\d+)–(\d+) are the backup GPT", text)
    assert claim, "the README's figures for the 4327MB CF card are gone"
    ranges = [tuple(map(int, r.split("–"))) for r in re.split(r", | and ", claim.group(1))]
    sizes = re.split(r", ", claim.group(2))
    plan = json.loads(subprocess.run([sys.executable, "-m", "atvdisk", "plan", "--size", "8451072s", "--json"], capture_output=True, text=True, check=True).stdout)
    assert [(p["start"], p["end"]) for p in plan["partitions"]] == ranges
    assert [p["size_human"] for p in plan["partitions"]] == sizes
    assert (plan["last_usable"] + 1, plan["total_sectors"] - 1) == (int(claim.group(3)), int(claim.group(4)))


def test_install_packages_are_the_set_ups() -> None:
    """The README's apt line for installing without .ci/setup names what .ci/setup installs for
    atvdisk (RUNTIME_APT), and pipx."""
    (apt,) = [c for _, cs in sh_blocks() for c in cs if c.startswith("apt install ")]
    setup = (ROOT / ".ci" / "setup").read_text()
    runtime = re.search(r"RUNTIME_APT=\(([^)]*)\)", setup).group(1).split()
    assert set(apt.split()[2:]) == set(runtime) - {"python3"} | {"pipx"}


def _fenced(lang: str) -> list[tuple[int, str]]:
    out, lines, i = [], README.read_text().splitlines(), 0
    while i < len(lines):
        if lines[i].strip() == f"```{lang}":
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            out.append((i + 1, "\n".join(lines[i + 1 : j])))
            i = j
        i += 1
    return out
