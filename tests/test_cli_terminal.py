"""A confirmed build to a loop device in a real terminal (tmux), read off the screen as a person
sees it (issue 14): the confirmation (the disk, what it will hold, the point of no return), the
live progress during the copy, the result at the end; and Ctrl-C in the middle of the copy
(the disk is now incomplete, and how to build it again).

Root (loop devices): CI is root and fails on skips. The payload is the sample's restore and
recovery tarballs with a 256 MiB SYSTEM, so that the copy lasts long enough to be seen.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root"),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/setup installs it)"),
]

WIDTH, HEIGHT = 100, 40


class Screen:
    """A detached tmux session on its own server socket, running one command."""

    def __init__(self, command: str, cwd: Path) -> None:
        self.socket = f"atvdisk-test-{os.getpid()}-{time.monotonic_ns()}"
        env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TMUX")}
        env["TERM"] = "xterm-256color"
        subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", "new-session", "-d", "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(cwd),
             f"{command}; echo EXIT=$?; sleep 600"],
            check=True, env=env,
        )  # fmt: skip
        self.seen: list[str] = []

    def text(self) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, "capture-pane", "-p", "-J"], capture_output=True, text=True, check=True).stdout
        if not self.seen or self.seen[-1] != out:
            self.seen.append(out)
        return out

    def wait_for(self, found: Callable[[str], bool], what: str, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.text()
            if found(screen):
                return screen
            if "EXIT=" in screen and not found(screen):
                break
            time.sleep(0.03)
        pytest.fail(f"the screen never showed {what}; it shows:\n{self.text()}")

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "-L", self.socket, "send-keys", *keys], check=True)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def payload(tmp_path: Path) -> dict[str, str]:
    from atvdisk.inputs.sample import write_sample

    sample = write_sample(str(tmp_path / "sample"))
    release = tmp_path / "OpenELEC-ATV.i386-3.2.4" / "target"
    release.mkdir(parents=True)
    shutil.copy(Path(sample.openelec) / "KERNEL", release / "KERNEL")
    with open(release / "SYSTEM", "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(256):
            f.write(block[i:] + block[:i])
    return {"openelec": str(release), "restore": str(sample.restore), "recovery": str(sample.recovery)}


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[str]:
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(4 << 30)
    dev = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def _command(dev: str, payload: dict[str, str]) -> str:
    args = [sys.executable, "-m", "atvdisk", "build", dev, "--seed", "terminal"]
    for name, path in payload.items():
        args += [f"--{name}", path]
    return shlex.join(args)


def _confirm(screen: Screen, dev: str) -> str:
    name = os.path.basename(dev)
    question = f"Type the device name ({name}) to erase it, anything else to cancel:"
    shown = screen.wait_for(lambda s: question in s, "the question")
    screen.keys(name, "Enter")
    return shown


def test_a_confirmed_build_on_the_screen(tmp_path: Path, payload: dict[str, str], loop_device: str) -> None:
    dev = loop_device
    screen = Screen(_command(dev, payload), tmp_path)
    try:
        asked = _confirm(screen, dev)
        # At the prompt: the disk, what it will hold, the point of no return, the question.
        lines = asked.rstrip().splitlines()
        assert f"ALL DATA ON {dev} WILL BE DESTROYED" in asked
        assert "It will hold (layout atv1-openelec, OpenELEC 3.2.4):" in asked
        for number, name, fs in ((1, "EFI", "FAT32"), (2, "Recovery", "HFS+"), (3, "OSBoot", "HFS+"), (4, "Media", "ext4"), (5, "Swap", "swap")):
            assert re.search(rf"^  {number} {name} +{re.escape(fs)} +\d", asked, re.MULTILINE), asked
        assert re.search(r"^  3 OSBoot .*2 files, 259\.\d MiB: KERNEL, SYSTEM$", asked, re.MULTILINE), asked
        assert f"{dev} must be built again" in lines[-2]
        assert lines[-1].startswith(f"Type the device name ({os.path.basename(dev)})")
        assert "warning: Type" not in asked
        assert "[ 1/10] check the inputs" in asked  # the input check is done and shown
        assert "ETA" not in asked  # no live progress line under the question

        # During the copy: the running partition, its bytes, the job's bar with % and ETA.
        during = screen.wait_for(lambda s: re.search(r"\[\s*\d+/\d+\] partition 3 OSBoot: HFS\+.* of 259\.0 MiB", s) is not None, "the OSBoot copy in progress")
        bar = [line for line in during.splitlines() if re.match(r"^\[[=> ]+\] +\d+%", line)]
        assert bar and "ETA" in bar[-1], during
        live = [line for line in during.splitlines() if re.match(r"^[|/\\-] \[", line)] + bar
        assert len(live) >= 2 and all(len(line) < WIDTH for line in live), live  # never wrapped

        # At the end: every step listed once, the result, no live lines left over.
        end = screen.wait_for(lambda s: "EXIT=" in s, "the end")
        assert "EXIT=0" in end, end
        assert re.search(rf"^Built {re.escape(dev)}: 5 partitions on 4295MB in \d+\.\d s, verified \(\d+ checks\)\.$", end, re.MULTILINE), end
        steps = re.findall(r"^\[\s*(\d+)/10\] ", end, re.MULTILINE)
        assert sorted(int(n) for n in steps) == list(range(1, 11)), end
        assert "ETA" not in end and "%" not in end
        frames = len(screen.seen)
    finally:
        screen.close()
    assert frames > 5  # the screen changed while it ran: it was live


def test_ctrl_c_during_the_copy_says_the_disk_is_incomplete(tmp_path: Path, payload: dict[str, str], loop_device: str) -> None:
    dev = loop_device
    command = _command(dev, payload)
    screen = Screen(command, tmp_path)
    try:
        _confirm(screen, dev)
        screen.wait_for(lambda s: re.search(r"partition \d \w+: .* of ", s) is not None, "a partition being written")
        screen.keys("C-c")
        end = screen.wait_for(lambda s: "EXIT=" in s, "the end")
    finally:
        screen.close()
    assert "EXIT=130" in end, end
    text = " ".join(end.split())  # lines as the terminal wrapped them
    assert "atvdisk: interrupted: stopped by Ctrl-C" in text
    assert f"{dev} is now incomplete" in text
    assert f"hint: build {dev} again: atvdisk build {dev} --seed terminal" in text
    assert "Traceback" not in end


@pytest.mark.parametrize("sector, size, code, words", [
    (4096, 4 << 30, 2, ["layout atv1-openelec is laid out in 512-byte sectors and does not fit", "which has 4096-byte sectors", "512-byte logical sectors"]),
    (512, 1 << 30, 3, ["it is too small: 1074MB", "needs at least 2000MB"]),
])  # fmt: skip
def test_a_disk_the_layout_does_not_fit_is_refused_in_the_users_terms(tmp_path: Path, sector: int, size: int, code: int, words: list[str]) -> None:
    from blockdev_check import device_digest

    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(size)
    dev = subprocess.run(["losetup", "--find", "--show", "--sector-size", str(sector), str(image)], capture_output=True, text=True, check=True).stdout.strip()
    try:
        before = device_digest(dev)
        r = subprocess.run([sys.executable, "-m", "atvdisk", "build", dev, "--example", "--yes"], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
        assert r.returncode == code, r.stderr
        error = r.stderr[r.stderr.index("atvdisk: error: "):]
        assert dev in error.splitlines()[0], error
        for w in words:
            assert w in error, error
        assert "overlaps" not in error.splitlines()[-1] and "disk.min_size" not in error
        assert device_digest(dev) == before  # nothing was written
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
