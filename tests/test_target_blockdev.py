"""BlockDeviceSession and LoopDevice on real loop devices, judged by flock(1), mke2fs/e2fsck,
losetup and blockdev."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import time

import pytest
from test_target_helpers import (
    MIB,
    backing_loops,
    loop_disks,
    python_child,
    root_only,
    sh,
)

from atvdisk.errors import TargetRefused
from atvdisk.target.checks import (
    BlockDeviceError,
    BlockDeviceSession,
    LoopDevice,
    TargetBusy,
)
from atvdisk.target.probe import probe_size

pytestmark = root_only


@pytest.fixture
def loops(tmp_path):
    yield from loop_disks(tmp_path)


def _flock_free(path: str, *, shared: bool = False) -> bool:
    """Can another process take the lock udev takes (shared) or a partitioner takes (exclusive)?"""
    mode = "--shared" if shared else "--exclusive"
    return sh("flock", "--nonblock", mode, path, "true", check=False).returncode == 0


def test_session_holds_the_udev_lock_for_its_whole_life(loops):
    disk = loops.make(table=None)
    assert _flock_free(disk.path, shared=True)
    with BlockDeviceSession(disk.path) as session:
        assert session.path == disk.path
        assert session.size_bytes == os.path.getsize(disk.image)
        assert session.sector_size == 512
        assert not _flock_free(disk.path, shared=True)
        assert not _flock_free(disk.path)
        with session.exclusive():
            pass
        assert not _flock_free(disk.path, shared=True)  # still held between writes
    assert _flock_free(disk.path, shared=True) and _flock_free(disk.path)


def test_exclusive_blocks_mkfs_and_closing_it_lets_mkfs_run(loops):
    disk = loops.make(table=None)
    with BlockDeviceSession(disk.path) as session:
        with session.exclusive() as fd:
            with pytest.raises(OSError) as info:
                os.open(disk.path, os.O_RDWR | os.O_EXCL)
            assert info.value.errno == errno.EBUSY
            r = sh("mke2fs", "-q", "-F", "-t", "ext4", disk.path, check=False)
            assert r.returncode != 0 and "in use" in r.stderr
            os.pwrite(fd, b"\x55" * 4096, 0)
        # the lock is still held, but the exclusive fd is closed: external tools can run
        sh("mke2fs", "-q", "-F", "-t", "ext4", "-L", "viasession", disk.path)
        session.fsync()
    sh("e2fsck", "-fn", disk.path)
    assert "LABEL=viasession" in sh("blkid", "-p", "-o", "export", disk.path).stdout


def test_own_writes_reach_the_backing_file(loops):
    disk = loops.make(table=None)
    with BlockDeviceSession(disk.path) as session:
        with session.exclusive() as fd:
            os.pwrite(fd, b"ATVDISK!" * 512, 3 * MIB)
        session.fsync()
    with open(disk.image, "rb") as f:
        f.seek(3 * MIB)
        assert f.read(4096) == b"ATVDISK!" * 512


def test_session_refuses_a_disk_with_a_mounted_partition(loops):
    disk = loops.make()
    loops.mount_ext4(disk.part(1))
    with pytest.raises(TargetBusy) as info, BlockDeviceSession(disk.path):
        pytest.fail("entered a busy disk")
    assert info.value.exit_code == 3
    assert _flock_free(disk.path)  # released on the failed entry too


def test_session_refuses_a_partition(loops):
    disk = loops.make()
    with pytest.raises(TargetRefused, match=f"partition 1 of {disk.path}"):
        BlockDeviceSession(disk.part(1)).__enter__()


def test_session_refuses_the_system_disk():
    source = sh(
        "findmnt", "--noheadings", "--output", "SOURCE", "--mountpoint", "/"
    ).stdout.strip()
    out = sh(
        "lsblk", "--inverse", "--raw", "--noheadings", "--output", "PATH,TYPE", source
    ).stdout
    disks = [line.split()[0] for line in out.splitlines() if line.split()[1] == "disk"]
    assert disks, f"no disk under / ({source})"
    for disk in disks:
        with pytest.raises(TargetRefused, match="the running system uses"):
            BlockDeviceSession(disk).__enter__()


@pytest.mark.parametrize("sector_size", [512, 4096])
def test_probe_size_agrees_with_blockdev(loops, sector_size):
    image = loops.image(table=None)
    with LoopDevice(image, sector_size=sector_size) as path:
        info = probe_size(path)
        got = sh("blockdev", "--getsize64", "--getss", "--getpbsz", path).stdout.split()
        assert [
            str(info.size_bytes),
            str(info.sector_size),
            str(info.physical_sector_size),
        ] == got
    disk = loops.make()
    info = probe_size(disk.part(2))
    assert (
        str(info.size_bytes)
        == sh("blockdev", "--getsize64", disk.part(2)).stdout.strip()
        == str(4 * MIB)
    )


def test_session_settles_udev_on_exit(loops, caplog):
    disk = loops.make(table=None)
    caplog.set_level(logging.INFO, logger="atvdisk")
    with BlockDeviceSession(disk.path):
        assert not any("udevadm settle" in r.getMessage() for r in caplog.records)
    assert any("udevadm settle" in r.getMessage() for r in caplog.records)


def test_reread_partitions(loops):
    image = loops.image(table=None)
    with LoopDevice(image) as path:  # --partscan: the kernel may re-read
        sh(
            "sfdisk",
            "--quiet",
            "--no-reread",
            "--no-tell-kernel",
            path,
            input="label: gpt\nstart=2048, size=4096\n",
        )
        with BlockDeviceSession(path) as session:
            session.fsync()
            session.reread_partitions()
    with LoopDevice(image, partscan=False) as path, BlockDeviceSession(path) as session:
        with pytest.raises(BlockDeviceError) as info:
            session.reread_partitions()
        assert info.value.errno == errno.EINVAL
        assert "partx -a" in info.value.hint


# --------------------------------------------------------------------------------------------
# LoopDevice


def test_loop_device_attaches_and_detaches(loops):
    image = loops.image()
    with LoopDevice(image) as path:
        assert backing_loops(image) == [path]
        assert sh("blockdev", "--getsize64", path).stdout.strip() == str(
            os.path.getsize(image)
        )
        assert sh("blockdev", "--getss", path).stdout.strip() == "512"
    assert backing_loops(image) == []


def test_loop_device_sector_size(loops):
    image = loops.image(table=None)
    with LoopDevice(image, sector_size=4096) as path:
        assert sh("blockdev", "--getss", path).stdout.strip() == "4096"
    assert backing_loops(image) == []


def test_loop_device_detaches_on_exception(loops):
    image = loops.image()
    with pytest.raises(RuntimeError), LoopDevice(image) as path:
        assert backing_loops(image) == [path]
        raise RuntimeError("build failed")
    assert backing_loops(image) == []


def test_loop_device_detaches_on_keyboard_interrupt(loops):
    image = loops.image()
    with pytest.raises(KeyboardInterrupt), LoopDevice(image):
        raise KeyboardInterrupt
    assert backing_loops(image) == []


HOLD_LOOP = r"""
import sys, time
from atvdisk.target.checks import LoopDevice, Terminated
try:
    with LoopDevice(sys.argv[1]) as path:
        print(path, flush=True)
        time.sleep(120)
except Terminated as e:
    print(f"terminated: {e}", file=sys.stderr)
    sys.exit(143)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGKILL])
def test_loop_device_detaches_when_the_process_is_killed(loops, signum):
    # SIGKILL cannot be caught: the kernel detaches the device (LO_FLAGS_AUTOCLEAR) when the
    # process's descriptor on it closes. (It was left attached -- /dev/loop6 one morning -- when
    # losetup attached it.)
    image = loops.image()
    child = python_child(
        HOLD_LOOP, str(image), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        path = child.stdout.readline().decode().strip()
        assert path.startswith("/dev/loop"), child.stderr.read().decode()
        assert backing_loops(image) == [path]
        child.send_signal(signum)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        else:
            child.stdout.close()
            child.stderr.close()
    deadline = time.monotonic() + 10  # autoclear: when the last user (udev's probe too) closes it
    while backing_loops(image) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert backing_loops(image) == []
    # SIGTERM/SIGHUP become Terminated (the child's exit 143); SIGINT is Python's KeyboardInterrupt
    assert child.returncode == {signal.SIGINT: -signal.SIGINT, signal.SIGKILL: -signal.SIGKILL}.get(signum, 143)
