"""Safety checks on real (loop) block devices, judged by findmnt, /proc/swaps, losetup and sha256."""

from __future__ import annotations

import os
import pty
import subprocess
import time

import pytest
from test_target_helpers import (
    CONFIRM_AND_WRITE,
    MIB,
    loop_disks,
    mount_sources,
    python_child,
    root_only,
    sh,
    sha256_of,
    swaps,
)

from atvdisk.errors import EXIT_OK, EXIT_REFUSED, TargetRefused
from atvdisk.target.checks import (
    RefusalKind,
    UnsafeTarget,
    check_block_target,
    system_disks,
)
from atvdisk.target.lsblk import describe

pytestmark = root_only


@pytest.fixture
def loops(tmp_path):
    yield from loop_disks(tmp_path)


def test_mounted_loop_disk_refused_and_left_mounted(loops):
    disk = loops.make()
    mnt = loops.mount_ext4(disk.part(1))
    with pytest.raises(UnsafeTarget) as info:
        check_block_target(disk.path, need_bytes=MIB)
    e = info.value
    assert e.kinds == {RefusalKind.MOUNTED}
    assert str(mnt) in str(e) and disk.part(1) in str(e)
    assert "--unmount" in e.hint
    assert e.exit_code == 3
    assert mount_sources().get(str(mnt)) == disk.part(1)  # nothing was unmounted


def test_unmount_true_unmounts_then_accepts(loops):
    disk = loops.make()
    mnt = loops.mount_ext4(disk.part(1))
    report = check_block_target(disk.path, need_bytes=MIB, unmount=True)
    assert str(mnt) not in mount_sources()
    assert any(a.startswith("umount ") and str(mnt) in a for a in report.actions)
    assert report.path == disk.path
    assert report.size == os.path.getsize(disk.image)
    assert [p.path for p in report.partitions] == disk.partitions
    assert all(not p.mountpoints for p in report.partitions)
    # the partition list comes from the disk itself: compare with blkid's low-level probe
    probed = sh("blkid", "-p", "-o", "export", disk.part(1)).stdout
    assert "TYPE=ext4" in probed and report.partitions[0].fstype == "ext4"
    assert "PART_ENTRY_NAME=data" in probed and report.partitions[0].partlabel == "data"


def test_active_swap_refused_then_swapped_off_with_unmount(loops):
    disk = loops.make()
    loops.swapon(disk.part(2))
    assert disk.part(2) in swaps()
    with pytest.raises(UnsafeTarget) as info:
        check_block_target(disk.path, need_bytes=MIB)
    assert info.value.kinds == {RefusalKind.SWAP}
    assert disk.part(2) in str(info.value)
    assert disk.part(2) in swaps()
    # system_disks() lists it (active swap), but it is not the system disk: --unmount may swapoff
    assert any(disk.part(2) in r for r in system_disks().get(disk.path, []))
    report = check_block_target(disk.path, need_bytes=MIB, unmount=True)
    assert disk.part(2) not in swaps()
    assert f"swapoff {disk.part(2)}" in report.actions


def test_mounted_and_swap_together_with_unmount(loops):
    disk = loops.make()
    loops.swapon(disk.part(2))
    mnt = loops.mount_ext4(disk.part(1))
    report = check_block_target(disk.path, need_bytes=MIB, unmount=True)
    assert disk.part(2) not in swaps() and str(mnt) not in mount_sources()
    assert len(report.actions) == 2


def test_unmount_does_nothing_when_another_refusal_stands(loops):
    disk = loops.make()
    mnt = loops.mount_ext4(disk.part(1))
    with pytest.raises(UnsafeTarget) as info:
        check_block_target(disk.path, need_bytes=10**12, unmount=True)
    assert info.value.kinds == {RefusalKind.TOO_SMALL, RefusalKind.MOUNTED}
    assert mount_sources().get(str(mnt)) == disk.part(1)


def test_partition_path_refused_naming_its_disk(loops):
    disk = loops.make()
    for check in (
        lambda p: check_block_target(p, need_bytes=MIB, unmount=True),
        describe,
    ):
        with pytest.raises(TargetRefused) as info:
            check(disk.part(1))
        assert f"{disk.part(1)} is partition 1 of {disk.path}" in str(info.value)
        assert disk.path in info.value.hint


def test_too_small_refused_with_the_shortfall(loops):
    disk = loops.make()
    size = os.path.getsize(disk.image)
    need = 2 * 10**9
    with pytest.raises(UnsafeTarget) as info:
        check_block_target(disk.path, need_bytes=need)
    assert info.value.kinds == {RefusalKind.TOO_SMALL}
    assert f"short by {need - size} bytes" in str(info.value)
    assert str(need) in str(info.value) and str(size) in str(info.value)
    check_block_target(disk.path, need_bytes=size)  # exactly enough is fine


