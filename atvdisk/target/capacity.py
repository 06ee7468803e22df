"""Does a disk keep what is written to it? A probe against fake-capacity flash.

Counterfeit CF/SD cards and USB sticks report a capacity they do not have: writes beyond their
real size are dropped, or land on the real blocks again (the controller ignores the high
address bits: the disk "wraps"), while the page cache still holds what was written, so a build
and its verification would pass and the disk would lose its data later. :func:`probe_capacity`
finds both, before the build writes anything else:

- it writes a 4 KiB marker (a random nonce, its own offset, random bytes) at every multiple of
  a power-of-two step across the disk (at most :data:`MARKERS`, the first at byte 0 and one in
  the disk's last 4 KiB), in ascending order, with ``O_DIRECT`` and a flush;
- it drops the disk's cached pages and reads every marker back with ``O_DIRECT``, from the
  medium. A card of any power-of-two real size at least twice the step wraps a marker onto
  another marker (an offset modulo its size is a multiple of the step too), and one that
  drops writes reads back something else: either way a marker does not read back as written.
- it writes zeros over the markers again (the disk is being erased: nothing of the user's is
  lost that was not about to be).

Raises :class:`DeviceForgets` (a :class:`~atvdisk.errors.VerifyError`, exit 5) naming where
written data went missing and what real size that suggests.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import mmap
import os
import secrets
import struct
from dataclasses import dataclass

from atvdisk.errors import VerifyError
from atvdisk.layout.units import format_iec

log = logging.getLogger("atvdisk.capacity")

MARKER_BYTES = 4096  # a multiple of every logical sector size (512, 4096)
MARKERS = 128  # at most this many: 512 KiB written and read back
MAGIC = b"ATVDISK-CAPACITY-PROBE\0\0"  # 24 bytes
_HEAD = struct.Struct("<24s16sQQ")  # magic, nonce, offset, index
BLKFLSBUF = 0x1261  # flush the block device and drop its buffer cache


class DeviceForgets(VerifyError):
    """The disk does not keep what is written to it (probably a fake-capacity card)."""


@dataclass(frozen=True)
class CapacityReport:
    markers: int
    step: int  # bytes between markers
    size_bytes: int

    def describe(self) -> str:
        return f"{self.markers} markers {format_iec(self.step)} apart over {format_iec(self.size_bytes)} read back from the medium"


def marker_offsets(size_bytes: int, *, markers: int = MARKERS) -> tuple[int, list[int]]:
    """(step, offsets): every multiple of the largest power-of-two step that gives at most
    ``markers`` offsets below ``size_bytes``, and the disk's last whole 4 KiB block."""
    if size_bytes < 2 * MARKER_BYTES:
        return MARKER_BYTES, [0] if size_bytes >= MARKER_BYTES else []
    step = MARKER_BYTES
    while -(-size_bytes // step) > markers - 1:
        step *= 2
    offsets = list(range(0, size_bytes - MARKER_BYTES + 1, step))
    last = (size_bytes - MARKER_BYTES) // MARKER_BYTES * MARKER_BYTES
    if offsets[-1] != last:
        offsets.append(last)
    return step, offsets


def _marker(nonce: bytes, offset: int, index: int) -> bytes:
    head = _HEAD.pack(MAGIC, nonce, offset, index)
    body = bytearray()
    counter = 0
    while len(head) + len(body) < MARKER_BYTES:
        body += hashlib.sha256(nonce + struct.pack("<QQ", offset, counter)).digest()
        counter += 1
    return (head + bytes(body))[:MARKER_BYTES]


def drop_block_cache(fd: int) -> None:
    """Flush the block device behind ``fd`` and drop its cached pages (BLKFLSBUF, then
    POSIX_FADV_DONTNEED): what is read next comes from the medium."""
    os.fsync(fd)
    try:
        fcntl.ioctl(fd, BLKFLSBUF)
    except OSError as e:
        if e.errno not in (errno.ENOTTY, errno.EINVAL, errno.EACCES, errno.EPERM):
            raise
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def probe_capacity(fd: int, path: str, size_bytes: int, *, markers: int = MARKERS) -> CapacityReport:
    """Write markers across the disk open at ``fd`` (``path``, for messages), read them back
    from the medium, zero them (module docstring). ``fd`` is the caller's exclusive descriptor
    (BlockDeviceSession: nothing else writes the disk meanwhile); it is switched to ``O_DIRECT``
    for the probe and back."""
    step, offsets = marker_offsets(size_bytes, markers=markers)
    nonce = secrets.token_bytes(16)
    written = {off: _marker(nonce, off, i) for i, off in enumerate(offsets)}
    buf = mmap.mmap(-1, MARKER_BYTES)  # page-aligned, as O_DIRECT needs
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
    try:
        for off in offsets:
            buf[:] = written[off]
            _full(os.pwritev(fd, [buf], off), path, off, "write")
        drop_block_cache(fd)
        found: dict[int, bytes] = {}
        for off in offsets:
            _full(os.preadv(fd, [buf], off), path, off, "read")
            found[off] = bytes(buf)
        problems = _compare(written, found, nonce, size_bytes)
        buf[:] = bytes(MARKER_BYTES)
        for off in offsets:
            os.pwritev(fd, [buf], off)
        os.fsync(fd)
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        buf.close()
    if problems:
        raise DeviceForgets(
            [f"{path} does not keep what is written to it: {p}" for p in problems],
            hint=(
                f"{path} is probably a fake-capacity card or stick (it reports {format_iec(size_bytes)} but holds"
                " less), or it is failing: use another disk; f3probe (package f3) measures what it really holds"
            ),
        )
    report = CapacityReport(len(offsets), step, size_bytes)
    log.info("%s keeps what is written to it: %s", path, report.describe())
    return report


def _full(n: int, path: str, offset: int, what: str) -> None:
    if n != MARKER_BYTES:
        raise DeviceForgets([f"{path}: a {MARKER_BYTES}-byte {what} at byte {offset} moved {n} bytes (the disk ends early)"],
                            hint="the disk is smaller than it reports: probably a fake-capacity card, or it is failing")  # fmt: skip


def _compare(written: dict[int, bytes], found: dict[int, bytes], nonce: bytes, size_bytes: int) -> list[str]:
    problems = []
    wraps: list[tuple[int, int]] = []
    for off, data in found.items():
        if data == written[off]:
            continue
        magic, got_nonce, other, _ = _HEAD.unpack_from(data)
        if magic == MAGIC and got_nonce == nonce and other in written and data == written[other]:
            wraps.append((other, off))
            problems.append(
                f"what was written at byte {other} ({format_iec(other)}) reads back at byte {off} ({format_iec(off)}):"
                f" the disk wraps around after about {format_iec(other - off)}"
            )
        elif data == bytes(len(data)) or data == b"\xff" * len(data):
            problems.append(f"what was written at byte {off} ({format_iec(off)}) reads back as {'zeros' if data[0] == 0 else '0xff bytes'}: the write was dropped")
        else:
            problems.append(f"what was written at byte {off} ({format_iec(off)}) reads back as other data")
    if wraps:
        real = min(other - off for other, off in wraps)
        problems.insert(0, f"it reports {format_iec(size_bytes)} but holds about {format_iec(real)} ({len(problems)} of {len(written)} test blocks lost)")
        del problems[6:]  # the summary and the first five
    elif len(problems) > 6:
        n = len(problems)
        problems = [*problems[:5], f"... and {n - 5} more of the {len(written)} test blocks"]
    return problems


__all__ = ["CapacityReport", "DeviceForgets", "drop_block_cache", "marker_offsets", "probe_capacity"]
