"""Build the disk: plan, check every input, then write, then verify. One straight path.

:func:`prepare` does everything that can fail without touching the target: resolve the plan,
generate the boot script, scan every tarball and input file into per-partition trees, and lay out
the HFS+ volumes block by block. :func:`apply` then writes, partition by partition, with the
partition table last (after the filesystems and a flush, so the kernel and udev never see a
half-written disk); :mod:`atvdisk.verify` reads it all back.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace

from atvdisk import manifest
from atvdisk.bootplist import BootPlist, PlistExpectation, expectation
from atvdisk.bootscript import BootScript, generate
from atvdisk.errors import BuildError, InputError, UsageError
from atvdisk.fs import hfs_adapter
from atvdisk.fs.entry import Entry
from atvdisk.fs.ext4 import check_tree as check_ext4_tree
from atvdisk.fs.ext4 import make_ext4
from atvdisk.fs.fat import check_tree as check_fat_tree
from atvdisk.fs.fat import make_fat32
from atvdisk.fs.partition import write_partition_table
from atvdisk.fs.region import Region
from atvdisk.fs.swap import write_swap
from atvdisk.inputs.contents import BootFiles, PartitionContents, build_trees, outside_sources
from atvdisk.inputs.payload import (
    Inputs,
    check_release_fits,
    inspect_boot_efi,
)
from atvdisk.inputs.tarsafe import Spooler
from atvdisk.inputs.tree import FileTree, Inline, Node
from atvdisk.layout import atv
from atvdisk.layout.plan import Plan, PlannedPartition
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import BootMethod, FsKind, Layout, NameBy
from atvdisk.layout.units import format_iec
from atvdisk.manifest import Manifest
from atvdisk.progress import Progress
from atvdisk.target.access import DiskAccess
from atvdisk.verify import expected_entries

log = logging.getLogger("atvdisk.build")

WIPE_BYTES = 1024 * 1024  # old signatures live in the first and last MiB of a partition
_OUTSIDE_BMP = re.compile("[\U00010000-\U0010FFFF]")  # one C scan per path, not a Python loop per character


@dataclass(frozen=True)
class BuildSettings:
    layout: Layout
    inputs: Inputs
    epoch: int  # timestamps for generated files and filesystems (SOURCE_DATE_EPOCH)
    # Every identifier derives from the seed: the CLI gives --seed, else the layout's, else a
    # fresh random one (new_seed), so every disk gets its own GUIDs and UUIDs.
    seed: str | None = None
    name_by: NameBy | None = None
    atv_disk: str | None = None  # override the layout's ATV-side disk name (sda..sdh, /dev/ optional)
    keep_boot_plist: bool = False  # kexec: keep the recovery's com.apple.Boot.plist as it is

    def effective_layout(self) -> Layout:
        if self.atv_disk is None:
            return self.layout
        try:
            disk = atv.atv_disk(self.atv_disk)
        except atv.AtvValueError as e:
            raise UsageError(f"--atv-disk: {e.message}", hint=e.hint) from None
        return replace(self.layout, disk=replace(self.layout.disk, atv_disk=disk))

    @staticmethod
    def new_seed() -> str:
        return "random-" + secrets.token_hex(16)


@dataclass
class Prepared:
    plan: Plan
    contents: dict[int, PartitionContents]
    bootscript: BootScript | None
    bootplist: BootPlist | None  # the boot plist as written (None: the layout has none, or verify without its inputs)
    hfs: dict[int, hfs_adapter.VolumeLayout]
    warnings: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # what atvdisk changed in the inputs, and why
    plist_expectation: PlistExpectation | None = None  # what verify checks the plist on the disk against
    # sha256 of the data each file was given while writing (partition -> path -> digest)
    hashes: dict[int, dict[str, str]] = field(default_factory=dict)
    settings: BuildSettings | None = None
    manifest: Manifest | None = None  # written by apply() (None before, or without a holder)
    # An image build does not wait for the release's md5 check before writing: prepare() starts
    # it on the other core and apply() joins it (see prepare()).
    deferred_md5: DeferredCheck | None = None
    # Why this disk gets no manifest although its layout has a holder (too large; prepare()).
    no_manifest: str | None = None
    # What each partition must hold, with the sha256 of every file (the manifest's entries and
    # the manifest itself): set by apply(), for the verification after it.
    expected: dict[int, list[Entry]] | None = None
    # The decompressed copies of compressed tarballs that the scans kept (prepare(spool=True)):
    # the writing reads them instead of inflating again. close() deletes them.
    spooler: Spooler | None = None

    def close(self) -> None:
        """Delete the spools (apply() does once it has written; for a build that stops before)."""
        if self.spooler is not None:
            self.spooler.close()
            self.spooler = None


class DeferredCheck:
    """A check running in its own thread from the moment it is made; :meth:`result` waits for it
    and raises what it raised. A daemon thread: a build that fails for another reason meanwhile
    does not wait for it (the check only reads its inputs)."""

    def __init__(self, check: Callable[[], object], name: str) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(check,), name=name, daemon=True)
        self._thread.start()

    def _run(self, check: Callable[[], object]) -> None:
        try:
            check()
        except BaseException as e:  # handed to result()
            self._error = e

    def result(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def prepare(settings: BuildSettings, disk_bytes: int, sector_size: int, *, skipped: list[str] | None = None, defer_md5: bool = False, spool: bool = False) -> Prepared:
    """Everything up to the first write: raises UsageError subclasses on any problem.

    ``skipped`` (for verify): leave out contents whose inputs were not given, listing them there.
    ``defer_md5`` (image files only): start the OpenELEC md5 check now, on the other core (the
    tarball scans below use one), and let :func:`apply` wait for it alongside the writing instead
    of before it; an image is built under a temporary name that a failed check discards, so
    nothing reaches the user's path either way. A disk is never written before it passed.
    ``spool`` (a build that will write): the tarball scans keep each compressed tarball
    decompressed in a temporary directory, so that the writing reads it instead of inflating it
    again; the returned Prepared owns it (:meth:`Prepared.close`).
    """
    spooler = Spooler() if spool and skipped is None else None
    try:
        prepared = _prepare(settings, disk_bytes, sector_size, skipped=skipped, defer_md5=defer_md5, spooler=spooler)
    except BaseException:
        if spooler is not None:
            spooler.close()
        raise
    prepared.spooler = spooler
    return prepared


def _prepare(settings: BuildSettings, disk_bytes: int, sector_size: int, *, skipped: list[str] | None, defer_md5: bool, spooler: Spooler | None) -> Prepared:
    if skipped is None and settings.seed is None and settings.layout.disk.seed is None:
        # A build knows every identifier before writing: the boot script and plist name them.
        settings = replace(settings, seed=BuildSettings.new_seed())
    layout = settings.effective_layout()
    plan = resolve(layout, disk_bytes, sector_size, seed=settings.seed)
    name_by = settings.name_by
    release = settings.inputs.openelec
    if plan.boot is not None and release is not None:
        check_release_fits(release, plan.boot.kernel, layout.name)
    bootscript = None
    if plan.boot is not None and plan.boot.method is BootMethod.KEXEC:
        if plan.seed is None and skipped is not None:
            # verify without the build's identifiers: the script (which names them) is unknown.
            skipped.append("the boot script: it names the disk's identifiers (give the build's --seed to check it)")
        else:
            bootscript = generate(plan, name_by)
    boot_files = BootFiles(plan, bootscript, _small_file_reader, name_by, settings.keep_boot_plist)
    plist_expectation = expectation(plan, name_by)
    # The OpenELEC md5 sums are checked while the tarballs are scanned: both spend their time in
    # zlib and hashlib, outside the GIL, so on two cores they overlap.
    deferred = DeferredCheck(release.check_md5, "atvdisk-md5") if defer_md5 and skipped is None and release is not None else None
    with ThreadPoolExecutor(max_workers=1) as pool:
        md5_check = pool.submit(release.check_md5) if release is not None and deferred is None else None
        try:
            contents = build_trees(plan, settings.inputs, boot_files, epoch=settings.epoch, skipped=skipped, spooler=spooler)
        finally:
            if md5_check is not None:
                md5_check.result()  # raises the md5 mismatch, if any, first
    warnings = list(plan.warnings) + outside_sources(plan, settings.inputs)
    notices = []
    for pc in contents.values():
        if pc.bootplist_path is not None and pc.complete:
            warnings.extend(inspect_boot_efi(pc.tree))
    if boot_files.plist is not None and boot_files.plist.note:
        notices.append(boot_files.plist.note)
    prepared = Prepared(plan, contents, bootscript, boot_files.plist, {}, warnings, notices, plist_expectation, settings=settings)
    if skipped is not None:
        return prepared
    if manifest.holder(plan) is None:
        warnings.append(
            f"layout {layout.name} has no FAT32 or ext4 partition to hold atvdisk's manifest: `verify` will need this"
            " build's options, and `write` cannot grow an image of it"
        )
    for number, pc in contents.items():
        p = pc.partition
        if p.fs.kind.is_hfs:
            prepared.hfs[number] = hfs_adapter.lay_out(p, pc.tree, epoch=settings.epoch)
            outside_bmp = [path for path in pc.tree.nodes if _OUTSIDE_BMP.search(path)]
            if outside_bmp:
                warnings.append(
                    f"partition {number} ({p.name}): {len(outside_bmp)} name(s) with characters outside Unicode's BMP"
                    f" (e.g. /{outside_bmp[0]}): HFS+ stores them, but Linux's hfsplus driver cannot open them"
                )
        elif p.fs.kind in (FsKind.EXT4, FsKind.FAT32):
            (check_ext4_tree if p.fs.kind is FsKind.EXT4 else check_fat_tree)(p, pc.tree)
            _check_fits(p, pc.tree)
    # After every filesystem's own checks: what they refuse (names, targets) never reaches JSON.
    no_manifest = _manifest_room(settings, plan, contents)
    if no_manifest is not None:
        warnings.append(
            f"this disk gets no atvdisk manifest: {no_manifest}; `verify` will need this build's options,"
            " and `write` cannot grow an image of it"
        )
    prepared.deferred_md5 = deferred
    prepared.no_manifest = no_manifest
    return prepared


def _manifest_room(settings: BuildSettings, plan: Plan, contents: dict[int, PartitionContents]) -> str | None:
    """Why the manifest cannot be written (too large to read back, or to fit its partition), or
    None. Its exact size is known before any data is read: every field but the digests (all 64
    hex digits) comes from the trees."""
    holder = manifest.holder(plan)
    if holder is None:
        return None
    entries = {n: expected_entries(pc.tree, pc.partition.fs.kind, placeholder=manifest.PLACEHOLDER_SHA256) for n, pc in contents.items()}
    try:
        size = len(_make_manifest(settings, plan, entries).to_bytes())
    except UnicodeEncodeError as e:  # a name the filesystems' checks let through but JSON cannot hold
        return f"a name is not valid UTF-8 ({e.object[max(0, e.start - 20) : e.end + 20]!r})"
    del entries
    used = 0
    if holder.number in contents:
        block = holder.fs.cluster_size or holder.fs.block_size or 4096
        tree = contents[holder.number].tree
        used = sum(-(-n.size // block) * block for _, n in tree.files()) + block * len(tree.nodes)
    return manifest.fits(size, holder, used)


def _make_manifest(settings: BuildSettings, plan: Plan, entries: dict[int, list[Entry]]) -> Manifest:
    inputs = settings.inputs
    return manifest.make(
        settings.effective_layout(),
        plan,
        seed=plan.seed or "",
        epoch=settings.epoch,
        name_by=settings.name_by,
        inputs={"openelec": inputs.openelec.path if inputs.openelec else None, "restore": inputs.restore, "recovery": inputs.recovery},
        entries=entries,
    )


def _small_file_reader(node: Node) -> bytes:
    """Bytes of a small file node (com.apple.Boot.plist), read from wherever it comes from."""
    from atvdisk.inputs.feed import feed

    if isinstance(node.source, Inline):
        return node.source.data
    if node.size > 1024 * 1024:
        raise InputError(f"{node.origin}: {node.size} bytes is too large for a boot plist", hint="check the recovery files")
    single = FileTree(default_mtime=0)
    single.nodes["x"] = node
    out: list[bytes] = []
    feed(single, lambda paths, src, f, size: out.append(f.read(size)))
    return out[0]


def _check_fits(p: PlannedPartition, tree: FileTree) -> None:
    """A conservative early check for filesystems built by external tools."""
    overhead = {FsKind.EXT4: 0.10, FsKind.FAT32: 0.03}[p.fs.kind]
    block = p.fs.block_size or p.fs.cluster_size or 4096
    need = sum(-(-n.size // block) * block for _, n in tree.files()) + block * len(tree.nodes)
    room = int(p.size_bytes * (1 - overhead))
    if need > room:
        raise InputError(
            f"partition {p.number} ({p.name}) is {p.size_bytes} bytes; its contents need about {need} bytes"
            f" plus {p.fs.kind} overhead: about {need - room} bytes short",
            hint="make the partition larger, or put less into it",
        )


# --------------------------------------------------------------------------------------------
# Writing


def apply(prepared: Prepared, access: DiskAccess, progress: Progress, *, workdir: str) -> None:
    """Write every filesystem, then the manifest, then the partition table.

    Partitions are disjoint regions, so they are written at once where that is safe: atvdisk's
    own volumes (HFS+, swap) in parallel threads through one file descriptor (decompression,
    hashing and writes run outside the GIL), and on an image file the tools' filesystems (mke2fs,
    mkfs.fat) alongside them, each in its own thread. On a disk the tools run after, one at a time: each opens the whole
    disk O_EXCL. If one writer fails (or Ctrl-C), the others stop at their next write.
    """
    plan = prepared.plan
    if not access.known_zero:
        with progress.step(f"wipe old partition tables and signatures on {access.path}"):
            access.check_keeps_writes()  # a fake-capacity card is found before anything is built
            with access.own_writes() as fd:
                wipe(Region(fd, 0, plan.disk_bytes, known_zero=False, name=access.path), plan)
    cancel = threading.Event()
    own = [p for p in plan.partitions if p.fs.kind.is_hfs or p.fs.kind is FsKind.SWAP]
    tools = [p for p in plan.partitions if p.fs.kind in (FsKind.EXT4, FsKind.FAT32)]
    own.sort(key=lambda p: -_data_bytes(prepared, p))  # the longest first

    def write_own() -> None:
        if not own:
            return
        with access.own_writes() as fd:
            _parallel([lambda p=p: _write_own(prepared, access, p, fd, progress, cancel, workdir) for p in own], cancel)

    def write_tools(parts: list[PlannedPartition] = tools) -> None:
        for p in parts:
            if cancel.is_set():
                return
            _write_tool(prepared, access, p, progress, workdir)

    jobs = [write_own]
    if prepared.deferred_md5 is not None:
        # An image: the release's md5 sums are checked while the partitions are written; the
        # temporary image is discarded if one does not match (nothing reaches the final path).
        jobs.append(prepared.deferred_md5.result)
    try:
        if access.is_block:
            _parallel(jobs, cancel)
            write_tools()
        else:
            # An image file: each tool writes its own region of it, all at once (mkfs.fat need
            # not wait for mke2fs -d, nor the other way round).
            _parallel([*jobs, *[lambda p=p: write_tools([p]) for p in tools]], cancel)
    finally:
        prepared.close()  # every tarball member is written (and hashed): the spools can go
    prepared.hfs.clear()  # the HFS+ layouts are written: free them before the manifest and verification
    holder = manifest.holder(plan)
    if holder is not None and prepared.settings is not None and prepared.no_manifest is not None:
        with progress.step(f"no manifest on partition {holder.number} {holder.name}: {prepared.no_manifest}"):
            pass
    elif holder is not None and prepared.settings is not None:
        with progress.step(f"write atvdisk's manifest (layout, seed, sha256 of every file) to partition {holder.number} {holder.name}"):
            write_manifest(prepared, access, holder, workdir=workdir)
    with progress.step(f"write the GPT ({len(plan.partitions)} partitions)" + (" and the hybrid MBR" if plan.hybrid_mbr else "")):
        write_partition_table(access.path, plan)
        access.after_partition_table({p.number: (p.offset, p.size_bytes) for p in plan.partitions})


def _data_bytes(prepared: Prepared, p: PlannedPartition) -> int:
    pc = prepared.contents.get(p.number)
    return pc.tree.data_bytes if pc is not None else 0


def _parallel(jobs: list[Callable[[], object]], cancel: threading.Event) -> None:
    """Run ``jobs`` at once (two cores: threads; the work is outside the GIL). The first
    exception, or Ctrl-C, stops the others (``cancel``), waits for them and is raised."""
    if len(jobs) == 1:
        jobs[0]()
        return
    pool = ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="atvdisk-write")
    futures = [pool.submit(job) for job in jobs]
    try:
        wait(futures, return_when=FIRST_EXCEPTION)
        # The first failure is the cause; the others then stop with "writing stopped".
        failed = [f for f in futures if f.done() and f.exception() is not None]
        if failed:
            cancel.set()
            wait(futures)
            raise failed[0].exception()  # type: ignore[misc]
    except BaseException:  # Ctrl-C while waiting, or the failure above
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True)


def _write_own(prepared: Prepared, access: DiskAccess, p: PlannedPartition, fd: int, progress: Progress, cancel: threading.Event, workdir: str) -> None:
    """One partition atvdisk writes itself (HFS+, swap) through ``fd``."""
    plan = prepared.plan
    with progress.step(_describe(p, prepared), total=_data_bytes(prepared, p)):
        if p.fs.kind.is_hfs:
            tree = prepared.contents[p.number].tree
            hashes = prepared.hashes.setdefault(p.number, {})
            region = Region(fd, p.offset, p.size_bytes, known_zero=access.known_zero, name=f"{access.path} partition {p.number}", cancel=cancel)
            hfs_adapter.write(prepared.hfs[p.number], region, tree, progress, hashes, sync=access.is_block)
        else:
            write_swap(Region(fd, 0, plan.disk_bytes, known_zero=False, name=access.path, cancel=cancel), p, workdir=workdir)


def _write_tool(prepared: Prepared, access: DiskAccess, p: PlannedPartition, progress: Progress, workdir: str) -> None:
    """One partition made by an external tool (mke2fs -d, mkfs.fat + mtools) on the target's path."""
    with progress.step(_describe(p, prepared), total=_data_bytes(prepared, p)):
        tree = prepared.contents[p.number].tree
        hashes = prepared.hashes.setdefault(p.number, {})
        if p.fs.kind is FsKind.EXT4:
            make_ext4(access.path, p, tree, workdir=workdir, epoch=_epoch(tree), prezeroed=access.known_zero, hashes=hashes)
        else:
            make_fat32(access.path, p, tree, workdir=workdir, epoch=_epoch(tree), hashes=hashes)


