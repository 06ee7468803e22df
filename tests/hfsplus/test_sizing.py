"""newfs_hfs's default sizes (atvdisk.fs.hfsplus.sizing), at the boundaries of every rule.

newfs_hfs (diskdev_cmds 540.1, newfs_hfs.c) sizes a B-tree file's clump as 0.8 % of volumes
under 1 GiB (at least 8 nodes) and from a table of one row per power of two from 1 GB to 16 TB
above. Its comment on that table: the catalog column from 16 GB to 512 GB grows by 8^(1/5) a
row, the attributes column by 4^(1/5), and both by 2^(1/5) from 1 TB to 16 TB; those rows are
computed here from that rule, not copied. The journal is 8 MiB per started 100 GiB (512 KiB
under 128 MiB), at most 512 MiB. Catalog nodes are 8 KiB from 1 GiB with 4 KiB blocks or more.
"""

from __future__ import annotations

import pytest

from atvdisk.fs.hfsplus.records import (
    kHFSAttributesFileID,
    kHFSCatalogFileID,
    kHFSExtentsFileID,
)
from atvdisk.fs.hfsplus.sizing import (
    btree_clump_size,
    default_catalog_node_size,
    default_journal_size,
)

KIB, MIB, GIB, TIB = 1 << 10, 1 << 20, 1 << 30, 1 << 40

# Rows 1 GB .. 8 GB (all three columns) and the extents column: as newfs_hfs lists them.
_SMALL_ROWS = [(4, 4, 4), (6, 6, 4), (8, 8, 4), (11, 11, 5)]
_EXTENTS = [4, 4, 4, 5, 5, 6, 7, 8, 9, 11, 14, 16, 20, 25, 32]


def _row(i: int) -> tuple[int, int, int]:
    """newfs_hfs's (attributes, catalog, extents) clump in MiB for row i (volume >= 2^i GiB)."""
    if i < 4:
        return _SMALL_ROWS[i]
    if i <= 9:
        return round(64 * 4 ** ((i - 4) / 5)), round(32 * 8 ** ((i - 4) / 5)), _EXTENTS[i]
    big = round(256 * 2 ** ((i - 9) / 5))
    return big, big, _EXTENTS[i]


@pytest.mark.parametrize("i", range(15))
def test_clump_table_rows(i: int) -> None:
    attributes, catalog, extents = _row(i)
    for volume in (2**i * GIB, 2 ** (i + 1) * GIB - 512):
        assert btree_clump_size(4096, 8192, volume, kHFSAttributesFileID) == attributes * MIB
        assert btree_clump_size(4096, 8192, volume, kHFSCatalogFileID) == catalog * MIB
        assert btree_clump_size(4096, 4096, volume, kHFSExtentsFileID) == extents * MIB


def test_clump_table_ends_at_16_tb() -> None:
    for volume in (32 * TIB, 64 * TIB, 2**32 * 65536):
        assert btree_clump_size(65536, 8192, volume, kHFSCatalogFileID) == 512 * MIB
        assert btree_clump_size(65536, 4096, volume, kHFSExtentsFileID) == 32 * MIB


def test_small_volumes_take_0_8_percent() -> None:
    # 4 bytes a sector, in whole nodes and blocks (rounded down), at least 8 nodes
    assert btree_clump_size(4096, 4096, 100 * MIB, kHFSCatalogFileID) == 100 * MIB // 512 * 4 // 4096 * 4096
    assert btree_clump_size(512, 4096, 64 * MIB, kHFSExtentsFileID) == 512 * KIB
    assert btree_clump_size(4096, 8192, 4 * MIB, kHFSAttributesFileID) == 8 * 8192  # 8 nodes
    assert btree_clump_size(65536, 4096, 8 * MIB, kHFSExtentsFileID) == 65536  # whole blocks
    # just under 1 GiB the 0.8 % (8 MiB) is larger than the 1 GB row's 4 MiB just above it
    assert btree_clump_size(4096, 4096, GIB - 512, kHFSCatalogFileID) == (GIB - 512) // 512 * 4 // 4096 * 4096
    assert btree_clump_size(4096, 4096, GIB, kHFSCatalogFileID) == 4 * MIB


@pytest.mark.parametrize(
    "volume, journal",
    [
        (64 * MIB, 512 * KIB),
        (128 * MIB - 512, 512 * KIB),
        (128 * MIB, 8 * MIB),
        (40 * GIB, 8 * MIB),
        (100 * GIB - 512, 8 * MIB),
        (100 * GIB, 16 * MIB),
        (250 * GIB, 24 * MIB),
        (6300 * GIB, 512 * MIB),  # 8 MiB x 64 = 512 MiB
        (6400 * GIB, 512 * MIB),  # 8 MiB x 65, cut to 512 MiB
        (100 * TIB, 512 * MIB),
    ],
)
def test_default_journal_size(volume: int, journal: int) -> None:
    for bs in (512, 4096, 65536):
        assert default_journal_size(volume, bs) == journal


def test_default_catalog_node_size() -> None:
    assert default_catalog_node_size(4096, GIB - 512) == 4096
    assert default_catalog_node_size(4096, GIB) == 8192
    assert default_catalog_node_size(2048, 4 * GIB) == 4096
    assert default_catalog_node_size(65536, GIB) == 8192
