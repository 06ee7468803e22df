"""Each phase of the layout step alone (atvdisk.fs.hfsplus.layout), checked against TN1150.

plan_volume runs these in order; the whole layout is judged by pyfshfs, pytsk3 and our reader
elsewhere (test_roundtrip, test_writer). Here every phase gets its inputs built by hand, so a
fault shows up in the phase that has it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from atvdisk.fs.hfsplus.errors import (
    HfsDuplicateNameError,
    HfsNameError,
    HfsSpaceError,
    HfsUnsupportedError,
)
from atvdisk.fs.hfsplus.layout import (
    TSK_THREAD_ROOM,
    Allocation,
    DataNeeds,
    ForkPlacement,
    Geometry,
    PlannedFile,
    VolumeOptions,
    allocate,
    assign_cnids,
    bitmap_blocks,
    check_names,
    data_needs,
    fit_btrees,
    journal_file_record,
    journal_size,
    plan_btrees,
    plan_catalog,
    resolve_options,
    volume_header,
)
from atvdisk.fs.hfsplus.names import NameOrder, encode_component
from atvdisk.fs.hfsplus.records import (
    HFSPlusCatalogFile,
    HFSPlusCatalogFolder,
    HFSPlusCatalogKey,
    HFSPlusCatalogThread,
    HFSPlusExtentKey,
    HFSPlusExtentRecord,
    kHFSBinaryCompare,
    kHFSCaseFolding,
    kHFSFirstUserCatalogNodeID,
    kHFSHasFolderCountMask,
    kHFSJMountVersion,
    kHFSPlusFileThreadRecord,
    kHFSPlusFolderThreadRecord,
    kHFSPlusMountVersion,
    kHFSPlusSigWord,
    kHFSRootFolderID,
    kHFSRootParentID,
    kHFSThreadExistsMask,
    kHFSUnusedNodeFixMask,
    kHFSVolumeJournaledMask,
    kHFSVolumeUnmountedMask,
    kHFSXSigWord,
    kIsInvisible,
    kJournalFileType,
    kNameLocked,
    unix_to_hfs,
)
from atvdisk.fs.hfsplus.tree import BytesSource, ExternalSource, HfsTree, Kind

KIB = 1024
MIB = 1 << 20
GIB = 1 << 30
T = 1_700_000_000


def _opts(**kw) -> VolumeOptions:
    kw.setdefault("create_time", T)
    kw.setdefault("volume_id", 0x0123456789ABCDEF)
    return VolumeOptions(**kw)


def _tree() -> HfsTree:
    t = HfsTree()
    t.add_dir("b", mode=0o750, uid=5, gid=6, mtime=1_000_000_000)
    t.add_file("b/x", BytesSource(b"x" * 5000))
    t.add_dir("b/sub")
    t.add_file("a", BytesSource(b""))
    t.add_symlink("c", "b/x")
    return t


# -- options -------------------------------------------------------------------------------


def test_resolve_options_fills_newfs_defaults() -> None:
    small = resolve_options(VolumeOptions(journaled=True), 64 * MIB)
    assert small.catalog_node_size == 4096  # 4 KiB nodes below 1 GiB
    assert small.journal_size == 512 * KIB  # 512 KiB journal below 128 MiB
    assert small.volume_id is not None and 0 <= small.volume_id < 2**64
    assert small.create_time is not None and small.create_time > T
    big = resolve_options(_opts(journaled=True), 40 * GIB)
    assert (big.catalog_node_size, big.journal_size) == (8192, 8 * MIB)
    assert (big.create_time, big.volume_id) == (T, 0x0123456789ABCDEF)  # given: kept
    assert resolve_options(_opts(), 40 * GIB).journal_size is None  # no journal, no size
    with pytest.raises(HfsUnsupportedError, match="volume id"):
        resolve_options(_opts(volume_id=2**64), 8 * MIB)
    with pytest.raises(HfsUnsupportedError, match="fragment_blocks"):
        resolve_options(_opts(fragment_blocks=0), 8 * MIB)
    with pytest.raises(HfsUnsupportedError, match="extents B-tree node size 256"):
        resolve_options(_opts(extents_node_size=256), 8 * MIB)
    with pytest.raises(HfsUnsupportedError, match="attributes B-tree node size 65536"):
        resolve_options(_opts(attributes_node_size=65536), 8 * MIB)


def test_at_most_2_32_minus_1_blocks() -> None:
    """TN1150: totalBlocks is a UInt32. 2 TiB of 512-byte blocks is one block too many."""
    assert resolve_options(_opts(block_size=512), (2**32 - 1) * 512).block_size == 512
    with pytest.raises(HfsUnsupportedError, match="more than 2\\^32 blocks"):
        resolve_options(_opts(block_size=512), 2**32 * 512)
    assert resolve_options(_opts(block_size=1024), 2**32 * 512).block_size == 1024


def test_geometry_reserves_the_headers() -> None:
    """TN1150 "Volume Header": 1024 reserved bytes + the 512-byte header at the start, the
    alternate header 1024 bytes before the end (and 512 reserved bytes after it)."""
    for bs, head, tail in ((512, 3, 2), (1024, 2, 1), (2048, 1, 1), (4096, 1, 1), (65536, 1, 1)):
        g = Geometry.of(8 * MIB, bs)
        assert (g.total_blocks, g.head, g.tail) == (8 * MIB // bs, head, tail)
        assert g.head * bs >= 1536 and (g.head - 1) * bs < 1536
        assert g.tail * bs >= 1024  # the alternate header and the 512 bytes after it


@pytest.mark.parametrize(
    "total, bs, blocks",
    [(8, 512, 1), (4096, 512, 1), (4097, 512, 2), (32768, 4096, 1), (32769, 4096, 2), (10**6, 4096, 31)],
)
def test_bitmap_blocks(total: int, bs: int, blocks: int) -> None:
    """TN1150 "Allocation File": one bit per allocation block, in whole blocks."""
    assert bitmap_blocks(total, bs) == blocks


# -- catalog node IDs --------------------------------------------------------------------------


def test_cnids_in_tree_order_from_16() -> None:
    entries = list(_tree().entries())
    ids = assign_cnids(entries, journaled=False)
    assert ids.of[()] == kHFSRootFolderID
    user = [ids.of[e.keys] for e in entries[1:]]
    assert user == list(range(kHFSFirstUserCatalogNodeID, kHFSFirstUserCatalogNodeID + len(user)))
    assert ids.next_id == kHFSFirstUserCatalogNodeID + len(user)
    assert (ids.journal, ids.journal_info) == (0, 0)
    # a parent is numbered before its children
    for e in entries[1:]:
        assert ids.of[e.keys[:-1]] < ids.of[e.keys]


def test_cnids_journal_files_first() -> None:
    entries = list(_tree().entries())
    ids = assign_cnids(entries, journaled=True)
    assert (ids.journal, ids.journal_info) == (16, 17)
    assert min(ids.of[e.keys] for e in entries[1:]) == 18
    assert ids.next_id == 18 + len(entries) - 1


# -- name order and duplicate checks -----------------------------------------------------------


def test_names_sort_keys_follow_the_volume_comparison() -> None:
    t = HfsTree()
    t.add_file("README", BytesSource(b""))
    t.add_file("d/readme", BytesSource(b""))  # same name, other directory: fine
    entries = list(t.entries())
    ci = check_names(entries, NameOrder(False), journaled=False)
    key_upper, key_lower = encode_component("README"), encode_component("readme")
    assert ci[key_upper] == ci[key_lower]  # kHFSCaseFolding: equal
    cs = check_names(entries, NameOrder(True), journaled=False)
    assert cs[key_upper] != cs[key_lower]  # kHFSBinaryCompare: distinct
    assert ci[b""] == NameOrder(False).empty_key


def test_names_duplicates_and_ignorables() -> None:
    t = HfsTree()
    t.add_file("d/Ab", BytesSource(b""))
    t.add_file("d/aB", BytesSource(b""))
    with pytest.raises(HfsDuplicateNameError) as info:
        check_names(list(t.entries()), NameOrder(False), journaled=False)
    assert {info.value.first, info.value.second} == {"Ab", "aB"} and info.value.path.startswith("d/")
    check_names(list(t.entries()), NameOrder(True), journaled=False)  # HFSX keeps both

    t = HfsTree()
    t.add_file("d/\u200c\u200d", BytesSource(b""))  # only ignorable code points
    with pytest.raises(HfsNameError, match="only of characters HFS\\+ ignores") as info2:
        check_names(list(t.entries()), NameOrder(False), journaled=False)
    assert info2.value.path == "d/\u200c\u200d"


def test_names_journal_files_reserved_in_the_root_only() -> None:
    t = HfsTree()
    t.add_file("sub/.journal", BytesSource(b""))
    t.add_file("sub/.journal_info_block", BytesSource(b""))
    check_names(list(t.entries()), NameOrder(False), journaled=True)
    for name in (".journal", ".journal_info_block", ".Journal"):
        t = HfsTree()
        t.add_file(name, BytesSource(b""))
        check_names(list(t.entries()), NameOrder(False), journaled=False)
        error = HfsNameError if name != ".Journal" else HfsDuplicateNameError
        with pytest.raises(error):
            check_names(list(t.entries()), NameOrder(False), journaled=True)


# -- catalog records and threads ---------------------------------------------------------------


def _catalog(opts: VolumeOptions, tree: HfsTree | None = None):
    opts = resolve_options(opts, 32 * MIB)
    entries = list((tree or _tree()).entries())
    ids = assign_cnids(entries, opts.journaled)
    sort_keys = check_names(entries, NameOrder(opts.case_sensitive), journaled=opts.journaled)
    return opts, entries, ids, plan_catalog(entries, ids, sort_keys, opts, encode_component(opts.volume_name))


def _fake_allocation(files: list[PlannedFile], journaled: bool) -> Allocation:
    """Blocks given out by hand, so the catalog phase is judged without the allocation phase."""
    for n, f in enumerate(files):
        f.extents = ((100 + 10 * n, 2),) if f.size else ()
    nothing = ForkPlacement(0, 0, 0, 0)
    journal = ForkPlacement(40, 128, 512 * KIB, 0) if journaled else None
    return Allocation(nothing, 39 if journaled else 0, journal, nothing, None, nothing, [], [], 0)


@pytest.mark.parametrize("hfsx", [False, True])
def test_catalog_records_threads_and_order(hfsx: bool) -> None:
    opts, entries, ids, cat = _catalog(_opts(case_sensitive=hfsx, volume_name="Vol"))
    built = list(cat.build(_fake_allocation(cat.files, False)))
    sizes = list(cat.sizes())
    # the sizes the B-tree is planned with are those of the records written, key for key
    assert [(k, len(d), r) for k, d, r in built] == sizes
    records = [(k, d) for k, d, _ in built]
    keys = [HFSPlusCatalogKey.unpack(k) for k, _ in records]
    # strictly in the catalog's key order (parent ID, then name under the volume's comparison)
    order = NameOrder(hfsx)
    sort = [(k.parentID, order.sort_key(k.nodeName.unicode)) for k in keys]
    assert sort == sorted(sort) and len(set(sort)) == len(sort)
    # keys sorted by parent ID, then name (the thread, with the empty name, first)
    parents = [k.parentID for k in keys]
    assert parents == sorted(parents)
    # one record and one thread per entry (the root's key is (1, volume name))
    assert len(records) == 2 * len(entries)
    by_key = {(k.parentID, k.nodeName.unicode): d for k, (_, d) in zip(keys, records, strict=True)}
    root = HFSPlusCatalogFolder.unpack(by_key[(kHFSRootParentID, encode_component("Vol"))])
    assert (root.folderID, root.valence) == (kHFSRootFolderID, 3)
    assert root.reserved == (1 if hfsx else 0)  # HFSX folders count their subfolders ("b")
    for e in entries[1:]:
        cnid, parent = ids.of[e.keys], ids.of[e.keys[:-1]]
        data = by_key[(parent, e.keys[-1])]
        thread = HFSPlusCatalogThread.unpack(by_key[(cnid, b"")])
        assert (thread.parentID, thread.nodeName.unicode) == (parent, e.keys[-1])
        if e.kind is Kind.DIR:
            assert thread.recordType == kHFSPlusFolderThreadRecord
            folder = HFSPlusCatalogFolder.unpack(data)
            assert (folder.folderID, folder.valence) == (cnid, len(e.child_keys))
            assert bool(folder.flags & kHFSHasFolderCountMask) is hfsx
            assert folder.reserved == (sum(1 for c in e.child_keys if c == encode_component("sub")) if hfsx else 0)
        else:
            assert thread.recordType == kHFSPlusFileThreadRecord
            f = HFSPlusCatalogFile.unpack(data)
            assert f.fileID == cnid and f.flags & kHFSThreadExistsMask
            assert f.dataFork.logicalSize == e.size
            assert f.dataFork.totalBlocks == (2 if e.size else 0)
    # folder threads keep TSK's 520 bytes of room after their key; file threads need none
    for key, data, room in built:
        if room:  # The Sleuth Kit 4.15 reads sizeof(hfs_thread) = 520 bytes after the key
            assert room == len(key) + 520 == len(key) + TSK_THREAD_ROOM
            assert HFSPlusCatalogThread.unpack(data).recordType == kHFSPlusFolderThreadRecord
    assert sum(1 for *_, r in built if r) == 1 + sum(1 for e in entries[1:] if e.kind is Kind.DIR)
    assert (cat.file_count, cat.folder_count) == (3, 2)
    assert [f.path for f in cat.files] == [e.path for e in entries if e.kind is not Kind.DIR]


def test_catalog_journal_files() -> None:
    opts, entries, ids, cat = _catalog(_opts(journaled=True))
    records = {k: d for k, d, _ in cat.build(_fake_allocation(cat.files, True))}
    assert (cat.file_count, cat.folder_count) == (5, 2)  # the journal's two files count
    jkey = HFSPlusCatalogKey.unpack(next(k for k in records if encode_component(".journal") in k))
    assert jkey.parentID == kHFSRootFolderID
    j = HFSPlusCatalogFile.unpack(records[jkey.pack()])
    assert j.fileID == ids.journal and j.dataFork.extents[0].startBlock == 40
    assert (j.dataFork.logicalSize, j.dataFork.totalBlocks) == (512 * KIB, 128)
    info_key = [k for k in records if encode_component(".journal_info_block") in k]
    info = HFSPlusCatalogFile.unpack(records[info_key[0]])
    assert info.fileID == ids.journal_info and info.dataFork.extents[0].startBlock == 39
    # as newfs_hfs dates them: the info block at the volume's creation, the journal a second later
    assert info.createDate == info.contentModDate == unix_to_hfs(T)
    assert j.createDate == j.contentModDate == unix_to_hfs(T) + 1
    assert info.dataFork.logicalSize == opts.block_size and info.dataFork.totalBlocks == 1


# -- forks -------------------------------------------------------------------------------------


def _files(*sizes: int) -> list[PlannedFile]:
    return [PlannedFile(f"f{i}", (b"",), 16 + i, Kind.FILE, s, ExternalSource(s), None) for i, s in enumerate(sizes)]


def test_data_needs_whole_blocks() -> None:
    needs = data_needs(_files(0, 1, 4096, 4097, 10 * 4096), 4096, None)
    assert needs == DataNeeds([0, 1, 1, 2, 10], 0, 14, 0)


def test_data_needs_fragments_and_overflow_records() -> None:
    """Eight extents fit a catalog record; each further eight take one overflow record."""
    needs = data_needs(_files(8 * 512, 9 * 512, 17 * 512, 0), 512, 1)
    assert needs.blocks == [8, 9, 17, 0]
    assert needs.overflow_records == 0 + 1 + 2
    assert needs.gap_blocks == 7 + 8 + 16
    assert data_needs(_files(20 * 512), 512, 4).overflow_records == 0  # 5 runs


# -- B-tree node counts ------------------------------------------------------------------------


def test_btrees_generous_and_tight() -> None:
    opts, _entries, _ids, cat = _catalog(_opts())
    generous = plan_btrees(opts, 32 * MIB, cat.sizes(), 0, generous=True)
    tight = plan_btrees(opts, 32 * MIB, cat.sizes(), 0, generous=False)
    # newfs_hfs: 0.8 % of a small volume, in whole nodes and blocks
    assert generous.catalog.file_size == generous.extents.file_size == 32 * MIB * 4 // 512
    assert generous.attributes is not None and generous.attributes.file_size == 32 * MIB * 4 // 512
    assert tight.catalog.total_nodes == 2  # header + one leaf holds 10 small records
    assert tight.extents.total_nodes == 1 and tight.attributes.total_nodes == 1
    assert tight.catalog.spec.key_compare_type == kHFSCaseFolding
    # TN1150: keyCompareType is reserved (zero) but in the catalog
    assert tight.extents.spec.key_compare_type == tight.attributes.spec.key_compare_type == 0
    assert generous.extents.header_record().keyCompareType == generous.attributes.header_record().keyCompareType == 0
    assert generous.blocks(4096) == 3 * 32 * MIB * 4 // 512 // 4096
    hfsx = resolve_options(_opts(case_sensitive=True, attributes_file=False), 32 * MIB)
    plans = plan_btrees(hfsx, 32 * MIB, cat.sizes(), 3, generous=False)
    assert plans.attributes is None and plans.catalog.spec.key_compare_type == kHFSBinaryCompare
    assert plans.extents.leaf_records == 3


def test_btrees_catalog_min_size() -> None:
    opts, _entries, _ids, cat = _catalog(_opts(catalog_min_size=3 * MIB))
    plans = plan_btrees(opts, 32 * MIB, cat.sizes(), 0, generous=True)
    assert plans.catalog.file_size == 3 * MIB


@pytest.mark.parametrize("journaled", [False, True])
def test_fit_btrees_shrinks_before_refusing(journaled: bool) -> None:
    opts, _entries, _ids, cat = _catalog(_opts(journaled=journaled))
    geometry = Geometry.of(32 * MIB, 4096)
    roomy = fit_btrees(geometry, opts, 32 * MIB, cat, DataNeeds([], 0, 0, 0))
    assert roomy.catalog.file_size == 256 * KIB
    # data that leaves no room for the clump-sized trees: they shrink to what they hold
    free = geometry.total_blocks - 1 - 1 - 1  # head, tail, bitmap
    if journaled:
        free -= 1 + 128  # the journal info block and a 512 KiB journal
    # catalog: header + 1 leaf of 4 KiB; extents: 1 node of 4 KiB; attributes: 1 node of 8 KiB
    tight = fit_btrees(geometry, opts, 32 * MIB, cat, DataNeeds([], 0, free - 5, 0))
    assert tight.blocks(4096) == 5 and tight.catalog.file_size == 8192
    with pytest.raises(HfsSpaceError) as info:
        fit_btrees(geometry, opts, 32 * MIB, cat, DataNeeds([], 0, free - 4, 0))
    assert info.value.shortfall == 4096
    with pytest.raises(HfsSpaceError) as info:
        fit_btrees(geometry, opts, 32 * MIB, cat, DataNeeds([], 0, free - 6, 2))  # gaps count too
    assert info.value.shortfall == 4096
    # without an attributes file its two blocks are free for data
    no_attr = resolve_options(replace(opts, attributes_file=False), 32 * MIB)
    plans = fit_btrees(geometry, no_attr, 32 * MIB, cat, DataNeeds([], 0, free - 3, 0))
    assert plans.attributes is None and plans.blocks(4096) == 3
    with pytest.raises(HfsSpaceError):
        fit_btrees(geometry, no_attr, 32 * MIB, cat, DataNeeds([], 0, free - 2, 0))


# -- journal -----------------------------------------------------------------------------------


def test_journal_size() -> None:
    assert journal_size(None, 64 * MIB, 4096) == 512 * KIB
    assert journal_size(None, 64 * MIB, 65536) == 512 * KIB
    assert journal_size(600_000, 64 * MIB, 4096) == 147 * 4096  # whole blocks, rounded up
    assert journal_size(512 * KIB, 64 * MIB, 4096) == 512 * KIB
    with pytest.raises(HfsUnsupportedError, match="below the 512 KiB"):
        journal_size(512 * KIB - 1, 64 * MIB, 4096)


def test_journal_file_record() -> None:
    f = HFSPlusCatalogFile.unpack(journal_file_record(16, 1234, 8 * MIB, 10, 2048))
    assert (f.fileID, f.createDate, f.contentModDate) == (16, 1234, 1234)
    assert f.userInfo.fileType == kJournalFileType
    assert f.userInfo.finderFlags == kIsInvisible | kNameLocked
    assert (f.permissions.ownerID, f.permissions.fileMode) == (0, 0o100000)
    assert (f.dataFork.logicalSize, f.dataFork.totalBlocks) == (8 * MIB, 2048)
    assert f.dataFork.extents[0].startBlock == 10 and f.dataFork.extents[0].blockCount == 2048


# -- allocation --------------------------------------------------------------------------------


def _allocate(opts: VolumeOptions, files: list[PlannedFile], size: int = 32 * MIB):
    opts = resolve_options(opts, size)
    geometry = Geometry.of(size, opts.block_size)
    needs = data_needs(files, opts.block_size, opts.fragment_blocks)
    trees = plan_btrees(opts, size, [], needs.overflow_records, generous=False)
    return geometry, allocate(geometry, opts, trees, files, needs)


def test_allocate_in_newfs_order() -> None:
    files = _files(5000, 0, 4096)
    geometry, a = _allocate(_opts(journaled=True), files)
    assert a.allocation.start == 1 and a.allocation.blocks == 1
    assert a.journal_info_block == 2
    assert a.journal is not None and (a.journal.start, a.journal.blocks) == (3, 128)
    assert a.extents.start == 3 + 128 and a.attributes is not None
    assert a.attributes.start == a.extents.start + a.extents.blocks
    assert a.catalog.start == a.attributes.start + a.attributes.blocks
    first = a.catalog.start + a.catalog.blocks
    assert [f.extents for f in files] == [((first, 2),), (), ((first + 2, 1),)]
    assert a.next_block == first + 3
    # used: everything up to next_block, and the alternate header at the end
    assert a.used_extents == [(0, first + 3), (geometry.total_blocks - 1, 1)]
    assert a.used_blocks == first + 4
    assert a.extents_records == []


def test_allocate_fragments_and_overflow_records() -> None:
    files = _files(10 * 512, 3 * 512, 17 * 512)
    geometry, a = _allocate(_opts(block_size=512, fragment_blocks=1), files, 8 * MIB)
    for f, n in zip(files, (10, 3, 17), strict=True):
        assert [c for _, c in f.extents] == [1] * n
        starts = [s for s, _ in f.extents]
        assert all(b - s == 2 for s, b in zip(starts, starts[1:], strict=False))  # one free block between
    keys = [HFSPlusExtentKey.unpack(k) for k, _ in a.extents_records]
    # file 0: blocks 8-9 in one record; file 2: 8-15 and 16
    assert [(k.fileID, k.startBlock) for k in keys] == [(16, 8), (18, 8), (18, 16)]
    assert all(k.forkType == 0 and k.pad == 0 for k in keys)  # the data fork (kHFSDataForkType)
    recs = [HFSPlusExtentRecord.unpack(r) for _, r in a.extents_records]
    assert recs[0].extents[0].startBlock == files[0].extents[8][0]
    assert sum(e.blockCount for e in recs[1].extents) == 8 and sum(e.blockCount for e in recs[2].extents) == 1
    # the alternate header takes two 512-byte blocks
    assert a.used_extents[-1] == (geometry.total_blocks - 2, 2)
    # used extents: sorted, merged (none touches the next), and exactly the blocks handed out
    for (s1, n1), (s2, _n2) in zip(a.used_extents, a.used_extents[1:], strict=False):
        assert s1 + n1 < s2
    used = {b for s, n in a.used_extents for b in range(s, s + n)}
    given = set(range(a.catalog.start + a.catalog.blocks)) | {s for f in files for s, _ in f.extents}
    given |= {geometry.total_blocks - 2, geometry.total_blocks - 1}
    assert used == given


# -- volume header -----------------------------------------------------------------------------


@pytest.mark.parametrize("hfsx, journaled", [(False, False), (True, True)])
def test_volume_header(hfsx: bool, journaled: bool) -> None:
    opts, entries, ids, cat = _catalog(_opts(case_sensitive=hfsx, journaled=journaled))
    geometry = Geometry.of(32 * MIB, 4096)
    a = _fake_allocation(cat.files, journaled)
    a.used_extents = [(0, 50), (geometry.total_blocks - 1, 1)]
    a.next_block = 50
    vh = volume_header(opts, geometry, ids, cat, a)
    assert vh.signature == (kHFSXSigWord if hfsx else kHFSPlusSigWord) and vh.version == (5 if hfsx else 4)
    assert vh.attributes & kHFSVolumeUnmountedMask and vh.attributes & kHFSUnusedNodeFixMask
    assert bool(vh.attributes & kHFSVolumeJournaledMask) is journaled
    assert vh.lastMountedVersion == (kHFSJMountVersion if journaled else kHFSPlusMountVersion)
    assert vh.journalInfoBlock == (39 if journaled else 0)
    assert (vh.fileCount, vh.folderCount) == (cat.file_count, cat.folder_count)
    assert (vh.totalBlocks, vh.freeBlocks) == (8192, 8192 - 51)
    assert vh.nextAllocation == 50 and vh.nextCatalogID == ids.next_id
    assert vh.createDate == vh.modifyDate == vh.checkedDate == unix_to_hfs(T)
    assert (vh.finderInfo[6], vh.finderInfo[7]) == (0x01234567, 0x89ABCDEF)
    assert vh.dataClumpSize == vh.rsrcClumpSize == 16 * 4096
    a.next_block = geometry.total_blocks  # a full volume: the search starts after the header
    assert volume_header(opts, geometry, ids, cat, a).nextAllocation == geometry.head


# -- record fields as TN1150 lays them out (issue 15) -------------------------------------------


def test_records_carry_every_date_and_the_file_fields() -> None:
    """Each entry's four dates land in their own fields (TN1150 "Catalog File Records": create,
    content modified, attributes modified, accessed), and a file record is byte for byte the
    record TN1150's structure gives for its fields: nothing else is set."""
    from atvdisk.fs.hfsplus.records import (
        S_IFLNK,
        S_IFREG,
        FileInfo,
        HFSPlusBSDInfo,
        HFSPlusExtentDescriptor,
        HFSPlusForkData,
        kSymLinkCreator,
        kSymLinkFileType,
    )

    t = HfsTree()
    times = {"crtime": 1_000_000_001, "mtime": 1_000_000_002, "ctime": 1_000_000_003, "atime": 1_000_000_004}
    t.add_dir("d", mode=0o750, uid=7, gid=8, **times)
    t.add_file("d/f", BytesSource(b"x" * 5000), mode=0o640, uid=9, gid=10, **times)
    t.add_symlink("d/l", "f", uid=11, gid=12, **times)
    opts, entries, ids, cat = _catalog(_opts(), t)
    records = {HFSPlusCatalogKey.unpack(k).nodeName.unicode: d for k, d, _ in cat.build(_fake_allocation(cat.files, False))}
    dates = tuple(unix_to_hfs(times[k]) for k in ("crtime", "mtime", "ctime", "atime"))
    d = HFSPlusCatalogFolder.unpack(records[encode_component("d")])
    assert (d.createDate, d.contentModDate, d.attributeModDate, d.accessDate, d.backupDate) == (*dates, 0)
    for name, kind in (("f", S_IFREG), ("l", S_IFLNK)):
        pf = next(p for p in cat.files if p.path == f"d/{name}")
        e = next(e for e in entries if e.path == pf.path)
        expected = HFSPlusCatalogFile(
            flags=kHFSThreadExistsMask,
            fileID=pf.cnid,
            createDate=dates[0],
            contentModDate=dates[1],
            attributeModDate=dates[2],
            accessDate=dates[3],
            permissions=HFSPlusBSDInfo(e.meta.uid, e.meta.gid, 0, 0, kind | e.meta.mode, 1),
            userInfo=FileInfo(kSymLinkFileType, kSymLinkCreator) if kind == S_IFLNK else FileInfo(),
            dataFork=HFSPlusForkData(pf.size, 0, pf.blocks, tuple(HFSPlusExtentDescriptor(s, c) for s, c in pf.extents)),
        )
        assert records[encode_component(name)] == expected.pack(), name


