"""Layout + disk size + sector size -> Plan. A pure function: no I/O, no pyparted.

The GPT's own sectors (protective MBR, primary header and entry array, backup entry array and
header) are reserved regions in the same overlap check as the partitions, so no partition can run
over them (the original procedure's swap partition ran over the backup GPT).
"""

from __future__ import annotations

from atvdisk.errors import DiskTooSmall, PlanError
from atvdisk.fs.hfsplus.sizing import default_journal_size
from atvdisk.layout.plan import (
    Plan,
    PlannedFs,
    PlannedPartition,
    Region,
    RegionKind,
    Step,
    StepKind,
)
from atvdisk.layout.schema import (
    ContentKind,
    FsKind,
    Layout,
    PartitionSpec,
    seeded_uuid,
)
from atvdisk.layout.units import (
    MIB,
    Quantity,
    ceil_div,
    format_iec,
    format_parted,
    is_power_of_two,
)

GPT_ENTRIES = 128  # libparted (and every common tool) writes 128 entries
GPT_ENTRY_SIZE = 128
FAT32_MIN_CLUSTERS = 65525  # fewer clusters than this is FAT16 by definition
FAT32_MAX_CLUSTERS = 0x0FFFFFF5
FAT32_RESERVED_SECTORS = 32  # mkfs.fat's default for FAT32
FAT_COPIES = 2  # mkfs.fat's default number of FATs
DEFAULT_REST_MIN = MIB
HFS_MIN_BYTES = 512 * 1024  # Apple's newfs_hfs refuses smaller HFS+ volumes
HFS_MAX_BLOCKS = 2**32 - 1
EXT4_MIN_JOURNAL_BLOCKS = 2048  # mke2fs makes no journal (silently) on fewer blocks than this
EXT4_MIN_BYTES_NO_JOURNAL = MIB
SWAP_PAGE = 4096  # the ATV is i386: 4 KiB pages
SWAP_MIN_PAGES = 10  # mkswap refuses fewer


def gpt_entry_sectors(sector_size: int) -> int:
    return ceil_div(GPT_ENTRIES * GPT_ENTRY_SIZE, sector_size)


def resolve(layout: Layout, disk_bytes: int, sector_size: int, *, seed: str | None = None) -> Plan:
    """Resolve ``layout`` for a disk of ``disk_bytes`` with ``sector_size``-byte logical sectors.

    ``seed`` makes every identifier (disk and partition GUIDs, filesystem UUIDs, the ext4 hash
    seed) deterministic; it takes precedence over the layout's ``disk.seed``. With neither,
    identifiers are left to the build (random).
    """
    return _Resolver(layout, disk_bytes, sector_size, seed).plan()


class _TooSmall(Exception):
    """A check failed that a larger disk would pass; ``where`` is the layout setting involved."""

    def __init__(self, where: str | None) -> None:
        super().__init__(where)
        self.where = where


