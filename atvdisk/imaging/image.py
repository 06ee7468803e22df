"""An image to write: a raw disk image, or one compressed with gzip or xz, read as a stream.

One job: :func:`open_image` looks at an image and says what it is (:class:`ImageInfo`: its size,
its primary GPT, the kind of filesystem at each partition's start, atvdisk's manifest if it has
one), and :meth:`ImageInfo.pieces` yields its data in order as ``(offset, bytes)`` pieces,
leaving out what reads as zeros:

- raw images: only the allocated ranges (``SEEK_DATA``/``SEEK_HOLE``, as bmaptool copies only
  mapped blocks), and within them all-zero 64 KiB blocks where :func:`ImageInfo.pieces` is told
  they may be skipped;
- compressed images (recognised by their magic bytes, whatever their name): decompressed as a
  stream, in bounded memory, never to a temporary copy of the whole image. To learn what the
  image is before anything is written, a first pass decompresses only as far as it must (the
  GPT, the start of every partition, and the partitions that may hold the manifest, until it is
  found), keeping their non-zero blocks in a small sparse scratch file.

Decompression: gzip with python-isal (ISA-L's inflate) when installed, else zlib; xz with lzma.
"""

from __future__ import annotations

import gzip
import logging
import lzma
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import BinaryIO

from atvdisk.errors import InputError, ToolError
from atvdisk.fs.gpt import GptError, GptPrimary, read_primary
from atvdisk.fs.signature import probe
from atvdisk.layout.schema import FsKind
from atvdisk.manifest import Found, find

log = logging.getLogger("atvdisk.image")

BLOCK = 64 * 1024  # zero detection granularity
CHUNK = 4 << 20
GPT_AREA = 1 << 20  # the primary GPT lies in the first MiB of any disk atvdisk reads
HEAD = 64 * 1024  # bytes of each partition's start kept by the first pass (signatures)
_ZERO = bytes(BLOCK)

try:  # ISA-L's inflate is several times faster than zlib's
    from isal import igzip as _gzip_module  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - isal is a dependency; zlib keeps working without it
    _gzip_module = gzip


def _compression(path: str) -> str | None:
    with open(path, "rb") as f:
        head = f.read(6)
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head == b"\xfd7zXZ\x00":
        return "xz"
    if head[:3] == b"BZh" or head[:4] == b"\x28\xb5\x2f\xfd":
        raise InputError(f"{path}: bzip2 and zstd images are not supported", hint="decompress it first, or use .img.gz / .img.xz")
    return None


def _open_stream(path: str, compression: str) -> BinaryIO:
    if compression == "gzip":
        return _gzip_module.open(path, "rb")  # type: ignore[return-value]
    return lzma.open(path, "rb")  # type: ignore[return-value]


