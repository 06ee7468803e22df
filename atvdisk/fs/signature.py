"""Which filesystem a partition holds, from its signature alone (as blkid would tell).

One job: :func:`probe` reads at most the first 8 KiB of a region of an open file or device and
answers with an :class:`~atvdisk.layout.schema.FsKind` (``NONE`` when it recognises nothing).
Used by ``verify`` to find the on-disk manifest, by ``rescue`` to find HFS+ volumes and by
``backup`` to choose how to map a partition's used blocks. Reads only; never trusts more than
the magic numbers (each reader checks the rest itself).
"""

from __future__ import annotations

import os
import struct

from atvdisk.layout.schema import FsKind

HFS_SIGNATURES = {b"H+": FsKind.HFSPLUS, b"HX": FsKind.HFSX}
EXT_MAGIC = 0xEF53
EXT4_INCOMPAT_EXTENTS = 0x40  # ext4 (an ext2/3 without it is reported as ext4 too: e2fsprogs reads all)


def probe(fd: int, offset: int, length: int) -> FsKind:
    """The filesystem at ``[offset, offset+length)`` of ``fd``, by signature."""
    head = _pread(fd, offset, min(length, 8192))
    if len(head) >= 4096 and head[4086:4096] in (b"SWAPSPACE2", b"SWAP-SPACE"):
        return FsKind.SWAP
    if len(head) >= 1026 and head[1024:1026] in HFS_SIGNATURES:
        return HFS_SIGNATURES[head[1024:1026]]
    if len(head) >= 1082 and struct.unpack_from("<H", head, 1024 + 56)[0] == EXT_MAGIC:
        return FsKind.EXT4
    if len(head) >= 512 and head[510:512] == b"\x55\xaa" and head[82:90] == b"FAT32   ":
        return FsKind.FAT32
    return FsKind.NONE


def _pread(fd: int, offset: int, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = os.pread(fd, n - len(out), offset + len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)
