"""Deliver the data of every file in a :class:`~atvdisk.inputs.tree.FileTree` to a writer, streaming.

Host files are opened one at a time, tarball members (and the OpenELEC release's files) arrive in
archive order (one pass over each archive, with the bounded reader), generated files come from memory. The writer (the "sink") sees each file's data once,
as a file object of known size, together with every tree path that wants those bytes (a hard link
in a tarball becomes two paths fed from one member).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Collection
from typing import BinaryIO

from atvdisk.errors import InputError
from atvdisk.inputs import tarsafe
from atvdisk.inputs.tree import (
    ArchiveMember,
    FileTree,
    HostFile,
    Inline,
    OpenElecMember,
    Source,
    Spool,
)

Sink = Callable[[list[str], Source, BinaryIO, int], None]

CHUNK = 1 << 20


class HashingReader:
    """Reads through to ``f`` and hashes what passes (verify while writing, as bmaptool does)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.sha256 = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.sha256.update(data)
        self.count += len(data)
        return data

    def __getattr__(self, name: str):  # noqa: ANN204 - readinto, when the file has one
        if name != "readinto" or not hasattr(self._f, "readinto"):
            raise AttributeError(name)
        return self._readinto

    def _readinto(self, buf) -> int:  # noqa: ANN001 - a writable buffer
        """Read into the caller's buffer (no new bytes object per chunk) and hash what came."""
        n = self._f.readinto(buf) or 0  # type: ignore[attr-defined]
        self.sha256.update(memoryview(buf)[:n])
        self.count += n
        return n


def feed(
    tree: FileTree,
    sink: Sink,
    *,
    streamed_only: bool = False,
    skip: Collection[str] = (),
    hashes: dict[str, str] | None = None,
) -> None:
    """Call ``sink`` for every file of ``tree``.

    ``streamed_only``: leave out generated files (the HFS+ writer writes those bytes itself).
    ``skip``: paths to leave out. ``hashes``: filled with the sha256 of the bytes each path was
    given (the sink must read them all), so that neither the manifest nor verification reads or
    decompresses a source again: every payload byte is read once, hashed once, written once.
    """
    if hashes is not None:
        inner = sink

        def sink(paths: list[str], source: Source, f: BinaryIO, size: int) -> None:
            reader = HashingReader(f)
            inner(paths, source, reader, size)  # type: ignore[arg-type]
            if reader.count != size:
                raise InputError(f"{source.describe()}: {reader.count} bytes were read, not {size}", hint="the input changed during the build")
            digest = reader.sha256.hexdigest()
            for p in paths:
                hashes[p] = digest

    archives: dict[str, Spool | None] = {}
    for path, node in tree.files():
        src = node.source
        if streamed_only and isinstance(src, Inline):
            continue
        if path in skip:
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
        elif isinstance(src, ArchiveMember):
            archives.setdefault(src.archive, src.spool)
        elif isinstance(src, OpenElecMember):
            archives.setdefault(src.archive, None)
        else:
            raise TypeError(f"unknown source {src!r}")
    for archive in sorted(archives):

        def member_sink(paths: list[str], f: BinaryIO, size: int) -> None:
            node = tree.nodes[paths[0]]
            assert node.source is not None
            sink(paths, node.source, f, size)

        wanted = {i: [p for p in paths if p not in skip] for i, paths in tree.sources_from(archive).items()}
        tarsafe.stream(archive, {i: paths for i, paths in wanted.items() if paths}, member_sink, spool=archives[archive])


def copy_exact(src: BinaryIO, size: int, write: Callable[[bytes], object], what: str) -> None:
    """Copy exactly ``size`` bytes from ``src`` to ``write`` in large chunks."""
    left = size
    while left:
        chunk = src.read(min(CHUNK, left))
        if not chunk:
            raise InputError(f"{what}: ended {left} bytes early", hint="the input changed or is truncated")
        write(chunk)
        left -= len(chunk)
