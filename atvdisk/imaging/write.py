"""``atvdisk write IMAGE DISK``: build once, flash many — an image written to any disk at least
as large, grown to fit.

:func:`plan_write` decides everything before a byte is written: where each of the image's
partitions goes on the target, what is copied, grown or re-made, and how large the target must
be. :func:`execute` then writes, in the order ``build`` uses:

1. on a used disk, zero the target's old partition tables (both GPT areas) and the first and
   last MiB of every partition region it will have (old signatures);
2. copy the image's data (only its allocated ranges, and of a compressed image only its non-zero
   blocks inside filesystems), each partition at its place on the target;
3. on a used disk, zero what the filesystems rely on reading as in the image but the image did
   not store (its holes): the metadata its superblocks name, then every block its bitmaps mark in
   use (:mod:`atvdisk.fs.usage`, read back from the target);
4. grow: the layout's ``rest`` partition takes the extra space (ext4: ``e2fsck -fp`` and
   ``resize2fs``, offline; an empty HFS+ volume is made anew at its new size with the plan's
   identifiers), partitions after it move to the end (swap is made anew with its label and
   UUID), the backup GPT goes to the last sectors;
5. the partition table last: the manifest's plan for the target's size (libparted, GUIDs from
   the seed, as ``build`` writes it), or the image's own table with its backup moved to the end.

What the image is comes from atvdisk's manifest in it (the layout and seed it was built with).
An image without one is written as it is: its partitions where they are, not grown (with a
warning), the backup GPT moved to the end of the disk when it has a GPT.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from atvdisk.errors import BuildError, DiskTooSmall, InputError, UsageError
from atvdisk.fs import usage
from atvdisk.fs.gpt import Mbr, write_relocated
from atvdisk.fs.hfs_adapter import lay_out
from atvdisk.fs.partition import write_partition_table
from atvdisk.fs.region import Region
from atvdisk.fs.swap import swap_header
from atvdisk.imaging.image import ImageInfo
from atvdisk.imaging.ranges import Ranges
from atvdisk.inputs.tree import FileTree
from atvdisk.layout.plan import Plan, PlannedPartition
from atvdisk.layout.schema import FsKind
from atvdisk.layout.units import format_iec, format_parted
from atvdisk.progress import Progress
from atvdisk.run import run
from atvdisk.target.access import DiskAccess

log = logging.getLogger("atvdisk.write")

EDGE = 1 << 20  # old signatures live in the first and last MiB of a partition
ZERO_CHUNK = 4 << 20


class Action(StrEnum):
    COPY = "copy"  # the partition's data, at its (possibly new) place
    GROW = "grow"  # copy, then grow the filesystem to the new size (ext4)
    REMAKE = "remake"  # not copied: made anew at its new place and size (swap, an empty HFS+)
    NOTHING = "nothing"  # no filesystem: nothing to copy


class Mode(StrEnum):
    MANIFEST = "manifest"  # an atvdisk image: grown as its layout says
    GPT = "gpt"  # another GPT image: as it is, backup GPT moved to the end
    RAW = "raw"  # no GPT: byte for byte


@dataclass(frozen=True)
class Move:
    number: int
    name: str
    kind: FsKind
    action: Action
    src: int  # byte offset in the image
    size: int  # bytes of the image's partition
    dst: int  # byte offset on the target
    new_size: int  # bytes of the target's partition
    planned: PlannedPartition | None = None  # the target plan's partition (manifest mode)


@dataclass
class WritePlan:
    image: ImageInfo
    mode: Mode
    target_bytes: int
    sector_size: int
    moves: list[Move]
    target_plan: Plan | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def need_bytes(self) -> int:
        return self.image.size

    def describe(self) -> list[str]:
        """What the target will hold, for the confirmation and the dry run."""
        img = self.image
        lines = []
        what = f"{img.path} ({format_parted(img.size)}" + (f", {img.compression}" if img.compression else "") + ")"
        if self.mode is Mode.MANIFEST and img.found is not None:
            m = img.found.manifest
            lines.append(f"It will hold {what}: layout {m.layout_name}, built by atvdisk {m.atvdisk_version}, seed {m.seed!r}, {m.files} files")
        elif self.mode is Mode.GPT:
            lines.append(f"It will hold {what}: a GPT image without atvdisk's manifest, written as it is")
        else:
            lines.append(f"It will hold {what}: no GPT, written byte for byte")
        for mv in self.moves:
            where = f"{format_parted(mv.size)} at byte {mv.src}"
            if mv.dst != mv.src:
                where += f", moved to byte {mv.dst}"
            if mv.new_size != mv.size:
                where += f", grown to {format_parted(mv.new_size)}"
            verb = {Action.COPY: "copied", Action.GROW: "copied and grown", Action.REMAKE: "made anew", Action.NOTHING: "no filesystem"}[mv.action]
            lines.append(f"  partition {mv.number} {mv.name}: {mv.kind}, {where}: {verb}")
        if self.mode is not Mode.RAW:
            lines.append(f"  partition table written last, backup GPT at the last sectors of the {format_parted(self.target_bytes)} disk")
        return lines


def plan_write(image: ImageInfo, target_bytes: int, sector_size: int) -> WritePlan:
    """Decide where everything goes; raises before anything is written."""
    if sector_size != image.sector_size:
        raise UsageError(
            f"the target has {sector_size}-byte sectors; the image was made for {image.sector_size}-byte sectors",
            hint="build the disk directly (atvdisk build) for a disk with other sectors",
        )
    if image.found is not None:
        return _plan_manifest(image, target_bytes, sector_size)
    warnings = [f"{image.path} has no atvdisk manifest: it is written as it is, its partitions are not grown"]
    if target_bytes < image.size:
        raise DiskTooSmall(_short(image.size, target_bytes), need_bytes=image.size, hint="use a disk at least as large as the image")
    if image.gpt is None:
        return WritePlan(image, Mode.RAW, target_bytes, sector_size, [], warnings=[*warnings[:1], f"{image.path} has no GPT: nothing is moved or checked"])
    moves = []
    for n, a, b in image.partition_ranges():
        kind = image.kinds.get(n, FsKind.NONE)
        name = dict(image.gpt.partitions)[n].name
        moves.append(Move(n, name, kind, Action.COPY, a, b - a, a, b - a))
    if target_bytes > image.size:
        warnings.append(f"the disk is {format_iec(target_bytes - image.size)} larger than the image: that space stays unpartitioned")
    return WritePlan(image, Mode.GPT, target_bytes, sector_size, moves, warnings=warnings)


def _short(need: int, have: int) -> str:
    return (
        f"the disk is too small: the image's partitions need {need} bytes ({format_parted(need)}, {format_iec(need)});"
        f" the disk has {have} bytes ({format_parted(have)}): short by {need - have} bytes ({format_iec(need - have)})"
    )


def _plan_manifest(image: ImageInfo, target_bytes: int, sector_size: int) -> WritePlan:
    assert image.found is not None
    m = image.found.manifest
    source_plan = m.plan(image.size, sector_size)
    gpt = dict(image.gpt.partitions) if image.gpt else {}
    for p in source_plan.partitions:
        e = gpt.get(p.number)
        if e is None or (e.first_lba, e.last_lba, e.type_guid) != (p.start, p.end, p.type_guid):
            raise InputError(
                f"{image.path}: its partition {p.number} ({p.name}) is not where its manifest's layout puts it",
                hint="the image was changed after atvdisk built it; write it with a tool that copies it as it is",
            )
    if target_bytes < image.size:
        raise DiskTooSmall(_short(image.size, target_bytes), need_bytes=image.size, hint="use a larger disk, or build a smaller image (atvdisk build IMAGE --size ...)")
    target_plan = m.plan(target_bytes, sector_size)
    entries = m.expected()
    moves = []
    warnings = []
    for p, t in zip(source_plan.partitions, target_plan.partitions, strict=True):
        grows = t.size_bytes != p.size_bytes
        kind = p.fs.kind
        if t.size_bytes < p.size_bytes:
            raise BuildError(f"partition {p.number} would shrink", hint="this is a bug: please report it")
        if kind is FsKind.NONE:
            action = Action.NOTHING
        elif kind is FsKind.SWAP:
            action = Action.REMAKE
        elif not grows:
            action = Action.COPY
        elif kind is FsKind.EXT4:
            action = Action.GROW
        elif kind.is_hfs and not entries.get(p.number):
            action = Action.REMAKE  # an empty volume (the factory layout's Media): made anew
        else:
            raise UsageError(
                f"partition {p.number} ({p.name}) would grow from {format_parted(p.size_bytes)} to {format_parted(t.size_bytes)},"
                f" and atvdisk cannot grow a {kind} filesystem that holds files",
                hint="write the image to a disk of its own size, or build the disk directly (atvdisk build)",
            )
        moves.append(Move(p.number, p.name, kind, action, p.offset, p.size_bytes, t.offset, t.size_bytes, t))
    return WritePlan(image, Mode.MANIFEST, target_bytes, sector_size, moves, target_plan, warnings)


# --------------------------------------------------------------------------------------------
# Writing


@dataclass
class WriteResult:
    written: Ranges = field(default_factory=Ranges)  # target bytes copied from the image
    zeroed: int = 0  # bytes of zeros written (wipes, filesystem holes)
    bytes_written: int = 0  # everything written to the target
    digests: list[tuple[int, int, str]] = field(default_factory=list)  # (target offset, length, sha256) of copied data


def execute(plan: WritePlan, access: DiskAccess, progress: Progress, *, workdir: str) -> WriteResult:
    result = WriteResult()
    known_zero = access.known_zero
    if not known_zero:
        with progress.step(f"wipe old partition tables and signatures on {access.path}"):
            access.check_keeps_writes()  # a fake-capacity card is found before anything is copied
            with access.own_writes() as fd:
                for a, b in _wipe_ranges(plan):
                    _zero(fd, a, b - a, result)
    # Partitions up to the one that grows first, then it grows, then the ones after it:
    # resize2fs shortens an image file to the end of the filesystem it grew.
    grow_at = next((i for i, mv in enumerate(plan.moves) if mv.action is Action.GROW), len(plan.moves))
    for batch in (plan.moves[: grow_at + 1], plan.moves[grow_at + 1 :]):
        if not batch and plan.mode is not Mode.RAW:
            continue
        total = plan.image.size if plan.mode is Mode.RAW else sum(mv.size for mv in batch if mv.action in (Action.COPY, Action.GROW))
        which = ""
        if batch and len(batch) < len(plan.moves):
            which = f" (partition {batch[0].number})" if len(batch) == 1 else f" (partitions {batch[0].number}-{batch[-1].number})"
        with progress.step(f"copy the image's data{which}", total=total) as step:
            with access.own_writes() as fd:
                _copy(plan, batch, fd, result, step.advance)
        if not known_zero:
            with progress.step("zero what the filesystems rely on and the image left as holes"):
                for mv in batch:
                    if mv.action in (Action.COPY, Action.GROW) and mv.kind is not FsKind.NONE:
                        _zero_holes(plan, mv, access, result)
        for mv in batch:
            if mv.action is Action.GROW:
                with progress.step(f"partition {mv.number} {mv.name}: grow ext4 to {format_parted(mv.new_size)} (e2fsck -fp, resize2fs)"):
                    _grow_ext4(access, mv, workdir=workdir, epoch=plan.image.found.manifest.epoch if plan.image.found else 0)
        if plan.mode is Mode.RAW:
            break
    for mv in plan.moves:
        if mv.action is Action.REMAKE:
            with progress.step(f"partition {mv.number} {mv.name}: make {mv.kind} anew at {format_parted(mv.new_size)}"):
                _remake(plan, mv, access, known_zero, workdir, result)
    with progress.step("write the partition table"):
        if plan.mode is Mode.MANIFEST:
            assert plan.target_plan is not None
            write_partition_table(access.path, plan.target_plan)
        elif plan.mode is Mode.GPT:
            _relocate_table(plan, access)
        if plan.mode is not Mode.RAW:
            access.after_partition_table()
    return result


def _wipe_ranges(plan: WritePlan) -> Ranges:
    S = plan.sector_size
    total = plan.target_bytes
    out = Ranges([(0, 34 * S), (total - 33 * S, total)])
    for mv in plan.moves:
        out.add(mv.dst, mv.dst + min(EDGE, mv.new_size))
        out.add(mv.dst + mv.new_size - min(EDGE, mv.new_size), mv.dst + mv.new_size)
    return out.clip(0, total)


def _zero(fd: int, pos: int, n: int, result: WriteResult) -> None:
    buf = bytes(min(ZERO_CHUNK, n))
    while n > 0:
        k = min(len(buf), n)
        _pwrite_all(fd, memoryview(buf)[:k], pos)
        pos += k
        n -= k
        result.zeroed += k
        result.bytes_written += k


def _pwrite_all(fd: int, data: bytes | memoryview, pos: int) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.pwrite(fd, view, pos)
        except OSError as e:
            raise BuildError(f"writing at byte {pos} failed: {e.strerror}", hint="the disk may be failing or was unplugged") from e
        view, pos = view[n:], pos + n


def _copy(plan: WritePlan, moves: list[Move], fd: int, result: WriteResult, advance: Callable[[int], None] = lambda n: None) -> None:
    """Copy the image's data; ``advance(n)``: n more bytes of the spans are done (progress)."""
    img = plan.image
    if plan.mode is Mode.RAW:
        spans = [(0, img.size, 0)]
    else:
        spans = [(mv.src, mv.src + mv.size, mv.dst - mv.src) for mv in moves if mv.action in (Action.COPY, Action.GROW)]
        if not spans:
            return
    known = [(mv.src, mv.src + mv.size) for mv in plan.moves if mv.kind is not FsKind.NONE]

    def skip_zero(pos: int) -> bool:
        # Zero blocks may be left out only where a known filesystem's own maps tell what must
        # read as zero (step 3); anywhere else the image's bytes are copied as they are.
        return any(a <= pos < b for a, b in known)

    done = spans[0][0]
    for pos, data in img.pieces(skip_zero):
        end = pos + len(data)
        if end > done:  # zeros left out up to here count as done too
            advance(sum(max(0, min(b, end) - max(a, done)) for a, b, _ in spans))
            done = end
        for a, b, delta in spans:
            lo, hi = max(a, pos), min(b, end)
            if lo >= hi:
                continue
            piece = memoryview(data)[lo - pos : hi - pos]
            _pwrite_all(fd, piece, lo + delta)
            result.written.add(lo + delta, hi + delta)
            result.bytes_written += hi - lo
            result.digests.append((lo + delta, hi - lo, hashlib.sha256(piece).hexdigest()))


