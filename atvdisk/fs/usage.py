"""Which bytes of a partition its filesystem relies on: for copying an image to a used disk
(what must read exactly as in the image, holes included) and for sparse backups (what to keep).

Two questions per filesystem, both answered in partition-relative byte ranges:

- :func:`metadata`: the structures at places the superblock or volume header names (ext4
  superblocks, group descriptors, bitmaps, inode tables; HFS+ volume headers, allocation file,
  B-tree files, journal info block; FAT boot and reserved sectors and FATs; the swap header). It
  needs only those headers to be right, not the bitmaps: after copying an image's data to a used
  disk, these ranges are zeroed where the image had holes, so that the bitmaps read right.
- :func:`used`: everything the filesystem marks in use (metadata and file data), from its own
  bitmaps: ``dumpe2fs`` for ext4, the allocation file for HFS+, the FAT for FAT32.

Reads only; a filesystem it cannot read raises :class:`UsageUnknown` (callers then keep or copy
the whole partition).
"""

from __future__ import annotations

import os
import re
import struct

from atvdisk.errors import AtvdiskError, ToolError
from atvdisk.fs.hfsplus.errors import HfsError
from atvdisk.fs.hfsplus.reader import HfsVolume
from atvdisk.fs.hfsplus.records import HFSPlusVolumeHeader
from atvdisk.layout.schema import FsKind
from atvdisk.run import run

Range = tuple[int, int]  # [start, end) in bytes from the partition's start


class UsageUnknown(AtvdiskError):
    """The filesystem's structures cannot be read (damaged, or an unsupported variant)."""


def metadata(device: str, fd: int, kind: FsKind, offset: int, length: int) -> list[Range]:
    if kind is FsKind.EXT4:
        return _ext4(device, offset)[0]
    if kind.is_hfs:
        return _hfs_metadata(fd, offset, length)
    if kind is FsKind.FAT32:
        return _fat(fd, offset, length, with_data=False)
    if kind is FsKind.SWAP:
        return [(0, min(4096, length))]
    raise UsageUnknown(f"no metadata map for {kind}")


def used(device: str, fd: int, kind: FsKind, offset: int, length: int) -> list[Range]:
    if kind is FsKind.EXT4:
        meta, data = _ext4(device, offset)
        return meta + data
    if kind.is_hfs:
        try:
            with HfsVolume(fd, offset, length, name=f"{device} at byte {offset}") as vol:
                bs = vol.block_size
                ranges = [(s * bs, (s + c) * bs) for s, c in vol.used_extents()]
                # The alternate volume header lies in the last 1 KiB of the partition, which
                # may be beyond the last whole block.
                return [*ranges, (0, min(length, max(2048, bs))), (length - 1024, length)]
        except HfsError as e:
            raise UsageUnknown(str(e)) from None
    if kind is FsKind.FAT32:
        return _fat(fd, offset, length, with_data=True)
    if kind is FsKind.SWAP:
        return [(0, min(4096, length))]
    raise UsageUnknown(f"no usage map for {kind}")


# -- ext4 ----------------------------------------------------------------------------------------

_GROUP = re.compile(r"^Group \d+: \(Blocks (\d+)-(\d+)\)")
_AT = re.compile(r"(superblock|Group descriptors|Reserved GDT blocks|Block bitmap|Inode bitmap|Inode table) at (\d+)(?:-(\d+))?")


def _ext4(device: str, offset: int) -> tuple[list[Range], list[Range]]:
    """(metadata, other used blocks) of the ext4 filesystem at ``offset``, from dumpe2fs."""
    try:
        out = run(["dumpe2fs", f"{device}?offset={offset}"]).stdout
    except ToolError as e:
        raise UsageUnknown(f"dumpe2fs cannot read the ext4 filesystem at byte {offset}: {e}") from None
    m = re.search(r"^Block size:\s+(\d+)", out, re.M)
    if not m:
        raise UsageUnknown("dumpe2fs printed no block size")
    bs = int(m.group(1))
    meta: list[Range] = []
    data: list[Range] = []
    group: tuple[int, int] | None = None
    for line in out.splitlines():
        g = _GROUP.match(line)
        if g:
            group = (int(g.group(1)), int(g.group(2)))
            continue
        for _what, a, b in _AT.findall(line):
            first = int(a)
            last = int(b) if b else first
            meta.append((first * bs, (last + 1) * bs))
        stripped = line.strip()
        if stripped.startswith("Free blocks:") and group is not None:
            free = []
            for part in stripped[len("Free blocks:") :].split(","):
                part = part.strip()
                if not part:
                    continue
                a, _, b = part.partition("-")
                free.append((int(a), int(b or a)))
            cursor = group[0]
            for a, b in sorted(free):
                if a > cursor:
                    data.append((cursor * bs, a * bs))
                cursor = max(cursor, b + 1)
            if cursor <= group[1]:
                data.append((cursor * bs, (group[1] + 1) * bs))
            group = None
    if not meta:
        raise UsageUnknown("dumpe2fs listed no block groups")
    # The first 1 KiB before the superblock (boot block) belongs to the filesystem's first block.
    meta.append((0, max(bs, 2048)))
    return meta, data


