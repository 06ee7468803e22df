"""The build's side of :mod:`atvdisk.fs.hfsplus`: a partition's :class:`~atvdisk.inputs.tree.FileTree`
becomes an :class:`~atvdisk.fs.hfsplus.tree.HfsTree`, is laid out before anything is written, and is
then written with host files streamed by the writer and tarball members streamed by the build.
"""

from __future__ import annotations

import tempfile
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atvdisk.fs.entry import Entry
from atvdisk.inputs.tree import (
    ArchiveMember,
    FileTree,
    HostFile,
    Inline,
    NodeKind,
    OpenElecMember,
)
from atvdisk.layout.plan import PlannedPartition
from atvdisk.layout.schema import FsKind

if TYPE_CHECKING:
    from atvdisk.fs.region import Region
    from atvdisk.progress import Progress


@dataclass
class VolumeLayout:
    """A laid-out volume (the HFS+ writer's layout) and the tree it came from."""

    layout: Any  # atvdisk.fs.hfsplus.layout.VolumeLayout
    partition: PlannedPartition


@dataclass(frozen=True)
class VolumeInfo:
    signature: str
    volume_name: str
    journaled: bool
    clean: bool
    volume_id: str  # 16 hex digits


def _hfs_tree(tree: FileTree):  # noqa: ANN202
    from atvdisk.fs.hfsplus.tree import BytesSource, ExternalSource, HfsTree

    hfs = HfsTree()
    sized: dict[int, ExternalSource] = {}  # one (frozen) source per size: many files share a size
    for path, node in tree:
        times = dict(mtime=node.mtime, atime=node.mtime, ctime=node.mtime, crtime=node.mtime)
        if node.kind is NodeKind.DIR:
            hfs.add_dir(path, mode=node.mode, uid=node.uid, gid=node.gid, **times)
        elif node.kind is NodeKind.SYMLINK:
            assert node.target is not None
            hfs.add_symlink(path, node.target, uid=node.uid, gid=node.gid, **times)
        else:
            src = node.source
            if isinstance(src, Inline):
                source = BytesSource(src.data)
            elif isinstance(src, (HostFile, ArchiveMember, OpenElecMember)):
                # Streamed by the build (write()), which hashes every byte on its way in.
                source = sized.get(node.size)
                if source is None:
                    source = sized[node.size] = ExternalSource(node.size)
            else:
                raise TypeError(f"unknown source {src!r}")
            hfs.add_file(path, source, mode=node.mode, uid=node.uid, gid=node.gid, **times)
    return hfs


def refuse_equal_names(tree: FileTree, *, case_sensitive: bool, where: str) -> None:
    """Refuse two entries of one directory whose names are one name on the volume.

    HFS+ compares names decomposed (TN1150 "Unicode Subtleties": ``café`` precomposed and
    decomposed are one name), and on a case-insensitive volume also with Apple's case folding
    and ignoring a few code points (``Foo``/``foo``, ``ab``/``a<ZWJ>b``); HFSX compares the
    decomposed names as they are. The host, the tarballs and the file tree keep such names
    apart, so the writer would get two files for one catalog entry after the disk was wiped:
    raises :class:`~atvdisk.fs.hfsplus.errors.HfsDuplicateNameError` naming both entries and
    where they came from, before anything is written.
    """
    from atvdisk.fs.hfsplus.errors import HfsDuplicateNameError
    from atvdisk.fs.hfsplus.names import NameOrder, encode_component
    from atvdisk.fs.hfsplus.unicode import hfs_decompose

    order = NameOrder(case_sensitive)
    name_key: dict[str, bytes] = {}
    canonical: dict[str, tuple[bytes, ...]] = {"": ()}
    first: dict[tuple[bytes, ...], str] = {}
    for path, node in tree:  # parents before children
        if not path:
            continue
        parent, _, name = path.rpartition("/")
        key = name_key.get(name)
        if key is None:
            if name.isascii() and len(name) <= 255 and ":" not in name and "\0" not in name and name not in (".", ".."):
                key = (name if case_sensitive else name.lower()).encode("utf-16-be")  # what the rules give ASCII
            else:
                key = order.sort_key(encode_component(name, path=path))
            name_key[name] = key
        canon = canonical[parent] + (key,)
        other = first.get(canon)
        if other is not None:
            oname = other.rpartition("/")[2]
            case = False
            if hfs_decompose(oname) == hfs_decompose(name):
                why = "they differ only in Unicode normalization"
            elif hfs_decompose(oname).casefold() == hfs_decompose(name).casefold():
                why, case = "HFS+ ignores case", True
            else:
                why = "HFS+ ignores some characters when it compares names"
            # names that print alike are shown with their code points
            show = ascii if unicodedata.normalize("NFC", other) == unicodedata.normalize("NFC", path) else repr
            came = "".join(f"; {show(q)} from {n.origin}" for q, n in ((other, tree.nodes[other]), (path, node)) if n.origin)
            raise HfsDuplicateNameError(
                f"{where}: {show(other)} and {show(path)} are the same name on this "
                f"{'HFSX' if case_sensitive else 'HFS+'} volume ({why}{came})",
                first=other,
                second=path,
                path=path,
                hint="rename one of them, or drop one with a `remove` content entry"
                + ("; a case-sensitive volume (kind = \"hfsx\") keeps both" if case else ""),
            )
        first[canon] = path
        canonical[path] = canon