def _zero_holes(plan: WritePlan, mv: Move, access: DiskAccess, result: WriteResult) -> None:
    """Zero, inside the copied partition, what its filesystem relies on and was not copied."""
    region = (mv.dst, mv.dst + mv.size)
    for stage in (usage.metadata, usage.used):
        with access.own_writes() as fd:
            try:
                need = Ranges((a + mv.dst, b + mv.dst) for a, b in stage(access.path, fd, mv.kind, mv.dst, mv.size))
            except usage.UsageUnknown as e:
                log.warning("partition %d: %s; its holes are not zeroed", mv.number, e)
                return
            for a, b in need.clip(*region).minus(result.written):
                _zero(fd, a, b - a, result)
                result.written.add(a, b)


def _grow_ext4(access: DiskAccess, mv: Move, *, workdir: str, epoch: int) -> None:
    """``e2fsck -fp`` then ``resize2fs`` (offline). On a disk, in place at the partition's offset;
    in an image file, on a sparse scratch copy of the partition, copied back: with an offset,
    resize2fs sets a regular file's length to the filesystem's (it forgets the offset), which
    would cut off the end of the grown filesystem and what follows it."""
    size_arg = f"{mv.new_size // 1024}K"
    env = {"E2FSPROGS_FAKE_TIME": str(epoch), "E2FSCK_TIME": str(epoch)}  # the image's times, not the clock
    if access.is_block:
        spec = f"{access.path}?offset={mv.dst}"
        run(["e2fsck", "-f", "-p", spec], env=env, ok_codes=(0, 1), hint="the image's ext4 has errors e2fsck cannot fix alone")
        run(["resize2fs", spec, size_arg], env=env, hint="resize2fs could not grow the filesystem")
        return
    scratch = os.path.join(workdir, f"ext4-{mv.number}.img")
    with open(access.path, "rb") as src, open(scratch, "wb") as out:
        out.truncate(mv.size)
        for a, b in data_ranges_in(src.fileno(), mv.dst, mv.size):
            _copy_range(src.fileno(), a, out.fileno(), a - mv.dst, b - a)
    run(["e2fsck", "-f", "-p", scratch], env=env, ok_codes=(0, 1), hint="the image's ext4 has errors e2fsck cannot fix alone")
    run(["resize2fs", scratch, size_arg], env=env, hint="resize2fs could not grow the filesystem")
    with open(scratch, "rb") as src, access.own_writes() as fd:
        grown = os.fstat(src.fileno()).st_size
        if grown > mv.new_size:
            raise BuildError(f"resize2fs made a {grown}-byte filesystem for a {mv.new_size}-byte partition", hint="this is a bug: please report it")
        for a, b in data_ranges_in(src.fileno(), 0, grown):
            _copy_range(src.fileno(), a, fd, mv.dst + a, b - a)
    os.unlink(scratch)


