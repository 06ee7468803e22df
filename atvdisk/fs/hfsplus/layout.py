"""The layout step: every block of the volume is decided here, before anything is written.

:func:`plan_volume` is pure computation over an :class:`~atvdisk.fs.hfsplus.tree.HfsTree` (no
I/O: host file sizes were taken when the tree was built). It returns a :class:`VolumeLayout`
that :class:`~atvdisk.fs.hfsplus.writer.VolumeWriter` writes verbatim, or raises before anything
is written:

* :class:`~atvdisk.fs.hfsplus.errors.HfsSpaceError` -- the tree does not fit; the message and
  ``shortfall`` say by how many bytes the region is too small (computed for the tightest
  metadata sizes);
* :class:`~atvdisk.fs.hfsplus.errors.HfsDuplicateNameError` -- two names in one directory are
  equal under the volume's comparison (``a``/``A`` on case-insensitive HFS+), naming both;
* :class:`~atvdisk.fs.hfsplus.errors.HfsNameError` -- a name is made only of characters the
  case-insensitive comparison ignores (it would equal the directory's thread key), or the
  volume name is invalid; invalid or too long names were already refused by the tree;
* :class:`~atvdisk.fs.hfsplus.errors.HfsUnsupportedError` -- bad block size or options.

Volume layout (allocation blocks), as Apple's ``newfs_hfs`` orders it::

    0 .. h-1        reserved: boot blocks + volume header (the first 1536 bytes)
    allocation file (bitmap)
    journal info block, journal            (journaled volumes)
    extents overflow B-tree
    attributes B-tree                      (empty, as newfs_hfs creates it)
    catalog B-tree
    file data, each file contiguous, in tree order
    free space
    last block (two with 512-byte blocks)  reserved: alternate volume header

Defaults follow ``newfs_hfs``: 4 KiB blocks; catalog nodes of 8 KiB (4 KiB below 1 GiB or with
blocks under 4 KiB); extents nodes 4 KiB; attributes nodes 8 KiB; B-tree files at least
newfs_hfs's clump size (0.8 % of small volumes, a table above 1 GiB) so the catalog can grow;
journal 8 MiB per 100 GiB (512 KiB below 128 MiB). When the tree does not fit with that
headroom, the B-trees shrink to what they hold before the layout gives up.

Determinism: the same tree and :class:`VolumeOptions` (with ``create_time`` and ``volume_id``
set) give the same layout and, written, the same bytes. Left unset, ``create_time`` is the
current time and ``volume_id`` random, as newfs_hfs does.

CNIDs are assigned in tree order (parents first, siblings in binary order of their stored
names) from 16 (18 on a journaled volume: ``.journal`` is 16, ``.journal_info_block`` 17).
"""

from __future__ import annotations

import os
import struct
import time
import unicodedata
from dataclasses import dataclass, field, replace

from atvdisk.fs.hfsplus.btree import BTreePlan, BTreeSpec, plan_btree
from atvdisk.fs.hfsplus.errors import (
    HfsDuplicateNameError,
    HfsNameError,
    HfsSpaceError,
    HfsUnsupportedError,
)
from atvdisk.fs.hfsplus.names import NameOrder, encode_component
from atvdisk.fs.hfsplus.records import (
    S_IFDIR,
    S_IFLNK,
    S_IFREG,
    UF_NODUMP,
    ExtendedFolderInfo,
    FileInfo,
    FolderInfo,
    HFSPlusBSDInfo,
    HFSPlusCatalogFile,
    HFSPlusCatalogFolder,
    HFSPlusExtentDescriptor,
    HFSPlusExtentKey,
    HFSPlusExtentRecord,
    HFSPlusForkData,
    HFSPlusVolumeHeader,
    kBTBigKeysMask,
    kBTVariableIndexKeysMask,
    kHFSAttributesFileID,
    kHFSBinaryCompare,
    kHFSCaseFolding,
    kHFSCatalogFileID,
    kHFSExtentsFileID,
    kHFSFirstUserCatalogNodeID,
    kHFSHasFolderCountMask,
    kHFSJMountVersion,
    kHFSPlusAttrKeyMaximumLength,
    kHFSPlusCatalogKeyMaximumLength,
    kHFSPlusCreator,
    kHFSPlusExtentKeyMaximumLength,
    kHFSPlusFileRecord,
    kHFSPlusFileThreadRecord,
    kHFSPlusFolderRecord,
    kHFSPlusFolderThreadRecord,
    kHFSPlusMountVersion,
    kHFSPlusSigWord,
    kHFSPlusVersion,
    kHFSRootFolderID,
    kHFSRootParentID,
    kHFSThreadExistsMask,
    kHFSUnusedNodeFixMask,
    kHFSVolumeJournaledMask,
    kHFSVolumeUnmountedMask,
    kHFSXSigWord,
    kHFSXVersion,
    kIsInvisible,
    kJournalFileType,
    kNameLocked,
    kSymLinkCreator,
    kSymLinkFileType,
    kTextEncodingMacRoman,
    kTextEncodingMacUnicode,
    unix_to_hfs,
)
from atvdisk.fs.hfsplus.tree import (
    BytesSource,
    ExternalSource,
    HfsTree,
    Kind,
    Meta,
    PathSource,
    Source,
    TreeEntry,
)
from atvdisk.layout.units import format_iec

