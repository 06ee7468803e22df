"""The file tree to put on an HFS+ volume: directories, regular files and symlinks.

Build an :class:`HfsTree` with :meth:`~HfsTree.add_dir`, :meth:`~HfsTree.add_file`,
:meth:`~HfsTree.add_symlink` and :meth:`~HfsTree.remove` (or :meth:`~HfsTree.add_host_dir` to
copy a host directory), then hand it to :func:`atvdisk.fs.hfsplus.layout.plan_volume`.

Paths are ``/``-separated, relative to the volume root (a leading ``/`` is ignored; ``.``
components are dropped; ``..`` is refused). Every component is checked as soon as it is added:
invalid UTF-8 (lone surrogates from ``os.fsdecode``), NUL, or more than 255 UTF-16 units once
decomposed raise :class:`~atvdisk.fs.hfsplus.errors.HfsNameError` naming the path.

Overlay semantics (as when a second tarball is extracted over a first; later wins):

* adding a file or symlink where a file or symlink exists replaces it;
* adding a directory where a directory exists updates its mode, owner and times and keeps its
  contents;
* adding a file or symlink where a directory exists replaces the directory **and everything
  below it** (like ``tar --recursive-unlink``); adding a directory where a file or symlink exists
  replaces that file with an empty directory;
* "exists" means the same name as stored on disk (UTF-16, HFS+-decomposed), so ``café`` in NFC
  and in NFD are the same entry. Two names that differ on disk but are equal under the volume's
  comparison (``a`` and ``A`` on case-insensitive HFS+) are *not* merged: the layout step
  refuses them, naming both (see :func:`~atvdisk.fs.hfsplus.layout.plan_volume`);
* missing parent directories are created implicitly (mode 0755, the tree's default owner,
  times defaulting to the volume creation time); a later ``add_dir`` of the same path sets
  their metadata. A path below a regular file or symlink raises
  :class:`~atvdisk.fs.hfsplus.errors.HfsTreeError`.

Hard links are stored as **independent copies** (each name gets its own file record and its own
data blocks); HFS+ indirect-node hard links are not written. Device nodes, FIFOs and sockets
cannot be added: :meth:`~HfsTree.add_host_dir` raises
:class:`~atvdisk.fs.hfsplus.errors.HfsUnsupportedError` naming the path.

File data comes from a :class:`PathSource` (a host file, streamed at write time), a
:class:`BytesSource`, or an :class:`ExternalSource` (only the size is known now; the caller
streams the bytes to :meth:`atvdisk.fs.hfsplus.writer.VolumeWriter.write_external` after layout,
in any order).

Times are Unix seconds (``None``: the volume creation time); modes are permission bits
(``& 0o7777``; the file type comes from the kind of entry).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from atvdisk.fs.hfsplus.errors import (
    HfsDuplicateNameError,
    HfsNameError,
    HfsTreeError,
    HfsUnsupportedError,
)
from atvdisk.fs.hfsplus.names import encode_component

MAX_SYMLINK_TARGET = 4095


class Kind(StrEnum):
    DIR = "dir"
    FILE = "file"
    SYMLINK = "symlink"


@dataclass(frozen=True)
class PathSource:
    """A host file, read at write time. ``size`` is what the layout allocates for; the writer
    refuses the file if it no longer has that size."""

    path: str
    size: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> PathSource:
        p = os.fspath(path)
        try:
            st = os.stat(p)
        except OSError as e:
            raise HfsTreeError(f"cannot read {p}: {e.strerror}") from e
        if not stat.S_ISREG(st.st_mode):
            raise HfsTreeError(f"{p} is not a regular file")
        return cls(p, st.st_size)


@dataclass(frozen=True)
class BytesSource:
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class ExternalSource:
    """Data the caller streams later (``VolumeWriter.write_external``); exactly ``size`` bytes."""

    size: int


Source = PathSource | BytesSource | ExternalSource


@dataclass(frozen=True, slots=True)
class Meta:
    mode: int
    uid: int
    gid: int
    mtime: int | None = None
    atime: int | None = None
    ctime: int | None = None
    crtime: int | None = None


# Files and symlinks share this empty mapping instead of a dict each (a path below them is
# refused before anything is added, and a mapping proxy cannot be added to).
_NO_CHILDREN: Mapping[bytes, _Node] = MappingProxyType({})


@dataclass(slots=True)
class _Node:
    kind: Kind
    name: str
    key: bytes
    meta: Meta
    source: Source | None = None
    target: str | None = None
    children: dict[bytes, _Node] = field(default_factory=dict)
    implicit: bool = False


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a tree, as :meth:`HfsTree.entries` yields it (parents before children)."""

    path: str  # names as given, joined with '/'
    keys: tuple[bytes, ...]  # stored (UTF-16BE decomposed) name of each component
    kind: Kind
    meta: Meta
    source: Source | None
    target: str | None
    child_keys: tuple[bytes, ...]  # directories: children's stored names (binary order)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def size(self) -> int:
        if self.kind is Kind.FILE:
            assert self.source is not None
            return self.source.size
        if self.kind is Kind.SYMLINK:
            assert self.target is not None
            return len(self.target.encode("utf-8"))
        return 0