def data_ranges_in(fd: int, offset: int, length: int) -> list[tuple[int, int]]:
    """Allocated ranges of a regular file within ``[offset, offset+length)``."""
    out = []
    pos, end = offset, offset + length
    while pos < end:
        try:
            a = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            break
        if a >= end:
            break
        b = min(end, os.lseek(fd, a, os.SEEK_HOLE))
        out.append((a, b))
        pos = b
    return out


def _copy_range(src: int, src_pos: int, dst: int, dst_pos: int, n: int) -> None:
    while n > 0:
        data = os.pread(src, min(ZERO_CHUNK, n), src_pos)
        if not data:
            raise BuildError(f"short read at byte {src_pos}", hint="the scratch copy changed")
        _pwrite_all(dst, data, dst_pos)
        src_pos += len(data)
        dst_pos += len(data)
        n -= len(data)


def _remake(plan: WritePlan, mv: Move, access: DiskAccess, known_zero: bool, workdir: str, result: WriteResult) -> None:
    p = mv.planned
    assert p is not None
    if mv.kind is FsKind.SWAP:
        page = swap_header(p, workdir=workdir)
        with access.own_writes() as fd:
            _pwrite_all(fd, page, p.offset)
        result.bytes_written += len(page)
        return
    assert mv.kind.is_hfs and plan.image.found is not None
    epoch = plan.image.found.manifest.epoch
    volume = lay_out(p, FileTree(default_mtime=epoch), epoch=epoch)
    from atvdisk.fs.hfsplus.writer import VolumeWriter

    with access.own_writes() as fd:
        region = Region(fd, p.offset, p.size_bytes, known_zero=known_zero, name=f"{access.path} partition {p.number}")
        writer = VolumeWriter(volume.layout, region)
        writer.write()
        writer.finish()
        result.bytes_written += region.bytes_written


def _relocate_table(plan: WritePlan, access: DiskAccess) -> None:
    img = plan.image
    assert img.gpt is not None
    with open(img.readable, "rb") as f:
        mbr = f.read(512)
    try:
        parsed = Mbr.unpack(mbr)
        protective = parsed.entries[0].type == 0xEE and all(e.type == 0 for e in parsed.entries[1:])
    except Exception:  # noqa: BLE001 - an unreadable MBR is replaced by a protective one
        protective = True
    with access.own_writes() as fd:
        write_relocated(fd, img.gpt, plan.sector_size, plan.target_bytes // plan.sector_size, mbr_sector=None if protective else mbr)


def read_back(device: str, result: WriteResult) -> list[str]:
    """Compare every copied range on the target with the sha256 taken while writing it."""
    bad = []
    with open(device, "rb", buffering=0) as f:
        for pos, n, digest in result.digests:
            data = os.pread(f.fileno(), n, pos)
            if hashlib.sha256(data).hexdigest() != digest:
                bad.append(f"bytes {pos}-{pos + n - 1} differ from the image")
                if len(bad) >= 20:
                    break
    return bad


__all__ = ["Action", "Mode", "Move", "WritePlan", "WriteResult", "execute", "plan_write", "read_back"]