def write_manifest(prepared: Prepared, access: DiskAccess, holder: PlannedPartition, *, workdir: str) -> None:
    """Hash every file not hashed while writing (host files, generated ones), write the manifest
    into ``holder``, and add it to that partition's tree (so verification expects it)."""
    settings = prepared.settings
    assert settings is not None
    entries = {}
    for number, pc in prepared.contents.items():
        known = prepared.hashes.setdefault(number, {})
        found = expected_entries(pc.tree, pc.partition.fs.kind, known)
        known.update({e.path: e.sha256 for e in found if e.sha256})
        entries[number] = found
    record = _make_manifest(settings, prepared.plan, entries)
    data = manifest.write(access.path, holder, record, workdir=workdir)
    prepared.manifest = record
    tree = prepared.contents[holder.number].tree
    tree.add_file(manifest.MANIFEST_NAME, Inline(data), len(data), mode=0o644, mtime=settings.epoch, origin="atvdisk's manifest")
    digest = hashlib.sha256(data).hexdigest()
    prepared.hashes[holder.number][manifest.MANIFEST_NAME] = digest
    node = tree.nodes[manifest.MANIFEST_NAME]
    perms = holder.fs.kind is not FsKind.FAT32
    entries.setdefault(holder.number, []).append(
        Entry(manifest.MANIFEST_NAME, node.kind, node.size, node.mode if perms else None, node.uid if perms else None, node.gid if perms else None, digest)
    )
    prepared.expected = entries


