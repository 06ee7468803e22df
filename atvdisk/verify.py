"""Read a built disk back without trusting the build, and compare it with the plan and sources.

Checked: the size; both GPT copies and the MBR (sectors, type GUIDs, names, GUIDs, hybrid MBR);
each filesystem's signature, label and UUID; every file of every filesystem (kind, mode, owner,
size, sha256, link target) against the tree its sources make; and, when installed, the real
checkers (``e2fsck -fn``, ``fsck.fat -n``) on each partition region. Every finding is collected;
:class:`~atvdisk.errors.VerifyError` lists them all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from atvdisk.bootplist import PlistExpectation, expectation
from atvdisk.errors import AtvdiskError, ToolError, UsageError
from atvdisk.fs import hfs_adapter
from atvdisk.fs.entry import Entry
from atvdisk.fs.gpt import GptError, hybrid_mbr, protective_mbr, read_table
from atvdisk.fs.partition import MBR_TYPES
from atvdisk.inputs.contents import PartitionContents
from atvdisk.inputs.feed import feed
from atvdisk.inputs.tree import FileTree, NodeKind
from atvdisk.layout.plan import Plan, PlannedPartition
from atvdisk.layout.schema import BootMethod, ContentKind, FsKind
from atvdisk.manifest import MANIFEST_NAME, Found
from atvdisk.run import run


@dataclass
class VerifyReport:
    checked: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    def ok(self, what: str) -> None:
        self.checked.append(what)

    def bad(self, what: str) -> None:
        self.mismatches.append(what)


def verify(
    device: str,
    plan: Plan,
    contents: dict[int, PartitionContents] | None = None,
    *,
    expected: dict[int, list[Entry]] | None = None,
    complete: dict[int, bool] | None = None,
    workdir: str | None = None,
    known_hashes: dict[int, dict[str, str]] | None = None,
    plist: PlistExpectation | None = None,
) -> VerifyReport:
    """Verify ``device`` (image file or block device) against ``plan`` and ``contents`` (the
    trees the sources make) or ``expected`` (each partition's entries, e.g. from the manifest).

    ``complete[n]`` False means some of partition n's sources were not given (standalone verify
    without every input): then files found there but not expected are not mismatches.
    ``known_hashes[n]``: sha256 of files' source data taken while writing them (the build passes
    them, so the sources are not read a second time); other sources are read and hashed here.
    Partitions are checked in parallel (hashing and the checkers run outside the GIL).
    ``plist``: what the boot plist (on the partition whose contents name it) must say; it is
    read back and parsed, so it is checked even when its inputs were not given.
    """
    report = VerifyReport()
    complete = complete or {}
    known_hashes = known_hashes or {}
    contents = contents or {}
    expected = expected or {}
    with tempfile.TemporaryDirectory(prefix="atvdisk-verify-", dir=workdir) as tmp:
        with open(device, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size != plan.disk_bytes:
                report.bad(f"{device} is {size} bytes; the plan is for {plan.disk_bytes}")
                return report
            _check_table(f, plan, report)

        def one(p: PlannedPartition) -> VerifyReport:
            part = VerifyReport()
            try:
                with open(device, "rb") as pf:
                    want = expected.get(p.number)
                    if want is None and p.number in contents:
                        want = expected_entries(contents[p.number].tree, p.fs.kind, known_hashes.get(p.number, {}))
                    found = _check_partition(device, pf, p, want, complete.get(p.number, True), part, tmp)
                if plist is not None and any(c.kind is ContentKind.BOOTPLIST for c in p.contents):
                    _check_plist(device, p, plist, found, part, tmp)
            except ToolError as e:
                part.bad(f"partition {p.number} ({p.name}): {e}")
            return part

        with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
            for part in pool.map(one, plan.partitions):
                report.checked += part.checked
                report.mismatches += part.mismatches
    return report


# -- partition table ------------------------------------------------------------------------


def _check_table(f, plan: Plan, report: VerifyReport) -> None:  # noqa: ANN001 - binary file
    try:
        table = read_table(f, plan.sector_size, plan.total_sectors)
    except GptError as e:
        report.bad(f"partition table: {e}")
        return
    h = table.primary
    if (h.first_usable, h.last_usable) != (plan.first_usable, plan.last_usable):
        report.bad(f"GPT usable sectors {h.first_usable}-{h.last_usable}, expected {plan.first_usable}-{plan.last_usable}")
    if plan.disk_guid and h.disk_guid != plan.disk_guid:
        report.bad(f"GPT disk GUID {h.disk_guid}, expected {plan.disk_guid}")
    found = dict(table.partitions)
    if sorted(found) != [p.number for p in plan.partitions]:
        report.bad(f"GPT holds partitions {sorted(found)}, expected {[p.number for p in plan.partitions]}")
    for p in plan.partitions:
        e = found.get(p.number)
        if e is None:
            continue
        where = f"GPT partition {p.number}"
        if (e.first_lba, e.last_lba) != (p.start, p.end):
            report.bad(f"{where}: sectors {e.first_lba}-{e.last_lba}, expected {p.start}-{p.end}")
        if e.type_guid != p.type_guid:
            report.bad(f"{where}: type GUID {e.type_guid}, expected {p.type_guid} ({p.role})")
        if e.name != p.name:
            report.bad(f"{where}: name {e.name!r}, expected {p.name!r}")
        if p.guid and e.unique_guid != p.guid:
            report.bad(f"{where}: unique GUID {e.unique_guid}, expected {p.guid}")
    expected_mbr = hybrid_mbr(table.partitions, plan.total_sectors, MBR_TYPES) if plan.hybrid_mbr else protective_mbr(plan.total_sectors)
    if table.mbr.entries != expected_mbr.entries:
        kind = "hybrid" if plan.hybrid_mbr else "protective"
        report.bad(f"MBR records {table.mbr.entries} are not the expected {kind} MBR {expected_mbr.entries}")
    report.ok(f"GPT (both copies) and {'hybrid' if plan.hybrid_mbr else 'protective'} MBR")


# -- filesystems ----------------------------------------------------------------------------


def _check_plist(device: str, p: PlannedPartition, plist: PlistExpectation, root_files: set[str] | None, report: VerifyReport, tmp: str) -> None:
    """Read the boot plist back, parse it, and check it says what the plan needs (``root_files``:
    the files found at the partition's root)."""
    name = f"partition {p.number} ({p.name})"
    if root_files is None:
        return  # the filesystem itself is already reported unreadable
    if plist.path not in root_files:
        report.bad(f"{name}: /{plist.path} is missing: boot.efi gets no Kernel and no Kernel Flags")
        return
    if p.fs.kind.is_hfs:
        try:
            data = hfs_adapter.read_small_file(device, p.offset, p.size_bytes, plist.path)
        except AtvdiskError as e:
            report.bad(f"{name}: /{plist.path} cannot be read: {e}")
            return
    else:
        out = Path(tmp) / f"plist-{p.number}"
        run(["mcopy", "-i", f"{device}@@{p.offset}", "-n", f"::/{plist.path}", str(out)], env={"MTOOLS_SKIP_CHECK": "1"})
        data = out.read_bytes()
    problems = plist.problems(data or b"", root_files)
    for problem in problems:
        report.bad(f"{name}: {problem}")
    if not problems:
        if plist.method is BootMethod.KEXEC:
            what = f"atv-boot={plist.mode}, its Kernel present"
        elif plist.kernel_flags is not None:
            what = f"Kernel {plist.kernel}, Kernel Flags as planned"
        else:
            what = f"Kernel {plist.kernel}, Kernel Flags boot=... disk=... (their UUIDs are not known here)"
        report.ok(f"{name}: /{plist.path} parsed: {what}")


def _check_partition(device: str, f, p: PlannedPartition, expected: list[Entry] | None, complete: bool, report: VerifyReport, tmp: str) -> set[str] | None:  # noqa: ANN001
    """Check partition ``p``; the names of the files found at its root (None: no files, or not
    readable)."""
    name = f"partition {p.number} ({p.name})"
    kind = p.fs.kind
    if kind is FsKind.NONE:
        return None
    if kind is FsKind.SWAP:
        _check_swap(f, p, report, name)
        return None
    root_files: set[str] = set()

    def at_root(found: Iterable[Entry]) -> Iterator[Entry]:
        for e in found:
            if "/" not in e.path and e.kind is NodeKind.FILE:
                root_files.add(e.path)
            yield e

    if kind.is_hfs:
        # The entries stream from the volume (memory bounded by its folders, not its files).
        try:
            with hfs_adapter.open_entries(device, p.offset, p.size_bytes) as (info, entries):
                _check_hfs_header(info, p, report, name)
                if expected is not None:
                    _compare_hfs(name, p, expected, at_root(entries), complete, report)
                else:
                    root_files.update(e.path for e in entries if "/" not in e.path and e.kind is NodeKind.FILE)
        except AtvdiskError as e:
            report.bad(f"{name}: {e}")
            return None
        return root_files
    if kind is FsKind.FAT32:
        found = _fat_entries(device, f, p, report, name, tmp)
    else:
        found = _ext4_entries(device, f, p, report, name, tmp)
    if found is None:
        return None
    if expected is None:
        for _ in at_root(found):
            pass
        return root_files
    compare(name, kind, expected, at_root(found), complete, report)
    return root_files


def _compare_hfs(name: str, p: PlannedPartition, expected: list[Entry], entries: Iterator[Entry], complete: bool, report: VerifyReport) -> None:
    journal_files: dict[str, Entry] = {}
    if p.fs.journal:
        # Apple's newfs_hfs puts the journal in two files at the root; they belong there.
        def without_journal(found: Iterator[Entry]) -> Iterator[Entry]:
            for e in found:
                if e.path in (".journal", ".journal_info_block"):
                    journal_files[e.path] = e
                else:
                    yield e

        entries = without_journal(entries)
    compare(name, p.fs.kind, expected, entries, complete, report)
    if p.fs.journal and (set(journal_files) != {".journal", ".journal_info_block"} or any(e.kind is not NodeKind.FILE for e in journal_files.values())):
        report.bad(f"{name}: a journaled volume needs the files /.journal and /.journal_info_block")


def _check_swap(f, p: PlannedPartition, report: VerifyReport, name: str) -> None:  # noqa: ANN001
    f.seek(p.offset)
    page = f.read(4096)
    if page[4086:4096] != b"SWAPSPACE2":
        report.bad(f"{name}: no swap signature")
        return
    version, last_page = struct.unpack_from("<II", page, 1024)
    uuid_bytes = page[1036:1052]
    label = page[1052:1068].split(b"\0", 1)[0].decode(errors="replace")
    if version != 1:
        report.bad(f"{name}: swap header version {version}, expected 1")
    if last_page != p.size_bytes // 4096 - 1:
        report.bad(f"{name}: swap says its last page is {last_page}, expected {p.size_bytes // 4096 - 1}")
    if p.fs.label and label != p.fs.label:
        report.bad(f"{name}: swap label {label!r}, expected {p.fs.label!r}")
    if p.fs.uuid:
        import uuid

        if str(uuid.UUID(bytes=uuid_bytes)) != p.fs.uuid:
            report.bad(f"{name}: swap UUID {uuid.UUID(bytes=uuid_bytes)}, expected {p.fs.uuid}")
    report.ok(f"{name}: swap signature, label and UUID")


def _fat_entries(device: str, f, p: PlannedPartition, report: VerifyReport, name: str, tmp: str) -> list[Entry] | None:  # noqa: ANN001
    f.seek(p.offset)
    bs = f.read(512)
    if bs[82:90] != b"FAT32   " or bs[510:512] != b"\x55\xaa":
        report.bad(f"{name}: no FAT32 boot sector")
        return None
    bytes_per_sector, spc, reserved, nfats = struct.unpack_from("<HBHB", bs, 11)
    total = struct.unpack_from("<I", bs, 32)[0]
    fat_size = struct.unpack_from("<I", bs, 36)[0]
    clusters = (total - reserved - nfats * fat_size) // spc if spc else 0
    if total * bytes_per_sector != p.size_bytes:
        report.bad(f"{name}: the FAT filesystem covers {total} sectors of {bytes_per_sector} bytes, not the whole partition ({p.size_bytes} bytes)")
    if clusters < 65525:
        report.bad(f"{name}: only {clusters} clusters; FAT32 needs at least 65525")
    if bytes_per_sector * spc != p.fs.cluster_size:
        report.bad(f"{name}: cluster size {bytes_per_sector * spc}, expected {p.fs.cluster_size}")
    label = bs[71:82].decode("ascii", errors="replace").rstrip()
    if p.fs.label and label != p.fs.label:
        report.bad(f"{name}: FAT label {label!r}, expected {p.fs.label!r}")
    volid = struct.unpack_from("<I", bs, 67)[0]
    if p.fs.uuid and f"{volid >> 16:04X}-{volid & 0xFFFF:04X}" != p.fs.uuid:
        report.bad(f"{name}: FAT volume id {volid >> 16:04X}-{volid & 0xFFFF:04X}, expected {p.fs.uuid}")
    report.ok(f"{name}: FAT32 boot sector, {clusters} clusters, label and volume id")
    # The real checker, on a sparse copy of the region (fsck.fat has no offset option).
    if shutil.which("fsck.fat"):
        copy = Path(tmp) / f"fat-{p.number}.img"
        _sparse_copy(f, p.offset, p.size_bytes, copy)
        result = run(["fsck.fat", "-n", str(copy)], ok_codes=(0, 1, 2))
        if result.returncode != 0:
            report.bad(f"{name}: fsck.fat -n found problems: {result.stdout.strip()[-300:]}")
        else:
            report.ok(f"{name}: fsck.fat -n clean")
    out = Path(tmp) / f"fat-{p.number}"
    out.mkdir()
    image = f"{device}@@{p.offset}"
    env = {"MTOOLS_SKIP_CHECK": "1"}
    listing = run(["mdir", "-i", image, "-b", "-/", "::/"], env=env, ok_codes=(0, 1))
    entries: list[Entry] = []
    if listing.stdout.strip():
        run(["mcopy", "-i", image, "-s", "-n", "-m", "::/*", str(out) + "/"], env=env)
        for dirpath, dirnames, filenames in os.walk(out):
            for d in dirnames:
                rel = os.path.relpath(os.path.join(dirpath, d), out)
                entries.append(Entry(rel, NodeKind.DIR))
            for fn in filenames:
                full = os.path.join(dirpath, fn)
                entries.append(Entry(os.path.relpath(full, out), NodeKind.FILE, os.path.getsize(full), sha256=_sha256_file(full)))
    return entries


def _sparse_copy(f, offset: int, length: int, dest: Path) -> None:  # noqa: ANN001
    """Copy a region into a new sparse file, skipping the source's holes where it has them.

    Reads with pread on the descriptor only: the buffered file object ``f`` is left alone.
    """
    fd = f.fileno()
    with open(dest, "wb") as out:
        out.truncate(length)
        pos, end = offset, offset + length
        while pos < end:
            try:
                data_at = os.lseek(fd, pos, os.SEEK_DATA)
                hole_at = os.lseek(fd, data_at, os.SEEK_HOLE)
            except OSError:
                data_at, hole_at = pos, end  # no hole information (a block device): copy it all
            if data_at >= end:
                break
            stop = min(hole_at, end)
            while data_at < stop:
                chunk = os.pread(fd, min(stop - data_at, 1 << 20), data_at)
                if not chunk:
                    break
                out.seek(data_at - offset)
                out.write(chunk)
                data_at += len(chunk)
            pos = stop


def _ext4_entries(device: str, f, p: PlannedPartition, report: VerifyReport, name: str, tmp: str) -> list[Entry] | None:  # noqa: ANN001
    f.seek(p.offset + 1024)
    sb = f.read(1024)
    if struct.unpack_from("<H", sb, 56)[0] != 0xEF53:
        report.bad(f"{name}: no ext4 superblock")
        return None
    import uuid

    block_size = 1024 << struct.unpack_from("<I", sb, 24)[0]
    fs_uuid = str(uuid.UUID(bytes=sb[104:120]))
    label = sb[120:136].split(b"\0", 1)[0].decode(errors="replace")
    has_journal = bool(struct.unpack_from("<I", sb, 92)[0] & 0x4)
    if block_size != p.fs.block_size:
        report.bad(f"{name}: ext4 block size {block_size}, expected {p.fs.block_size}")
    if p.fs.label and label != p.fs.label:
        report.bad(f"{name}: ext4 label {label!r}, expected {p.fs.label!r}")
    if p.fs.uuid and fs_uuid != p.fs.uuid:
        report.bad(f"{name}: ext4 UUID {fs_uuid}, expected {p.fs.uuid}")
    if has_journal != bool(p.fs.journal):
        report.bad(f"{name}: ext4 journal {'present' if has_journal else 'absent'}, expected {'present' if p.fs.journal else 'absent'}")
    report.ok(f"{name}: ext4 superblock, {block_size}-byte blocks, label and UUID")
    spec = f"{device}?offset={p.offset}"
    if not shutil.which("e2fsck"):
        return ext4_walk(spec, Path(tmp) / f"ext4-{p.number}")
    # e2fsck and the debugfs walk both read the filesystem, neither changes it: they run at once
    # (on a 2 TiB disk each takes a few tenths of a second opening the group descriptors).
    with ThreadPoolExecutor(max_workers=1) as pool:
        fsck = pool.submit(run, ["e2fsck", "-fn", spec], ok_codes=tuple(range(256)))
        entries = ext4_walk(spec, Path(tmp) / f"ext4-{p.number}")
        result = fsck.result()
    if result.returncode != 0:
        report.bad(f"{name}: e2fsck -fn exit code {result.returncode}: {(result.stdout + result.stderr).strip()[-300:]}")
    else:
        report.ok(f"{name}: e2fsck -fn clean")
    return entries


def ext4_walk(spec: str, scratch: Path) -> list[Entry]:
    """Every entry of an ext4 filesystem, read with debugfs (no mount)."""
    from atvdisk.fs.ext4 import debugfs_quote

    scratch.mkdir()
    entries: list[Entry] = []
    level = [""]
    files: list[str] = []
    links: list[str] = []
    while level:
        script = scratch / "ls.debugfs"
        script.write_text("".join(f"ls -p {debugfs_quote('/' + d)}\n" for d in level))
        out = run(["debugfs", "-f", str(script), spec]).stdout
        next_level = []
        for directory, lines in _debugfs_sections(out, level):
            for line in lines:
                parts = line.split("/")
                if len(parts) < 7 or parts[0] != "":
                    continue
                mode, uid, gid = int(parts[2], 8), int(parts[3]), int(parts[4])
                fname = "/".join(parts[5:-2])
                if fname in (".", "..") or (not directory and fname == "lost+found"):
                    continue
                size = int(parts[-2]) if parts[-2] else 0
                path = f"{directory}/{fname}" if directory else fname
                kind = {0o040000: NodeKind.DIR, 0o100000: NodeKind.FILE, 0o120000: NodeKind.SYMLINK}.get(mode & 0o170000)
                if kind is None:
                    entries.append(Entry(path, NodeKind.FILE, size, mode & 0o7777, uid, gid, sha256="(not a regular file)"))
                    continue
                entries.append(Entry(path, kind, size if kind is NodeKind.FILE else 0, mode & 0o7777, uid, gid))
                if kind is NodeKind.DIR:
                    next_level.append(path)
                elif kind is NodeKind.FILE:
                    files.append(path)
                else:
                    links.append(path)
        level = next_level
    hashes: dict[str, str] = {}
    if files:
        dump_dir = scratch / "dump"
        dump_dir.mkdir()
        script = scratch / "dump.debugfs"
        script.write_text("".join(f"dump {debugfs_quote('/' + path)} {debugfs_quote(str(dump_dir / str(i)))}\n" for i, path in enumerate(files)))
        run(["debugfs", "-f", str(script), spec])
        for i, path in enumerate(files):
            out_file = dump_dir / str(i)
            hashes[path] = _sha256_file(str(out_file)) if out_file.exists() else "(unreadable)"
            if out_file.exists():
                out_file.unlink()
    targets: dict[str, str] = {}
    if links:
        script = scratch / "stat.debugfs"
        script.write_text("".join(f"stat {debugfs_quote('/' + path)}\n" for path in links))
        out = run(["debugfs", "-f", str(script), spec]).stdout
        for path, lines in _debugfs_sections(out, links):
            for line in lines:
                if "link dest:" in line:
                    targets[path] = line.split("link dest:", 1)[1].strip().strip('"')
    return [
        Entry(e.path, e.kind, e.size, e.mode, e.uid, e.gid, hashes.get(e.path, e.sha256), targets.get(e.path)) if e.kind is not NodeKind.DIR else e
        for e in entries
    ]


def _debugfs_sections(output: str, keys: list[str]):
    """Split debugfs -f output into one block of lines per command (commands are echoed)."""
    blocks: list[list[str]] = []
    for line in output.splitlines():
        if line.startswith("debugfs: "):
            blocks.append([])
        elif blocks:
            blocks[-1].append(line)
    return zip(keys, blocks, strict=False)


def _check_hfs_header(info: hfs_adapter.VolumeInfo, p: PlannedPartition, report: VerifyReport, name: str) -> None:
    expected_sig = "HX" if p.fs.kind is FsKind.HFSX else "H+"
    if info.signature != expected_sig:
        report.bad(f"{name}: HFS signature {info.signature!r}, expected {expected_sig!r}")
    if p.fs.label and info.volume_name != p.fs.label:
        report.bad(f"{name}: volume name {info.volume_name!r}, expected {p.fs.label!r}")
    if info.journaled != bool(p.fs.journal):
        report.bad(f"{name}: {'journaled' if info.journaled else 'not journaled'}, expected {'journaled' if p.fs.journal else 'not journaled'}")
    if not info.clean:
        report.bad(f"{name}: the volume is not marked cleanly unmounted")
    if p.fs.uuid and info.volume_id != p.fs.uuid:
        report.bad(f"{name}: HFS+ volume id {info.volume_id}, expected {p.fs.uuid}")
    report.ok(f"{name}: {p.fs.kind} volume header, name, journal flag, clean flag, volume id")


# -- contents -------------------------------------------------------------------------------


def expected_entries(tree: FileTree, kind: FsKind, known: dict[str, str] | None = None, *, placeholder: str | None = None) -> list[Entry]:
    """What the tree's sources say each filesystem should hold. Hashes of ``known`` paths are
    taken as given; the other sources are read and hashed (streaming), or with ``placeholder``
    not read: every file gets that digest (to know a manifest's size before writing)."""
    if placeholder is not None:
        return _entries(tree, kind, lambda path: placeholder)
    hashes: dict[str, str] = dict(known or {})

    def sink(paths: list[str], source, f, size: int) -> None:  # noqa: ANN001
        h = hashlib.sha256()
        left = size
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
        for path in paths:
            hashes[path] = h.hexdigest()

    feed(tree, sink, skip=hashes.keys())
    return _entries(tree, kind, hashes.get)


def _entries(tree: FileTree, kind: FsKind, digest: Callable[[str], str | None]) -> list[Entry]:
    has_perms = kind is not FsKind.FAT32
    out = []
    for path, node in tree:
        if not path:
            continue
        out.append(
            Entry(
                path,
                node.kind,
                node.size if node.kind is NodeKind.FILE else 0,
                node.mode if has_perms and node.kind is not NodeKind.SYMLINK else None,
                node.uid if has_perms else None,
                node.gid if has_perms else None,
                digest(path) if node.kind is NodeKind.FILE else None,
                node.target,
            )
        )
    return out


def compare(name: str, kind: FsKind, expected: list[Entry], found: Iterable[Entry], complete: bool, report: VerifyReport) -> None:
    """Every expected entry must be found with the same kind, size, sha256, target, mode and
    owner (where both sides have them); with ``complete``, nothing else may be found.

    ``found`` is consumed once, entry by entry (it may stream from the disk): only the expected
    entries not yet seen are kept. Findings are reported in the order of ``expected``, then
    what no source put there in the order found."""
    norm = hfs_adapter.stored_form if kind.is_hfs else (lambda s: s)
    want = {norm(e.path): i for i, e in enumerate(expected)}
    problems: list[tuple[int, str]] = []
    extra: list[str] = []
    for g in found:
        i = want.pop(norm(g.path), None)
        if i is None:
            if complete:
                extra.append(f"{name}: /{g.path} is there but no source put it there")
            continue
        e = expected[i]
        diffs = []
        if g.kind is not e.kind:
            diffs.append(f"is a {g.kind}, expected a {e.kind}")
        else:
            if e.kind is NodeKind.FILE and g.size != e.size:
                diffs.append(f"size {g.size}, expected {e.size}")
            elif e.kind is NodeKind.FILE and e.sha256 and g.sha256 != e.sha256:
                diffs.append("content differs from its source (sha256)")
            if e.kind is NodeKind.SYMLINK and g.target != e.target:
                diffs.append(f"points to {g.target!r}, expected {e.target!r}")
            if e.mode is not None and g.mode is not None and e.kind is not NodeKind.SYMLINK and g.mode != e.mode:
                diffs.append(f"mode {g.mode:04o}, expected {e.mode:04o}")
            if e.uid is not None and g.uid is not None and (g.uid, g.gid) != (e.uid, e.gid):
                diffs.append(f"owner {g.uid}:{g.gid}, expected {e.uid}:{e.gid}")
        if diffs:
            problems.append((i, f"{name}: /{e.path}: " + "; ".join(diffs)))
    problems += [(i, f"{name}: /{expected[i].path} is missing") for i in want.values()]
    problems.sort()
    for _, message in problems:
        report.bad(message)
    for message in extra:
        report.bad(message)
    files = sum(1 for e in expected if e.kind is NodeKind.FILE)
    if not problems and not extra:
        report.ok(f"{name}: {len(expected)} entries ({files} files) match their sources" + ("" if complete else " (the parts whose sources were given)"))


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


__all__ = ["verify", "VerifyReport", "Entry", "expected_entries", "UsageError"]


def manifest_entry(found: Found, kind: FsKind) -> Entry:
    """The manifest file itself, as it must be found in the partition that holds it."""
    digest = hashlib.sha256(found.data).hexdigest()
    perms = kind is not FsKind.FAT32
    return Entry(MANIFEST_NAME, NodeKind.FILE, len(found.data), 0o644 if perms else None, 0 if perms else None, 0 if perms else None, digest)


def verify_manifest(device: str, found: Found, disk_bytes: int, sector_size: int, *, workdir: str | None = None) -> tuple[Plan, VerifyReport]:
    """Verify ``device`` against the manifest found on it: the plan its layout and seed give
    for the device's size (so a disk an image was written and grown to verifies too), and every
    file it lists (kind, size, sha256, mode, owner, link target)."""
    plan = found.manifest.plan(disk_bytes, sector_size)
    expected = found.manifest.expected()
    holder = plan.partitions[found.partition - 1] if 0 < found.partition <= len(plan.partitions) else None
    if holder is not None:
        expected.setdefault(found.partition, []).append(manifest_entry(found, holder.fs.kind))
    report = verify(device, plan, expected=expected, workdir=workdir, plist=expectation(plan, found.manifest.name_by))
    m = found.manifest
    report.checked.insert(0, f"manifest on partition {found.partition}: layout {m.layout_name}, seed {m.seed!r}, built by atvdisk {m.atvdisk_version}, {m.files} files")
    return plan, report
