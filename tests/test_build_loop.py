"""The block-device path, through loop devices (root; CI is root and .ci/run fails on skips)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import load_layout

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root")]

EPOCH = "1300000000"
SIZE = 4 * 2**30


def atvdisk(*args, check=True, input=None):
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    r = subprocess.run([sys.executable, "-m", "atvdisk", *map(str, args)], capture_output=True, text=True, env=env, input=input)
    if check and r.returncode != 0:
        raise AssertionError(f"atvdisk {args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def attached(img: Path) -> list[str]:
    out = subprocess.run(["losetup", "-j", str(img)], capture_output=True, text=True, check=True).stdout
    return [line.split(":")[0] for line in out.splitlines() if line.strip()]


def snapshot(path: Path) -> str:
    """A hash of the file's bytes: of every non-zero 64 KiB chunk with its offset (holes and zero
    chunks read as zeros either way). Only the data extents are read, so a 4 GiB sparse image
    hashes in milliseconds, and a loop device's late writeback cannot change the answer."""
    os.sync()
    chunk_size = 1 << 16
    zero = bytes(chunk_size)
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        end = os.fstat(fd).st_size
        pos = 0
        while pos < end:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break  # no data after pos
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            chunk_at = data // chunk_size * chunk_size
            while chunk_at < hole:
                chunk = os.pread(fd, chunk_size, chunk_at)
                if chunk.strip(b"\0") and chunk != zero:
                    h.update(chunk_at.to_bytes(8, "little") + chunk)
                chunk_at += chunk_size
            pos = max(hole, chunk_at)
    finally:
        os.close(fd)
    return h.hexdigest()


def same_bytes(a: Path, b: Path, offset: int, length: int) -> bool:
    return subprocess.run(["cmp", "-s", "-i", str(offset), "-n", str(length), str(a), str(b)]).returncode == 0


@pytest.fixture
def loop_image(tmp_path):
    """A zero-filled image attached to a loop device, detached afterwards whatever happens."""
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(SIZE)
    dev = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True, text=True, check=True).stdout.strip()
    yield img, dev
    subprocess.run(["losetup", "-d", dev], capture_output=True)


def test_loop_build_matches_the_image_build(tmp_path):
    via_loop, direct = tmp_path / "loop.img", tmp_path / "direct.img"
    atvdisk("build", via_loop, "--size", "4G", "--example", "--loop", "--seed", "loop-vs-image")
    assert attached(via_loop) == []  # detached again
    atvdisk("build", direct, "--size", "4G", "--example", "--seed", "loop-vs-image")
    plan = resolve(load_layout("atv1-openelec"), SIZE, 512)
    # Same bytes everywhere but ext4, whose mke2fs marks inode tables it did not have to zero.
    for p in plan.partitions:
        if p.fs.kind.value != "ext4":
            assert same_bytes(via_loop, direct, p.offset, p.size_bytes), p.name
    assert same_bytes(via_loop, direct, 0, plan.first_usable * 512)
    assert same_bytes(via_loop, direct, (plan.last_usable + 1) * 512, 33 * 512)
    assert atvdisk("verify", via_loop, "--example").returncode == 0


def test_build_on_a_loop_device_as_a_disk(loop_image):
    img, dev = loop_image
    with open(img, "r+b") as f:  # stale data where the partitions will be: must be wiped
        for pos in (0, 20480, 35672064, SIZE - 4096):
            f.seek(pos)
            f.write(b"\xaa" * 4096)
    r = atvdisk("build", dev, "--example", "--yes")
    assert "wipe old partition tables" in r.stderr
    assert atvdisk("verify", dev, "--example").returncode == 0
    out = subprocess.run(["sfdisk", "--json", dev], capture_output=True, text=True, check=True).stdout
    assert '"name": "Recovery"' in out


def test_no_confirmation_means_nothing_written(loop_image):
    img, dev = loop_image
    with open(img, "r+b") as f:
        f.write(os.urandom(1 << 20))
    before = snapshot(img)
    # No terminal and no --yes: refused.
    r = atvdisk("build", dev, "--example", check=False, input="")
    assert r.returncode == 3
    assert snapshot(img) == before


def test_partition_path_is_refused_naming_its_disk(loop_image):
    img, dev = loop_image
    atvdisk("build", dev, "--example", "--yes")
    subprocess.run(["partx", "-a", dev], capture_output=True)
    part = f"{dev}p2"
    try:
        assert Path(part).exists()
        before = snapshot(img)
        r = atvdisk("build", part, "--example", "--yes", check=False)
        assert r.returncode == 3
        assert dev in r.stderr and "partition" in r.stderr
        assert snapshot(img) == before
    finally:
        subprocess.run(["partx", "-d", dev], capture_output=True)


def test_too_small_disk_is_refused(tmp_path):
    img = tmp_path / "small.img"
    with open(img, "wb") as f:
        f.truncate(1 << 30)
    dev = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True, text=True, check=True).stdout.strip()
    try:
        before = snapshot(img)
        r = atvdisk("build", dev, "--example", "--yes", check=False)
        assert r.returncode == 3
        assert "too small" in r.stderr and "short by" in r.stderr
        assert snapshot(img) == before
    finally:
        subprocess.run(["losetup", "-d", dev])


def test_unmount_happens_only_after_confirmation(loop_image, tmp_path):
    img, dev = loop_image
    atvdisk("build", dev, "--example", "--yes")
    subprocess.run(["partx", "-d", dev], capture_output=True)
    subprocess.run(["partx", "-a", dev], check=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "ext4", f"{dev}p4", str(mnt)], check=True)
    try:
        r = atvdisk("build", dev, "--example", check=False)
        assert r.returncode == 3 and "mounted" in r.stderr and "--unmount" in r.stderr
        # --unmount without confirmation: refused, and nothing unmounted either.
        r = atvdisk("build", dev, "--example", "--unmount", check=False, input="")
        assert r.returncode == 3
        assert subprocess.run(["findmnt", str(mnt)], capture_output=True).returncode == 0
        r = atvdisk("build", dev, "--example", "--unmount", "--yes")
        assert "done: umount" in r.stderr
        assert subprocess.run(["findmnt", str(mnt)], capture_output=True).returncode != 0
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
        subprocess.run(["partx", "-d", dev], capture_output=True)