KIB = 1024
MIB = 1024 * 1024
GIB = 1024 * MIB

JOURNAL_FILE = ".journal"
JOURNAL_INFO_FILE = ".journal_info_block"
JOURNAL_SECTOR = 512  # jhdr_size: the device sector size
JOURNAL_BLHDR_SIZE = 4096

# newfs_hfs clump table (MiB): volume size row -> (attributes, catalog, extents)
_CLUMP_TABLE = (
    (4, 4, 4), (6, 6, 4), (8, 8, 4), (11, 11, 5), (64, 32, 5), (84, 49, 6), (111, 74, 7),
    (147, 111, 8), (194, 169, 9), (256, 256, 11), (294, 294, 14), (338, 338, 16),
    (388, 388, 20), (446, 446, 25), (512, 512, 32),
)  # fmt: skip


def btree_clump_size(block_size: int, node_size: int, volume_bytes: int, file_id: int) -> int:
    """newfs_hfs's default clump (and initial) size of a B-tree file, in bytes."""
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
    clump = clump // mod * mod
    return clump or mod


def default_journal_size(volume_bytes: int, block_size: int) -> int:
    """newfs_hfs's default journal size for a volume (512-byte sectors)."""
    min_size = JOURNAL_SECTOR * (JOURNAL_SECTOR // 16)
    jscale = min(volume_bytes // (100 * GIB), 64)
    size = max(8 * MIB * (jscale + 1), min_size)
    if volume_bytes < 128 * MIB:
        size = max(512 * KIB, min_size)
    size = min(size, 512 * MIB)
    return max(size, block_size)


def default_catalog_node_size(block_size: int, volume_bytes: int) -> int:
    return 4096 if block_size < 4096 or volume_bytes < GIB else 8192


def text_encoding_hint(name: str) -> int:
    """MacRoman (0) when the name converts to it, else kTextEncodingMacUnicode (as newfs_hfs
    marks the root); both map to bit 0 of encodingsBitmap."""
    if name.isascii():
        return kTextEncodingMacRoman
    try:
        unicodedata.normalize("NFC", name).encode("mac_roman")
    except UnicodeEncodeError:
        return kTextEncodingMacUnicode
    return kTextEncodingMacRoman


def encoding_bit(encoding: int) -> int:
    if encoding < 48:
        return encoding
    return {152: 48, 140: 49}.get(encoding, 0)


@dataclass(frozen=True)
class VolumeOptions:
    """How to build the volume. ``None`` fields take newfs_hfs's defaults for the volume size.

    ``create_time`` (Unix seconds) becomes the volume's creation, modification and checked
    dates and the default time of entries without one; ``volume_id`` the 64-bit identifier in
    finderInfo[6..7] (what ``blkid`` prints as UUID). Set both for reproducible output.

    ``fragment_blocks`` is for tests only: it splits every file's data into runs of that many
    blocks separated by one free block, so that forks need the extents overflow B-tree.
    ``catalog_min_size`` forces a larger catalog file (e.g. to exercise B-tree map nodes).
    """

    volume_name: str = "untitled"
    case_sensitive: bool = False
    journaled: bool = False
    block_size: int = 4096
    journal_size: int | None = None
    create_time: int | None = None
    volume_id: int | None = None
    catalog_node_size: int | None = None
    extents_node_size: int = 4096
    attributes_node_size: int = 8192
    attributes_file: bool = True
    catalog_min_size: int | None = None
    fragment_blocks: int | None = None


@dataclass(frozen=True)
class ForkPlacement:
    """A special file placed in one contiguous extent."""

    start: int
    blocks: int
    logical_size: int
    clump_size: int

    def fork_data(self) -> HFSPlusForkData:
        if self.blocks == 0:
            return HFSPlusForkData()
        return HFSPlusForkData(
            self.logical_size,
            self.clump_size,
            self.blocks,
            (HFSPlusExtentDescriptor(self.start, self.blocks),),
        )


@dataclass
class PlannedFile:
    """A file or symlink with its data placement (allocation-block extents)."""

    path: str
    keys: tuple[bytes, ...]
    cnid: int
    kind: Kind
    size: int
    source: Source | None
    target: str | None
    extents: tuple[tuple[int, int], ...] = ()

    @property
    def blocks(self) -> int:
        return sum(c for _, c in self.extents)

    def data(self) -> bytes | None:
        if self.kind is Kind.SYMLINK:
            assert self.target is not None
            return self.target.encode("utf-8")
        if isinstance(self.source, BytesSource):
            return self.source.data
        return None


@dataclass
class VolumeLayout:
    """Everything the writer needs; see the module docstring for the block order."""

    options: VolumeOptions
    region_size: int
    block_size: int
    total_blocks: int
    head_blocks: int
    tail_blocks: int
    allocation: ForkPlacement
    journal_info_block: int
    journal: ForkPlacement | None
    extents: ForkPlacement
    attributes: ForkPlacement | None
    catalog: ForkPlacement
    extents_plan: BTreePlan
    attributes_plan: BTreePlan | None
    catalog_plan: BTreePlan
    extents_records: list[tuple[bytes, bytes]]
    catalog_records: list[tuple[bytes, bytes]]
    catalog_room: list[int]
    files: list[PlannedFile]
    used_extents: list[tuple[int, int]]
    header: HFSPlusVolumeHeader
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def free_blocks(self) -> int:
        return self.header.freeBlocks

    @property
    def used_bytes(self) -> int:
        return (self.total_blocks - self.free_blocks) * self.block_size

    def externals(self) -> dict[tuple[bytes, ...], PlannedFile]:
        return {f.keys: f for f in self.files if isinstance(f.source, ExternalSource)}

    def block_offset(self, block: int) -> int:
        return block * self.block_size


# --------------------------------------------------------------------------------------------


def _resolve(options: VolumeOptions, region_size: int) -> VolumeOptions:
    bs = options.block_size
    if isinstance(bs, bool) or not isinstance(bs, int) or bs < 512 or bs > 65536 or bs & (bs - 1):
        raise HfsUnsupportedError(
            f"invalid block size {bs}", hint="use a power of two from 512 to 65536 (4096 is best)"
        )
    if region_size % 512:
        raise HfsUnsupportedError(f"volume size {region_size} is not a multiple of 512 bytes")
    total = region_size // bs
    if total > 0xFFFFFFFF:
        raise HfsUnsupportedError(
            f"{region_size} bytes need more than 2^32 blocks of {bs} bytes",
            hint="use a larger --block-size",
        )
    cns = options.catalog_node_size or default_catalog_node_size(bs, region_size)
    for what, ns, lo in (
        ("catalog", cns, 4096),
        ("extents", options.extents_node_size, 512),
        ("attributes", options.attributes_node_size, 4096),
    ):
        if ns < lo or ns > 32768 or ns & (ns - 1):
            raise HfsUnsupportedError(f"invalid {what} B-tree node size {ns}")
    js = options.journal_size
    if options.journaled:
        if js is None:
            js = default_journal_size(region_size, bs)
        elif js < 512 * KIB:
            raise HfsUnsupportedError(f"journal size {js} is below the 512 KiB minimum")
        js = -(-js // bs) * bs
    ct = int(time.time()) if options.create_time is None else int(options.create_time)
    vid = options.volume_id
    if vid is None:
        vid = int.from_bytes(os.urandom(8), "big")
    if not 0 <= vid < 2**64:
        raise HfsUnsupportedError(f"volume id {vid} is not a 64-bit unsigned integer")
    if options.fragment_blocks is not None and options.fragment_blocks < 1:
        raise HfsUnsupportedError("fragment_blocks must be at least 1")
    return replace(
        options, catalog_node_size=cns, journal_size=js if options.journaled else None, create_time=ct, volume_id=vid
    )


_KEY_HEAD = struct.Struct(">HIH")
_THREAD_HEAD = struct.Struct(">hhIH")
_FILE_RECORD = HFSPlusCatalogFile._FULL
_ZEROS16 = [0] * 16


def _catalog_key(parent: int, name: bytes) -> bytes:
    """HFSPlusCatalogKey bytes (same as ``HFSPlusCatalogKey(parent, HFSUniStr255(name)).pack()``)."""
    return _KEY_HEAD.pack(6 + len(name), parent, len(name) // 2) + name


def _bsd(meta: Meta, ftype: int, special: int = 0) -> HFSPlusBSDInfo:
    return HFSPlusBSDInfo(meta.uid, meta.gid, 0, 0, ftype | meta.mode, special)


def _dates(meta: Meta, default: int) -> dict[str, int]:
    m = meta.mtime if meta.mtime is not None else default
    return dict(
        createDate=unix_to_hfs(meta.crtime if meta.crtime is not None else m),
        contentModDate=unix_to_hfs(m),
        attributeModDate=unix_to_hfs(meta.ctime if meta.ctime is not None else m),
        accessDate=unix_to_hfs(meta.atime if meta.atime is not None else m),
    )


def _fork(size: int, extents: tuple[tuple[int, int], ...]) -> tuple[HFSPlusForkData, list[HFSPlusExtentRecord]]:
    descs = [HFSPlusExtentDescriptor(s, c) for s, c in extents]
    total = sum(c for _, c in extents)
    overflow = [HFSPlusExtentRecord(tuple(descs[i : i + 8])) for i in range(8, len(descs), 8)]
    return HFSPlusForkData(size, 0, total, tuple(descs[:8])), overflow


# The Sleuth Kit (4.15, the version pytsk3 bundles) reads sizeof(hfs_thread) = 520 bytes after
# the key of a folder thread record when it lists a directory, and refuses the directory when
# fewer remain in the node. Folder threads are therefore never packed closer than that to the
# end of a leaf node: a little slack, and our volumes stay readable by TSK-based tools.
TSK_THREAD_ROOM = 520


@dataclass
class _Cat:
    """One catalog record before its data is known: key, sort order, data size, builder."""

    parent: int
    order: bytes
    key: bytes
    size: int
    build: object  # callable -> bytes
    room: int = 0


def plan_volume(tree: HfsTree, options: VolumeOptions, region_size: int) -> VolumeLayout:
    """Lay out ``tree`` on a volume of ``region_size`` bytes (see the module docstring)."""
    opts = _resolve(options, region_size)
    bs = opts.block_size
    total_blocks = region_size // bs
    order = NameOrder(opts.case_sensitive)
    hfsx = opts.case_sensitive
    ct = opts.create_time
    assert ct is not None
    vol_key = encode_component(opts.volume_name, path="volume name")

    entries: list[TreeEntry] = list(tree.entries())
    by_keys = {e.keys: e for e in entries}
    root = entries[0]

    # CNIDs
    cnid_of: dict[tuple[bytes, ...], int] = {(): kHFSRootFolderID}
    next_cnid = kHFSFirstUserCatalogNodeID
    jnl_cnid = jib_cnid = 0
    if opts.journaled:
        jnl_cnid, jib_cnid = next_cnid, next_cnid + 1
        next_cnid += 2
    for e in entries[1:]:
        cnid_of[e.keys] = next_cnid
        next_cnid += 1
    if next_cnid > 0xFFFFFFFF:
        raise HfsUnsupportedError("too many entries for 32-bit catalog node IDs")

    # Names per directory: duplicates under the volume's comparison, all-ignorable names.
    sort_keys: dict[bytes, bytes] = {b"": order.empty_key}
    jnames = {}
    if opts.journaled:
        jnames = {
            encode_component(JOURNAL_FILE): JOURNAL_FILE,
            encode_component(JOURNAL_INFO_FILE): JOURNAL_INFO_FILE,
        }
    for d in entries:
        if d.kind is not Kind.DIR:
            continue
        named = [(k, by_keys[d.keys + (k,)].name) for k in d.child_keys]
        if not d.keys:
            for k, n in jnames.items():
                if k in d.child_keys:
                    raise HfsNameError(
                        f"{n!r} in the root directory is reserved for the journal",
                        name=n,
                        path=n,
                        hint="build without --journal, or leave that file out",
                    )
                named.append((k, n))
        for k, _n in named:
            if k not in sort_keys:
                sort_keys[k] = order.sort_key(k)
        sk = sorted((sort_keys[k], k, n) for k, n in named)
        for i, (s, _k, n) in enumerate(sk):
            where = f"{d.path}/{n}" if d.path else n
            if s == order.empty_key:
                raise HfsNameError(
                    f"file name {n!r} consists only of characters HFS+ ignores when comparing names",
                    name=n,
                    path=where,
                    hint="rename it: it would be equal to the directory's own thread record",
                )
            if i and sk[i - 1][0] == s:
                first = sk[i - 1][2]
                where_dir = d.path or "/"
                raise HfsDuplicateNameError(
                    f"names {first!r} and {n!r} in directory {where_dir!r} are equal on a "
                    f"case-{'sensitive' if hfsx else 'insensitive'} HFS+ volume",
                    first=first,
                    second=n,
                    path=where,
                    hint="rename one of them"
                    + ("" if hfsx else ", or build a case-sensitive volume (--case-sensitive)"),
                )

    # Catalog records, with their sizes; data is built once blocks are allocated.
    files: list[PlannedFile] = []
    file_of: dict[tuple[bytes, ...], PlannedFile] = {}
    cats: list[_Cat] = []
    enc_used = {kTextEncodingMacRoman}
    folder_count = file_count = 0

    def add(parent: int, name: bytes, size: int, build, room: int = 0) -> None:
        key = _catalog_key(parent, name)
        sk = sort_keys.get(name)
        if sk is None:
            sk = sort_keys[name] = order.sort_key(name)
        cats.append(_Cat(parent, sk, key, size, build, room and len(key) + room))

    def thread(cnid: int, rtype: int, parent: int, name: bytes) -> None:
        # == HFSPlusCatalogThread(rtype, 0, parent, HFSUniStr255(name)).pack()
        rec = _THREAD_HEAD.pack(rtype, 0, parent, len(name) // 2) + name
        room = TSK_THREAD_ROOM if rtype == kHFSPlusFolderThreadRecord else 0
        add(cnid, b"", len(rec), lambda rec=rec: rec, room)

    # root folder
    root_children = len(root.child_keys) + (2 if opts.journaled else 0)
    root_sub = sum(1 for k in root.child_keys if by_keys[(k,)].kind is Kind.DIR)

    def folder_rec(e: TreeEntry, cnid: int, valence: int, sub: int, te: int) -> bytes:
        return HFSPlusCatalogFolder(
            recordType=kHFSPlusFolderRecord,
            flags=kHFSHasFolderCountMask if hfsx else 0,
            valence=valence,
            folderID=cnid,
            **_dates(e.meta, ct),
            backupDate=0,
            permissions=_bsd(e.meta, S_IFDIR),
            userInfo=FolderInfo(),
            finderInfo=ExtendedFolderInfo(),
            textEncoding=te,
            reserved=sub if hfsx else 0,
        ).pack()

    enc_used.add(kTextEncodingMacUnicode)
    add(kHFSRootParentID, vol_key, HFSPlusCatalogFolder.SIZE,
        lambda: folder_rec(root, kHFSRootFolderID, root_children, root_sub, kTextEncodingMacUnicode))  # fmt: skip
    thread(kHFSRootFolderID, kHFSPlusFolderThreadRecord, kHFSRootParentID, vol_key)

    for e in entries[1:]:
        cnid = cnid_of[e.keys]
        parent = cnid_of[e.keys[:-1]]
        name = e.keys[-1]
        te = text_encoding_hint(e.name)
        enc_used.add(te)
        if e.kind is Kind.DIR:
            folder_count += 1
            sub = sum(1 for k in e.child_keys if by_keys[e.keys + (k,)].kind is Kind.DIR)
            add(parent, name, HFSPlusCatalogFolder.SIZE,
                lambda e=e, c=cnid, v=len(e.child_keys), s=sub, t=te: folder_rec(e, c, v, s, t))  # fmt: skip
            thread(cnid, kHFSPlusFolderThreadRecord, parent, name)
        else:
            file_count += 1
            pf = PlannedFile(e.path, e.keys, cnid, e.kind, e.size, e.source, e.target)
            files.append(pf)
            file_of[e.keys] = pf

            def file_rec(e: TreeEntry = e, pf: PlannedFile = pf, te: int = te) -> bytes:
                # Same bytes as HFSPlusCatalogFile(...).pack() (tests check it), without
                # building a dozen objects per file: this runs once per file.
                m = e.meta
                is_link = e.kind is Kind.SYMLINK
                mt = m.mtime if m.mtime is not None else ct
                flat: list[int] = []
                for start, count in pf.extents[:8]:
                    flat += (start, count)
                flat += _ZEROS16[len(flat) :]
                return _FILE_RECORD.pack(
                    kHFSPlusFileRecord, kHFSThreadExistsMask, 0, pf.cnid,
                    unix_to_hfs(m.crtime if m.crtime is not None else mt), unix_to_hfs(mt),
                    unix_to_hfs(m.ctime if m.ctime is not None else mt),
                    unix_to_hfs(m.atime if m.atime is not None else mt), 0,
                    m.uid, m.gid, 0, 0, (S_IFLNK if is_link else S_IFREG) | m.mode, 1,
                    kSymLinkFileType if is_link else 0, kSymLinkCreator if is_link else 0, 0, 0, 0, 0,
                    0, 0, 0, 0, 0, 0, 0,
                    te, 0,
                    pf.size, 0, pf.blocks, *flat,
                    0, 0, 0, *_ZEROS16,
                )  # fmt: skip

            add(parent, name, HFSPlusCatalogFile.SIZE, file_rec)
            thread(cnid, kHFSPlusFileThreadRecord, parent, name)

    jinfo: dict[str, int] = {}
    if opts.journaled:
        file_count += 2
        for name, cnid, date_off, which in (
            (JOURNAL_FILE, jnl_cnid, 1, "journal"),
            (JOURNAL_INFO_FILE, jib_cnid, 0, "jib"),
        ):
            key = encode_component(name)

            def jrec(cnid: int = cnid, date_off: int = date_off, which: str = which) -> bytes:
                if which == "journal":
                    size, start, blocks = jinfo["size"], jinfo["start"], jinfo["blocks"]
                else:
                    size, start, blocks = bs, jinfo["jib"], 1
                d = unix_to_hfs(ct) + date_off
                return HFSPlusCatalogFile(
                    recordType=kHFSPlusFileRecord,
                    flags=kHFSThreadExistsMask,
                    fileID=cnid,
                    createDate=d,
                    contentModDate=d,
                    permissions=HFSPlusBSDInfo(0, 0, 0, UF_NODUMP, S_IFREG, 1),
                    userInfo=FileInfo(kJournalFileType, kHFSPlusCreator, kIsInvisible | kNameLocked),
                    textEncoding=kTextEncodingMacRoman,
                    dataFork=HFSPlusForkData(size, 0, blocks, (HFSPlusExtentDescriptor(start, blocks),)),
                ).pack()

            add(kHFSRootFolderID, key, HFSPlusCatalogFile.SIZE, jrec)
            thread(cnid, kHFSPlusFileThreadRecord, kHFSRootFolderID, key)

    cats.sort(key=lambda c: (c.parent, c.order))
    cat_sizes = [(c.key, c.size) for c in cats]
    cat_room = [c.room for c in cats]

    # Data block counts (and, in fragment mode, the overflow extents they will need).
    frag = opts.fragment_blocks
    need_blocks = {id(f): -(-f.size // bs) for f in files}

    def runs(n: int) -> int:
        return -(-n // frag) if frag else (1 if n else 0)

    overflow_count = sum(max(0, -(-(runs(n) - 8) // 8)) for n in need_blocks.values() if runs(n) > 8)
    data_blocks = sum(need_blocks.values())
    gap_blocks = sum(max(0, runs(n) - 1) for n in need_blocks.values()) if frag else 0

    cat_spec = BTreeSpec(
        opts.catalog_node_size or 4096,
        kHFSPlusCatalogKeyMaximumLength,
        kBTBigKeysMask | kBTVariableIndexKeysMask,
        kHFSBinaryCompare if hfsx else kHFSCaseFolding,
    )
    ext_spec = BTreeSpec(opts.extents_node_size, kHFSPlusExtentKeyMaximumLength, kBTBigKeysMask, 0)
    attr_spec = BTreeSpec(
        opts.attributes_node_size, kHFSPlusAttrKeyMaximumLength, kBTBigKeysMask | kBTVariableIndexKeysMask, 0
    )
    ext_placeholder = [(HFSPlusExtentKey().pack(), HFSPlusExtentRecord.SIZE)] * overflow_count

    head = -(-1536 // bs)
    tail = 2 if bs == 512 else 1
    jib_blocks = 1 if opts.journaled else 0
    jnl_blocks = (opts.journal_size or 0) // bs

    def trees(generous: bool) -> tuple[BTreePlan, BTreePlan | None, BTreePlan]:
        def mins(file_id: int, ns: int, extra: int = 0) -> int:
            if not generous:
                return 1
            c = btree_clump_size(bs, ns, region_size, file_id)
            return max(c, extra) // ns

        def mult(ns: int) -> int:
            return max(1, bs // ns)

        clump = {fid: btree_clump_size(bs, ns, region_size, fid) for fid, ns in (
            (kHFSCatalogFileID, cat_spec.node_size),
            (kHFSExtentsFileID, ext_spec.node_size),
            (kHFSAttributesFileID, attr_spec.node_size),
        )}  # fmt: skip
        cp = plan_btree(
            cat_sizes,
            cat_spec,
            min_total_nodes=max(
                mins(kHFSCatalogFileID, cat_spec.node_size),
                -(-(opts.catalog_min_size or 0) // cat_spec.node_size),
            ),
            node_multiple=mult(cat_spec.node_size),
            clump_size=clump[kHFSCatalogFileID],
            room=cat_room,
        )
        ep = plan_btree(
            ext_placeholder,
            ext_spec,
            min_total_nodes=mins(kHFSExtentsFileID, ext_spec.node_size),
            node_multiple=mult(ext_spec.node_size),
            clump_size=clump[kHFSExtentsFileID],
        )
        ap = None
        if opts.attributes_file:
            ap = plan_btree(
                [],
                attr_spec,
                min_total_nodes=mins(kHFSAttributesFileID, attr_spec.node_size),
                node_multiple=mult(attr_spec.node_size),
                clump_size=clump[kHFSAttributesFileID],
            )
        return cp, ap, ep

    def bitmap_blocks(total: int) -> int:
        return -(-(-(-total // 8)) // bs)  # ceil(ceil(total / 8 bits) / block size)

    def meta_blocks(cp: BTreePlan, ap: BTreePlan | None, ep: BTreePlan) -> int:
        return (
            head
            + tail
            + jib_blocks
            + jnl_blocks
            + ep.file_size // bs
            + (ap.file_size // bs if ap else 0)
            + cp.file_size // bs
        )

    plans = trees(True)
    fixed = meta_blocks(*plans) + data_blocks + gap_blocks
    if fixed + bitmap_blocks(total_blocks) > total_blocks:
        plans = trees(False)
        fixed = meta_blocks(*plans) + data_blocks + gap_blocks
        if fixed + bitmap_blocks(total_blocks) > total_blocks:
            need = fixed
            while need < fixed + bitmap_blocks(need):
                need = fixed + bitmap_blocks(need)
            need_bytes = need * bs
            short = need_bytes - region_size
            raise HfsSpaceError(
                f"the tree does not fit: {file_count} files and {folder_count} directories "
                f"({format_iec(sum(f.size for f in files))} of data) need a volume of at least "
                f"{need_bytes} bytes ({format_iec(need_bytes)}), {short} bytes more than the "
                f"{region_size}-byte region",
                shortfall=short,
                hint=f"make the volume at least {format_iec(need_bytes)}, or leave files out",
            )
    cat_plan, attr_plan, ext_plan = plans

    # Place everything.
    cursor = head
    used: list[tuple[int, int]] = [(0, head)]

    def take(n: int) -> int:
        nonlocal cursor
        start = cursor
        cursor += n
        if n:
            used.append((start, n))
        return start

    bm_blocks = bitmap_blocks(total_blocks)
    allocation = ForkPlacement(take(bm_blocks), bm_blocks, bm_blocks * bs, bm_blocks * bs)
    jib_block = 0
    journal = None
    if opts.journaled:
        jib_block = take(1)
        journal = ForkPlacement(take(jnl_blocks), jnl_blocks, opts.journal_size or 0, 0)
        jinfo.update(size=journal.logical_size, start=journal.start, blocks=journal.blocks, jib=jib_block)
    extents = ForkPlacement(take(ext_plan.file_size // bs), ext_plan.file_size // bs, ext_plan.file_size,
                            ext_plan.clump_size)  # fmt: skip
    attributes = None
    if attr_plan is not None:
        attributes = ForkPlacement(take(attr_plan.file_size // bs), attr_plan.file_size // bs,
                                   attr_plan.file_size, attr_plan.clump_size)  # fmt: skip
    catalog = ForkPlacement(take(cat_plan.file_size // bs), cat_plan.file_size // bs, cat_plan.file_size,
                            cat_plan.clump_size)  # fmt: skip

    ext_records: list[tuple[HFSPlusExtentKey, HFSPlusExtentRecord]] = []
    for f in files:
        n = need_blocks[id(f)]
        if n == 0:
            continue
        if frag:
            ext = []
            left = n
            while left:
                k = min(frag, left)
                ext.append((take(k), k))
                left -= k
                if left:
                    cursor += 1  # the gap stays free
            f.extents = tuple(ext)
        else:
            f.extents = ((take(n), n),)
        if len(f.extents) <= 8:
            continue
        _, overflow = _fork(f.size, f.extents)
        fork_block = sum(c for _, c in f.extents[:8])
        for rec in overflow:
            ext_records.append((HFSPlusExtentKey(0, 0, f.cnid, fork_block), rec))
            fork_block += sum(d.blockCount for d in rec.extents)
    used.append((total_blocks - tail, tail))
    if cursor > total_blocks - tail:
        raise AssertionError("layout overflow")  # the size check above prevents this
    ext_records.sort(key=lambda r: r[0].order())
    extents_records = [(k.pack(), r.pack()) for k, r in ext_records]
    if len(extents_records) != overflow_count:
        raise AssertionError("overflow extent count mismatch")

    catalog_records = [(c.key, c.build()) for c in cats]  # type: ignore[operator]
    for (_key, d), c in zip(catalog_records, cats, strict=True):
        if len(d) != c.size:
            raise AssertionError("catalog record size mismatch")

    used.sort()
    merged: list[tuple[int, int]] = []
    for s, n in used:
        if merged and merged[-1][0] + merged[-1][1] == s:
            merged[-1] = (merged[-1][0], merged[-1][1] + n)
        else:
            merged.append((s, n))
    used_blocks = sum(n for _, n in merged)

    vid = opts.volume_id or 0
    enc_bitmap = 0
    for enc in enc_used:
        enc_bitmap |= 1 << encoding_bit(enc)
    attrs = kHFSVolumeUnmountedMask | kHFSUnusedNodeFixMask
    if opts.journaled:
        attrs |= kHFSVolumeJournaledMask
    clump_data = (-(-16 * 4096 // bs) * bs) if bs > 4096 else 16 * bs
    hdate = unix_to_hfs(ct)
    header = HFSPlusVolumeHeader(
        signature=kHFSXSigWord if hfsx else kHFSPlusSigWord,
        version=kHFSXVersion if hfsx else kHFSPlusVersion,
        attributes=attrs,
        lastMountedVersion=kHFSJMountVersion if opts.journaled else kHFSPlusMountVersion,
        journalInfoBlock=jib_block,
        createDate=hdate,
        modifyDate=hdate,
        backupDate=0,
        checkedDate=hdate,
        fileCount=file_count,
        folderCount=folder_count,
        blockSize=bs,
        totalBlocks=total_blocks,
        freeBlocks=total_blocks - used_blocks,
        nextAllocation=cursor if cursor < total_blocks else head,
        rsrcClumpSize=clump_data,
        dataClumpSize=clump_data,
        nextCatalogID=next_cnid,
        writeCount=1,
        encodingsBitmap=enc_bitmap,
        finderInfo=(0, 0, 0, 0, 0, 0, vid >> 32, vid & 0xFFFFFFFF),
        allocationFile=allocation.fork_data(),
        extentsFile=extents.fork_data(),
        catalogFile=catalog.fork_data(),
        attributesFile=attributes.fork_data() if attributes else HFSPlusForkData(),
        startupFile=HFSPlusForkData(),
    )
    return VolumeLayout(
        options=opts,
        region_size=region_size,
        block_size=bs,
        total_blocks=total_blocks,
        head_blocks=head,
        tail_blocks=tail,
        allocation=allocation,
        journal_info_block=jib_block,
        journal=journal,
        extents=extents,
        attributes=attributes,
        catalog=catalog,
        extents_plan=ext_plan,
        attributes_plan=attr_plan,
        catalog_plan=cat_plan,
        extents_records=extents_records,
        catalog_records=catalog_records,
        catalog_room=cat_room,
        files=files,
        used_extents=merged,
        header=header,
        counts={"files": file_count, "folders": folder_count, "data_bytes": sum(f.size for f in files)},
    )


__all__ = [
    "VolumeOptions",
    "VolumeLayout",
    "PlannedFile",
    "ForkPlacement",
    "plan_volume",
    "btree_clump_size",
    "default_journal_size",
    "default_catalog_node_size",
    "text_encoding_hint",
    "PathSource",
    "BytesSource",
    "ExternalSource",
]