def _epoch(tree: FileTree) -> int:
    return tree.default_mtime


def _describe(p: PlannedPartition, prepared: Prepared) -> str:
    fs = p.fs
    what = {
        FsKind.FAT32: "FAT32 (mkfs.fat, mtools)",
        FsKind.HFSPLUS: "HFS+" + (" journaled" if fs.journal else ""),
        FsKind.HFSX: "HFSX" + (" journaled" if fs.journal else ""),
        FsKind.EXT4: "ext4 (mke2fs -d)",
        FsKind.SWAP: "swap (mkswap)",
    }[fs.kind]
    extra = ""
    if p.number in prepared.contents:
        tree = prepared.contents[p.number].tree
        files = sum(1 for _ in tree.files())
        if files:
            extra = f", {files} file{'s' if files != 1 else ''}, {format_iec(tree.data_bytes)}"
    return f"partition {p.number} {p.name}: {what}{extra}"


def wipe(disk: Region, plan: Plan) -> None:
    """Zero the old MBR and both GPTs, and the first and last MiB of every partition region."""
    S = plan.sector_size
    disk.write_zeros(0, plan.first_usable * S)
    disk.write_zeros((plan.last_usable + 1) * S, (plan.total_sectors - plan.last_usable - 1) * S)
    for p in plan.partitions:
        head = min(WIPE_BYTES, p.size_bytes)
        disk.write_zeros(p.offset, head)
        tail = min(WIPE_BYTES, p.size_bytes - head)
        if tail:
            disk.write_zeros(p.offset + p.size_bytes - tail, tail)


__all__ = ["BuildSettings", "Prepared", "prepare", "apply", "BuildError"]
