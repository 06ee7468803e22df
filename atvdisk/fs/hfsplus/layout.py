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

The phases, each a function named after its TN1150 section and testable alone, in the order
:func:`plan_volume` runs them:

1. :func:`resolve_options` -- newfs_hfs's defaults for what the caller left unset;
2. :func:`assign_cnids` -- catalog node IDs ("Catalog Node IDs");
3. :func:`check_names` -- name order and duplicate checks ("Catalog File Key", "HFSX");
4. :func:`plan_catalog` -- folder, file and thread records, with their sizes ("Catalog File
   Data"): a compact description from which the records are generated in key order, one at a
   time, to size the catalog and again (with the forks placed) to write it;
5. :func:`data_needs` -- blocks per file and extents overflow records ("Fork Data Structure");
6. :func:`fit_btrees` / :func:`plan_btrees` -- B-tree node counts, and the size check ("B-Trees");
7. :func:`journal_size`, :func:`journal_file_record` -- the journal's size and files ("Journal");
8. :func:`allocate` -- every fork placed, in the order below ("Allocation File");
9. :func:`volume_header` -- the volume header ("Volume Header").

Defaults follow ``newfs_hfs`` (:mod:`atvdisk.fs.hfsplus.sizing`): 4 KiB blocks; catalog nodes of
8 KiB (4 KiB below 1 GiB or with blocks under 4 KiB); extents nodes 4 KiB; attributes nodes 8
KiB; B-tree files at least newfs_hfs's clump size (0.8 % of small volumes, a table above 1 GiB;
at most a quarter of the volume, as fsck_hfs requires) so the catalog can grow; journal 8 MiB
per 100 GiB (512 KiB below 128 MiB). When the tree does not fit with that headroom, the B-trees
shrink to what they hold before the layout gives up.

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
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from atvdisk.fs.hfsplus.btree import BTreePlan, BTreeSpec, plan_btree, plan_btree_stream
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
from atvdisk.fs.hfsplus.sizing import (
    KIB,
    btree_clump_size,
    default_catalog_node_size,
    default_journal_size,
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

JOURNAL_FILE = ".journal"
JOURNAL_INFO_FILE = ".journal_info_block"


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


class PlannedFile:
    """A file or symlink with its data placement (allocation-block extents).

    One per file of the volume, kept from the layout to the end of the write: slots, and a
    single extent (every file but the test-only fragmented ones) stored as two integers."""

    __slots__ = ("path", "keys", "cnid", "kind", "size", "source", "target", "_start", "_count", "_extents", "written")

    def __init__(
        self,
        path: str,
        keys: tuple[bytes, ...],
        cnid: int,
        kind: Kind,
        size: int,
        source: Source | None,
        target: str | None,
        extents: tuple[tuple[int, int], ...] = (),
    ) -> None:
        self.path = path
        self.keys = keys
        self.cnid = cnid
        self.kind = kind
        self.size = size
        self.source = source
        self.target = target
        self.extents = extents
        self.written = False  # external data received (VolumeWriter.write_external)

    @property
    def extents(self) -> tuple[tuple[int, int], ...]:
        """``(start block, block count)`` of each extent, in file order."""
        if self._extents is not None:
            return self._extents
        return ((self._start, self._count),) if self._count else ()

    @extents.setter
    def extents(self, extents: tuple[tuple[int, int], ...]) -> None:
        if len(extents) == 1:
            (self._start, self._count), self._extents = extents[0], None
        else:
            self._start, self._count, self._extents = 0, 0, (tuple(extents) if extents else None)

    @property
    def blocks(self) -> int:
        if self._extents is None:
            return self._count
        return sum(c for _, c in self._extents)

    def data(self) -> bytes | None:
        if self.kind is Kind.SYMLINK:
            assert self.target is not None
            return self.target.encode("utf-8")
        if isinstance(self.source, BytesSource):
            return self.source.data
        return None

    def __repr__(self) -> str:
        return f"PlannedFile({self.path!r}, cnid={self.cnid}, {self.kind.value}, size={self.size}, extents={self.extents})"


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
    catalog_source: CatalogPlan
    allocated: Allocation
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

    def catalog_records(self) -> Iterator[tuple[bytes, bytes, int]]:
        """Every catalog leaf record ``(key, data, room)``, in key order, built one at a time."""
        return self.catalog_source.build(self.allocated)

    def externals(self) -> dict[tuple[bytes, ...], PlannedFile]:
        return {f.keys: f for f in self.files if isinstance(f.source, ExternalSource)}


# ============================================================================================
# Options: newfs_hfs's defaults for everything the caller left unset.


def resolve_options(options: VolumeOptions, region_size: int) -> VolumeOptions:
    """``options`` checked and completed: node sizes, journal size, creation time, volume id."""
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
    js = journal_size(options.journal_size, region_size, bs) if options.journaled else None
    ct = int(time.time()) if options.create_time is None else int(options.create_time)
    vid = options.volume_id
    if vid is None:
        vid = int.from_bytes(os.urandom(8), "big")
    if not 0 <= vid < 2**64:
        raise HfsUnsupportedError(f"volume id {vid} is not a 64-bit unsigned integer")
    if options.fragment_blocks is not None and options.fragment_blocks < 1:
        raise HfsUnsupportedError("fragment_blocks must be at least 1")
    return replace(options, catalog_node_size=cns, journal_size=js, create_time=ct, volume_id=vid)


@dataclass(frozen=True)
class Geometry:
    """The volume's fixed areas, in allocation blocks (TN1150 "Volume Header": the first 1024
    bytes are reserved, the header takes the next 512, and the alternate volume header sits
    1024 bytes before the end, followed by 512 reserved bytes)."""

    block_size: int
    total_blocks: int
    head: int  # blocks 0 .. head-1: boot blocks and volume header
    tail: int  # the last blocks: alternate volume header (two blocks of 512 bytes)

    @classmethod
    def of(cls, region_size: int, block_size: int) -> Geometry:
        return cls(block_size, region_size // block_size, -(-1536 // block_size), 2 if block_size == 512 else 1)


def bitmap_blocks(total_blocks: int, block_size: int) -> int:
    """Blocks of the allocation file for ``total_blocks`` (TN1150 "Allocation File": one bit per
    block, the file a whole number of blocks): ceil(ceil(total / 8 bits) / block size)."""
    return -(-(-(-total_blocks // 8)) // block_size)


# ============================================================================================
# Catalog node IDs (TN1150 "Catalog File", "Catalog Node IDs").


@dataclass(frozen=True)
class CatalogIds:
    """The CNID of every entry (by its stored keys) and the volume's next free CNID.

    The root folder is kHFSRootFolderID (2); user entries count up from
    kHFSFirstUserCatalogNodeID (16) in tree order, after ``.journal`` (16) and
    ``.journal_info_block`` (17) on a journaled volume (``journal`` and ``journal_info`` are 0
    without a journal). ``next_id`` becomes the volume header's nextCatalogID.
    """

    of: dict[tuple[bytes, ...], int]
    journal: int
    journal_info: int
    next_id: int


def assign_cnids(entries: Sequence[TreeEntry], journaled: bool) -> CatalogIds:
    """CNIDs for ``entries`` (the tree's entries in tree order, the root first)."""
    cnid_of: dict[tuple[bytes, ...], int] = {(): kHFSRootFolderID}
    next_cnid = kHFSFirstUserCatalogNodeID
    jnl_cnid = jib_cnid = 0
    if journaled:
        jnl_cnid, jib_cnid = next_cnid, next_cnid + 1
        next_cnid += 2
    for e in entries[1:]:
        cnid_of[e.keys] = next_cnid
        next_cnid += 1
    if next_cnid > 0xFFFFFFFF:
        raise HfsUnsupportedError("too many entries for 32-bit catalog node IDs")
    return CatalogIds(cnid_of, jnl_cnid, jib_cnid, next_cnid)


# ============================================================================================
# Name order and duplicate checks (TN1150 "Catalog File Key", "HFSX", "Unicode Subtleties").


def check_names(entries: Sequence[TreeEntry], order: NameOrder, *, journaled: bool) -> dict[bytes, bytes]:
    """Check every directory's names under the volume's comparison; return their sort keys.

    Catalog keys are ordered by parent CNID, then by name under the volume's comparison
    (:class:`NameOrder`: Apple's case folding on HFS+, binary on HFSX). Two names of one
    directory that compare equal would be one key: refused with
    :class:`HfsDuplicateNameError`, naming both. A name equal to the empty name (made only of
    characters the comparison ignores) would equal the directory's thread key:
    :class:`HfsNameError`. On a journaled volume ``.journal`` and ``.journal_info_block`` in
    the root belong to the journal. Returns ``{stored name: sort key}`` for every name checked
    (and ``b""``), which the catalog phase reuses.
    """
    hfsx = order.case_sensitive
    by_keys = {e.keys: e for e in entries}
    sort_keys: dict[bytes, bytes] = {b"": order.empty_key}
    jnames = {}
    if journaled:
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
    return sort_keys


# ============================================================================================
# Catalog records and threads (TN1150 "Catalog File Data", "Catalog Folder Records",
# "Catalog File Records", "Catalog Thread Records").

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


# Catalog records are not kept: CatalogPlan holds a compact description of every entry (its
# name, metadata, parent and, for a folder, its children in catalog order) and generates the
# records in key order whenever they are needed (to size the B-tree, then to write it), one at
# a time. Key order (TN1150 "Catalog File Key": parent CNID, then name): the root folder's
# record (parent kHFSRootParentID), then for every CNID in increasing order its thread record
# (the empty name sorts first) followed, for a folder, by its children in the volume's name
# order. CNIDs are given in tree order, so the entries are visited in the order they were
# numbered.

_DIR, _FILE, _SYMLINK = 0, 1, 2
_KIND_CODE = {Kind.DIR: _DIR, Kind.FILE: _FILE, Kind.SYMLINK: _SYMLINK}
_JOURNAL, _JOURNAL_INFO = -1, -2  # the journal's two files among the root's children


class CatalogPlan:
    """The catalog's records, described compactly (see above), the files whose data needs
    blocks (in CNID order), and the volume's counts.

    :meth:`sizes` yields ``(key, data size, room)`` of every record in key order (for
    :func:`~atvdisk.fs.hfsplus.btree.plan_btree_stream`); :meth:`build` yields ``(key, data,
    room)`` once the blocks are allocated (file records hold their forks' extents, the
    journal's records its placement). ``room`` is what a record needs up to the end of its node
    (see :data:`TSK_THREAD_ROOM`)."""

    __slots__ = (
        "names", "kinds", "metas", "encodings_of", "parents", "refs", "first_cnid", "root_children",
        "vol_key", "journal_names", "journal_ids", "opts", "files", "file_count", "folder_count", "encodings",
    )  # fmt: skip

    def __init__(
        self,
        names: list[bytes],
        kinds: bytearray,
        metas: list[Meta],
        encodings_of: bytearray,
        parents: array,
        refs: list,
        first_cnid: int,
        root_children: list[int],
        vol_key: bytes,
        journal_names: tuple[bytes, bytes],
        journal_ids: tuple[int, int],
        opts: VolumeOptions,
        files: list[PlannedFile],
        file_count: int,
        folder_count: int,
        encodings: set[int],
    ) -> None:
        self.names = names  # entry i's stored name (entry 0: the root)
        self.kinds = kinds  # _DIR, _FILE or _SYMLINK
        self.metas = metas
        self.encodings_of = encodings_of  # text encoding hint of each name
        self.parents = parents  # parent CNID of each entry
        self.refs = refs  # a folder: its children (entry indexes, catalog order); a file: its PlannedFile
        self.first_cnid = first_cnid  # CNID of entry 1 (entry i: first_cnid + i - 1)
        self.root_children = root_children  # with _JOURNAL / _JOURNAL_INFO on a journaled volume
        self.vol_key = vol_key
        self.journal_names = journal_names
        self.journal_ids = journal_ids
        self.opts = opts
        self.files = files
        self.file_count = file_count
        self.folder_count = folder_count
        self.encodings = encodings

    def cnid(self, i: int) -> int:
        return kHFSRootFolderID if i == 0 else self.first_cnid + i - 1

    def _children(self, i: int) -> Sequence[int]:
        return self.root_children if i == 0 else self.refs[i]

    def _order(self) -> Iterator[tuple[bool, int]]:
        """``(is_thread, entry)`` of every record in key order."""
        yield False, 0  # the root folder: (kHFSRootParentID, volume name)
        yield True, 0
        for c in self.root_children:
            yield False, c
        if self.opts.journaled:
            yield True, _JOURNAL
            yield True, _JOURNAL_INFO
        kinds = self.kinds
        refs = self.refs
        for i in range(1, len(kinds)):
            yield True, i
            if kinds[i] == _DIR:
                for c in refs[i]:
                    yield False, c

    def _key(self, is_thread: bool, i: int) -> bytes:
        if i < 0:
            jcnid, jname = self._journal(i)
            return _catalog_key(jcnid, b"") if is_thread else _catalog_key(kHFSRootFolderID, jname)
        if is_thread:
            return _catalog_key(self.cnid(i), b"")
        if i == 0:
            return _catalog_key(kHFSRootParentID, self.vol_key)
        return _catalog_key(self.parents[i], self.names[i])

    def _journal(self, i: int) -> tuple[int, bytes]:
        j = 0 if i == _JOURNAL else 1
        return self.journal_ids[j], self.journal_names[j]

    def sizes(self) -> Iterator[tuple[bytes, int, int]]:
        """``(key, data size, room)`` of every record, in key order."""
        kinds = self.kinds
        names = self.names
        for is_thread, i in self._order():
            key = self._key(is_thread, i)
            if is_thread:
                name = self._journal(i)[1] if i < 0 else self.vol_key if i == 0 else names[i]
                folder = i >= 0 and kinds[i] == _DIR
                yield key, 10 + len(name), len(key) + TSK_THREAD_ROOM if folder else 0
            elif i >= 0 and kinds[i] == _DIR:
                yield key, HFSPlusCatalogFolder.SIZE, 0
            else:
                yield key, HFSPlusCatalogFile.SIZE, 0

    def build(self, allocation: Allocation) -> Iterator[tuple[bytes, bytes, int]]:
        """``(key, data, room)`` of every record, in key order, once ``allocation`` has placed
        the forks."""
        opts = self.opts
        hfsx = opts.case_sensitive
        ct = opts.create_time
        assert ct is not None
        kinds = self.kinds
        names = self.names
        metas = self.metas
        refs = self.refs
        parents = self.parents
        encs = self.encodings_of
        for is_thread, i in self._order():
            key = self._key(is_thread, i)
            if is_thread:
                if i < 0:
                    rtype, parent, name, room = kHFSPlusFileThreadRecord, kHFSRootFolderID, self._journal(i)[1], 0
                elif i == 0:
                    rtype, parent, name, room = kHFSPlusFolderThreadRecord, kHFSRootParentID, self.vol_key, TSK_THREAD_ROOM
                else:
                    folder = kinds[i] == _DIR
                    rtype = kHFSPlusFolderThreadRecord if folder else kHFSPlusFileThreadRecord
                    parent, name, room = parents[i], names[i], TSK_THREAD_ROOM if folder else 0
                # == HFSPlusCatalogThread(rtype, 0, parent, HFSUniStr255(name)).pack()
                yield key, _THREAD_HEAD.pack(rtype, 0, parent, len(name) // 2) + name, room and len(key) + room
                continue
            if i < 0:
                if i == _JOURNAL:
                    assert allocation.journal is not None
                    j = allocation.journal
                    size, start, blocks, date_off = j.logical_size, j.start, j.blocks, 1
                else:
                    size, start, blocks, date_off = opts.block_size, allocation.journal_info_block, 1, 0
                cnid = self._journal(i)[0]
                yield key, journal_file_record(cnid, unix_to_hfs(ct) + date_off, size, start, blocks), 0
                continue
            kind = kinds[i]
            m = metas[i]
            if kind == _DIR:
                children = self._children(i)
                valence = len(children)
                sub = sum(1 for c in children if c >= 0 and kinds[c] == _DIR)
                te = kTextEncodingMacUnicode if i == 0 else encs[i]
                yield key, _folder_record(m, self.cnid(i), valence, sub, te, hfsx, ct), 0
            else:
                yield key, _file_record(m, refs[i], kind == _SYMLINK, encs[i], ct), 0


def _folder_record(m: Meta, cnid: int, valence: int, sub: int, te: int, hfsx: bool, ct: int) -> bytes:
    return HFSPlusCatalogFolder(
        recordType=kHFSPlusFolderRecord,
        flags=kHFSHasFolderCountMask if hfsx else 0,
        valence=valence,
        folderID=cnid,
        **_dates(m, ct),
        backupDate=0,
        permissions=_bsd(m, S_IFDIR),
        userInfo=FolderInfo(),
        finderInfo=ExtendedFolderInfo(),
        textEncoding=te,
        reserved=sub if hfsx else 0,
    ).pack()


def _file_record(m: Meta, pf: PlannedFile, is_link: bool, te: int, ct: int) -> bytes:
    # Same bytes as HFSPlusCatalogFile(...).pack() (tests check it), without building a dozen
    # objects per file: this runs once per file.
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


def plan_catalog(
    entries: Sequence[TreeEntry],
    ids: CatalogIds,
    sort_keys: dict[bytes, bytes],
    opts: VolumeOptions,
    volume_key: bytes,
) -> CatalogPlan:
    """One folder or file record keyed (parent CNID, name) per entry, plus its thread record
    keyed (own CNID, empty name) pointing back at the parent and name; the root folder's key is
    (kHFSRootParentID, ``volume_key``: the volume name as stored). ``opts`` must be resolved
    (:func:`resolve_options`); ``sort_keys`` is what :func:`check_names` returned.

    HFSX folders count their subfolders (kHFSHasFolderCountMask); files and symlinks have
    kHFSThreadExistsMask; symlinks are files of type ``slnk``, creator ``rhap`` (TN1150
    "Symbolic Links"). A journaled volume's ``.journal`` and ``.journal_info_block`` are
    invisible, locked files in the root (TN1150 "Journal").
    """
    order = NameOrder(opts.case_sensitive)
    cnid_of = ids.of
    n = len(entries)
    first_cnid = cnid_of[entries[1].keys] if n > 1 else ids.next_id
    index: dict[tuple[bytes, ...], int] = {}
    names: list[bytes] = []
    kinds = bytearray(n)
    metas: list[Meta] = []
    encs = bytearray(n)
    parents = array("I", bytes(4 * n))
    refs: list = [None] * n
    files: list[PlannedFile] = []
    enc_used = {kTextEncodingMacRoman, kTextEncodingMacUnicode}
    folder_count = file_count = 0

    def sk(name: bytes) -> bytes:
        s = sort_keys.get(name)
        if s is None:
            s = order.sort_key(name)
        return s

    for i, e in enumerate(entries):
        if cnid_of[e.keys] != (first_cnid + i - 1 if i else kHFSRootFolderID):
            raise AssertionError("CNIDs are not in tree order")
        index[e.keys] = i
        names.append(e.keys[-1] if i else volume_key)
        kinds[i] = _KIND_CODE[e.kind]
        metas.append(e.meta)
        if i:
            parents[i] = cnid_of[e.keys[:-1]]
            te = text_encoding_hint(e.name)
            encs[i] = te
            enc_used.add(te)
        if e.kind is not Kind.DIR:
            file_count += 1
            pf = PlannedFile(e.path, e.keys, first_cnid + i - 1, e.kind, e.size, e.source, e.target)
            files.append(pf)
            refs[i] = pf
        elif i:
            folder_count += 1
    # each folder's children in the volume's name order (their catalog order)
    for i, e in enumerate(entries):
        if e.kind is Kind.DIR and i:
            kids = sorted(e.child_keys, key=sk)
            refs[i] = array("I", [index[e.keys + (k,)] for k in kids])
    root = entries[0]
    jnames = (encode_component(JOURNAL_FILE), encode_component(JOURNAL_INFO_FILE))
    root_named = [(sk(k), index[(k,)]) for k in root.child_keys]
    if opts.journaled:
        file_count += 2
        root_named += [(sk(jnames[0]), _JOURNAL), (sk(jnames[1]), _JOURNAL_INFO)]
    root_named.sort()
    return CatalogPlan(
        names, kinds, metas, encs, parents, refs, first_cnid, [c for _, c in root_named], volume_key,
        jnames, (ids.journal, ids.journal_info), opts, files, file_count, folder_count, enc_used,
    )  # fmt: skip


# ============================================================================================
# Forks: how many blocks each file's data needs (TN1150 "Fork Data Structure", "Extents
# Overflow File": a fork's first eight extents live in its catalog record, the rest in
# extent records of eight in the extents overflow B-tree).


@dataclass(frozen=True)
class DataNeeds:
    """Blocks each file needs (in the order of the files given), the extents overflow records
    their forks will take, and the totals."""

    blocks: list[int]
    overflow_records: int
    data_blocks: int
    gap_blocks: int


def data_needs(files: Sequence[PlannedFile], block_size: int, fragment_blocks: int | None) -> DataNeeds:
    """Each file's data rounded up to whole blocks in one extent, or with ``fragment_blocks``
    (tests) in runs of that many blocks with a free block between runs."""
    frag = fragment_blocks
    need = [-(-f.size // block_size) for f in files]

    def runs(n: int) -> int:
        return -(-n // frag) if frag else (1 if n else 0)

    overflow = sum(max(0, -(-(runs(n) - 8) // 8)) for n in need if runs(n) > 8)
    gaps = sum(max(0, runs(n) - 1) for n in need) if frag else 0
    return DataNeeds(need, overflow, sum(need), gaps)


# ============================================================================================
# B-tree node counts (TN1150 "B-Trees"; sizes as newfs_hfs makes them).


@dataclass(frozen=True)
class BTreePlans:
    """The node counts of the three B-trees (``attributes`` is None without one)."""

    catalog: BTreePlan
    attributes: BTreePlan | None
    extents: BTreePlan

    def blocks(self, block_size: int) -> int:
        """Allocation blocks the three B-tree files take."""
        return (
            self.extents.file_size // block_size
            + (self.attributes.file_size // block_size if self.attributes else 0)
            + self.catalog.file_size // block_size
        )


def btree_specs(opts: VolumeOptions) -> tuple[BTreeSpec, BTreeSpec, BTreeSpec]:
    """The catalog, extents and attributes B-trees' header facts: node size, maximum key
    length, attributes (big keys; variable-length index keys for catalog and attributes) and
    the catalog's key comparison (kHFSCaseFolding on HFS+, kHFSBinaryCompare on HFSX)."""
    cat_spec = BTreeSpec(
        opts.catalog_node_size or 4096,
        kHFSPlusCatalogKeyMaximumLength,
        kBTBigKeysMask | kBTVariableIndexKeysMask,
        kHFSBinaryCompare if opts.case_sensitive else kHFSCaseFolding,
    )
    ext_spec = BTreeSpec(opts.extents_node_size, kHFSPlusExtentKeyMaximumLength, kBTBigKeysMask, 0)
    attr_spec = BTreeSpec(
        opts.attributes_node_size, kHFSPlusAttrKeyMaximumLength, kBTBigKeysMask | kBTVariableIndexKeysMask, 0
    )
    return cat_spec, ext_spec, attr_spec


def plan_btrees(
    opts: VolumeOptions,
    region_size: int,
    catalog_records: Iterable[tuple[bytes, int, int]],
    overflow_records: int,
    *,
    generous: bool,
) -> BTreePlans:
    """Node counts of the catalog (its records' ``(key, data size, room)`` in key order), extents (``overflow_records`` records, all of
    one size) and attributes (empty) B-trees. ``generous``: each file at least newfs_hfs's
    clump size so the tree can grow (and the catalog at least ``opts.catalog_min_size``);
    otherwise just what the records need. Each file is a whole number of blocks."""
    bs = opts.block_size
    cat_spec, ext_spec, attr_spec = btree_specs(opts)
    ext_placeholder = [(HFSPlusExtentKey().pack(), HFSPlusExtentRecord.SIZE)] * overflow_records

    def mins(file_id: int, ns: int) -> int:
        if not generous:
            return 1
        return btree_clump_size(bs, ns, region_size, file_id) // ns

    def mult(ns: int) -> int:
        return max(1, bs // ns)

    clump = {fid: btree_clump_size(bs, ns, region_size, fid) for fid, ns in (
        (kHFSCatalogFileID, cat_spec.node_size),
        (kHFSExtentsFileID, ext_spec.node_size),
        (kHFSAttributesFileID, attr_spec.node_size),
    )}  # fmt: skip
    cp = plan_btree_stream(
        catalog_records,
        cat_spec,
        min_total_nodes=max(
            mins(kHFSCatalogFileID, cat_spec.node_size),
            -(-(opts.catalog_min_size or 0) // cat_spec.node_size),
        ),
        node_multiple=mult(cat_spec.node_size),
        clump_size=clump[kHFSCatalogFileID],
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
    return BTreePlans(cp, ap, ep)


def fit_btrees(geometry: Geometry, opts: VolumeOptions, region_size: int, catalog: CatalogPlan, needs: DataNeeds) -> BTreePlans:
    """The B-trees at newfs_hfs's sizes if everything fits with them, else at the sizes their
    records need; :class:`HfsSpaceError` (saying by how much) if even that does not fit."""
    bs = geometry.block_size
    total = geometry.total_blocks
    fixed_blocks = (
        geometry.head + geometry.tail + journal_blocks(opts) + needs.data_blocks + needs.gap_blocks
    )
    fixed = 0
    for generous in (True, False):
        plans = plan_btrees(opts, region_size, catalog.sizes(), needs.overflow_records, generous=generous)
        fixed = fixed_blocks + plans.blocks(bs)
        if fixed + bitmap_blocks(total, bs) <= total:
            return plans
    need = fixed
    while need < fixed + bitmap_blocks(need, bs):
        need = fixed + bitmap_blocks(need, bs)
    need_bytes = need * bs
    short = need_bytes - region_size
    raise HfsSpaceError(
        f"the tree does not fit: {catalog.file_count} files and {catalog.folder_count} directories "
        f"({format_iec(sum(f.size for f in catalog.files))} of data) need a volume of at least "
        f"{need_bytes} bytes ({format_iec(need_bytes)}), {short} bytes more than the "
        f"{region_size}-byte region",
        shortfall=short,
        hint=f"make the volume at least {format_iec(need_bytes)}, or leave files out",
    )


# ============================================================================================
# Journal (TN1150 "Journal": the journal info block and the journal file, both files of the
# root folder, ``.journal_info_block`` and ``.journal``).


def journal_size(requested: int | None, region_size: int, block_size: int) -> int:
    """The journal file's size: newfs_hfs's default for the volume, or ``requested`` (at least
    512 KiB), rounded up to whole blocks."""
    if requested is None:
        js = default_journal_size(region_size, block_size)
    elif requested < 512 * KIB:
        raise HfsUnsupportedError(f"journal size {requested} is below the 512 KiB minimum")
    else:
        js = requested
    return -(-js // block_size) * block_size


def journal_blocks(opts: VolumeOptions) -> int:
    """Blocks of the journal info block and the journal (0 on a volume without journal)."""
    if not opts.journaled:
        return 0
    return 1 + (opts.journal_size or 0) // opts.block_size


def journal_file_record(cnid: int, date: int, size: int, start: int, blocks: int) -> bytes:
    """The catalog file record of ``.journal`` or ``.journal_info_block``: invisible, name
    locked, type ``jrnl`` creator ``hfs+``, owned by root, no-dump, data in one extent."""
    return HFSPlusCatalogFile(
        recordType=kHFSPlusFileRecord,
        flags=kHFSThreadExistsMask,
        fileID=cnid,
        createDate=date,
        contentModDate=date,
        permissions=HFSPlusBSDInfo(0, 0, 0, UF_NODUMP, S_IFREG, 1),
        userInfo=FileInfo(kJournalFileType, kHFSPlusCreator, kIsInvisible | kNameLocked),
        textEncoding=kTextEncodingMacRoman,
        dataFork=HFSPlusForkData(size, 0, blocks, (HFSPlusExtentDescriptor(start, blocks),)),
    ).pack()


# ============================================================================================
# Allocation (TN1150 "Allocation File"; the order newfs_hfs uses, see the module docstring).


@dataclass
class Allocation:
    """Where every fork went: the special files, the journal, the extents overflow records of
    fragmented files (packed, in key order), the used block ranges (merged) and the block after
    the last one allocated. Files' extents are set on their :class:`PlannedFile`."""

    allocation: ForkPlacement
    journal_info_block: int
    journal: ForkPlacement | None
    extents: ForkPlacement
    attributes: ForkPlacement | None
    catalog: ForkPlacement
    extents_records: list[tuple[bytes, bytes]]
    used_extents: list[tuple[int, int]]
    next_block: int

    @property
    def used_blocks(self) -> int:
        return sum(n for _, n in self.used_extents)


def allocate(
    geometry: Geometry, opts: VolumeOptions, trees: BTreePlans, files: Sequence[PlannedFile], needs: DataNeeds
) -> Allocation:
    """Place the bitmap, the journal, the B-trees and each file's data, in that order, from the
    first block after the volume header; the last block(s) hold the alternate volume header.
    The size check (:func:`fit_btrees`) must have passed."""
    bs = geometry.block_size
    total_blocks = geometry.total_blocks
    tail = geometry.tail
    frag = opts.fragment_blocks
    cursor = geometry.head
    used: list[tuple[int, int]] = [(0, geometry.head)]

    def take(n: int) -> int:
        nonlocal cursor
        start = cursor
        cursor += n
        if n:
            used.append((start, n))
        return start

    def btree_fork(plan: BTreePlan) -> ForkPlacement:
        n = plan.file_size // bs
        return ForkPlacement(take(n), n, plan.file_size, plan.clump_size)

    bm_blocks = bitmap_blocks(total_blocks, bs)
    allocation = ForkPlacement(take(bm_blocks), bm_blocks, bm_blocks * bs, bm_blocks * bs)
    jib_block = 0
    journal = None
    if opts.journaled:
        jib_block = take(1)
        jnl_blocks = (opts.journal_size or 0) // bs
        journal = ForkPlacement(take(jnl_blocks), jnl_blocks, opts.journal_size or 0, 0)
    extents = btree_fork(trees.extents)
    attributes = btree_fork(trees.attributes) if trees.attributes is not None else None
    catalog = btree_fork(trees.catalog)

    ext_records: list[tuple[HFSPlusExtentKey, HFSPlusExtentRecord]] = []
    for f, n in zip(files, needs.blocks, strict=True):
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
        raise AssertionError("layout overflow")  # the size check prevents this
    ext_records.sort(key=lambda r: r[0].order())
    extents_records = [(k.pack(), r.pack()) for k, r in ext_records]
    if len(extents_records) != needs.overflow_records:
        raise AssertionError("overflow extent count mismatch")

    used.sort()
    merged: list[tuple[int, int]] = []
    for s, n in used:
        if merged and merged[-1][0] + merged[-1][1] == s:
            merged[-1] = (merged[-1][0], merged[-1][1] + n)
        else:
            merged.append((s, n))
    return Allocation(allocation, jib_block, journal, extents, attributes, catalog, extents_records, merged, cursor)


# ============================================================================================
# Volume header (TN1150 "Volume Header").


def volume_header(
    opts: VolumeOptions, geometry: Geometry, ids: CatalogIds, catalog: CatalogPlan, alloc: Allocation
) -> HFSPlusVolumeHeader:
    """The volume header (both copies): signature and version (H+ 4, or HX 5), attributes
    (unmounted, unused nodes zeroed, journaled), dates, counts, free blocks, default clump
    sizes, next CNID, encodings used, the volume id in finderInfo[6..7] and the special files'
    forks."""
    bs = geometry.block_size
    total_blocks = geometry.total_blocks
    hfsx = opts.case_sensitive
    ct = opts.create_time
    assert ct is not None
    vid = opts.volume_id or 0
    enc_bitmap = 0
    for enc in catalog.encodings:
        enc_bitmap |= 1 << encoding_bit(enc)
    attrs = kHFSVolumeUnmountedMask | kHFSUnusedNodeFixMask
    if opts.journaled:
        attrs |= kHFSVolumeJournaledMask
    clump_data = (-(-16 * 4096 // bs) * bs) if bs > 4096 else 16 * bs
    hdate = unix_to_hfs(ct)
    cursor = alloc.next_block
    return HFSPlusVolumeHeader(
        signature=kHFSXSigWord if hfsx else kHFSPlusSigWord,
        version=kHFSXVersion if hfsx else kHFSPlusVersion,
        attributes=attrs,
        lastMountedVersion=kHFSJMountVersion if opts.journaled else kHFSPlusMountVersion,
        journalInfoBlock=alloc.journal_info_block,
        createDate=hdate,
        modifyDate=hdate,
        backupDate=0,
        checkedDate=hdate,
        fileCount=catalog.file_count,
        folderCount=catalog.folder_count,
        blockSize=bs,
        totalBlocks=total_blocks,
        freeBlocks=total_blocks - alloc.used_blocks,
        nextAllocation=cursor if cursor < total_blocks else geometry.head,
        rsrcClumpSize=clump_data,
        dataClumpSize=clump_data,
        nextCatalogID=ids.next_id,
        writeCount=1,
        encodingsBitmap=enc_bitmap,
        finderInfo=(0, 0, 0, 0, 0, 0, vid >> 32, vid & 0xFFFFFFFF),
        allocationFile=alloc.allocation.fork_data(),
        extentsFile=alloc.extents.fork_data(),
        catalogFile=alloc.catalog.fork_data(),
        attributesFile=alloc.attributes.fork_data() if alloc.attributes else HFSPlusForkData(),
        startupFile=HFSPlusForkData(),
    )


# ============================================================================================
# The whole layout, phase by phase.


def plan_volume(tree: HfsTree, options: VolumeOptions, region_size: int) -> VolumeLayout:
    """Lay out ``tree`` on a volume of ``region_size`` bytes (see the module docstring)."""
    opts = resolve_options(options, region_size)
    volume_key = encode_component(opts.volume_name, path="volume name")
    entries: list[TreeEntry] = list(tree.entries())
    ids = assign_cnids(entries, opts.journaled)
    sort_keys = check_names(entries, NameOrder(opts.case_sensitive), journaled=opts.journaled)
    catalog = plan_catalog(entries, ids, sort_keys, opts, volume_key)
    geometry = Geometry.of(region_size, opts.block_size)
    needs = data_needs(catalog.files, opts.block_size, opts.fragment_blocks)
    trees = fit_btrees(geometry, opts, region_size, catalog, needs)
    alloc = allocate(geometry, opts, trees, catalog.files, needs)
    header = volume_header(opts, geometry, ids, catalog, alloc)
    return VolumeLayout(
        options=opts,
        region_size=region_size,
        block_size=geometry.block_size,
        total_blocks=geometry.total_blocks,
        head_blocks=geometry.head,
        tail_blocks=geometry.tail,
        allocation=alloc.allocation,
        journal_info_block=alloc.journal_info_block,
        journal=alloc.journal,
        extents=alloc.extents,
        attributes=alloc.attributes,
        catalog=alloc.catalog,
        extents_plan=trees.extents,
        attributes_plan=trees.attributes,
        catalog_plan=trees.catalog,
        extents_records=alloc.extents_records,
        catalog_source=catalog,
        allocated=alloc,
        files=catalog.files,
        used_extents=alloc.used_extents,
        header=header,
        counts={
            "files": catalog.file_count,
            "folders": catalog.folder_count,
            "data_bytes": sum(f.size for f in catalog.files),
        },
    )


__all__ = [
    "Allocation",
    "BTreePlans",
    "BytesSource",
    "CatalogIds",
    "CatalogPlan",
    "DataNeeds",
    "ExternalSource",
    "ForkPlacement",
    "Geometry",
    "PathSource",
    "PlannedFile",
    "VolumeLayout",
    "VolumeOptions",
    "allocate",
    "assign_cnids",
    "bitmap_blocks",
    "btree_specs",
    "check_names",
    "data_needs",
    "fit_btrees",
    "journal_blocks",
    "journal_file_record",
    "journal_size",
    "plan_btrees",
    "plan_catalog",
    "plan_volume",
    "resolve_options",
    "text_encoding_hint",
    "volume_header",
]