def test_large_disk_warns_but_passes(loops):
    disk = loops.make()
    report = check_block_target(disk.path, need_bytes=MIB, warn_above=16 * MIB)
    assert any("larger than" in w for w in report.warnings)
    assert not check_block_target(
        disk.path, need_bytes=MIB, warn_above=64 * MIB
    ).warnings


def _root_disks() -> list[str]:
    """The whole disks under / as util-linux sees them (findmnt + lsblk --inverse)."""
    source = sh(
        "findmnt", "--noheadings", "--output", "SOURCE", "--mountpoint", "/"
    ).stdout.strip()
    assert source.startswith("/dev/"), (
        f"/ is mounted from {source!r}: this test needs a block-device root"
    )
    out = sh(
        "lsblk", "--inverse", "--raw", "--noheadings", "--output", "PATH,TYPE", source
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.split()[1] == "disk"]


def test_system_disk_refused_whatever_the_flags():
    disks = _root_disks()
    assert disks
    assert set(disks) <= set(system_disks())
    for disk in disks:
        with pytest.raises(UnsafeTarget) as info:
            check_block_target(disk, need_bytes=1, warn_above=None, unmount=True)
        assert info.value.kinds == {RefusalKind.SYSTEM}  # no misleading "--unmount" hint for its mounts
        assert "--unmount" not in (info.value.hint or "")
        assert "/ is mounted from" in str(info.value)
    assert "/" in mount_sources()  # and of course nothing was unmounted


def test_read_only_loop_refused(loops):
    image = loops.image()
    path = sh("losetup", "--find", "--show", "--read-only", str(image)).stdout.strip()
    try:
        with pytest.raises(UnsafeTarget) as info:
            check_block_target(path, need_bytes=MIB)
        assert info.value.kinds == {RefusalKind.READ_ONLY}
    finally:
        sh("losetup", "--detach", path)


# --------------------------------------------------------------------------------------------
# Confirmation: the target's bytes hashed before and after


def _run_on_pty(disk: str, answer: str) -> tuple[int, str]:
    master, slave = pty.openpty()
    child = python_child(
        CONFIRM_AND_WRITE,
        disk,
        "ask",
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(slave)
    time.sleep(0.2)
    os.write(master, answer.encode() + b"\n")
    try:
        _, err = child.communicate(timeout=60)
    finally:
        os.close(master)
    return child.returncode, err.decode()


def test_wrong_answer_writes_nothing(loops):
    disk = loops.make()
    before = sha256_of(disk.path)
    code, err = _run_on_pty(disk.path, "sdz")
    assert code == EXIT_REFUSED, err
    assert "not erasing" in err and "ALL DATA ON" in err
    assert sha256_of(disk.path) == before
    assert sha256_of(disk.image) == before


def test_right_answer_writes(loops):
    disk = loops.make()
    before = sha256_of(disk.path)
    code, err = _run_on_pty(disk.path, disk.name)
    assert code == EXIT_OK, err
    assert "Type the device name" in err
    with open(disk.path, "rb") as f:
        assert f.read(65536) == b"\xaa" * 65536
    assert sha256_of(disk.path) != before


def test_full_path_answer_accepted(loops):
    disk = loops.make()
    code, err = _run_on_pty(disk.path, disk.path)
    assert code == EXIT_OK, err


def test_no_terminal_without_yes_refused_nothing_written(loops):
    disk = loops.make()
    before = sha256_of(disk.path)
    child = python_child(
        CONFIRM_AND_WRITE,
        disk.path,
        "ask",
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, err = child.communicate(timeout=60)
    assert child.returncode == EXIT_REFUSED, err
    assert "no terminal" in err.decode() and "--yes" in err.decode()
    assert sha256_of(disk.path) == before


def test_yes_writes_without_a_terminal(loops):
    disk = loops.make()
    before = sha256_of(disk.path)
    child = python_child(
        CONFIRM_AND_WRITE,
        disk.path,
        "yes",
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, err = child.communicate(timeout=60)
    assert child.returncode == EXIT_OK, err
    assert sha256_of(disk.path) != before


def test_mounted_disk_refused_before_the_prompt(loops):
    disk = loops.make()
    loops.mount_ext4(disk.part(1))
    before = sha256_of(disk.path)
    code, err = _run_on_pty(disk.path, disk.name)
    assert code == EXIT_REFUSED, err
    assert "mounted" in err and "Type the device name" not in err
    assert sha256_of(disk.path) == before


def test_detached_loop_device_refused():
    free = sh("losetup", "--find").stdout.strip()  # a loop device with no backing file
    with pytest.raises(TargetRefused, match="not attached to any file") as info:
        check_block_target(free, need_bytes=1)
    assert "--loop" in info.value.hint
