"""Read-only facts about a target path: is it an image file or a block device, how large, which
sector size. Nothing here writes; :mod:`atvdisk.target.checks` builds the safety checks on top.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from atvdisk.errors import TargetRefused, UsageError

BLKGETSIZE64 = 0x80081272
BLKSSZGET = 0x1268
BLKPBSZGET = 0x127B


class TargetKind(StrEnum):
    IMAGE = "image"
    BLOCK = "block"


@dataclass(frozen=True)
class TargetSize:
    path: str
    kind: TargetKind
    size_bytes: int
    sector_size: int  # logical
    physical_sector_size: int


def probe_size(path: str | Path, *, image_sector_size: int = 512) -> TargetSize:
    """Size and sector size of an existing image file or block device, opened read-only."""
    path = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file or device", hint="for a new image give --size; for a disk see `atvdisk devices`") from None
    except PermissionError:
        raise TargetRefused(f"{path}: permission denied", hint="check the permissions of its directory, or run as root (sudo)") from None
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror}") from e
    if stat.S_ISREG(st.st_mode):
        return TargetSize(path, TargetKind.IMAGE, st.st_size, image_sector_size, image_sector_size)
    if not stat.S_ISBLK(st.st_mode):
        raise TargetRefused(f"{path} is neither a regular file nor a block device", hint="give a disk such as /dev/sdX or an image file")
    from_sysfs = _probe_sysfs(st.st_rdev)
    if from_sysfs is not None:
        size, lss, pss = from_sysfs
        return TargetSize(path, TargetKind.BLOCK, size, lss, pss)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except PermissionError:
        raise TargetRefused(f"{path}: permission denied", hint="run as root (sudo) to use a block device") from None
    except OSError as e:
        raise TargetRefused(f"{path}: cannot open: {e.strerror}") from e
    try:
        size = struct.unpack("Q", fcntl.ioctl(fd, BLKGETSIZE64, b"\0" * 8))[0]
        lss = struct.unpack("i", fcntl.ioctl(fd, BLKSSZGET, b"\0" * 4))[0]
        pss = struct.unpack("i", fcntl.ioctl(fd, BLKPBSZGET, b"\0" * 4))[0]
    finally:
        os.close(fd)
    return TargetSize(path, TargetKind.BLOCK, size, lss, pss)


def refuse_missing_device(path: str) -> None:
    """A path under /dev that does not exist is a mistyped disk, never a new image file."""
    resolved = os.path.realpath(path)
    in_dev = any(p == "/dev" or p.startswith("/dev/") for p in (os.path.normpath(os.path.abspath(path)), resolved))
    in_shm = resolved.startswith("/dev/shm/")  # tmpfs for files: an image there is an image
    if in_dev and not in_shm and not os.path.lexists(path):
        raise TargetRefused(
            f"{path} does not exist: there is no such disk",
            hint="see `atvdisk devices` for the disks attached (atvdisk never makes image files in /dev)",
        )


def check_readable(path: str | Path) -> None:
    """Refuse (TargetRefused, exit 3) a target this process cannot open for reading: an
    unprivileged user's ``verify /dev/sdX``, an image file without read permission."""
    path = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except PermissionError:
        raise TargetRefused(f"{path}: permission denied: cannot read it", hint="run as root (sudo) to read a disk, or check the file's permissions") from None
    except OSError as e:
        raise TargetRefused(f"{path}: cannot open it for reading: {e.strerror}") from None
    os.close(fd)


def _probe_sysfs(rdev: int) -> tuple[int, int, int] | None:
    """(size bytes, logical, physical sector size) from /sys without opening the device (so it
    works unprivileged, and on devices that refuse opens); None when sysfs does not say."""
    sysdir = Path("/sys/dev/block") / f"{os.major(rdev)}:{os.minor(rdev)}"
    try:
        sysdir = sysdir.resolve(strict=True)
        queue = sysdir / "queue" if (sysdir / "queue").is_dir() else sysdir.parent / "queue"  # partitions
        size = int((sysdir / "size").read_text()) * 512  # always 512-byte units, whatever the sector size
        lss = int((queue / "logical_block_size").read_text())
        pss = int((queue / "physical_block_size").read_text())
    except (OSError, ValueError):
        return None
    return size, lss, pss