@dataclass
class ImageInfo:
    path: str
    compression: str | None
    size: int
    sector_size: int
    gpt: GptPrimary | None
    kinds: dict[int, FsKind]  # partition number -> filesystem found at its start
    found: Found | None  # atvdisk's manifest
    scratch: str | None = None  # compressed images: the first pass's sparse copy
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)

    @property
    def readable(self) -> str:
        """A raw file holding what was inspected (the image itself, or the scratch copy)."""
        return self.scratch or self.path

    def close(self) -> None:
        self._stack.close()

    def partition_ranges(self) -> list[tuple[int, int, int]]:
        """(number, start byte, end byte) of the image's GPT partitions."""
        if self.gpt is None:
            return []
        S = self.sector_size
        return [(n, e.first_lba * S, (e.last_lba + 1) * S) for n, e in self.gpt.partitions]

    def pieces(self, skip_zero: Callable[[int], bool] = lambda _pos: False) -> Iterator[tuple[int, bytes]]:
        """The image's data in order, as (offset, bytes) of at most CHUNK bytes. All-zero
        BLOCK-sized blocks at offsets where ``skip_zero(offset)`` is true are left out (raw images
        also leave out their holes)."""
        if self.compression is None:
            yield from _split(self._raw_pieces(), skip_zero)
        else:
            yield from _split(self._stream_pieces(), skip_zero)

    def _raw_pieces(self) -> Iterator[tuple[int, bytes]]:
        with open(self.path, "rb") as f:
            fd = f.fileno()
            for start, end in data_ranges(fd, self.size):
                pos = start
                while pos < end:
                    n = min(CHUNK, end - pos)
                    data = os.pread(fd, n, pos)
                    if len(data) != n:
                        raise InputError(f"{self.path}: short read at byte {pos}", hint="the image changed or is truncated")
                    yield pos, data
                    pos += n

    def _stream_pieces(self) -> Iterator[tuple[int, bytes]]:
        assert self.compression is not None
        pos = 0
        with _open_stream(self.path, self.compression) as stream:
            while True:
                try:
                    data = stream.read(CHUNK)
                except (OSError, EOFError, lzma.LZMAError) as e:
                    raise InputError(f"{self.path}: the compressed image is damaged at byte {pos} of its contents ({e})", hint="download or copy it again") from None
                if not data:
                    break
                yield pos, data
                pos += len(data)
        if pos != self.size:
            raise InputError(f"{self.path}: the image holds {pos} bytes, not the {self.size} its first reading found", hint="it changed while being written")


