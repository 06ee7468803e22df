"""Reading HFS+ / HFSX volumes: header, catalog walk, file contents. For ``lshfs`` and
``atvdisk verify``.

::

    with HfsVolume.open(image, offset) as vol:
        vol.signature, vol.journaled, vol.clean, vol.volume_name
        for entry in vol.walk():                  # HfsEntry, parents before children
            entry.path, entry.kind, entry.mode, entry.size, entry.link_target
            digest = vol.sha256(entry)            # files: data fork, overflow extents included
        vol.check()                               # full B-tree structure check

Untrusted input is refused with :class:`~atvdisk.fs.hfsplus.errors.HfsCorruptError` and a message
saying what is wrong, never a traceback or a hang: every node descriptor and record offset is
checked, leaf chains and the folder hierarchy are walked with visited sets (cycles are
errors), loops are bounded by the node count, extents must lie inside the volume.

The reader does not replay journals: on a journaled volume whose journal holds transactions
(``journal_empty`` is False) the catalog may be stale.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

from atvdisk.fs.hfsplus.btree import BTreeSpec, Node, index_child, parse_node
from atvdisk.fs.hfsplus.errors import HfsCorruptError
from atvdisk.fs.hfsplus.names import NameOrder, decode_name
from atvdisk.fs.hfsplus.records import (
    JOURNAL_HEADER_MAGIC,
    S_IFDIR,
    S_IFLNK,
    S_IFMT,
    S_IFREG,
    BTHeaderRec,
    HFSPlusCatalogFile,
    HFSPlusCatalogFolder,
    HFSPlusCatalogKey,
    HFSPlusCatalogThread,
    HFSPlusExtentKey,
    HFSPlusExtentRecord,
    HFSPlusForkData,
    HFSPlusVolumeHeader,
    JournalHeader,
    JournalInfoBlock,
    hfs_to_unix,
    kBTHeaderNode,
    kBTIndexNode,
    kBTLeafNode,
    kHFSBinaryCompare,
    kHFSBootVolumeInconsistentMask,
    kHFSCatalogFileID,
    kHFSDataForkType,
    kHFSExtentsFileID,
    kHFSPlusCatalogKeyMaximumLength,
    kHFSPlusExtentKeyMaximumLength,
    kHFSPlusFileRecord,
    kHFSPlusFileThreadRecord,
    kHFSPlusFolderRecord,
    kHFSPlusFolderThreadRecord,
    kHFSPlusSigWord,
    kHFSPlusVersion,
    kHFSRootFolderID,
    kHFSRootParentID,
    kHFSVolumeJournaledMask,
    kHFSVolumeUnmountedMask,
    kHFSXSigWord,
    kHFSXVersion,
    kJIJournalInFSMask,
    kJIJournalNeedInitMask,
)

CHUNK = 1 << 20
MAX_DEPTH = 32
MAX_SYMLINK = 65536

T = TypeVar("T")


def _guard(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn parsing accidents on hostile input into HfsCorruptError."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except HfsCorruptError:
            raise
        except (struct.error, IndexError, ValueError, KeyError, OverflowError, UnicodeError, RecursionError) as e:
            raise HfsCorruptError(f"corrupt volume ({type(e).__name__}: {e})") from e

    return wrapper


def _guard_gen(fn: Callable[..., Iterator[T]]) -> Callable[..., Iterator[T]]:
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            yield from fn(*a, **kw)
        except HfsCorruptError:
            raise
        except (struct.error, IndexError, ValueError, KeyError, OverflowError, UnicodeError, RecursionError) as e:
            raise HfsCorruptError(f"corrupt volume ({type(e).__name__}: {e})") from e

    return wrapper


@dataclass(frozen=True)
class HfsEntry:
    """One catalog entry, as :meth:`HfsVolume.walk` yields it."""

    path: str  # names as stored (decomposed), '/'-joined, relative to the root
    path_nfc: str  # the same path in NFC (what users type)
    kind: str  # "dir", "file", "symlink" or "special"
    mode: int  # st_mode: file type and permission bits
    uid: int
    gid: int
    size: int  # data fork logical size (0 for directories)
    link_target: str | None
    cnid: int
    parent_cnid: int
    create_time: int  # Unix seconds
    mtime: int
    atime: int
    ctime: int
    valence: int  # directories: number of entries
    text_encoding: int
    finder_type: int
    finder_creator: int
    fork: HFSPlusForkData | None
    special: int = 0  # BSD info's special field: a hard link's iNodeNum (files), link count

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def _kind(mode: int, is_folder: bool) -> str:
    if is_folder:
        return "dir"
    t = mode & S_IFMT
    if t == S_IFLNK:
        return "symlink"
    if t in (S_IFREG, 0):
        return "file"
    return "special"


class HfsVolume:
    """A read-only view of an HFS+ / HFSX volume in a file or device region."""

    def __init__(self, fd: int, offset: int = 0, length: int | None = None, *, name: str = "volume",
                 _owns_fd: bool = False) -> None:
        self._fd = fd
        self._owns = _owns_fd
        self.offset = offset
        self.name = name
        if length is None:
            try:
                length = os.lseek(fd, 0, os.SEEK_END) - offset
            except OSError as e:
                raise HfsCorruptError(f"{name}: cannot size: {e.strerror}") from e
        if length < 1536:
            raise HfsCorruptError(f"{name}: {length} bytes is too small for an HFS+ volume")
        self.length = length
        self._cat_cache: list | None = None
        self._root_rec: tuple[HFSPlusCatalogKey, HFSPlusCatalogFolder] | None = None
        self._ext_overflow: dict[tuple[int, int], list[tuple[int, HFSPlusExtentRecord]]] | None = None
        self._load_header()

    @classmethod
    def open(cls, path: str | os.PathLike[str], offset: int = 0, length: int | None = None) -> HfsVolume:
        p = os.fspath(path)
        try:
            fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise HfsCorruptError(f"cannot open {p}: {e.strerror}") from e
        try:
            return cls(fd, offset, length, name=p, _owns_fd=True)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def from_fileobj(cls, f: BinaryIO, offset: int = 0, length: int | None = None) -> HfsVolume:
        return cls(f.fileno(), offset, length)

    def close(self) -> None:
        if self._owns and self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> HfsVolume:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw I/O ----------------------------------------------------------------------------

    def _pread(self, pos: int, n: int) -> bytes:
        if pos < 0 or n < 0 or pos + n > self.length:
            raise HfsCorruptError(
                f"{self.name}: read of {n} bytes at {pos} is outside the {self.length}-byte volume"
            )
        out = bytearray()
        while len(out) < n:
            try:
                b = os.pread(self._fd, n - len(out), self.offset + pos + len(out))
            except OSError as e:
                raise HfsCorruptError(f"{self.name}: read error at byte {pos}: {e.strerror}") from e
            if not b:
                raise HfsCorruptError(f"{self.name}: unexpected end of data at byte {pos + len(out)}")
            out += b
        return bytes(out)

    # -- volume header ----------------------------------------------------------------------

    @_guard
    def _load_header(self) -> None:
        vh = HFSPlusVolumeHeader.unpack(self._pread(1024, 512))
        self.header = vh
        if vh.signature == kHFSPlusSigWord:
            if vh.version != kHFSPlusVersion:
                raise HfsCorruptError(f"{self.name}: HFS+ volume with unknown version {vh.version}")
        elif vh.signature == kHFSXSigWord:
            if vh.version != kHFSXVersion:
                raise HfsCorruptError(f"{self.name}: HFSX volume with unknown version {vh.version}")
        else:
            raise HfsCorruptError(
                f"{self.name}: no HFS+ volume header (signature 0x{vh.signature:04x} at offset 1024)"
            )
        bs = vh.blockSize
        if bs < 512 or bs & (bs - 1) or bs > 1 << 28:
            raise HfsCorruptError(f"{self.name}: invalid block size {bs}")
        if vh.totalBlocks == 0 or vh.totalBlocks * bs > self.length:
            raise HfsCorruptError(
                f"{self.name}: volume claims {vh.totalBlocks} blocks of {bs} bytes but the region "
                f"holds {self.length} bytes"
            )
        if vh.freeBlocks > vh.totalBlocks:
            raise HfsCorruptError(f"{self.name}: {vh.freeBlocks} free blocks of {vh.totalBlocks}")
        self.block_size = bs
        self.total_blocks = vh.totalBlocks
        self._ext_fork = self._fork_extents(vh.extentsFile, kHFSExtentsFileID, overflow=False)
        self._cat_fork = self._fork_extents(vh.catalogFile, kHFSCatalogFileID)
        self.extents_tree = _BTree(self, self._ext_fork, "extents", kHFSPlusExtentKeyMaximumLength)
        self.catalog_tree = _BTree(self, self._cat_fork, "catalog", kHFSPlusCatalogKeyMaximumLength)
        ct = self.catalog_tree.header.keyCompareType
        self.case_sensitive = vh.signature == kHFSXSigWord and ct == kHFSBinaryCompare
        self._order = NameOrder(self.case_sensitive)

    @property
    def signature(self) -> str:
        return "HX" if self.header.signature == kHFSXSigWord else "H+"

    @property
    def version(self) -> int:
        return self.header.version

    @property
    def journaled(self) -> bool:
        return bool(self.header.attributes & kHFSVolumeJournaledMask)

    @property
    def clean(self) -> bool:
        """Unmounted cleanly: kHFSVolumeUnmountedBit set, kHFSBootVolumeInconsistentBit clear."""
        a = self.header.attributes
        return bool(a & kHFSVolumeUnmountedMask) and not a & kHFSBootVolumeInconsistentMask

    @property
    def inconsistent(self) -> bool:
        return bool(self.header.attributes & kHFSBootVolumeInconsistentMask)

    @property
    def volume_id(self) -> int:
        return self.header.volume_id

    @property
    def catalog_header(self) -> BTHeaderRec:
        return self.catalog_tree.header

    @property
    def extents_header(self) -> BTHeaderRec:
        return self.extents_tree.header

    @_guard
    def journal_state(self) -> dict[str, object] | None:
        """For journaled volumes: the journal info block and header (``empty``: nothing to
        replay). None on a volume without a journal."""
        if not self.journaled:
            return None
        bs = self.block_size
        jib_block = self.header.journalInfoBlock
        if jib_block >= self.total_blocks:
            raise HfsCorruptError(f"{self.name}: journal info block {jib_block} is outside the volume")
        jib = JournalInfoBlock.unpack(self._pread(jib_block * bs, JournalInfoBlock.SIZE))
        state: dict[str, object] = {"flags": jib.flags, "offset": jib.offset, "size": jib.size}
        if jib.flags & kJIJournalNeedInitMask or not jib.flags & kJIJournalInFSMask:
            state["empty"] = True
            return state
        raw = self._pread(jib.offset, JournalHeader.SIZE)
        jh = JournalHeader.unpack(raw)
        if jh.magic != JOURNAL_HEADER_MAGIC:
            # little-endian journal (written by an Intel Mac)
            jh = JournalHeader(*struct.unpack("<IIQQQIII", raw))
        if jh.magic != JOURNAL_HEADER_MAGIC:
            raise HfsCorruptError(f"{self.name}: bad journal header magic")
        state.update(start=jh.start, end=jh.end, jhdr_size=jh.jhdr_size, empty=jh.start == jh.end)
        return state

    # -- forks ------------------------------------------------------------------------------

    def _fork_extents(self, fork: HFSPlusForkData, file_id: int, *, overflow: bool = True) -> list[tuple[int, int]]:
        """All extents of a data fork, checked against the volume."""
        out: list[tuple[int, int]] = []
        blocks = 0
        for d in fork.extents:
            if d.blockCount == 0:
                break
            out.append((d.startBlock, d.blockCount))
            blocks += d.blockCount
        if blocks < fork.totalBlocks:
            if not overflow:
                raise HfsCorruptError(
                    f"{self.name}: file {file_id} needs overflow extents, which it cannot have"
                )
            for start_block, rec in self._overflow_for(file_id, kHFSDataForkType):
                if start_block != blocks:
                    raise HfsCorruptError(
                        f"{self.name}: file {file_id}: overflow extents start at fork block "
                        f"{start_block}, expected {blocks}"
                    )
                for d in rec.extents:
                    if d.blockCount == 0:
                        break
                    out.append((d.startBlock, d.blockCount))
                    blocks += d.blockCount
                if blocks >= fork.totalBlocks:
                    break
        if blocks != fork.totalBlocks:
            raise HfsCorruptError(
                f"{self.name}: file {file_id}: extents hold {blocks} blocks, fork says {fork.totalBlocks}"
            )
        if fork.logicalSize > blocks * self.block_size:
            raise HfsCorruptError(
                f"{self.name}: file {file_id}: {fork.logicalSize} bytes in {blocks} blocks"
            )
        for s, c in out:
            if s + c > self.total_blocks:
                raise HfsCorruptError(
                    f"{self.name}: file {file_id}: extent {s}+{c} lies outside the {self.total_blocks}-block volume"
                )
        return out

    def _overflow_for(self, file_id: int, fork_type: int) -> list[tuple[int, HFSPlusExtentRecord]]:
        if self._ext_overflow is None:
            table: dict[tuple[int, int], list[tuple[int, HFSPlusExtentRecord]]] = {}
            for key, data in self.extents_tree.leaf_records():
                k = HFSPlusExtentKey.unpack(key)
                table.setdefault((k.fileID, k.forkType), []).append((k.startBlock, HFSPlusExtentRecord.unpack(data)))
            for v in table.values():
                v.sort(key=lambda t: t[0])
            self._ext_overflow = table
        return self._ext_overflow.get((file_id, fork_type), [])

    def _read_extents(self, extents: list[tuple[int, int]], off: int, n: int) -> bytes:
        bs = self.block_size
        out = bytearray()
        base = 0
        end = off + n
        for s, c in extents:
            ext_len = c * bs
            a, b = max(off, base), min(end, base + ext_len)
            if a < b:
                out += self._pread(s * bs + (a - base), b - a)
            base += ext_len
            if base >= end:
                break
        if len(out) != n:
            raise HfsCorruptError(f"{self.name}: read past the end of a fork")
        return bytes(out)

    # -- catalog ----------------------------------------------------------------------------

    def _catalog_records(self) -> list[tuple[HFSPlusCatalogKey, bytes]]:
        if self._cat_cache is None:
            self._cat_cache = list(self._catalog_stream())
        return self._cat_cache

    def _cmp_cat(self, a: HFSPlusCatalogKey, b: HFSPlusCatalogKey) -> int:
        if a.parentID != b.parentID:
            return -1 if a.parentID < b.parentID else 1
        return self._order.compare(a.nodeName.unicode, b.nodeName.unicode)

    def _catalog_stream(self) -> Iterator[tuple[HFSPlusCatalogKey, bytes]]:
        """Every catalog leaf record in key order (checked), one at a time, nothing kept."""
        prev: HFSPlusCatalogKey | None = None
        for key, data in self.catalog_tree.leaf_records():
            k = HFSPlusCatalogKey.unpack(key)
            if prev is not None and self._cmp_cat(prev, k) >= 0:
                raise HfsCorruptError(
                    f"{self.name}: catalog keys out of order ({prev.parentID}/{_show(prev)} "
                    f"then {k.parentID}/{_show(k)})"
                )
            prev = k
            yield k, data

    def _record(self, k: HFSPlusCatalogKey, data: bytes, *, files: bool = True) -> tuple[int, object]:
        """``(record type, record)`` of one catalog leaf record, checked as :meth:`_index` does.
        With ``files`` False a file record is not unpacked (None)."""
        if len(data) < 2:
            raise HfsCorruptError(f"{self.name}: empty catalog record")
        (rt,) = struct.unpack_from(">h", data, 0)
        if rt in (kHFSPlusFolderThreadRecord, kHFSPlusFileThreadRecord):
            th = HFSPlusCatalogThread.unpack(data)
            if k.nodeName.unicode:
                raise HfsCorruptError(f"{self.name}: thread record with a name in its key")
            return rt, th
        if rt not in (kHFSPlusFolderRecord, kHFSPlusFileRecord):
            raise HfsCorruptError(f"{self.name}: unknown catalog record type {rt}")
        if not k.nodeName.unicode:
            raise HfsCorruptError(f"{self.name}: file or folder record with an empty name")
        if rt == kHFSPlusFolderRecord:
            return rt, HFSPlusCatalogFolder.unpack(data)
        return rt, (HFSPlusCatalogFile.unpack(data) if files else None)

    @_guard
    def _index(self) -> tuple[dict[int, list[tuple[bytes, object]]], dict[int, HFSPlusCatalogThread], HFSPlusCatalogKey, HFSPlusCatalogFolder]:
        children: dict[int, list[tuple[bytes, object]]] = {}
        threads: dict[int, HFSPlusCatalogThread] = {}
        root: tuple[HFSPlusCatalogKey, HFSPlusCatalogFolder] | None = None
        for k, data in self._catalog_records():
            _rt, rec = self._record(k, data)
            if isinstance(rec, HFSPlusCatalogThread):
                threads[k.parentID] = rec
                continue
            if k.parentID == kHFSRootParentID:
                if not isinstance(rec, HFSPlusCatalogFolder) or rec.folderID != kHFSRootFolderID or root:
                    raise HfsCorruptError(f"{self.name}: bad root folder record")
                root = (k, rec)
                continue
            children.setdefault(k.parentID, []).append((k.nodeName.unicode, rec))
        if root is None:
            raise HfsCorruptError(f"{self.name}: the catalog has no root folder")
        return children, threads, root[0], root[1]

    @_guard
    def _root(self) -> tuple[HFSPlusCatalogKey, HFSPlusCatalogFolder]:
        """The root folder's record (its key holds the volume name): the catalog's first record,
        as the smallest key (parent 1). Reads only the first leaf node."""
        if self._root_rec is None:
            for k, data in self._catalog_stream():
                if k.parentID == kHFSRootParentID:
                    _rt, rec = self._record(k, data)
                    if not isinstance(rec, HFSPlusCatalogFolder) or rec.folderID != kHFSRootFolderID:
                        raise HfsCorruptError(f"{self.name}: bad root folder record")
                    self._root_rec = (k, rec)
                break
            if self._root_rec is None:
                raise HfsCorruptError(f"{self.name}: the catalog has no root folder")
        return self._root_rec

    @property
    def volume_name(self) -> str:
        key, _ = self._root()
        return decode_name(key.nodeName.unicode)

    def _entry(self, path: str, name_parent: int, rec: object) -> HfsEntry:
        if isinstance(rec, HFSPlusCatalogFolder):
            p = rec.permissions
            mode = p.fileMode if p.fileMode & S_IFMT else S_IFDIR | (p.fileMode & 0o7777 or 0o755)
            return HfsEntry(
                path, unicodedata.normalize("NFC", path), "dir", mode, p.ownerID, p.groupID, 0, None,
                rec.folderID, name_parent, hfs_to_unix(rec.createDate), hfs_to_unix(rec.contentModDate),
                hfs_to_unix(rec.accessDate), hfs_to_unix(rec.attributeModDate), rec.valence,
                rec.textEncoding, 0, 0, None,
            )  # fmt: skip
        assert isinstance(rec, HFSPlusCatalogFile)
        p = rec.permissions
        mode = p.fileMode if p.fileMode & S_IFMT else (S_IFREG | (p.fileMode & 0o7777))
        kind = _kind(p.fileMode, False)
        target = None
        if kind == "symlink":
            size = rec.dataFork.logicalSize
            if size == 0 or size > MAX_SYMLINK:
                raise HfsCorruptError(f"{self.name}: symlink {path!r} has a {size}-byte target")
            ext = self._fork_extents(rec.dataFork, rec.fileID)
            target = self._read_extents(ext, 0, size).decode("utf-8", "surrogateescape")
        return HfsEntry(
            path, unicodedata.normalize("NFC", path), kind, mode, p.ownerID, p.groupID,
            rec.dataFork.logicalSize, target, rec.fileID, name_parent,
            hfs_to_unix(rec.createDate), hfs_to_unix(rec.contentModDate), hfs_to_unix(rec.accessDate),
            hfs_to_unix(rec.attributeModDate), 0, rec.textEncoding, rec.userInfo.fileType,
            rec.userInfo.fileCreator, rec.dataFork, p.special,
        )  # fmt: skip

    @_guard
    def root_entry(self) -> HfsEntry:
        _, _, _key, rec = self._index()
        return self._entry("", kHFSRootParentID, rec)

    @_guard_gen
    def walk(self) -> Iterator[HfsEntry]:
        """Every entry below the root, depth first, parents before their children, in catalog
        order. Raises HfsCorruptError on cycles or folders listed twice."""
        children, _threads, _k, _root = self._index()
        seen = {kHFSRootFolderID}
        stack: list[tuple[int, str]] = [(kHFSRootFolderID, "")]
        steps = 0
        limit = len(self._catalog_records()) + 1
        while stack:
            cnid, path = stack.pop()
            subdirs = []
            for raw, rec in children.get(cnid, []):
                steps += 1
                if steps > limit:
                    raise HfsCorruptError(f"{self.name}: catalog hierarchy does not terminate")
                name = decode_name(raw)
                p = f"{path}/{name}" if path else name
                e = self._entry(p, cnid, rec)
                yield e
                if e.kind == "dir":
                    if e.cnid in seen:
                        raise HfsCorruptError(f"{self.name}: folder {e.cnid} appears twice (cycle)")
                    seen.add(e.cnid)
                    subdirs.append((e.cnid, p))
            stack.extend(reversed(subdirs))

    @_guard_gen
    def scan(self) -> Iterator[HfsEntry]:
        """Every entry below the root, as :meth:`walk` finds them, but in catalog order (folder
        by folder id, not depth first) and in memory bounded by the number of *folders*: the
        catalog is read twice (first the folders' names and parents, then every record, one at a
        time) and nothing per file is kept. For verifying volumes with many files.

        Entries a walk from the root would not reach (a parent that is no folder) are left out
        as :meth:`walk` leaves them out; a folder listed twice or a cycle is HfsCorruptError."""
        folders: dict[int, tuple[int, bytes]] = {}  # folder id -> (parent id, name as stored)
        root = False
        for k, data in self._catalog_stream():
            _rt, rec = self._record(k, data, files=False)
            if isinstance(rec, HFSPlusCatalogThread):
                continue
            if k.parentID == kHFSRootParentID:
                if not isinstance(rec, HFSPlusCatalogFolder) or rec.folderID != kHFSRootFolderID or root:
                    raise HfsCorruptError(f"{self.name}: bad root folder record")
                root = True
            elif isinstance(rec, HFSPlusCatalogFolder):
                if rec.folderID in folders or rec.folderID == kHFSRootFolderID:
                    raise HfsCorruptError(f"{self.name}: folder {rec.folderID} appears twice (cycle)")
                folders[rec.folderID] = (k.parentID, k.nodeName.unicode)
        if not root:
            raise HfsCorruptError(f"{self.name}: the catalog has no root folder")
        paths: dict[int, str | None] = {kHFSRootFolderID: ""}  # None: not below the root

        def path_of(cnid: int) -> str | None:
            chain: list[int] = []
            while cnid not in paths:
                if cnid not in folders:
                    paths[cnid] = None
                    break
                if len(chain) > len(folders):
                    raise HfsCorruptError(f"{self.name}: folder {cnid} is its own ancestor (cycle)")
                chain.append(cnid)
                cnid = folders[cnid][0]
            for c in reversed(chain):
                parent = paths[folders[c][0]]
                paths[c] = None if parent is None else (f"{parent}/" if parent else "") + decode_name(folders[c][1])
            return paths[cnid] if not chain else paths[chain[0]]

        for k, data in self._catalog_stream():
            if k.parentID == kHFSRootParentID:
                continue
            _rt, rec = self._record(k, data)
            if isinstance(rec, HFSPlusCatalogThread):
                continue
            parent = path_of(k.parentID)
            if parent is None:
                continue
            if isinstance(rec, HFSPlusCatalogFolder):
                if folders.get(rec.folderID) != (k.parentID, k.nodeName.unicode):
                    raise HfsCorruptError(f"{self.name}: the catalog changed while it was read")
                path = path_of(rec.folderID)
                assert path is not None
            else:
                name = decode_name(k.nodeName.unicode)
                path = f"{parent}/{name}" if parent else name
            yield self._entry(path, k.parentID, rec)

    # -- contents ---------------------------------------------------------------------------

    @_guard_gen
    def read(self, entry: HfsEntry, chunk: int = CHUNK) -> Iterator[bytes]:
        """The data fork of a file or symlink, in chunks (overflow extents included)."""
        if entry.fork is None:
            raise HfsCorruptError(f"{entry.path!r} is not a file")
        ext = self._fork_extents(entry.fork, entry.cnid)
        left = entry.fork.logicalSize
        bs = self.block_size
        for s, c in ext:
            pos = s * bs
            n = min(left, c * bs)
            while n > 0:
                k = min(chunk, n)
                yield self._pread(pos, k)
                pos += k
                n -= k
                left -= k
            if left <= 0:
                break

    def sha256(self, entry: HfsEntry) -> str:
        h = hashlib.sha256()
        for b in self.read(entry):
            h.update(b)
        return h.hexdigest()

    # -- allocation ---------------------------------------------------------------------------

    @_guard
    def allocation_bitmap(self) -> bytes:
        """The allocation file's bitmap: bit ``n`` (MSB first) set when block ``n`` is in use."""
        vh = self.header
        return self._read_extents(self._fork_extents(vh.allocationFile, 6, overflow=False), 0, -(-self.total_blocks // 8))

    def used_extents(self) -> list[tuple[int, int]]:
        """``(first block, count)`` of every run of blocks the allocation file marks in use."""
        bitmap = self.allocation_bitmap()
        runs: list[tuple[int, int]] = []
        start = None
        for i, byte in enumerate(bitmap):
            if byte in (0, 0xFF):
                if byte == 0xFF and start is None:
                    start = i * 8
                elif byte == 0 and start is not None:
                    runs.append((start, i * 8 - start))
                    start = None
                continue
            for bit in range(8):
                used = byte & (0x80 >> bit)
                n = i * 8 + bit
                if used and start is None:
                    start = n
                elif not used and start is not None:
                    runs.append((start, n - start))
                    start = None
        if start is not None:
            runs.append((start, len(bitmap) * 8 - start))
        return [(s, min(c, self.total_blocks - s)) for s, c in runs if s < self.total_blocks]

    # -- structure check --------------------------------------------------------------------

    @_guard
    def check(self) -> dict[str, object]:
        """Check both B-trees' structure, the hierarchy (valences, thread records, counts) and
        that the allocation file marks every used block. Returns figures; raises
        HfsCorruptError listing the first problem found."""
        cat = self.catalog_tree.check(self._cat_key_cmp)
        ext = self.extents_tree.check(self._ext_key_cmp)
        children, threads, _k, root = self._index()
        n_files = n_dirs = 0
        problems = []
        if root.valence != len(children.get(kHFSRootFolderID, [])):
            problems.append(f"root valence {root.valence} != {len(children.get(kHFSRootFolderID, []))}")
        for parent, kids in children.items():
            for raw, rec in kids:
                cnid = rec.folderID if isinstance(rec, HFSPlusCatalogFolder) else rec.fileID  # type: ignore[union-attr]
                th = threads.get(cnid)
                if th is None or th.parentID != parent or th.nodeName.unicode != raw:
                    problems.append(f"CNID {cnid}: missing or wrong thread record")
                if isinstance(rec, HFSPlusCatalogFolder):
                    n_dirs += 1
                    if rec.valence != len(children.get(cnid, [])):
                        problems.append(f"folder {cnid}: valence {rec.valence} != {len(children.get(cnid, []))}")
                else:
                    n_files += 1
        vh = self.header
        if n_files != vh.fileCount:
            problems.append(f"fileCount {vh.fileCount} != {n_files} file records")
        if n_dirs != vh.folderCount:
            problems.append(f"folderCount {vh.folderCount} != {n_dirs} folder records")
        max_cnid = max([kHFSRootFolderID] + list(threads))
        if vh.nextCatalogID <= max_cnid:
            problems.append(f"nextCatalogID {vh.nextCatalogID} <= largest CNID {max_cnid}")
        used = self._used_blocks(children)
        bitmap = self._read_extents(
            self._fork_extents(vh.allocationFile, 6, overflow=False), 0, -(-self.total_blocks // 8)
        )
        marked = sum(bin(b).count("1") for b in bitmap)
        for s, c in used:
            for blk in (s, s + c - 1):
                if not bitmap[blk >> 3] & (0x80 >> (blk & 7)):
                    problems.append(f"block {blk} is used but free in the allocation file")
        if self.total_blocks - marked != vh.freeBlocks:
            problems.append(f"freeBlocks {vh.freeBlocks} != {self.total_blocks - marked} free in the bitmap")
        if problems:
            raise HfsCorruptError(f"{self.name}: " + "; ".join(problems[:5]))
        return {"catalog": cat, "extents": ext, "files": n_files, "folders": n_dirs}

    def _used_blocks(self, children: dict) -> list[tuple[int, int]]:
        vh = self.header
        out = [(0, 1), (self.total_blocks - 1, 1)]
        for fork, fid in ((vh.allocationFile, 6), (vh.extentsFile, 3), (vh.catalogFile, 4), (vh.attributesFile, 8)):
            if fork.totalBlocks:
                out += self._fork_extents(fork, fid, overflow=fid != 3)
        for kids in children.values():
            for _raw, rec in kids:
                if isinstance(rec, HFSPlusCatalogFile):
                    out += self._fork_extents(rec.dataFork, rec.fileID)
        return out

    def _cat_key_cmp(self, a: bytes, b: bytes) -> int:
        return self._cmp_cat(HFSPlusCatalogKey.unpack(a), HFSPlusCatalogKey.unpack(b))

    @staticmethod
    def _ext_key_cmp(a: bytes, b: bytes) -> int:
        x, y = HFSPlusExtentKey.unpack(a).order(), HFSPlusExtentKey.unpack(b).order()
        return (x > y) - (x < y)


def _show(k: HFSPlusCatalogKey) -> str:
    return repr(k.nodeName.unicode.decode("utf-16-be", "replace"))


class _BTree:
    """A B-tree file of the volume: header, checked node access, leaf walk, structure check."""

    def __init__(self, vol: HfsVolume, extents: list[tuple[int, int]], what: str, max_key: int) -> None:
        self.vol = vol
        self.extents = extents
        self.what = what
        self.size = sum(c for _, c in extents) * vol.block_size
        if self.size < 512:
            raise HfsCorruptError(f"{vol.name}: the {what} B-tree file is empty")
        first = vol._read_extents(extents, 0, 512)
        d_kind = struct.unpack_from(">b", first, 8)[0]
        if d_kind != kBTHeaderNode:
            raise HfsCorruptError(f"{vol.name}: {what} B-tree node 0 is not a header node (kind {d_kind})")
        h = BTHeaderRec.unpack(first, 14)
        ns = h.nodeSize
        if ns < 512 or ns > 32768 or ns & (ns - 1):
            raise HfsCorruptError(f"{vol.name}: {what} B-tree node size {ns} is invalid")
        if h.totalNodes == 0 or h.totalNodes * ns > self.size:
            raise HfsCorruptError(
                f"{vol.name}: {what} B-tree claims {h.totalNodes} nodes of {ns} bytes in a {self.size}-byte file"
            )
        if h.maxKeyLength != max_key:
            raise HfsCorruptError(f"{vol.name}: {what} B-tree maxKeyLength {h.maxKeyLength}, expected {max_key}")
        if h.treeDepth > MAX_DEPTH:
            raise HfsCorruptError(f"{vol.name}: {what} B-tree depth {h.treeDepth} is implausible")
        for fieldname in ("rootNode", "firstLeafNode", "lastLeafNode"):
            if getattr(h, fieldname) >= h.totalNodes:
                raise HfsCorruptError(f"{vol.name}: {what} B-tree {fieldname} {getattr(h, fieldname)} out of range")
        if h.freeNodes > h.totalNodes:
            raise HfsCorruptError(f"{vol.name}: {what} B-tree has more free nodes than nodes")
        if (h.treeDepth == 0) != (h.rootNode == 0):
            raise HfsCorruptError(f"{vol.name}: {what} B-tree depth {h.treeDepth} with root node {h.rootNode}")
        self.header = h
        self.node_size = ns
        self.spec = BTreeSpec(ns, h.maxKeyLength, h.attributes, h.keyCompareType)
        self.header_node = self.node(0)

    def node(self, n: int) -> Node:
        h = self.header
        if n >= h.totalNodes:
            raise HfsCorruptError(f"{self.vol.name}: {self.what} node {n} is beyond the {h.totalNodes} nodes")
        data = self.vol._read_extents(self.extents, n * self.node_size, self.node_size)
        return parse_node(data, n, self.node_size, max_key_length=h.maxKeyLength, depth=h.treeDepth,
                          what=self.what)  # fmt: skip

    def leaf_records(self) -> Iterator[tuple[bytes, bytes]]:
        """``(key incl. keyLength, data)`` of every leaf record, following the leaf chain."""
        h = self.header
        if h.treeDepth == 0:
            if h.leafRecords:
                raise HfsCorruptError(f"{self.vol.name}: empty {self.what} B-tree claims {h.leafRecords} records")
            return
        n = h.firstLeafNode
        prev = 0
        seen: set[int] = set()
        count = 0
        while n:
            if n in seen or len(seen) >= h.totalNodes:
                raise HfsCorruptError(f"{self.vol.name}: {self.what} leaf chain loops at node {n}")
            seen.add(n)
            node = self.node(n)
            d = node.descriptor
            if d.kind != kBTLeafNode:
                raise HfsCorruptError(f"{self.vol.name}: {self.what} node {n} in the leaf chain is not a leaf")
            if d.bLink != prev:
                raise HfsCorruptError(f"{self.vol.name}: {self.what} node {n} bLink {d.bLink}, expected {prev}")
            for rec in node.records:
                (kl,) = struct.unpack_from(">H", rec, 0)
                yield rec[: 2 + kl], rec[2 + kl + ((2 + kl) & 1):]
                count += 1
            prev = n
            n = d.fLink
        if prev != h.lastLeafNode:
            raise HfsCorruptError(f"{self.vol.name}: {self.what} leaf chain ends at {prev}, header says {h.lastLeafNode}")
        if count != h.leafRecords:
            raise HfsCorruptError(f"{self.vol.name}: {self.what} B-tree has {count} leaf records, header says {h.leafRecords}")

    def check(self, cmp: Callable[[bytes, bytes], int]) -> dict[str, int]:
        """Walk from the root: heights, kinds, key order, index keys = child first keys, every
        leaf reached once and in chain order; used-node map. Returns figures."""
        h = self.header
        info = {"depth": h.treeDepth, "nodes": h.totalNodes, "free": h.freeNodes, "leaf_records": h.leafRecords}
        if h.treeDepth == 0:
            list(self.leaf_records())
            info["index_nodes"] = info["leaf_nodes"] = 0
            return info
        level = [(h.rootNode, None)]
        height = h.treeDepth
        seen: set[int] = set()
        index_nodes = 0
        leaves: list[int] = []
        prev_key: bytes | None = None
        while level:
            nxt = []
            prev_key = None
            for n, expect_key in level:
                if n in seen:
                    raise HfsCorruptError(f"{self.vol.name}: {self.what} node {n} reached twice")
                seen.add(n)
                node = self.node(n)
                d = node.descriptor
                want_kind = kBTLeafNode if height == 1 else kBTIndexNode
                if d.kind != want_kind or d.height != height:
                    raise HfsCorruptError(f"{self.vol.name}: {self.what} node {n}: kind {d.kind} height {d.height}, expected height {height}")
                if not node.records:
                    raise HfsCorruptError(f"{self.vol.name}: {self.what} node {n} is empty")
                for i, rec in enumerate(node.records):
                    if height == 1:
                        (kl,) = struct.unpack_from(">H", rec, 0)
                        key = rec[: 2 + kl]
                    else:
                        key, child = index_child(rec, self.spec)
                        nxt.append((child, key))
                    if i == 0 and expect_key is not None and cmp(key, expect_key) != 0:
                        raise HfsCorruptError(f"{self.vol.name}: {self.what} node {n}: first key differs from its index key")
                    if prev_key is not None and cmp(prev_key, key) >= 0:
                        raise HfsCorruptError(f"{self.vol.name}: {self.what} node {n}: keys out of order")
                    prev_key = key
                if height == 1:
                    leaves.append(n)
                else:
                    index_nodes += 1
            level = nxt
            height -= 1
            if height == 0 and level:
                raise HfsCorruptError(f"{self.vol.name}: {self.what} B-tree deeper than its header says")
        chain = []
        n = h.firstLeafNode
        while n and len(chain) <= len(leaves):
            chain.append(n)
            n = self.node(n).descriptor.fLink
        if chain != leaves:
            raise HfsCorruptError(f"{self.vol.name}: {self.what} leaf chain differs from the leaves under the root")
        used = 1 + index_nodes + len(leaves)
        maps = 0
        m = self.header_node.descriptor.fLink
        while m:
            maps += 1
            if maps > h.totalNodes:
                raise HfsCorruptError(f"{self.vol.name}: {self.what} map node chain loops")
            m = self.node(m).descriptor.fLink
        if h.totalNodes - h.freeNodes != used + maps:
            raise HfsCorruptError(
                f"{self.vol.name}: {self.what} B-tree: {h.totalNodes - h.freeNodes} nodes in use per header, "
                f"{used + maps} found"
            )
        info.update(index_nodes=index_nodes, leaf_nodes=len(leaves), map_nodes=maps)
        return info


__all__ = ["HfsVolume", "HfsEntry"]
