"""``build --compress gz|xz``: an image as ``.img.gz`` or ``.img.xz`` for sharing, the way ATV
users pass images around; ``atvdisk write``, ``bmaptool copy``, ``gunzip`` and ``unxz`` read it.

One job: :func:`compress_image`. A built image is mostly holes (a 4 GiB image of the sample
payload holds 30 MiB of data); compressing gigabytes of zeros byte by byte takes minutes. So the
data is compressed as usual and each long run of zeros (a hole) becomes ready-made members:
gzip and xz both define a file as a sequence of members (streams) whose contents are
concatenated, so a member holding 64 MiB of zeros, compressed once, is written as many times as
the hole needs. The output is deterministic (no names or times in the gzip headers; xz with
CRC64), so an image built with ``--seed`` compresses to the same bytes every time.
"""

from __future__ import annotations

import lzma
import os
from collections.abc import Callable
from typing import BinaryIO

from atvdisk.errors import UsageError
from atvdisk.imaging.image import data_ranges

try:
    from isal import isal_zlib as _zlib  # type: ignore[import-not-found]

    GZIP_LEVEL = 3  # ISA-L's best; about zlib's 6 in size, several times faster
except ImportError:  # pragma: no cover - isal is a dependency
    import zlib as _zlib  # type: ignore[no-redef]

    GZIP_LEVEL = 6

ZERO_MEMBER = 64 << 20  # zeros per ready-made member
MIN_HOLE = 4 << 20  # shorter holes are compressed with the data around them
CHUNK = 4 << 20
SUFFIX = {"gz": ".gz", "xz": ".xz"}


def _gzip_member(level: int) -> tuple[Callable[[bytes], bytes], Callable[[], bytes]]:
    c = _zlib.compressobj(level, _zlib.DEFLATED, 31)  # wbits 31: a gzip member, mtime 0, no name
    return c.compress, c.flush


def _xz_member() -> tuple[Callable[[bytes], bytes], Callable[[], bytes]]:
    c = lzma.LZMACompressor(format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=6)
    return c.compress, c.flush


def compress_image(src: str, dst: BinaryIO, kind: str, *, progress: Callable[[int], None] | None = None) -> None:
    """Write ``src`` (a raw image) to ``dst`` compressed as ``kind`` ("gz" or "xz");
    ``progress(n)``: n more bytes of ``src`` are done (data and holes)."""
    if kind not in SUFFIX:
        raise UsageError(f"unknown compression {kind!r}", hint="use gz or xz")

    def member() -> tuple[Callable[[bytes], bytes], Callable[[], bytes]]:
        return _gzip_member(GZIP_LEVEL) if kind == "gz" else _xz_member()

    zero_cache: dict[int, bytes] = {}

    def zeros(n: int) -> None:
        while n > 0:
            k = min(n, ZERO_MEMBER)
            if k not in zero_cache:
                put, end = member()
                block = bytes(min(k, CHUNK))
                parts = []
                left = k
                while left:
                    parts.append(put(block[: min(left, len(block))]))
                    left -= min(left, len(block))
                parts.append(end())
                zero_cache[k] = b"".join(parts)
            dst.write(zero_cache[k])
            n -= k
            if progress:
                progress(k)

    size = os.path.getsize(src)
    with open(src, "rb") as f:
        fd = f.fileno()
        # Runs of data (holes shorter than MIN_HOLE included as zeros) and long holes between.
        runs: list[tuple[int, int]] = []
        for a, b in data_ranges(fd, size):
            if runs and a - runs[-1][1] < MIN_HOLE:
                runs[-1] = (runs[-1][0], b)
            else:
                runs.append((a, b))
        pos = 0
        for a, b in runs:
            if a > pos:
                zeros(a - pos)
            put, end = member()
            while a < b:
                data = os.pread(fd, min(CHUNK, b - a), a)
                if not data:
                    raise UsageError(f"{src}: short read at byte {a}", hint="the image changed while being compressed")
                dst.write(put(data))
                a += len(data)
                if progress:
                    progress(len(data))
            dst.write(end())
            pos = b
        if pos < size:
            zeros(size - pos)


__all__ = ["compress_image", "SUFFIX"]
