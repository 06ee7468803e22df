"""Fixtures for the target-layer tests: loop disks with GPT partitions, mounts and swap, always
cleaned up (even when a test fails). Holds no tests itself.

The host kernel may have no GPT parser, so partitions are added with ``partx -a`` (util-linux
reads the GPT in user space) after attaching with ``losetup --partscan`` (which also drops any
stale partitions a previous user of the loop device left behind).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

IS_ROOT = os.geteuid() == 0

# Root-only tests: CI runs as root, where nothing may skip (.ci/run fails on skipped root tests).
root_only = [
    pytest.mark.root,
    pytest.mark.skipif(not IS_ROOT, reason="needs root and loop devices"),
]

MIB = 1024 * 1024
SWAP_GUID = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
# 32 MiB disk: 1 "data" 8 MiB at 1 MiB, 2 "swap" 4 MiB after it (512-byte sectors).
GPT_TWO_PARTITIONS = f"""label: gpt
start=2048, size=16384, name=data
start=18432, size=8192, type={SWAP_GUID}, name=swap
"""


def sh(
    *cmd: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tool (not atvdisk's wrapper: these tests judge atvdisk with other people's tools)."""
    return subprocess.run(
        list(cmd), capture_output=True, text=True, check=check, input=input
    )


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MIB):
            h.update(chunk)
    return h.hexdigest()


def backing_loops(image: Path) -> list[str]:
    """Loop devices attached to ``image``, as losetup itself reports them."""
    out = sh(
        "losetup", "--noheadings", "--output", "NAME", "--associated", str(image)
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def swaps() -> list[str]:
    return [
        line.split()[0]
        for line in Path("/proc/swaps").read_text().splitlines()[1:]
        if line.strip()
    ]


def mount_sources() -> dict[str, str]:
    """mount point -> source, from findmnt (util-linux), for every mount."""
    out = sh("findmnt", "--raw", "--noheadings", "--output", "TARGET,SOURCE").stdout
    result = {}
    for line in out.splitlines():
        target, _, source = line.partition(" ")
        result[target.encode().decode("unicode_escape")] = source
    return result


@dataclass
class LoopDisk:
    image: Path
    path: str  # /dev/loopN
    partitions: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def part(self, n: int) -> str:
        return f"{self.path}p{n}"


class LoopDisks:
    """Makes loop disks for a test and tears down everything they got into."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.disks: list[LoopDisk] = []
        self.images: list[Path] = []
        self.count = 0

    def image(
        self, size: int = 32 * MIB, table: str | None = GPT_TWO_PARTITIONS
    ) -> Path:
        self.count += 1
        image = self.tmp_path / f"disk{self.count}.img"
        with open(image, "wb") as f:
            f.truncate(size)
        self.images.append(image)
        if table:
            sh(
                "sfdisk",
                "--quiet",
                "--no-reread",
                "--no-tell-kernel",
                str(image),
                input=table,
            )
        return image

    def attach(self, image: Path, *, partitions: bool = True) -> LoopDisk:
        path = sh(
            "losetup", "--find", "--show", "--partscan", str(image)
        ).stdout.strip()
        disk = LoopDisk(image, path)
        self.disks.append(disk)
        if partitions:
            sh("partx", "--add", path)
            out = sh("partx", "--raw", "--noheadings", "--output", "NR", path).stdout
            disk.partitions = [disk.part(int(n)) for n in out.split()]
            deadline = time.monotonic() + 10
            while not all(os.path.exists(p) for p in disk.partitions):
                assert time.monotonic() < deadline, (
                    f"partition nodes of {path} did not appear"
                )
                time.sleep(0.05)
        return disk

    def make(
        self, size: int = 32 * MIB, table: str | None = GPT_TWO_PARTITIONS
    ) -> LoopDisk:
        return self.attach(self.image(size, table), partitions=bool(table))

    def mount_ext4(self, device: str, name: str = "mnt") -> Path:
        sh("mkfs.ext4", "-q", "-F", "-L", "tdata", device)
        mountpoint = self.tmp_path / name
        mountpoint.mkdir(exist_ok=True)
        sh("mount", device, str(mountpoint))
        return mountpoint

    def swapon(self, device: str) -> None:
        sh("mkswap", "-L", "tswap", device)
        sh("swapon", device)

    def cleanup(self) -> None:
        errors = []
        for disk in reversed(self.disks):
            nodes = {disk.path, *disk.partitions}
            for s in swaps():
                if s in nodes:
                    r = sh("swapoff", s, check=False)
                    errors += [r.stderr] if r.returncode else []
            for target, source in sorted(
                mount_sources().items(), key=lambda kv: -len(kv[0])
            ):
                if source in nodes:
                    r = sh("umount", target, check=False)
                    errors += [r.stderr] if r.returncode else []
            if backing_loops(disk.image):
                sh("partx", "--delete", disk.path, check=False)
                r = sh("losetup", "--detach", disk.path, check=False)
                errors += [r.stderr] if r.returncode else []
        # Loop devices a test's child attached to its images and did not detach (a test that
        # failed half-way, a child killed before atvdisk attached with autoclear): never left
        # behind, but reported, so the test fails.
        for image in self.images:
            for path in backing_loops(image):
                sh("partx", "--delete", path, check=False)
                r = sh("losetup", "--detach", path, check=False)
                errors.append(f"{path} was still attached to {image}" + (f" and could not be detached: {r.stderr}" if r.returncode else ""))
        assert not errors, f"cleanup failed: {errors}"


def loop_disks(tmp_path: Path) -> Iterator[LoopDisks]:
    """Body of the ``loops`` fixture each test module defines: ``yield from loop_disks(tmp_path)``."""
    factory = LoopDisks(tmp_path)
    try:
        yield factory
    finally:
        factory.cleanup()


# A child process that does what a build does up to its first write: check, confirm, write.
# argv: disk, "yes"|"ask". Exit code: atvdisk's (3 = refused, nothing written).
CONFIRM_AND_WRITE = r"""
import os, sys
from atvdisk.errors import AtvdiskError
from atvdisk.target.checks import BlockDeviceSession, check_block_target, confirm_destruction

class Console:
    def out(self, text=""): print(text, file=sys.stderr)
    info = warn = out

try:
    report = check_block_target(sys.argv[1], need_bytes=1 << 20)
    confirm_destruction(report, yes=sys.argv[2] == "yes", console=Console())
    with BlockDeviceSession(report.path) as session:
        with session.exclusive() as fd:
            os.pwrite(fd, b"\xaa" * 65536, 0)
        session.fsync()
except AtvdiskError as e:
    print(f"error: {e}\nhint: {e.hint}", file=sys.stderr)
    sys.exit(e.exit_code)
print("written", file=sys.stderr)
"""


def python_child(script: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], **kwargs)