def lay_out(p: PlannedPartition, tree: FileTree, *, epoch: int) -> VolumeLayout:
    """Allocate every block of partition ``p``'s volume; raises before anything is written."""
    from atvdisk.fs.hfsplus.layout import VolumeOptions, plan_volume

    fs = p.fs
    refuse_equal_names(tree, case_sensitive=fs.kind is FsKind.HFSX, where=f"partition {p.number} {p.name}")
    options = VolumeOptions(
        volume_name=fs.label or p.name,
        case_sensitive=fs.kind is FsKind.HFSX,
        journaled=bool(fs.journal),
        block_size=fs.block_size or 4096,
        journal_size=fs.journal_size,
        create_time=epoch,
        volume_id=int(fs.uuid, 16) if fs.uuid else None,
    )
    return VolumeLayout(plan_volume(_hfs_tree(tree), options, p.size_bytes), p)


def write(volume: VolumeLayout, region: Region, tree: FileTree, progress: Progress, hashes: dict[str, str] | None = None, *, sync: bool = True) -> None:
    """Write the volume into ``region``; host files, tarball members and release files arrive by
    streaming (their sha256 recorded in ``hashes`` on the way, for the manifest and verification).

    ``sync``: flush the data before each volume header, so that a crash never leaves a header
    describing unwritten blocks (a disk); an image file is not renamed into place before its one
    final fsync, so it does not need these.
    """
    from atvdisk.fs.hfsplus.writer import VolumeWriter
    from atvdisk.inputs.feed import copy_exact, feed

    writer = VolumeWriter(volume.layout, region)
    writer.write()  # metadata and generated files
    progress.advance(sum(n.size for _, n in tree.files() if isinstance(n.source, Inline)))

    def sink(paths, source, f, size) -> None:  # noqa: ANN001
        f = progress.counting(f)  # within one large file too
        if len(paths) == 1:
            writer.write_external(paths[0], f)
        else:
            # A tar hard link: one member feeds several files. Spool it once (bounded memory).
            with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
                copy_exact(f, size, spool.write, paths[0])
                for path in paths:
                    spool.seek(0)
                    writer.write_external(path, spool)

    feed(tree, sink, streamed_only=True, hashes=hashes)
    region.start_writeback()
    writer.finish(sync=sync)


def read(device: str, offset: int, length: int):  # noqa: ANN201 - (VolumeInfo, list[Entry])
    """The volume header facts and every entry, with sha256 of each file's data fork."""
    with open_entries(device, offset, length) as (info, entries):
        return info, list(entries)


@contextmanager
def open_entries(device: str, offset: int, length: int) -> Iterator[tuple[VolumeInfo, Iterator[Entry]]]:
    """The volume header facts and an iterator over every entry (sha256 of each file's data
    fork taken as it comes), in catalog order; memory bounded by the number of folders, not of
    files (:meth:`HfsVolume.scan`). Valid while the context is open."""
    from atvdisk.fs.hfsplus.reader import HfsVolume

    with HfsVolume.open(device, offset, length) as vol:
        info = VolumeInfo(vol.signature, vol.volume_name, vol.journaled, vol.clean, f"{vol.volume_id:016X}")

        def entries() -> Iterator[Entry]:
            for e in vol.scan():
                if e.kind == "special":
                    yield Entry(e.path, NodeKind.FILE, e.size, e.mode & 0o7777, e.uid, e.gid, "(not a regular file)")
                    continue
                kind = _KINDS[e.kind]
                yield Entry(
                    e.path,
                    kind,
                    e.size if kind is NodeKind.FILE else 0,
                    e.mode & 0o7777,
                    e.uid,
                    e.gid,
                    vol.sha256(e) if kind is NodeKind.FILE else None,
                    e.link_target,
                )

        yield info, entries()


_KINDS = {"dir": NodeKind.DIR, "file": NodeKind.FILE, "symlink": NodeKind.SYMLINK}


def read_small_file(device: str, offset: int, length: int, path: str, limit: int = 1 << 20) -> bytes | None:
    """The data of the file at ``path`` on the volume (None if there is none); at most ``limit``
    bytes are read (a longer file is an error: this is for small files such as a boot plist)."""
    from atvdisk.errors import UsageError
    from atvdisk.fs.hfsplus.reader import HfsVolume

    want = stored_form(path)
    with HfsVolume.open(device, offset, length) as vol:
        for e in vol.scan():  # bounded memory on a volume with many files
            if e.path == want and e.kind == "file":
                if e.size > limit:
                    raise UsageError(f"/{path} is {e.size} bytes; at most {limit} expected", hint="check the volume")
                return b"".join(vol.read(e))
    return None


def stored_form(path: str) -> str:
    """A path as HFS+ stores it (each component decomposed), to compare with what was read."""
    from atvdisk.fs.hfsplus.unicode import hfs_decompose

    return "/".join(hfs_decompose(c) for c in path.split("/"))
