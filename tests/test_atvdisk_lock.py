"""One atvdisk per disk (target.blockdev.AtvdiskLock), judged with flock(1): a holder refuses the
next atvdisk at once, naming the holder's pid; a probe (flock -s for an instant, as another
atvdisk's checks and the tests take it) does not. The lock directory is a temporary one."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from atvdisk.target import blockdev
from atvdisk.target.blockdev import AtvdiskLock, TargetBusy


@pytest.fixture
def lockfile(tmp_path, monkeypatch):
    monkeypatch.setattr(blockdev, "LOCK_DIRS", (str(tmp_path / "locks"),))
    disk = tmp_path / "disk"
    disk.write_bytes(b"")
    lock = AtvdiskLock(str(disk))
    (tmp_path / "locks").mkdir()
    path = tmp_path / "locks" / lock.name
    path.write_text("9939\n")  # a previous holder's pid, long gone
    return lock, path


def _held(path) -> bool:
    return subprocess.run(["flock", "-n", "-x", str(path), "true"]).returncode != 0


def test_a_probe_of_the_lock_does_not_refuse_an_atvdisk(lockfile):
    """Was: an atvdisk starting while a probe held the lock shared was refused, 'in use by another
    atvdisk (pid 9939)' -- the stale pid of a previous holder (tests/test_safety_model.py's
    second-build test failed so, its own probe racing the first build)."""
    lock, path = lockfile
    probe = subprocess.Popen(["flock", "-o", "-s", str(path), "sleep", "0.3"])
    try:
        deadline = time.monotonic() + 10
        while not _held(path):
            assert time.monotonic() < deadline and probe.poll() is None
            time.sleep(0.005)
        with lock:
            assert path.read_text() == f"{os.getpid()}\n"
            assert _held(path)
        assert not _held(path)
    finally:
        probe.wait()


def test_a_holder_refuses_the_next_atvdisk_at_once_naming_it(lockfile):
    lock, path = lockfile
    path.write_text("4242\n")
    holder = subprocess.Popen(["flock", "-o", "-x", str(path), "sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        while not _held(path):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        start = time.monotonic()
        with pytest.raises(TargetBusy, match=r"in use by another atvdisk \(pid 4242\)"):
            lock.__enter__()
        assert time.monotonic() - start < blockdev.LOCK_PROBE_GRACE + 2  # at once, not queued behind it
        assert lock.fd is None
    finally:
        holder.kill()
        holder.wait()
    with lock:  # free again once the holder is gone
        assert path.read_text() == f"{os.getpid()}\n"
