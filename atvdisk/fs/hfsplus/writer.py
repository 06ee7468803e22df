"""Writing a :class:`~atvdisk.fs.hfsplus.layout.VolumeLayout` through a bounded :class:`Region`.

Usage (the build streams tar members; ``mkhfs`` only has host files)::

    layout = plan_volume(tree, options, region_size)      # raises before any write
    with Region.open(image, offset, region_size, create=True) as region:
        w = VolumeWriter(layout, region)
        w.write()                                         # metadata + host/bytes files
        for path, stream in members:                      # any order
            w.write_external(path, stream)                # exactly the declared size
        w.finish()                                        # checks, then the volume headers

or simply :func:`write_volume` when the tree has no external sources.

The volume headers are written last (the alternate first), so an interrupted write never looks
like a valid volume. On a region known to read as zero, all-zero metadata blocks (free B-tree
nodes, the empty part of the bitmap, the journal buffer) and the holes of sparse source files
are left unwritten, so images stay sparse; otherwise they are written as zeros, together with
free blocks in the first and last MiB (stale signatures of an earlier file system would confuse
``blkid``) and the slack after each file's last byte.

Host files are copied in large chunks (``copy_file_range``/``sendfile``/``pread``+``pwrite``);
memory use does not depend on file sizes.
"""

from __future__ import annotations

import bisect
import errno
import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from atvdisk.fs.hfsplus.btree import BTreePlan, build_nodes, build_nodes_stream
from atvdisk.fs.hfsplus.errors import HfsWriteError, RegionError
from atvdisk.fs.hfsplus.layout import (
    ForkPlacement,
    PlannedFile,
    VolumeLayout,
    VolumeOptions,
    plan_volume,
)
from atvdisk.fs.hfsplus.names import encode_component
from atvdisk.fs.hfsplus.records import (
    JournalHeader,
    JournalInfoBlock,
    kHFSVolumeHeaderOffset,
    kJIJournalInFSMask,
)
from atvdisk.fs.hfsplus.tree import ExternalSource, HfsTree, PathSource, split_path
from atvdisk.fs.region import Region

_GRAIN = 4096
_ZERO = bytes(1 << 20)
_BATCH = 1 << 20

JOURNAL_SECTOR = 512
JOURNAL_BLHDR_SIZE = 4096
SPARSE_MIN = 1 << 16  # smaller host files are copied whole (looking for holes costs more)