def test_files_without_times_take_the_volume_time_or_their_mtime() -> None:
    t = HfsTree()
    t.add_file("plain", BytesSource(b""))
    t.add_file("m", BytesSource(b""), mtime=1_000_000_000)
    t.add_dir("dm", mtime=1_000_000_000)
    _opts_, _entries, _ids, cat = _catalog(_opts(), t)
    records = {HFSPlusCatalogKey.unpack(k).nodeName.unicode: d for k, d, _ in cat.build(_fake_allocation(cat.files, False))}
    plain = HFSPlusCatalogFile.unpack(records[encode_component("plain")])
    assert {plain.createDate, plain.contentModDate, plain.attributeModDate, plain.accessDate} == {unix_to_hfs(T)}
    for name in ("m", "dm"):
        data = records[encode_component(name)]
        rec = (HFSPlusCatalogFile if name == "m" else HFSPlusCatalogFolder).unpack(data)
        assert {rec.createDate, rec.contentModDate, rec.attributeModDate, rec.accessDate} == {unix_to_hfs(1_000_000_000)}


def test_volume_id_range() -> None:
    for bad in (-1, 2**64):
        with pytest.raises(HfsUnsupportedError, match="volume id"):
            resolve_options(_opts(volume_id=bad), 8 * MIB)
    for good in (0, 2**64 - 1):
        assert resolve_options(_opts(volume_id=good), 8 * MIB).volume_id == good


