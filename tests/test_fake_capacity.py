"""Verify reads the medium, and a fake-capacity card fails the build (issue 11, item 5).

The card is tests/fakecard.py: a FUSE file that reports 4 GiB and keeps 2 GiB, a write at X
landing at X % 2 GiB (as a counterfeit card whose controller ignores the high address bits),
with direct_io so the kernel caches nothing of it. Under a loop device it is a disk as the
build sees one. Without the capacity probe and the cache drop, a build on it passed: what it
wrote stayed in the page cache, and what it verified came from there.

Needs root (FUSE mount, loop devices); CI is root.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atvdisk.inputs.sample import fake_bytes
from atvdisk.target.capacity import DeviceForgets, marker_offsets, probe_capacity

ROOT = Path(__file__).resolve().parent.parent
GIB = 1 << 30
pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="FUSE mounts and loop devices need root")]


@contextlib.contextmanager
def fake_card(tmp_path: Path, reported: int, real: int) -> Iterator[Path]:
    """The card's file (``card.img``), mounted for the block; unmounted afterwards."""
    mnt = tmp_path / "card"
    mnt.mkdir()
    log = open(tmp_path / "fakecard.log", "wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fakecard.py"), str(mnt), str(tmp_path / "real.bin"), str(reported), str(real)],
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    card = mnt / "card.img"
    try:
        deadline = time.monotonic() + 30
        while not (card.exists() and card.stat().st_size == reported):
            assert proc.poll() is None, (tmp_path / "fakecard.log").read_text()
            assert time.monotonic() < deadline, "the fake card was never mounted"
            time.sleep(0.05)
        yield card
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def loop_over(path: Path) -> Iterator[str]:
    dev = subprocess.run(["losetup", "--find", "--show", str(path)], capture_output=True, text=True, check=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["partx", "-d", dev], capture_output=True)
        subprocess.run(["losetup", "-d", dev], capture_output=True)
        deadline = time.monotonic() + 10  # udev may still hold it open: the kernel detaches it then
        while subprocess.run(["losetup", "-j", str(path)], capture_output=True, text=True).stdout.strip() and time.monotonic() < deadline:
            time.sleep(0.1)


def atvdisk(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "atvdisk", *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "SOURCE_DATE_EPOCH": "1300000000"})  # fmt: skip


def test_the_markers_are_where_a_wrapping_card_lands_them():
    # Every marker at or past a power-of-two size (at least two steps) lands on another marker.
    for size in (4 * GIB, 40 * 10**9, 2 * 10**9 + 512, 64 << 20):
        step, offsets = marker_offsets(size)
        assert len(offsets) <= 128 and offsets[0] == 0 and offsets[-1] == (size - 4096) // 4096 * 4096
        real = 2 * step
        while real < size:
            assert all(o % real in offsets for o in offsets[:-1]), (size, real)
            real *= 2


def test_the_probe_finds_a_card_that_wraps(tmp_path):
    with fake_card(tmp_path, 4 * GIB, 2 * GIB) as card:
        fd = os.open(card, os.O_RDWR)
        try:
            with pytest.raises(DeviceForgets) as info:
                probe_capacity(fd, str(card), 4 * GIB)
        finally:
            os.close(fd)
    text = str(info.value)
    assert "does not keep what is written to it" in text
    assert "it reports 4.0 GiB but holds about 2.0 GiB" in text
    assert f"what was written at byte {2 * GIB + 0}" in text or "reads back at byte 0 " in text
    assert "fake-capacity" in (info.value.hint or "")
    assert info.value.exit_code == 5


def test_the_probe_passes_an_honest_card_and_leaves_zeros(tmp_path):
    with fake_card(tmp_path, 4 * GIB, 4 * GIB) as card:
        fd = os.open(card, os.O_RDWR)
        try:
            report = probe_capacity(fd, str(card), 4 * GIB)
            step, offsets = marker_offsets(4 * GIB)
            assert report.markers == len(offsets) == 65
            assert all(os.pread(fd, 4096, o) == bytes(4096) for o in offsets)  # the markers are zeroed again
        finally:
            os.close(fd)


@pytest.mark.parametrize("dry_run", [False])
def test_a_build_on_a_fake_card_fails_saying_so(tmp_path, dry_run):
    with fake_card(tmp_path, 4 * GIB, 2 * GIB) as card, loop_over(card) as dev:
        r = atvdisk("build", dev, "--example", "--yes")
    assert "Traceback" not in r.stderr
    assert r.returncode == 5, r.stderr  # was 0: built and "verified" from the page cache
    assert f"{dev} does not keep what is written to it" in r.stderr
    assert "holds about 2.0 GiB" in r.stderr
    assert "probably a fake-capacity card" in r.stderr


def test_the_same_build_on_an_honest_card_passes(tmp_path):
    # The control: the same FUSE file and loop device, keeping all it reports.
    with fake_card(tmp_path, 4 * GIB, 4 * GIB) as card, loop_over(card) as dev:
        r = atvdisk("build", dev, "--example", "--yes")
        assert r.returncode == 0, r.stderr
        v = atvdisk("verify", dev)
        assert v.returncode == 0, v.stderr


def test_verify_reads_the_medium_not_the_page_cache(tmp_path):
    # A disk built and verified; then its medium changes behind the page cache (the backing file
    # written directly, as a card that loses data would): verify must see it.
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(4 * GIB)
    with loop_over(img) as dev:
        r = atvdisk("build", dev, "--example", "--yes", "--no-verify")
        assert r.returncode == 0, r.stderr
        kernel = _find(img, fake_bytes("KERNEL", 64))
        # Held open, as the build's session holds the disk while it verifies (the kernel drops a
        # disk's cached pages when its last user closes it): the pages around KERNEL's first
        # bytes stay in the page cache while the medium changes.
        with open(dev, "rb") as held:
            held.seek(kernel - kernel % 4096)
            held.read(1 << 20)
            with open(img, "r+b") as f:
                f.seek(kernel)
                f.write(b"X")
                f.flush()
                os.fsync(f.fileno())
            v = atvdisk("verify", dev)
    assert v.returncode == 5, v.stderr  # was 0: the page cache still held the old bytes
    assert "KERNEL" in v.stderr


def _find(path: Path, needle: bytes) -> int:
    with open(path, "rb") as f:
        pos = 0
        tail = b""
        while chunk := f.read(1 << 24):
            data = tail + chunk
            i = data.find(needle)
            if i >= 0:
                return pos - len(tail) + i
            tail = data[-len(needle) :]
            pos += len(chunk)
    raise AssertionError(f"{needle!r} not found in {path}")