def _split(pieces: Iterator[tuple[int, bytes]], skip_zero: Callable[[int], bool]) -> Iterator[tuple[int, bytes]]:
    """Drop all-zero BLOCK-aligned blocks where allowed; join the rest into runs."""
    for pos, data in pieces:
        view = memoryview(data)
        run_start = None
        i = 0
        n = len(data)
        while i < n:
            block_end = min(n, (pos + i) // BLOCK * BLOCK + BLOCK - pos)
            part = view[i:block_end]
            zero = part.nbytes == BLOCK and part == _ZERO[: part.nbytes] and skip_zero(pos + i)
            if zero:
                if run_start is not None:
                    yield pos + run_start, bytes(view[run_start:i])
                    run_start = None
            elif run_start is None:
                run_start = i
            i = block_end
        if run_start is not None:
            yield pos + run_start, bytes(view[run_start:n])


def data_ranges(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """The allocated ranges of a file (its holes left out), as SEEK_DATA/SEEK_HOLE report them."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            return  # ENXIO: no data after pos
        end = min(size, os.lseek(fd, start, os.SEEK_HOLE))
        if start >= size:
            return
        yield start, end
        pos = end


# --------------------------------------------------------------------------------------------


def open_image(path: str, *, sector_size: int = 512) -> ImageInfo:
    """Inspect the image at ``path``: raw, or gzip/xz (first pass, see the module docstring)."""
    try:
        if not os.path.isfile(path):
            raise InputError(f"{path}: no such image file", hint="give a .img, .img.gz or .img.xz file")
        compression = _compression(path)
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from e
    if compression is None:
        size = os.path.getsize(path)
        if size == 0 or size % sector_size:
            raise InputError(f"{path}: {size} bytes is not a whole number of {sector_size}-byte sectors", hint="is it a disk image?")
        gpt, kinds = _layout(path, sector_size, size)
        found = find(path, sector_size) if gpt is not None else None
        return ImageInfo(path, None, size, sector_size, gpt, kinds, found)
    return _first_pass(path, compression, sector_size)


def _layout(path: str, sector_size: int, size: int) -> tuple[GptPrimary | None, dict[int, FsKind]]:
    with open(path, "rb") as f:
        try:
            gpt = read_primary(f, sector_size)
        except GptError:
            return None, {}
        kinds = {}
        for n, e in gpt.partitions:
            start, end = e.first_lba * sector_size, (e.last_lba + 1) * sector_size
            kinds[n] = probe(f.fileno(), start, end - start) if end <= size else FsKind.NONE
    return gpt, kinds


def _first_pass(path: str, compression: str, sector_size: int) -> ImageInfo:
    stack = ExitStack()
    tmpdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="atvdisk-image-"))
    scratch = os.path.join(tmpdir, "head.img")
    keep: list[tuple[int, int]] = [(0, GPT_AREA)]
    gpt: GptPrimary | None = None
    parts: list[tuple[int, int, int]] = []
    pending: list[tuple[int, int, int]] = []  # FAT32/ext4 partitions not yet searched
    probed: set[int] = set()
    found = None
    total = 0
    try:
        out = os.open(scratch, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with _open_stream(path, compression) as stream:
                while found is None:
                    try:
                        data = stream.read(CHUNK)
                    except (OSError, EOFError, lzma.LZMAError) as e:
                        raise InputError(f"{path}: not a readable {compression} image ({e})", hint="download or copy it again") from None
                    if not data:
                        break
                    pos, total = total, total + len(data)
                    for a, b in keep:
                        lo, hi = max(a, pos), min(b, total)
                        if lo < hi:
                            _write_nonzero(out, data[lo - pos : hi - pos], lo)
                    if gpt is None and total >= GPT_AREA and not parts:
                        gpt = _gpt_of(scratch, sector_size)
                        parts = [(n, e.first_lba * sector_size, (e.last_lba + 1) * sector_size) for n, e in gpt.partitions] if gpt else [(0, 0, 0)]
                        if gpt is not None:
                            os.ftruncate(out, (gpt.header.alternate_lba + 1) * sector_size)
                            keep += [(a, a + HEAD) for _, a, _ in parts]
                    for n, a, b in parts:
                        if gpt is not None and n not in probed and total >= a + HEAD:
                            probed.add(n)
                            if probe(out, a, HEAD) in (FsKind.FAT32, FsKind.EXT4):
                                pending.append((n, a, b))
                                keep.append((a, b))
                                lo, hi = max(a, pos), min(b, total)  # this chunk's part of it, too
                                if lo < hi:
                                    _write_nonzero(out, data[lo - pos : hi - pos], lo)
                    complete = [c for c in pending if total >= c[2]]
                    if complete:
                        pending = [c for c in pending if c not in complete]
                        found = _find_in(scratch, sector_size)
        finally:
            os.close(out)
        size = found.manifest.disk_bytes if found is not None else total
        if gpt is not None and found is not None and (gpt.header.alternate_lba + 1) * sector_size != size:
            raise InputError(
                f"{path}: its manifest says {size} bytes but its GPT says {(gpt.header.alternate_lba + 1) * sector_size}",
                hint="the image is damaged",
            )
        if size % sector_size or size == 0:
            raise InputError(f"{path}: its {size} bytes are not a whole number of {sector_size}-byte sectors", hint="is it a disk image?")
        with open(scratch, "r+b") as f:
            f.truncate(size)
            kinds = {n: probe(f.fileno(), a, b - a) if b <= size else FsKind.NONE for n, a, b in parts} if gpt else {}
    except BaseException:
        stack.close()
        raise
    return ImageInfo(path, compression, size, sector_size, gpt, kinds, found, scratch, stack)


def _find_in(scratch: str, sector_size: int) -> Found | None:
    try:
        return find(scratch, sector_size)
    except ToolError:
        return None


def _gpt_of(path: str, sector_size: int) -> GptPrimary | None:
    with open(path, "rb") as f:
        try:
            return read_primary(f, sector_size)
        except GptError:
            return None


def _write_nonzero(fd: int, data: bytes, pos: int) -> None:
    view = memoryview(data)
    for i in range(0, len(data), BLOCK):
        part = view[i : i + BLOCK]
        if part != _ZERO[: part.nbytes]:
            os.pwrite(fd, part, pos + i)


__all__ = ["ImageInfo", "open_image", "data_ranges", "BLOCK"]