def _check_id(value: int, what: str, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFFFFFF:
        raise HfsTreeError(f"{path!r}: {what} {value!r} is not a 32-bit unsigned integer")
    return value


def _check_time(value: int | float | None, what: str, path: str) -> int | None:
    if value is None or type(value) is int:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HfsTreeError(f"{path!r}: {what} {value!r} is not a time in Unix seconds")
    return int(value)


def _check_target(target: str | bytes, path: str) -> str:
    """A symlink target as stored: valid UTF-8, no NUL, at most 4095 bytes."""
    if isinstance(target, bytes):
        target = os.fsdecode(target)
    if not isinstance(target, str) or not target:
        raise HfsTreeError(f"{path!r}: symlink target must be a non-empty string")
    try:
        raw = target.encode("utf-8")
    except UnicodeEncodeError as e:
        raise HfsNameError(
            f"{path!r}: symlink target {target!r} is not valid UTF-8", name=target, path=path
        ) from e
    if b"\0" in raw:
        raise HfsNameError(f"{path!r}: symlink target contains NUL", name=target, path=path)
    if len(raw) > MAX_SYMLINK_TARGET:
        raise HfsNameError(
            f"{path!r}: symlink target is {len(raw)} bytes (maximum {MAX_SYMLINK_TARGET})",
            name=target,
            path=path,
        )
    return target


def split_path(path: str | bytes | os.PathLike) -> list[str]:
    """Components of a volume path; refuses ``..``."""
    p = os.fsdecode(path) if not isinstance(path, str) else path
    parts = [c for c in p.split("/") if c not in ("", ".")]
    if ".." in parts:
        raise HfsTreeError(f"path {p!r} contains '..'", hint="give paths relative to the volume root")
    return parts


class HfsTree:
    """A tree of directories, files and symlinks to lay out on an HFS+ volume."""

    def __init__(
        self,
        *,
        default_uid: int = 0,
        default_gid: int = 0,
        default_dir_mode: int = 0o755,
    ) -> None:
        self.default_uid = _check_id(default_uid, "uid", "/")
        self.default_gid = _check_id(default_gid, "gid", "/")
        self.default_dir_mode = default_dir_mode & 0o7777
        self._last_meta: Meta | None = None
        self._root = _Node(Kind.DIR, "", b"", self._implicit_meta(), implicit=True)
        self._keys: dict[str, bytes] = {}

    def _key(self, name: str, path: str) -> bytes:
        """The stored name of one component (cached: names repeat a lot in real trees)."""
        k = self._keys.get(name)
        if k is None:
            k = encode_component(name, path=path)
            if len(self._keys) < 1_000_000:
                self._keys[name] = k
        return k

    def _implicit_meta(self) -> Meta:
        return Meta(self.default_dir_mode, self.default_uid, self.default_gid)

    # -- lookup -----------------------------------------------------------------------------

    def _resolve_parent(self, parts: list[str], path: str, *, create: bool) -> tuple[_Node, list[bytes]]:
        node = self._root
        keys: list[bytes] = []
        for i, name in enumerate(parts[:-1]):
            key = self._key(name, path)
            keys.append(key)
            child = node.children.get(key)
            if child is None:
                sub = "/".join(parts[: i + 1])
                if not create:
                    raise HfsTreeError(f"{path!r}: no such directory {sub!r}")
                child = _Node(Kind.DIR, name, key, self._implicit_meta(), implicit=True)
                node.children[key] = child
            elif child.kind is not Kind.DIR:
                sub = "/".join(parts[: i + 1])
                raise HfsTreeError(
                    f"{path!r}: {sub!r} is a {child.kind.value}, not a directory",
                    hint="remove it first if the later content should win",
                )
            node = child
        return node, keys

    def _meta(
        self,
        path: str,
        mode: int,
        uid: int | None,
        gid: int | None,
        mtime: float | None = None,
        atime: float | None = None,
        ctime: float | None = None,
        crtime: float | None = None,
    ) -> Meta:
        if type(mode) is not int or mode < 0:
            raise HfsTreeError(f"{path!r}: invalid mode {mode!r}")
        uid = self.default_uid if uid is None else uid
        gid = self.default_gid if gid is None else gid
        if type(uid) is not int or not 0 <= uid <= 0xFFFFFFFF:
            _check_id(uid, "uid", path)
        if type(gid) is not int or not 0 <= gid <= 0xFFFFFFFF:
            _check_id(gid, "gid", path)
        meta = Meta(
            mode & 0o7777,
            uid,
            gid,
            _check_time(mtime, "mtime", path),
            _check_time(atime, "atime", path),
            _check_time(ctime, "ctime", path),
            _check_time(crtime, "crtime", path),
        )
        # Entries added one after the other often have the same metadata (a tarball's files):
        # they share one object (frozen), so a tree of many files keeps few.
        if meta == self._last_meta:
            return self._last_meta
        self._last_meta = meta
        return meta

    # -- building ---------------------------------------------------------------------------

    def add_dir(
        self,
        path: str,
        *,
        mode: int = 0o755,
        uid: int | None = None,
        gid: int | None = None,
        mtime: int | float | None = None,
        atime: int | float | None = None,
        ctime: int | float | None = None,
        crtime: int | float | None = None,
    ) -> None:
        """Add (or update) a directory. ``""`` or ``"/"`` sets the root directory's metadata."""
        parts = split_path(path)
        meta = self._meta(path, mode, uid, gid, mtime, atime, ctime, crtime)
        if not parts:
            self._root.meta = meta
            self._root.implicit = False
            return
        parent, _ = self._resolve_parent(parts, path, create=True)
        self._set_dir(parent, parts[-1], self._key(parts[-1], path), meta)

    def _set_dir(self, parent: _Node, name: str, key: bytes, meta: Meta) -> _Node:
        old = parent.children.get(key)
        if old is not None and old.kind is Kind.DIR:
            old.meta = meta
            old.name = name
            old.implicit = False
            return old
        node = _Node(Kind.DIR, name, key, meta)
        parent.children[key] = node
        return node

    def add_file(
        self,
        path: str,
        source: Source,
        *,
        mode: int = 0o644,
        uid: int | None = None,
        gid: int | None = None,
        mtime: int | float | None = None,
        atime: int | float | None = None,
        ctime: int | float | None = None,
        crtime: int | float | None = None,
    ) -> None:
        """Add (or replace) a regular file whose data comes from ``source``."""
        if not isinstance(source, (PathSource, BytesSource, ExternalSource)):
            raise HfsTreeError(f"{path!r}: source must be a PathSource, BytesSource or ExternalSource")
        if source.size < 0:
            raise HfsTreeError(f"{path!r}: negative size {source.size}")
        meta = self._meta(path, mode, uid, gid, mtime, atime, ctime, crtime)
        self._put_leaf(path, _Node(Kind.FILE, "", b"", meta, source=source, children=_NO_CHILDREN))  # type: ignore[arg-type]

    def add_symlink(
        self,
        path: str,
        target: str,
        *,
        mode: int = 0o777,
        uid: int | None = None,
        gid: int | None = None,
        mtime: int | float | None = None,
        atime: int | float | None = None,
        ctime: int | float | None = None,
        crtime: int | float | None = None,
    ) -> None:
        """Add (or replace) a symbolic link to ``target`` (stored as UTF-8 in the data fork)."""
        target = _check_target(target, path)
        meta = self._meta(path, mode, uid, gid, mtime, atime, ctime, crtime)
        self._put_leaf(path, _Node(Kind.SYMLINK, "", b"", meta, target=target, children=_NO_CHILDREN))  # type: ignore[arg-type]

    def _put_leaf(self, path: str, node: _Node) -> None:
        parts = split_path(path)
        if not parts:
            raise HfsTreeError(f"{path!r}: the root must be a directory")
        parent, _ = self._resolve_parent(parts, path, create=True)
        node.name = parts[-1]
        node.key = self._key(parts[-1], path)
        parent.children[node.key] = node

    def remove(self, path: str, *, missing_ok: bool = False) -> None:
        """Remove an entry (a directory with everything below it)."""
        parts = split_path(path)
        if not parts:
            raise HfsTreeError("cannot remove the root directory")
        try:
            parent, _ = self._resolve_parent(parts, path, create=False)
        except HfsTreeError:
            if missing_ok:
                return
            raise
        key = self._key(parts[-1], path)
        if key not in parent.children:
            if missing_ok:
                return
            raise HfsTreeError(f"{path!r}: no such entry")
        del parent.children[key]

    def lookup(self, path: str) -> TreeEntry | None:
        """The entry at ``path`` (matched by stored name), or None."""
        parts = split_path(path)
        node = self._root
        keys: list[bytes] = []
        names: list[str] = []
        for name in parts:
            if node.kind is not Kind.DIR:
                return None
            key = self._key(name, path)
            node = node.children.get(key)  # type: ignore[assignment]
            if node is None:
                return None
            keys.append(key)
            names.append(node.name)
        return self._entry(node, "/".join(names), tuple(keys))

    @staticmethod
    def _entry(node: _Node, path: str, keys: tuple[bytes, ...]) -> TreeEntry:
        return TreeEntry(
            path,
            keys,
            node.kind,
            node.meta,
            node.source,
            node.target,
            tuple(sorted(node.children)) if node.kind is Kind.DIR else (),
        )

    def entries(self) -> Iterator[TreeEntry]:
        """Every entry, root first (path ``""``), parents before children, siblings in binary
        order of their stored names (deterministic)."""
        stack: list[tuple[_Node, str, tuple[bytes, ...]]] = [(self._root, "", ())]
        while stack:
            node, path, keys = stack.pop()
            yield self._entry(node, path, keys)
            if node.kind is Kind.DIR:
                for key in sorted(node.children, reverse=True):
                    child = node.children[key]
                    cpath = f"{path}/{child.name}" if path else child.name
                    stack.append((child, cpath, keys + (key,)))

    def counts(self) -> dict[str, int]:
        c = {"dir": 0, "file": 0, "symlink": 0, "bytes": 0}
        for e in self.entries():
            if e.path:
                c[e.kind.value] += 1
                c["bytes"] += e.size
        return c

    # -- host directories -------------------------------------------------------------------

    def add_host_dir(
        self,
        host_dir: str | os.PathLike[str],
        prefix: str = "",
        *,
        owner: tuple[int, int] | None = None,
        set_root: bool = True,
    ) -> None:
        """Copy a host directory tree into the tree at ``prefix`` (overlay semantics).

        Regular files become :class:`PathSource` entries (read at write time), symlinks keep
        their target, directories their mode. Only the modification time is taken: access and
        attribute-change dates are set to it (reading the source changes atime, copying it
        changes ctime; neither would give reproducible volumes). ``owner`` ``(uid, gid)``
        replaces every owner.
        Hard-linked files are copied independently. Device nodes, FIFOs and sockets raise
        :class:`HfsUnsupportedError` naming the host path.
        """
        top = os.fspath(host_dir)
        try:
            st = os.stat(top)
        except OSError as e:
            raise HfsTreeError(f"cannot read {top}: {e.strerror}") from e
        if not stat.S_ISDIR(st.st_mode):
            raise HfsTreeError(f"{top} is not a directory")

        def ids(s: os.stat_result) -> tuple[int, int]:
            return owner if owner is not None else (s.st_uid, s.st_gid)

        def times(s: os.stat_result) -> dict:
            return dict(mtime=int(s.st_mtime))

        parts = split_path(prefix)
        if set_root or parts:
            uid, gid = ids(st)
            self.add_dir(prefix, mode=st.st_mode & 0o7777, uid=uid, gid=gid, **times(st))
        top_node = self._root
        if parts:
            parent, _ = self._resolve_parent(parts, prefix, create=True)
            top_node = parent.children[self._key(parts[-1], prefix)]
        stack = [(top, "/".join(parts), top_node)]
        while stack:
            hdir, vdir, dnode = stack.pop()
            try:
                with os.scandir(hdir) as it:
                    items = sorted(it, key=lambda d: d.name)
            except OSError as e:
                raise HfsTreeError(f"cannot list {hdir}: {e.strerror}") from e
            seen: dict[bytes, str] = {}
            for d in items:
                hpath = os.path.join(hdir, d.name)
                vpath = f"{vdir}/{d.name}" if vdir else d.name
                key = self._key(d.name, hpath)
                if key in seen:
                    raise HfsDuplicateNameError(
                        f"{os.path.join(hdir, seen[key])!r} and {hpath!r} have the same name on HFS+ "
                        "(they differ only in Unicode normalization)",
                        first=seen[key],
                        second=d.name,
                        path=vpath,
                        hint="rename one of them",
                    )
                seen[key] = d.name
                try:
                    s = d.stat(follow_symlinks=False)
                except OSError as e:
                    raise HfsTreeError(f"cannot stat {hpath}: {e.strerror}") from e
                uid, gid = ids(s)
                m = s.st_mode
                meta = self._meta(hpath, m & 0o7777, uid, gid, int(s.st_mtime))
                if stat.S_ISDIR(m):
                    stack.append((hpath, vpath, self._set_dir(dnode, d.name, key, meta)))
                elif stat.S_ISREG(m):
                    dnode.children[key] = _Node(Kind.FILE, d.name, key, meta, source=PathSource(hpath, s.st_size), children=_NO_CHILDREN)  # type: ignore[arg-type]
                elif stat.S_ISLNK(m):
                    try:
                        target = os.readlink(hpath)
                    except OSError as e:
                        raise HfsTreeError(f"cannot read symlink {hpath}: {e.strerror}") from e
                    target = _check_target(target, hpath)
                    dnode.children[key] = _Node(Kind.SYMLINK, d.name, key, meta, target=target, children=_NO_CHILDREN)  # type: ignore[arg-type]
                else:
                    what = (
                        "character device" if stat.S_ISCHR(m)
                        else "block device" if stat.S_ISBLK(m)
                        else "FIFO" if stat.S_ISFIFO(m)
                        else "socket" if stat.S_ISSOCK(m)
                        else "special file"
                    )
                    raise HfsUnsupportedError(
                        f"{hpath}: a {what} cannot be stored on the HFS+ volume",
                        hint="remove it from the source tree (HFS+ volumes written here hold "
                        "directories, regular files and symlinks only)",
                    )

    @classmethod
    def from_host_dir(
        cls, host_dir: str | os.PathLike[str], *, owner: tuple[int, int] | None = None
    ) -> HfsTree:
        tree = cls()
        tree.add_host_dir(host_dir, owner=owner)
        return tree
