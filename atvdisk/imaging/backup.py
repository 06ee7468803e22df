"""``atvdisk backup DISK FILE.img``: a sparse image of a whole disk that stores only the blocks
its filesystems use — small enough to keep; ``atvdisk write FILE.img DISK`` restores it.

One job: :func:`backup`. From the source (read-only, :mod:`atvdisk.target.source`) it copies the
first and last MiB of the disk (MBR, both GPTs), and of every GPT partition what its filesystem
marks in use (:func:`atvdisk.fs.usage.used`: HFS+ from its allocation file, FAT32 from its FAT,
ext4 from ``dumpe2fs``, swap's header) plus its first 64 KiB (boot blocks, signatures); a
partition whose filesystem it does not know is copied whole. All-zero blocks are not stored
(the file stays sparse), so free space full of old data costs nothing. The image is written
under a temporary name and appears at FILE only when complete; nothing is written to the source.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from atvdisk.errors import TargetRefused
from atvdisk.fs import usage
from atvdisk.fs.gpt import GptError, read_primary
from atvdisk.fs.signature import probe
from atvdisk.imaging.ranges import Ranges
from atvdisk.layout.schema import FsKind
from atvdisk.target.probe import TargetKind
from atvdisk.target.source import SourceDisk

EDGE = 1 << 20
HEAD = 64 * 1024
BLOCK = 64 * 1024
CHUNK = 8 << 20
_ZERO = bytes(BLOCK)


@dataclass
class PartitionBackup:
    number: int
    name: str
    kind: FsKind
    size: int
    kept: int  # bytes of it read and kept (used by the filesystem)
    whole: bool  # copied whole (unknown filesystem)
    note: str | None = None


@dataclass
class BackupReport:
    source: str
    output: str
    disk_bytes: int
    read: int = 0  # bytes read from the source
    stored: int = 0  # bytes of data in the image (non-zero blocks)
    partitions: list[PartitionBackup] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def plan_ranges(src: SourceDisk) -> tuple[Ranges, list[PartitionBackup], list[str]]:
    """The byte ranges of the source to keep, per partition."""
    keep = Ranges([(0, min(EDGE, src.size_bytes)), (max(0, src.size_bytes - EDGE), src.size_bytes)])
    parts: list[PartitionBackup] = []
    warnings: list[str] = []
    try:
        with os.fdopen(os.dup(src.fd), "rb") as f:
            table = read_primary(f, src.sector_size)
    except GptError as e:
        warnings.append(f"{src.path} has no readable GPT ({e}): every block is kept")
        return Ranges([(0, src.size_bytes)]), parts, warnings
    for number, e in table.partitions:
        start = e.first_lba * src.sector_size
        end = min(src.size_bytes, (e.last_lba + 1) * src.sector_size)
        if start >= end:
            continue
        kind = probe(src.fd, start, end - start)
        ranges = Ranges([(start, min(end, start + HEAD))])
        whole, note = False, None
        if kind is FsKind.NONE:
            whole, note = True, "no filesystem atvdisk knows: kept whole"
        else:
            try:
                ranges.update((a + start, b + start) for a, b in usage.used(src.path, src.fd, kind, start, end - start))
            except usage.UsageUnknown as err:
                whole, note = True, f"its {kind} could not be read ({err}): kept whole"
        if whole:
            ranges = Ranges([(start, end)])
        ranges = ranges.clip(start, end)
        keep.update(ranges)
        parts.append(PartitionBackup(number, e.name, kind, end - start, ranges.total, whole, note))
        if note:
            warnings.append(f"partition {number} ({e.name}): {note}")
    return keep, parts, warnings


def backup(src: SourceDisk, output: str, *, force: bool = False) -> BackupReport:
    out = Path(output)
    if out.exists() and not force:
        raise TargetRefused(f"{out} already exists", hint="give --force to replace it, or another name")
    if src.kind is TargetKind.IMAGE:
        try:
            if out.exists() and out.samefile(src.path):
                raise TargetRefused(f"{out} is the source itself", hint="give another name")
        except OSError:
            pass
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise TargetRefused(f"{directory}: no such directory", hint="create it first")
    keep, parts, warnings = plan_ranges(src)
    report = BackupReport(src.path, str(out), src.size_bytes, partitions=parts, warnings=warnings)
    tmp = directory / f".{out.name}.atvdisk-backup.partial"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.ftruncate(fd, src.size_bytes)
        for a, b in keep.aligned(BLOCK).clip(0, src.size_bytes):
            pos = a
            while pos < b:
                data = os.pread(src.fd, min(CHUNK, b - pos), pos)
                if not data:
                    raise TargetRefused(f"{src.path}: short read at byte {pos}", hint="the disk may be failing")
                report.read += len(data)
                view = memoryview(data)
                for i in range(0, len(data), BLOCK):
                    part = view[i : i + BLOCK]
                    if part != _ZERO[: part.nbytes]:
                        os.pwrite(fd, part, pos + i)
                        report.stored += part.nbytes
                pos += len(data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, out)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        if tmp.exists():
            tmp.unlink()
        raise
    return report


__all__ = ["BackupReport", "PartitionBackup", "backup", "plan_ranges"]
