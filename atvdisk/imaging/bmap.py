"""A ``.bmap`` file beside an image, so that ``bmaptool copy`` (Debian's bmap-tools) flashes it
too, as fast as it flashes any bmap'd image and as safely as ``atvdisk write``.

One job: :func:`make_bmap` writes bmap format 2.0 (what bmap-tools 3.x reads): the image size,
4 KiB blocks, the mapped block ranges with the sha256 of each, and the file's own checksum.

The mapped ranges are the image's allocated ranges (``SEEK_DATA``) *and* every range its
filesystems rely on reading exactly (:mod:`atvdisk.fs.usage`: bitmaps, inode tables, the ext4
journal, HFS+ B-trees), both GPT areas and the first and last MiB of every partition. bmaptool
writes only mapped blocks and leaves the rest of a used card as it was; an image whose holes
stand for zeros the filesystems need would otherwise come out broken on a card that held
something before. Those ranges read as zeros from the image, so bmaptool writes zeros there.
"""

from __future__ import annotations

import hashlib
import os

from atvdisk.fs import usage
from atvdisk.fs.gpt import GptError, read_primary
from atvdisk.fs.signature import probe
from atvdisk.imaging.image import data_ranges
from atvdisk.imaging.ranges import Ranges
from atvdisk.layout.schema import FsKind
from atvdisk.layout.units import format_iec

BLOCK = 4096
EDGE = 1 << 20
CHUNK = 8 << 20
BMAP_VERSION = "2.0"


def mapped_ranges(image: str, sector_size: int = 512) -> Ranges:
    """The byte ranges of ``image`` a copy must write (see the module docstring)."""
    size = os.path.getsize(image)
    out = Ranges()
    with open(image, "rb") as f:
        fd = f.fileno()
        out.update(data_ranges(fd, size))
        try:
            table = read_primary(f, sector_size)
        except GptError:
            return out.aligned(BLOCK).clip(0, size)
        total = size // sector_size
        out.add(0, 34 * sector_size)
        out.add((total - 33) * sector_size, size)
        for _, e in table.partitions:
            start, end = e.first_lba * sector_size, (e.last_lba + 1) * sector_size
            if end > size:
                continue
            out.add(start, min(end, start + EDGE))
            out.add(max(start, end - EDGE), end)
            kind = probe(fd, start, end - start)
            if kind is FsKind.NONE:
                continue
            try:
                for stage in (usage.metadata, usage.used):
                    out.update((a + start, b + start) for a, b in stage(image, fd, kind, start, end - start))
            except usage.UsageUnknown:
                out.add(start, end)  # unreadable: every block of it, to be safe
    return out.aligned(BLOCK).clip(0, size)


def make_bmap(image: str, bmap: str, *, sector_size: int = 512) -> Ranges:
    """Write the bmap of ``image`` to ``bmap``; returns the mapped ranges."""
    size = os.path.getsize(image)
    blocks = -(-size // BLOCK)
    ranges = mapped_ranges(image, sector_size)
    mapped = sum(-(-(b - a) // BLOCK) for a, b in ranges)
    lines = [
        '<?xml version="1.0" ?>',
        "<!-- The block map of an atvdisk image, for `bmaptool copy`: the blocks that hold data",
        "     and the blocks its filesystems rely on reading as zeros (written as zeros on a",
        "     used card). Made by atvdisk; format 2.0 of bmap-tools. -->",
        f'<bmap version="{BMAP_VERSION}">',
        f"    <!-- Image size in bytes: {format_iec(size)} -->",
        f"    <ImageSize> {size} </ImageSize>",
        f"    <BlockSize> {BLOCK} </BlockSize>",
        f"    <BlocksCount> {blocks} </BlocksCount>",
        f"    <!-- Count of mapped blocks: {format_iec(mapped * BLOCK)} or {100.0 * mapped / max(1, blocks):.1f}% -->",
        f"    <MappedBlocksCount> {mapped} </MappedBlocksCount>",
        "    <ChecksumType> sha256 </ChecksumType>",
        "    <BmapFileChecksum> " + "0" * 64 + " </BmapFileChecksum>",
        "    <BlockMap>",
    ]
    with open(image, "rb") as f:
        for a, b in ranges:
            first, last = a // BLOCK, (b - 1) // BLOCK
            h = hashlib.sha256()
            pos = first * BLOCK
            end = min(size, (last + 1) * BLOCK)
            while pos < end:
                data = os.pread(f.fileno(), min(CHUNK, end - pos), pos)
                if not data:
                    break
                h.update(data)
                pos += len(data)
            span = f"{first}-{last}" if last > first else f"{first}"
            lines.append(f'        <Range chksum="{h.hexdigest()}"> {span} </Range>')
    lines += ["    </BlockMap>", "</bmap>", ""]
    text = "\n".join(lines)
    digest = hashlib.sha256(text.encode()).hexdigest()
    text = text.replace("0" * 64 + " </BmapFileChecksum>", digest + " </BmapFileChecksum>", 1)
    tmp = f"{bmap}.partial"
    with open(tmp, "w", encoding="ascii") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, bmap)
    return ranges


__all__ = ["make_bmap", "mapped_ranges"]
