"""The build's side of :mod:`atvdisk.fs.hfsplus`: a partition's :class:`~atvdisk.inputs.tree.FileTree`
becomes an :class:`~atvdisk.fs.hfsplus.tree.HfsTree`, is laid out before anything is written, and is
then written with host files streamed by the writer and tarball members streamed by the build.
"""

from __future__ import annotations

import tempfile
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
                source = ExternalSource(node.size)
            else:
                raise TypeError(f"unknown source {src!r}")
            hfs.add_file(path, source, mode=node.mode, uid=node.uid, gid=node.gid, **times)
    return hfs


def lay_out(p: PlannedPartition, tree: FileTree, *, epoch: int) -> VolumeLayout:
    """Allocate every block of partition ``p``'s volume; raises before anything is written."""
    from atvdisk.fs.hfsplus.layout import VolumeOptions, plan_volume

    fs = p.fs
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
        if len(paths) == 1:
            writer.write_external(paths[0], f)
        else:
            # A tar hard link: one member feeds several files. Spool it once (bounded memory).
            with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
                copy_exact(f, size, spool.write, paths[0])
                for path in paths:
                    spool.seek(0)
                    writer.write_external(path, spool)
        progress.advance(size * len(paths))

    feed(tree, sink, streamed_only=True, hashes=hashes)
    region.start_writeback()
    writer.finish(sync=sync)


def read(device: str, offset: int, length: int):  # noqa: ANN201 - (VolumeInfo, list[Entry])
    """The volume header facts and every entry, with sha256 of each file's data fork."""
    from atvdisk.fs.hfsplus.reader import HfsVolume

    entries = []
    with HfsVolume.open(device, offset, length) as vol:
        info = VolumeInfo(vol.signature, vol.volume_name, vol.journaled, vol.clean, f"{vol.volume_id:016X}")
        for e in vol.walk():
            if e.kind == "special":
                entries.append(Entry(e.path, NodeKind.FILE, e.size, e.mode & 0o7777, e.uid, e.gid, "(not a regular file)"))
                continue
            kind = {"dir": NodeKind.DIR, "file": NodeKind.FILE, "symlink": NodeKind.SYMLINK}[e.kind]
            entries.append(
                Entry(
                    e.path,
                    kind,
                    e.size if kind is NodeKind.FILE else 0,
                    e.mode & 0o7777,
                    e.uid,
                    e.gid,
                    vol.sha256(e) if kind is NodeKind.FILE else None,
                    e.link_target,
                )
            )
    return info, entries


def stored_form(path: str) -> str:
    """A path as HFS+ stores it (each component decomposed), to compare with what was read."""
    from atvdisk.fs.hfsplus.unicode import hfs_decompose

    return "/".join(hfs_decompose(c) for c in path.split("/"))
