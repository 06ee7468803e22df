"""newfs_hfs's sizing defaults: B-tree clump sizes, node sizes and the journal size.

Pure arithmetic on the volume size and block size, with no other dependency than the special
files' IDs, so that the plan (:mod:`atvdisk.layout.resolver`) can quote the same journal size the
writer will use without importing the writer's layout step. :mod:`.layout` applies these
defaults to every field of :class:`~atvdisk.fs.hfsplus.layout.VolumeOptions` left unset.
"""

from __future__ import annotations

from atvdisk.fs.hfsplus.records import kHFSAttributesFileID, kHFSCatalogFileID

KIB = 1024
MIB = 1024 * 1024
GIB = 1024 * MIB

# newfs_hfs clump table (MiB): volume size row -> (attributes, catalog, extents)
_CLUMP_TABLE = (
    (4, 4, 4), (6, 6, 4), (8, 8, 4), (11, 11, 5), (64, 32, 5), (84, 49, 6), (111, 74, 7),
    (147, 111, 8), (194, 169, 9), (256, 256, 11), (294, 294, 14), (338, 338, 16),
    (388, 388, 20), (446, 446, 25), (512, 512, 32),
)  # fmt: skip


def max_clump_size(block_size: int, volume_bytes: int) -> int:
    """The largest clump size Apple's fsck_hfs accepts for a special file: a quarter of the
    volume's allocation blocks (rounded down), in bytes. A clump size must also be a multiple
    of the block size (and non-zero for the attributes file)."""
    return volume_bytes // block_size // 4 * block_size


def btree_clump_size(block_size: int, node_size: int, volume_bytes: int, file_id: int) -> int:
    """newfs_hfs's default clump (and initial) size of a B-tree file, in bytes.

    newfs_hfs takes 0.8 % of small volumes (at least 8 nodes) or a row of its table, in whole
    nodes and blocks. On volumes under 256 KiB that is more than the quarter of the volume
    fsck_hfs allows ("Invalid file clump size"), so it is cut to that limit: whole nodes where
    one fits, else whole blocks.
    """
    sectors = volume_bytes // 512
    mod = max(node_size, block_size)
    column = {kHFSAttributesFileID: 0, kHFSCatalogFileID: 1}.get(file_id, 2)
    if sectors < 0x200000:
        clump = sectors << 2
        clump = max(clump, 8 * node_size)
    else:
        i, s = 0, sectors >> 22
        while s and i < len(_CLUMP_TABLE) - 1:
            i += 1
            s >>= 1
        clump = _CLUMP_TABLE[i][column] * MIB
    clump = clump // mod * mod or mod
    limit = max_clump_size(block_size, volume_bytes)
    if clump > limit:
        clump = limit // mod * mod or limit
    return clump


def default_journal_size(volume_bytes: int, block_size: int) -> int:
    """newfs_hfs's default journal size: 8 MiB per started 100 GiB of volume, at most 512 MiB;
    512 KiB under 128 MiB; at least one block. (newfs_hfs's floor of sector size x sector size
    / 16 is 16 KiB for the 512-byte journal sectors written here, so it never binds.)"""
    if volume_bytes < 128 * MIB:
        size = 512 * KIB
    else:
        size = min(8 * MIB * (min(volume_bytes // (100 * GIB), 64) + 1), 512 * MIB)
    return max(size, block_size)


def default_catalog_node_size(block_size: int, volume_bytes: int) -> int:
    return 4096 if block_size < 4096 or volume_bytes < GIB else 8192


__all__ = [
    "GIB",
    "KIB",
    "MIB",
    "btree_clump_size",
    "max_clump_size",
    "default_catalog_node_size",
    "default_journal_size",
]