@pytest.mark.parametrize("bs, clump", [(512, 8192), (1024, 16384), (4096, 65536), (8192, 65536), (16384, 65536), (65536, 65536)])
def test_default_data_clump_size_is_newfs_hfs(bs: int, clump: int) -> None:
    """newfs_hfs: 16 blocks, or 64 KiB rounded up to whole blocks when blocks exceed 4 KiB."""
    opts, _entries, ids, cat = _catalog(_opts(block_size=bs, volume_id=0))
    geometry = Geometry.of(32 * MIB, bs)
    a = _fake_allocation(cat.files, False)
    a.used_extents, a.next_block = [(0, 4)], 4
    vh = volume_header(opts, geometry, ids, cat, a)
    assert vh.dataClumpSize == vh.rsrcClumpSize == clump
    assert vh.finderInfo == (0,) * 8  # volume id 0


def test_encodings_bitmap_bits_follow_tn1150() -> None:
    """TN1150 "Volume Header": the bit for an encoding is its value, except the two encodings
    above 63, whose bits the document gives in parentheses (MacFarsi 140 (49), MacUkrainian
    152 (48))."""
    import re

    from atvdisk.fs.hfsplus.layout import encoding_bit, text_encoding_hint

    from .test_records import TN1150

    text = " ".join(TN1150.read_text(encoding="utf-8", errors="replace").split())
    special = {int(v): int(b) for v, b in re.findall(r"\b(\d{3}) \((\d{2})\)", text)}
    assert special == {140: 49, 152: 48}
    for value, bit in special.items():
        assert encoding_bit(value) == bit
    for value in (0, 1, 25, 35, 38, 47):
        assert encoding_bit(value) == value
    assert text_encoding_hint("plain") == text_encoding_hint("café") == 0  # MacRoman
    assert text_encoding_hint("日本") == 0x7E  # MacUnicode, as newfs_hfs marks the root
