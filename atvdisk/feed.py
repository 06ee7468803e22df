"""Deliver the data of every file in a :class:`~atvdisk.tree.FileTree` to a writer, streaming.

Host files are opened one at a time, tarball members arrive in archive order (one pass over each
archive), generated files come from memory. The writer (the "sink") sees each file's data once,
as a file object of known size, together with every tree path that wants those bytes (a hard link
in a tarball becomes two paths fed from one member).
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from typing import BinaryIO

from atvdisk import tarsafe
from atvdisk.errors import InputError
from atvdisk.tree import ArchiveMember, FileTree, HostFile, Inline, OpenElecMember, Source

Sink = Callable[[list[str], Source, BinaryIO, int], None]

CHUNK = 1 << 20


def feed(tree: FileTree, sink: Sink, *, streamed_only: bool = False) -> None:
    """Call ``sink`` for every file of ``tree``; with ``streamed_only``, only for files whose data
    must be streamed (tarball and release members), the writer reading host files itself."""
    archives: set[str] = set()
    for path, node in tree.files():
        src = node.source
        if streamed_only and isinstance(src, (HostFile, Inline)):
            continue
        if isinstance(src, HostFile):
            try:
                f = open(src.path, "rb")
            except OSError as e:
                raise InputError(f"{src.path}: cannot read: {e.strerror}", hint="check the input file") from None
            with f:
                if os.fstat(f.fileno()).st_size != node.size:
                    raise InputError(f"{src.path} changed size during the build", hint="do not modify input files during a build")
                sink([path], src, f, node.size)
        elif isinstance(src, Inline):
            sink([path], src, io.BytesIO(src.data), node.size)
        elif isinstance(src, OpenElecMember):
            with tarfile.open(src.archive, mode="r:*") as tar:
                member = tar.extractfile(src.member)
                if member is None:
                    raise InputError(f"{src.archive}: {src.member} is not a file", hint="download the release again")
                sink([path], src, member, node.size)
        elif isinstance(src, ArchiveMember):
            archives.add(src.archive)
        else:
            raise TypeError(f"unknown source {src!r}")
    for archive in sorted(archives):

        def member_sink(paths: list[str], f: BinaryIO, size: int) -> None:
            node = tree.nodes[paths[0]]
            assert node.source is not None
            sink(paths, node.source, f, size)

        tarsafe.stream(archive, tree.sources_from(archive), member_sink)


def copy_exact(src: BinaryIO, size: int, write: Callable[[bytes], object], what: str) -> None:
    """Copy exactly ``size`` bytes from ``src`` to ``write`` in large chunks."""
    left = size
    while left:
        chunk = src.read(min(CHUNK, left))
        if not chunk:
            raise InputError(f"{what}: ended {left} bytes early", hint="the input changed or is truncated")
        write(chunk)
        left -= len(chunk)