class VolumeWriter:
    """Writes one layout into one region (see the module docstring). A layout may be written
    again by a new writer, not by two at once: its files record which external data arrived."""

    def __init__(self, layout: VolumeLayout, region: Region) -> None:
        if region.length != layout.region_size:
            raise RegionError(
                f"region is {region.length} bytes but the layout is for {layout.region_size}"
            )
        self.layout = layout
        self.region = region
        self._bs = layout.block_size
        self._externals = layout.externals()
        for pf in self._externals.values():
            pf.written = False
        self._wrote = False
        self._finished = False

    # -- helpers ----------------------------------------------------------------------------

    def _put(self, pos: int, data: bytes | bytearray | memoryview) -> None:
        """Write metadata; on a known-zero region leave all-zero 4 KiB runs unwritten."""
        r = self.region
        if not r.known_zero:
            r.write(pos, data)
            return
        mv = memoryview(data)
        n = len(mv)
        z = memoryview(_ZERO)
        i = 0
        while i < n:
            j = min(i + _GRAIN, n)
            zero = mv[i:j] == z[: j - i]
            k = j
            while k < n:
                jj = min(k + _GRAIN, n)
                if (mv[k:jj] == z[: jj - k]) != zero:
                    break
                k = jj
            if zero:
                r.claim_zero(pos + i, k - i)
            else:
                r.write(pos + i, mv[i:k])
            i = k

    def _pieces(self, pf: PlannedFile, off: int, length: int) -> Iterator[tuple[int, int, int]]:
        """Map ``[off, off+length)`` of a file to ``(region_pos, file_off, n)`` pieces."""
        bs = self._bs
        base = 0
        end = off + length
        for start, count in pf.extents:
            ext_len = count * bs
            a = max(off, base)
            b = min(end, base + ext_len)
            if a < b:
                yield start * bs + (a - base), a, b - a
            base += ext_len
            if base >= end:
                break

    def _tail(self, pf: PlannedFile) -> None:
        slack = pf.blocks * self._bs - pf.size
        if slack > 0:
            start, count = pf.extents[-1]
            self.region.zero_or_claim((start + count) * self._bs - slack, slack)

    # -- metadata ---------------------------------------------------------------------------

    def _head(self) -> None:
        r = self.region
        r.zero_or_claim(0, kHFSVolumeHeaderOffset)
        end = self.layout.head_blocks * self._bs
        if end > 1536:
            r.zero_or_claim(1536, end - 1536)

    def _bitmap(self) -> None:
        lay = self.layout
        fork = lay.allocation
        size = fork.blocks * self._bs
        base = fork.start * self._bs
        extents = lay.used_extents
        ei = 0
        for off in range(0, size, _BATCH):
            n = min(_BATCH, size - off)
            buf = bytearray(n)
            lo, hi = off * 8, (off + n) * 8  # block numbers covered by this window
            while ei < len(extents) and extents[ei][0] + extents[ei][1] <= lo:
                ei += 1
            j = ei
            while j < len(extents) and extents[j][0] < hi:
                s, c = extents[j]
                a, b = max(s, lo) - lo, min(s + c, hi) - lo
                _set_bits(buf, a, b)
                j += 1
            self._put(base + off, buf)

    def _journal(self) -> None:
        lay = self.layout
        if lay.journal is None:
            return
        bs = self._bs
        j = lay.journal
        jib = JournalInfoBlock(flags=kJIJournalInFSMask, offset=j.start * bs, size=j.logical_size).pack()
        self._put(lay.journal_info_block * bs, jib + bytes(bs - len(jib)))
        jh = JournalHeader(
            start=JOURNAL_SECTOR,
            end=JOURNAL_SECTOR,
            size=j.logical_size,
            blhdr_size=JOURNAL_BLHDR_SIZE,
            jhdr_size=JOURNAL_SECTOR,
        ).with_checksum().pack()
        self._put(j.start * bs, jh + bytes(JOURNAL_SECTOR - len(jh)))
        self.region.zero_or_claim(j.start * bs + JOURNAL_SECTOR, j.blocks * bs - JOURNAL_SECTOR)

    def _btree(
        self, fork: ForkPlacement | None, plan: BTreePlan | None, records: Iterable, *, streamed: bool = False
    ) -> None:
        """Write a B-tree file: ``records`` are ``(key, data)`` pairs, or with ``streamed``
        ``(key, data, room)`` triples generated one at a time (the catalog: nodes are written as
        they fill, so its records are never all in memory)."""
        if fork is None or plan is None:
            return
        ns = plan.spec.node_size
        base = fork.start * self._bs
        batch = bytearray()
        batch_start = 0
        next_node = 0
        nodes = build_nodes_stream(plan, records) if streamed else build_nodes(plan, records)
        for number, image in nodes:
            if number != next_node:
                raise AssertionError("B-tree nodes out of order")
            if not batch:
                batch_start = number
            batch += image
            next_node += 1
            if len(batch) >= _BATCH:
                self._put(base + batch_start * ns, batch)
                batch = bytearray()
        if batch:
            self._put(base + batch_start * ns, batch)
        free_from = base + next_node * ns
        self.region.zero_or_claim(free_from, base + fork.blocks * self._bs - free_from)

    def _wipe_edges(self) -> None:
        """On a used device, zero free blocks in the first and last MiB (stale signatures)."""
        if self.region.known_zero:
            return
        lay = self.layout
        edge = max(1, (1 << 20) // self._bs)
        if 2 * edge >= lay.total_blocks:
            windows = [(0, lay.total_blocks)]
        else:
            windows = [(0, edge), (lay.total_blocks - edge, lay.total_blocks)]
        prev_end = 0
        free = []
        for s, c in lay.used_extents:
            if s > prev_end:
                free.append((prev_end, s))
            prev_end = max(prev_end, s + c)
        if prev_end < lay.total_blocks:
            free.append((prev_end, lay.total_blocks))
        for a, b in free:
            for wa, wb in windows:
                x, y = max(a, wa), min(b, wb)
                if x < y:
                    self.region.write_zeros(x * self._bs, (y - x) * self._bs)

    # -- file data --------------------------------------------------------------------------

    def _write_bytes(self, pf: PlannedFile, data: bytes) -> None:
        mv = memoryview(data)
        for pos, off, n in self._pieces(pf, 0, len(data)):
            self._put(pos, mv[off : off + n])
        self._tail(pf)

    def _write_host_file(self, pf: PlannedFile) -> None:
        assert isinstance(pf.source, PathSource)
        path = pf.source.path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise HfsWriteError(f"cannot read {path}: {e.strerror}") from e
        try:
            size = os.fstat(fd).st_size
            if size != pf.size:
                raise HfsWriteError(
                    f"{path} changed size since the layout ({pf.size} -> {size} bytes)",
                    hint="do not modify the source tree while the volume is written",
                )
            for a, b, is_data in self._segments(fd, size):
                for pos, off, n in self._pieces(pf, a, b - a):
                    if is_data:
                        self.region.copy_from(pos, fd, off, n)
                    else:
                        self.region.claim_zero(pos, n)
        except RegionError as e:
            raise HfsWriteError(f"writing {path} into the volume failed: {e.message}") from e
        finally:
            os.close(fd)
        self._tail(pf)

    def _segments(self, fd: int, size: int) -> Iterator[tuple[int, int, bool]]:
        """``(start, end, is_data)`` of a host file; holes only on a known-zero region."""
        if not self.region.known_zero or size < SPARSE_MIN:
            if size:
                yield 0, size, True
            return
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    yield pos, size, False
                    return
                yield pos, size, True  # no SEEK_DATA support: copy everything
                return
            data = min(data, size)
            if data > pos:
                yield pos, data, False
            if data >= size:
                return
            try:
                hole = os.lseek(fd, data, os.SEEK_HOLE)
            except OSError:
                hole = size
            hole = min(hole, size)
            yield data, hole, True
            pos = hole

    # -- public -----------------------------------------------------------------------------

    def write(self) -> None:
        """Write all metadata and every file whose data is a host file or bytes."""
        if self._wrote:
            raise HfsWriteError("VolumeWriter.write() called twice")
        self._wrote = True
        lay = self.layout
        try:
            self._head()
            self._bitmap()
            self._journal()
            self._btree(lay.extents, lay.extents_plan, lay.extents_records)
            self._btree(lay.attributes, lay.attributes_plan, [])
            self._btree(lay.catalog, lay.catalog_plan, lay.catalog_records(), streamed=True)
            self._wipe_edges()
            for pf in sorted(lay.files, key=lambda f: f.extents[0][0] if f.extents else 0):
                data = pf.data()
                if data is not None:
                    if len(data) != pf.size:
                        raise HfsWriteError(f"{pf.path}: data is {len(data)} bytes, layout says {pf.size}")
                    self._write_bytes(pf, data)
                elif isinstance(pf.source, PathSource):
                    self._write_host_file(pf)
        except RegionError as e:
            raise HfsWriteError(f"writing the volume failed: {e.message}", hint=e.hint) from e

    def pending_externals(self) -> list[str]:
        """Paths of external files not written yet."""
        return sorted(pf.path for pf in self._externals.values() if not pf.written)

    def write_external(self, path: str, stream: BinaryIO) -> None:
        """Stream the data of the external file ``path``: exactly its declared size."""
        if not self._wrote:
            raise HfsWriteError("call VolumeWriter.write() before write_external()")
        keys = tuple(encode_component(n, path=path) for n in split_path(path))
        pf = self._externals.get(keys)
        if pf is None:
            raise HfsWriteError(f"{path!r} is not a file with external data in this layout")
        if pf.written:
            raise HfsWriteError(f"{path!r}: external data written twice")
        assert isinstance(pf.source, ExternalSource)
        try:
            for pos, _off, n in self._pieces(pf, 0, pf.size):
                self.region.write_stream(pos, stream, n, exact=False, skip_zero_chunks=True)
        except RegionError as e:
            raise HfsWriteError(
                f"{path!r}: its data is shorter than the declared {pf.size} bytes ({e.message})"
            ) from e
        extra = stream.read(1)
        if extra:
            raise HfsWriteError(f"{path!r}: its data is longer than the declared {pf.size} bytes")
        self._tail(pf)
        pf.written = True

    def finish(self, *, sync: bool = True) -> None:
        """Check that every file was written, then write both volume headers.

        With ``sync`` (the default, as mkfs tools do) everything else is flushed before the
        primary header is written, and the header after it, so a crash never leaves a header
        describing unwritten data."""
        if not self._wrote:
            raise HfsWriteError("call VolumeWriter.write() before finish()")
        if self._finished:
            return
        pending = self.pending_externals()
        if pending:
            more = f" and {len(pending) - 10} more" if len(pending) > 10 else ""
            raise HfsWriteError(
                f"{len(pending)} file(s) never received their data: {', '.join(pending[:10])}{more}"
            )
        lay = self.layout
        r = self.region
        size = lay.region_size
        vh = lay.header.pack()
        try:
            tail_start = (lay.total_blocks - lay.tail_blocks) * self._bs
            r.zero_or_claim(tail_start, size - 1024 - tail_start)
            r.zero_or_claim(size - 512, 512)
            r.write(size - 1024, vh)
            self._check_coverage()
            if sync:
                r.sync()
            r.write(kHFSVolumeHeaderOffset, vh)
            if sync:
                r.sync()
        except RegionError as e:
            raise HfsWriteError(f"writing the volume headers failed: {e.message}") from e
        self._finished = True

    def _check_coverage(self) -> None:
        """Every allocated block (but the primary header) must have been written or claimed."""
        written = self.region.written()
        starts = [w[0] for w in written]
        bs = self._bs
        for s, c in self.layout.used_extents:
            a, b = s * bs, (s + c) * bs
            if s == 0:
                a = 1536
            if a >= b:
                continue
            i = bisect.bisect_right(starts, a) - 1
            if i < 0 or written[i][1] < b:
                raise AssertionError(f"blocks {s}..{s + c - 1} were not written")


def _set_bits(buf: bytearray, a: int, b: int) -> None:
    """Set bits ``a``..``b-1`` (bit 0 = MSB of byte 0) in ``buf``."""
    if a >= b:
        return
    fa, fb = a >> 3, b >> 3
    if fa == fb:
        buf[fa] |= (0xFF >> (a & 7)) & (0xFF << (8 - (b & 7)) & 0xFF)
        return
    if a & 7:
        buf[fa] |= 0xFF >> (a & 7)
        fa += 1
    buf[fa:fb] = b"\xff" * (fb - fa)
    if b & 7:
        buf[fb] |= (0xFF << (8 - (b & 7))) & 0xFF


def write_volume(tree: HfsTree, options: VolumeOptions, region: Region, *, sync: bool = True) -> VolumeLayout:
    """Lay out ``tree`` for ``region`` and write it completely (no external sources allowed)."""
    layout = plan_volume(tree, options, region.length)
    w = VolumeWriter(layout, region)
    if w.pending_externals():
        raise HfsWriteError("write_volume() cannot write a tree with external sources; use VolumeWriter")
    w.write()
    w.finish(sync=sync)
    return layout