# -- HFS+ ---------------------------------------------------------------------------------------


def _hfs_metadata(fd: int, offset: int, length: int) -> list[Range]:
    """From the volume header alone: its blocks, the special files' extents, the journal info
    block and the journal's header."""
    raw = os.pread(fd, 512, offset + 1024)
    try:
        vh = HFSPlusVolumeHeader.unpack(raw)
    except (HfsError, struct.error, ValueError) as e:
        raise UsageUnknown(f"no readable HFS+ volume header: {e}") from None
    bs = vh.blockSize
    if bs < 512 or bs & (bs - 1) or vh.totalBlocks * bs > length:
        raise UsageUnknown(f"implausible HFS+ volume header (block size {bs}, {vh.totalBlocks} blocks)")
    out: list[Range] = [(0, max(2048, min(bs, length))), (length - 1024, length)]
    for fork in (vh.allocationFile, vh.extentsFile, vh.catalogFile, vh.attributesFile, vh.startupFile):
        for d in fork.extents:
            if d.blockCount and d.startBlock + d.blockCount <= vh.totalBlocks:
                out.append((d.startBlock * bs, (d.startBlock + d.blockCount) * bs))
    if vh.journalInfoBlock and vh.journalInfoBlock < vh.totalBlocks:
        jib = vh.journalInfoBlock * bs
        out.append((jib, jib + bs))
        info = os.pread(fd, 52, offset + jib)
        if len(info) == 52:
            j_offset, j_size = struct.unpack_from(">QQ", info, 36)
            if 0 < j_offset < length and j_size:
                out.append((j_offset, min(length, j_offset + 4096)))  # the journal header
    return out


# -- FAT32 --------------------------------------------------------------------------------------


def _fat(fd: int, offset: int, length: int, *, with_data: bool) -> list[Range]:
    bs = os.pread(fd, 512, offset)
    if len(bs) < 512 or bs[510:512] != b"\x55\xaa":
        raise UsageUnknown("no FAT boot sector")
    bps, spc, reserved, nfats = struct.unpack_from("<HBHB", bs, 11)
    fat_sectors = struct.unpack_from("<I", bs, 36)[0]
    if bps not in (512, 1024, 2048, 4096) or spc == 0 or nfats == 0 or fat_sectors == 0:
        raise UsageUnknown("implausible FAT boot sector")
    data_start = (reserved + nfats * fat_sectors) * bps
    if data_start > length:
        raise UsageUnknown("FAT areas larger than the partition")
    out: list[Range] = [(0, data_start)]
    if not with_data:
        return out
    cluster = bps * spc
    clusters = (length - data_start) // cluster
    fat_bytes = min(fat_sectors * bps, (clusters + 2) * 4)
    pos = 0
    run_start = None
    chunk = 1 << 20
    while pos < fat_bytes:
        block = os.pread(fd, min(chunk, fat_bytes - pos), offset + reserved * bps + pos)
        if not block:
            break
        entries = struct.unpack(f"<{len(block) // 4}I", block[: len(block) // 4 * 4])
        for i, value in enumerate(entries):
            n = pos // 4 + i
            if n < 2:
                continue
            used_cluster = value & 0x0FFFFFFF != 0
            if used_cluster and run_start is None:
                run_start = n
            elif not used_cluster and run_start is not None:
                out.append((data_start + (run_start - 2) * cluster, data_start + (n - 2) * cluster))
                run_start = None
        pos += len(block)
    if run_start is not None:
        out.append((data_start + (run_start - 2) * cluster, min(length, data_start + (fat_bytes // 4 - 2) * cluster)))
    return out


__all__ = ["UsageUnknown", "metadata", "used"]