class _Resolver:
    def __init__(self, layout: Layout, disk_bytes: int, sector_size: int, seed: str | None) -> None:
        self.layout = layout
        self.disk_bytes = disk_bytes
        self.S = sector_size
        self.L = layout.disk.sector_size
        self.seed = seed if seed is not None else layout.disk.seed

    def fail(self, where: str | None, message: str, value: object = None, *, hint: str) -> PlanError:
        return PlanError(message, source=self.layout.source, where=where, value=value, hint=hint)

    def too_little(self, spec: PartitionSpec, where: str, message: str, value: object, *, hint: str) -> Exception:
        """A partition too small for its filesystem: for the 'rest' partition, a disk too small."""
        return _TooSmall(where) if spec.is_rest else self.fail(where, message, value, hint=hint)

    def to_sectors(self, q: Quantity, where: str, what: str) -> int:
        nbytes = q.to_bytes(self.L)
        if nbytes % self.S:
            step = max(1, self.S // self.L)
            raise self.fail(
                where,
                f"{what} {q} is byte {nbytes}, not a multiple of this disk's {self.S}-byte sectors (misaligned)",
                str(q),
                hint=f"use a multiple of {step}s or of {self.S} bytes",
            )
        return nbytes // self.S

    # ---------------------------------------------------------------------------------------

    def plan(self) -> Plan:
        try:
            return self._plan()
        except _TooSmall as e:
            # Each check knows only that it fails (the GPT, disk.min_size, the partitions, the
            # filesystem of the 'rest' partition): quote the size that passes them all, so the
            # user is not sent back a second time.
            raise self.too_small(self.minimum_disk_bytes(), why=e.where) from None

    def fits(self, disk_bytes: int) -> bool:
        """Whether a disk of ``disk_bytes`` is large enough (any other problem is not about size)."""
        try:
            _Resolver(self.layout, disk_bytes, self.S, self.seed)._plan()
            fits = True
        except _TooSmall:
            fits = False
        except PlanError:
            fits = True
        return fits

    def minimum_disk_bytes(self) -> int:
        """The smallest disk size, in whole sectors, this layout resolves on."""
        S = self.S
        low = self.disk_bytes // S  # sectors that do not fit
        high = low + 1
        while not self.fits(high * S):
            low, high = high, 2 * high
        while high - low > 1:
            middle = (low + high) // 2
            if self.fits(middle * S):
                high = middle
            else:
                low = middle
        return high * S

    def _plan(self) -> Plan:
        S = self.S
        if not (is_power_of_two(S) and 512 <= S <= 65536):
            raise self.fail(None, f"unsupported logical sector size {S}", S, hint="disks have 512- or 4096-byte sectors")
        if self.disk_bytes <= 0 or self.disk_bytes % S:
            raise self.fail(None, f"disk size {self.disk_bytes} bytes is not a positive multiple of the {S}-byte sector size", self.disk_bytes, hint=f"give a size that is a multiple of {S}")
        total = self.disk_bytes // S
        es = gpt_entry_sectors(S)
        first_usable = 2 + es
        last_usable = total - 2 - es
        reserved = self.reserved_regions(total, es)
        if last_usable < first_usable:
            raise _TooSmall(None)

        disk = self.layout.disk
        if disk.min_size is not None:
            if self.disk_bytes < disk.min_size.to_bytes(self.L):
                raise _TooSmall("disk.min_size")

        align = self.to_sectors(disk.align, "disk.align", "alignment") if disk.align else 1
        placed = self.place(first_usable, last_usable, total, es, align)

        partitions = tuple(
            self.plan_partition(n, spec, start, end) for n, (spec, start, end) in enumerate(placed, 1)
        )
        self.check_overlaps(reserved, partitions)

        warnings: list[str] = []
        if disk.warn_above is not None and self.disk_bytes > disk.warn_above.to_bytes(self.L):
            warnings.append(
                f"this disk ({format_parted(self.disk_bytes)}) is larger than this layout expects"
                f" (up to {format_parted(disk.warn_above.to_bytes(self.L))}): make sure it is the disk you mean"
            )

        warnings += host_source_warnings(self.layout)

        return Plan(
            layout_name=self.layout.name,
            layout_source=self.layout.source,
            description=self.layout.description,
            disk_bytes=self.disk_bytes,
            sector_size=S,
            total_sectors=total,
            first_usable=first_usable,
            last_usable=last_usable,
            disk_guid=str(seeded_uuid(self.seed, "disk")).upper() if self.seed else None,
            seed=self.seed,
            atv_disk=disk.atv_disk,
            hybrid_mbr=disk.hybrid_mbr,
            reserved=reserved,
            partitions=partitions,
            boot=self.layout.boot,
            steps=tuple(self.steps(partitions, reserved)),
            warnings=tuple(warnings),
        )

    def reserved_regions(self, total: int, es: int) -> tuple[Region, ...]:
        R = RegionKind.RESERVED
        return (
            Region("protective MBR", R, 0, 0),
            Region("primary GPT header", R, 1, 1),
            Region("primary GPT entries", R, 2, 1 + es),
            Region("backup GPT entries", R, total - 1 - es, total - 2),
            Region("backup GPT header", R, total - 1, total - 1),
        )

    def too_small(self, need_bytes: int, why: str | None = None) -> DiskTooSmall:
        short = need_bytes - self.disk_bytes
        return DiskTooSmall(
            f"disk too small: {self.layout.name} needs at least {need_bytes} bytes ({format_parted(need_bytes)},"
            f" {format_iec(need_bytes)}); this disk has {self.disk_bytes} bytes ({format_parted(self.disk_bytes)}):"
            f" short by {short} bytes ({format_iec(short)})",
            need_bytes=need_bytes,
            source=self.layout.source,
            where=why,
            value=self.disk_bytes,
            hint="use a larger disk or image size, or a layout with smaller partitions",
        )

    def place(self, first_usable: int, last_usable: int, total: int, es: int, align: int) -> list[tuple[PartitionSpec, int, int]]:
        parts = self.layout.partitions
        rest_index = next((i for i, p in enumerate(parts) if p.is_rest), None)
        starts: list[int | None] = []
        sizes: list[int | None] = []
        for i, p in enumerate(parts, 1):
            w = f"partition[{i}]"
            starts.append(self.to_sectors(p.start, f"{w}.start", "start") if p.start else None)
            sizes.append(self.to_sectors(p.size, f"{w}.size", "size") if p.size else None)

        result: list[tuple[PartitionSpec, int, int] | None] = [None] * len(parts)
        cursor = first_usable
        forward = range(len(parts)) if rest_index is None else range(rest_index)
        for i in forward:
            start = starts[i] if starts[i] is not None else _align_up(cursor, align)
            size = sizes[i]
            assert size is not None
            result[i] = (parts[i], start, start + size - 1)
            cursor = start + size

        if rest_index is not None:
            limit = last_usable
            for i in range(len(parts) - 1, rest_index, -1):
                size = sizes[i]
                assert size is not None
                if starts[i] is not None:
                    start = starts[i]
                else:
                    start = _align_down(limit - size + 1, align)
                result[i] = (parts[i], start, start + size - 1)
                limit = start - 1
            rest = parts[rest_index]
            w = f"partition[{rest_index + 1}]"
            start = starts[rest_index] if starts[rest_index] is not None else _align_up(cursor, align)
            minimum = self.to_sectors(rest.min_size, f"{w}.min_size", "min_size") if rest.min_size else ceil_div(DEFAULT_REST_MIN, self.S)
            if rest.fs.kind is FsKind.FAT32 and self.S < 1024:
                limit -= (limit - start + 1) % (1024 // self.S)  # mkfs.fat counts whole KiB
            if limit - start + 1 < minimum:
                raise _TooSmall(f"{w}.size")
            result[rest_index] = (rest, start, limit)

        placed = [r for r in result if r is not None]
        if max(end for _, _, end in placed) > last_usable:
            raise _TooSmall(None)
        return placed

    def check_overlaps(self, reserved: tuple[Region, ...], partitions: tuple[PlannedPartition, ...]) -> None:
        prev: PlannedPartition | None = None
        for p in partitions:
            if prev is not None and p.start <= prev.start:
                raise self.fail(
                    f"partition[{p.number}].start",
                    f"partition {p.number} ({p.name}) starts at {p.start}s, before partition {prev.number} ({prev.name}) at {prev.start}s",
                    f"{p.start}s",
                    hint="list partitions in the order they sit on the disk",
                )
            prev = p
        regions = list(reserved) + [Region(f"partition {p.number} ({p.name})", RegionKind.PARTITION, p.start, p.end) for p in partitions]
        regions.sort(key=lambda r: (r.start, r.end))
        for i, a in enumerate(regions):
            for b in regions[i + 1 :]:
                if b.start > a.end:
                    break
                overlap = min(a.end, b.end) - b.start + 1
                part = a if a.kind is RegionKind.PARTITION else b
                where = f"partition[{part.name.split()[1]}]"
                raise self.fail(
                    where,
                    f"{a.name} (sectors {a.start}-{a.end}) overlaps {b.name} (sectors {b.start}-{b.end})"
                    f" by {overlap} sector{'s' if overlap != 1 else ''}",
                    f"{part.start}s",
                    hint=(
                        f"partitions must lie within sectors {reserved[2].end + 1}-{reserved[3].start - 1} and not overlap"
                    ),
                )

    def plan_partition(self, n: int, spec: PartitionSpec, start: int, end: int) -> PlannedPartition:
        sectors = end - start + 1
        size = sectors * self.S
        fs = self.plan_fs(n, spec, size)
        return PlannedPartition(
            number=n,
            name=spec.name,
            role=spec.role,
            type_guid=spec.type_guid,
            guid=str(seeded_uuid(self.seed, f"partition/{n}")).upper() if self.seed else None,
            start=start,
            end=end,
            sector_size=self.S,
            fs=fs,
            contents=spec.contents,
            atv_device=f"{self.layout.disk.atv_disk}{n}",
        )

    def plan_fs(self, n: int, spec: PartitionSpec, size: int) -> PlannedFs:
        fs = spec.fs
        w = f"partition[{n}].fs"
        fs_uuid = seeded_uuid(self.seed, f"partition/{n}/fs") if self.seed else None
        if fs.kind is FsKind.FAT32:
            if size % 1024:
                raise self.fail(f"partition[{n}].size", f"a FAT32 partition must be a whole number of KiB (mkfs.fat counts 1 KiB blocks); {spec.name} is {size} bytes", size, hint="give it an even number of 512-byte sectors")
            cluster = fs.cluster_size or self.auto_fat_cluster(n, spec, size)
            clusters = fat32_cluster_count(size, cluster)
            if clusters < FAT32_MIN_CLUSTERS:
                best = self.auto_fat_cluster(n, spec, size)
                raise self.too_little(spec, 
                    f"{w}.cluster_size",
                    f"FAT32 too small for its cluster size: {format_parted(size)} in {cluster}-byte clusters is"
                    f" {clusters} clusters; FAT32 needs at least {FAT32_MIN_CLUSTERS}",
                    cluster,
                    hint=f"use cluster_size = {best}, or make {spec.name} at least {fat32_min_bytes(cluster)} bytes",
                )
            if clusters > FAT32_MAX_CLUSTERS:
                raise self.fail(f"{w}.cluster_size", f"{clusters} clusters is more than FAT32 allows", cluster, hint="use a larger cluster_size")
            vol_id = fs_uuid.hex[:8].upper() if fs_uuid else None
            return PlannedFs(fs.kind, fs.label, f"{vol_id[:4]}-{vol_id[4:]}" if vol_id else None, cluster_size=cluster)
        if fs.kind.is_hfs:
            assert fs.block_size is not None
            if size < HFS_MIN_BYTES:
                raise self.too_little(spec, w, f"an HFS+ volume needs at least {format_iec(HFS_MIN_BYTES)}; {spec.name} is {format_iec(size)}", size, hint="make the partition larger")
            if fs.block_size > size // 16:
                raise self.too_little(spec, f"{w}.block_size", f"block size {fs.block_size} is too large for a {format_iec(size)} volume", fs.block_size, hint="use 4096")
            if size // fs.block_size > HFS_MAX_BLOCKS:
                raise self.fail(f"{w}.block_size", f"{size // fs.block_size} blocks of {fs.block_size} bytes: HFS+ counts at most 2^32-1 blocks", fs.block_size, hint="use a larger block_size")
            journal_size = None
            if fs.journal:
                journal_size = fs.journal_size or hfs_default_journal_size(size, fs.block_size)
                if journal_size % fs.block_size:
                    raise self.fail(f"{w}.journal_size", f"journal size {journal_size} is not a multiple of the block size {fs.block_size}", journal_size, hint=f"use a multiple of {fs.block_size} bytes")
                if journal_size > size // 2:
                    raise self.too_little(spec, f"{w}.journal_size", f"a {format_iec(journal_size)} journal does not fit a {format_iec(size)} volume", journal_size, hint="use a smaller journal_size or no journal")
            vol_id = fs_uuid.hex[:16].upper() if fs_uuid else None
            return PlannedFs(fs.kind, fs.label, vol_id, journal=fs.journal, block_size=fs.block_size, journal_size=journal_size)
        if fs.kind is FsKind.EXT4:
            assert fs.block_size is not None
            if fs.journal:
                minimum, what = EXT4_MIN_JOURNAL_BLOCKS * fs.block_size, f"ext4 with a journal needs {EXT4_MIN_JOURNAL_BLOCKS} blocks of {fs.block_size} bytes"
            else:
                minimum, what = EXT4_MIN_BYTES_NO_JOURNAL, "ext4 needs"
            if size < minimum:
                raise self.too_little(spec, w, f"{what}, at least {minimum} bytes ({format_iec(minimum)}); {spec.name} is {size} bytes ({format_iec(size)})", size,
                                hint=f"make {spec.name} at least {minimum} bytes" + (" or set journal = false" if fs.journal else ""))
            hash_seed = str(seeded_uuid(self.seed, f"partition/{n}/hash_seed")) if self.seed else None
            return PlannedFs(fs.kind, fs.label, str(fs_uuid) if fs_uuid else None, journal=fs.journal, block_size=fs.block_size, reserved_percent=fs.reserved_percent, hash_seed=hash_seed)
        if fs.kind is FsKind.SWAP:
            if size < SWAP_MIN_PAGES * SWAP_PAGE:
                raise self.too_little(spec, w, f"swap needs at least {SWAP_MIN_PAGES} pages of {SWAP_PAGE} bytes; {spec.name} is {size} bytes", size, hint=f"make {spec.name} at least {SWAP_MIN_PAGES * SWAP_PAGE} bytes")
            return PlannedFs(fs.kind, fs.label, str(fs_uuid) if fs_uuid else None)
        return PlannedFs(fs.kind, None, None)

    def auto_fat_cluster(self, n: int, spec: PartitionSpec, size: int) -> int:
        """The largest cluster size (up to 4 KiB, as mkfs.fat prefers) that keeps FAT32 valid."""
        for cluster in (4096, 2048, 1024, 512):
            if fat32_cluster_count(size, cluster) >= FAT32_MIN_CLUSTERS:
                return cluster
        need = fat32_min_bytes(512)
        raise self.too_little(spec, 
            f"partition[{n}].size",
            f"FAT32 too small: {spec.name} is {format_parted(size)}; even 512-byte clusters give"
            f" {fat32_cluster_count(size, 512)} clusters, and FAT32 needs at least {FAT32_MIN_CLUSTERS}",
            size,
            hint=f"make the partition at least {need} bytes ({format_iec(need)})",
        )

    def steps(self, partitions: tuple[PlannedPartition, ...], reserved: tuple[Region, ...]) -> list[Step]:
        steps = [
            Step(StepKind.CHECK, None, f"check the target: a whole disk or image of {self.disk_bytes} bytes, not the system disk, nothing mounted; confirm"),
            Step(
                StepKind.WIPE,
                None,
                f"wipe the protective MBR and primary GPT (sectors 0-{reserved[2].end}) and the backup GPT"
                f" (sectors {reserved[3].start}-{reserved[4].end}), and old signatures at the start and end of every partition"
                " (on a disk; a new image file starts out empty)",
            ),
        ]
        for p in partitions:
            steps.extend(_fs_steps(p))
        steps.append(Step(StepKind.PARTITION, None, f"write the GPT with libparted: {len(partitions)} partitions, names and type GUIDs as above"
                          + (", disk and partition GUIDs from the seed" if self.seed else "")))
        if self.layout.disk.hybrid_mbr:
            steps.append(Step(StepKind.MBR, None, "sync a hybrid MBR to the GPT (as gptsync does)"))
        steps.append(Step(StepKind.VERIFY, None, "verify: read the GPT, every filesystem and every payload file back and compare with the plan and the sources"))
        return steps


def _fs_steps(p: PlannedPartition) -> list[Step]:
    fs = p.fs
    at = f"at byte {p.offset} ({p.sectors} sectors)"
    label = f" labelled {fs.label!r}" if fs.label else ""
    steps: list[Step] = []
    if fs.kind is FsKind.FAT32:
        steps.append(Step(StepKind.MKFS, p.number, f"partition {p.number} {p.name}: FAT32{label}, {fs.cluster_size}-byte clusters, with mkfs.fat {at}"))
        if p.contents:
            steps.append(Step(StepKind.FILL, p.number, f"partition {p.number} {p.name}: copy in {_contents_text(p)} with mtools"))
    elif fs.kind.is_hfs:
        journal = "journaled" if fs.journal else "not journaled"
        steps.append(Step(StepKind.MKFS, p.number, f"partition {p.number} {p.name}: {fs.kind} volume{label}, {journal}, {fs.block_size}-byte blocks, written by atvdisk {at}"
                          + (f", holding {_contents_text(p)}" if p.contents else "")))
    elif fs.kind is FsKind.EXT4:
        steps.append(Step(StepKind.MKFS, p.number, f"partition {p.number} {p.name}: ext4{label}, {fs.block_size}-byte blocks{'' if fs.journal else ', no journal'}, with mke2fs {at}"
                          + (f", holding {_contents_text(p)}" if p.contents else "")))
    elif fs.kind is FsKind.SWAP:
        steps.append(Step(StepKind.MKFS, p.number, f"partition {p.number} {p.name}: swap signature{label} with mkswap {at}"))
    return steps


def _contents_text(p: PlannedPartition) -> str:
    parts = []
    for c in p.contents:
        if c.kind in (ContentKind.TARBALL, ContentKind.DIRECTORY):
            only = f" ({', '.join(c.members)} only)" if c.members else ""
            parts.append(f"{c.kind} {c.source}{only}" + (f" at /{c.path}" if c.path else ""))
        elif c.kind is ContentKind.FILE:
            parts.append(f"{c.source} as /{c.path}")
        elif c.kind is ContentKind.BOOTSCRIPT:
            parts.append(f"the boot script /{c.path}")
        elif c.kind is ContentKind.BOOTPLIST:
            parts.append(f"the boot plist /{c.path}")
        elif c.kind is ContentKind.REMOVE:
            parts.append(f"minus /{c.path}")
        else:
            parts.append(f"{c.kind} /{c.path}")
    return ", ".join(parts)


def fat32_cluster_count(size_bytes: int, cluster_size: int, sector_size: int = 512) -> int:
    """Data clusters of the FAT32 filesystem ``mkfs.fat -F 32`` makes in ``size_bytes``.

    mkfs.fat 4.2's own arithmetic: 32 reserved sectors and two FATs, each rounded up to a whole
    cluster (it aligns the data area to clusters, except on filesystems of 8192 sectors or less).
    """
    total = size_bytes // sector_size
    spc = cluster_size // sector_size  # cluster sizes start at 512 bytes

    def align(sectors: int) -> int:
        return ceil_div(sectors, spc) * spc if total > 8192 else sectors

    data = total - align(FAT32_RESERVED_SECTORS)
    # mkfs.fat's first guess (each cluster costs its sectors and 4 bytes in every FAT), then the
    # FAT length for it (2 reserved entries), then what is left for clusters.
    clusters = (data * sector_size + FAT_COPIES * 8) // (spc * sector_size + FAT_COPIES * 4)
    fat_sectors = align(ceil_div((clusters + 2) * 4, sector_size))
    return max(0, (data - FAT_COPIES * fat_sectors) // spc)


def fat32_min_bytes(cluster_size: int, sector_size: int = 512) -> int:
    """The smallest FAT32 partition (a whole number of KiB, as mkfs.fat counts) with at least
    65525 clusters of ``cluster_size``. Every larger size has them too (the FATs never grow by
    more than the data area: tests/test_validations.py checks it above each minimum)."""
    step = max(1024, sector_size)
    spc = cluster_size // sector_size
    size = ceil_div((FAT32_RESERVED_SECTORS + FAT32_MIN_CLUSTERS * spc) * sector_size, step) * step  # no room for the FATs yet
    while fat32_cluster_count(size, cluster_size, sector_size) < FAT32_MIN_CLUSTERS:
        size += step
    return size


def hfs_default_journal_size(volume_bytes: int, block_size: int) -> int:
    """The journal size newfs_hfs would pick (the HFS+ writer's own rule), in whole blocks."""
    return ceil_div(default_journal_size(volume_bytes, block_size), block_size) * block_size


def _align_up(sector: int, align: int) -> int:
    return ceil_div(sector, align) * align


def _align_down(sector: int, align: int) -> int:
    return sector // align * align


INPUT_PLACEHOLDERS = ("{openelec}", "{restore}", "{recovery}", "{layout_dir}")


def host_source_warnings(layout: Layout) -> list[str]:
    """The contents that read a file of this computer that is neither one of the user's inputs
    (--openelec, --restore, --recovery) nor inside the layout's directory: an absolute path, a
    path relative to the current directory, ``{layout_dir}/../..``, ``{openelec}/../..``. Read
    lexically (the plan is pure); the build also resolves symlinks (inputs.contents.outside_sources)."""
    out = []
    for number, spec in enumerate(layout.partitions, 1):
        for i, c in enumerate(spec.contents, 1):
            if c.source is None:
                continue
            prefix = next((p for p in INPUT_PLACEHOLDERS if c.source.startswith(p)), None)
            if prefix is not None and stays_inside(c.source[len(prefix):]):
                continue
            out.append(
                f"partition {number} ({spec.name}) contents[{i}] copies {c.source!r} from this computer:"
                " it is outside the inputs given and the layout's directory"
            )
    return out


def stays_inside(rest: str) -> bool:
    """Whether ``rest`` (what follows a placeholder) names the placeholder's path or one below
    it: "", "/KERNEL", "/a/../b"; not "/..", "x" (a sibling: "{openelec}x"), "/a/../../b"."""
    if rest and not rest.startswith("/"):
        return False
    depth = 0
    for part in rest.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in ("", "."):
            depth += 1
    return True
