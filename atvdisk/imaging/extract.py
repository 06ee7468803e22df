"""``atvdisk extract``: the files of an HFS+ volume on an ATV disk (or an image of one) as a
deterministic tarball — above all the Recovery partition as the ``atv_restore.tar.gz`` every
guide asks for.

Read-only by construction: the source is a descriptor opened ``O_RDONLY`` by
:func:`atvdisk.target.source.open_source`, read through atvdisk's own HFS+ reader; nothing here
can write it, whatever state its volumes are in. A volume that was not cleanly unmounted, or
whose journal still holds transactions, is read as it lies on the disk with a warning (the
reader's structure checks refuse what cannot be read consistently).

The tarball is the same bytes whenever the volume is the same: members in path order (parents
first), PAX format (UTF-8 names of any length), owner 0:0 with no user or group names, modes and
modification times from HFS+, regular files, directories and symlinks only, gzip without a name
or time in its header. Names are HFS+'s stored names recomposed where that round-trips (so
``café`` is one character again, as Linux's hfsplus shows it, while a name HFS+ does not
decompose stays as it is), with HFS+'s ``/`` shown as ``:`` as macOS and Linux show it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import plistlib
import tarfile
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from atvdisk.errors import InputError, TargetRefused, UsageError
from atvdisk.fs.gpt import GptError, read_primary
from atvdisk.fs.hfsplus.errors import HfsError
from atvdisk.fs.hfsplus.reader import HfsEntry, HfsVolume
from atvdisk.fs.hfsplus.records import kHardLinkFileType, kHFSPlusCreator
from atvdisk.fs.hfsplus.unicode import hfs_decompose
from atvdisk.fs.signature import probe
from atvdisk.inputs import tarsafe
from atvdisk.inputs.payload import BOOT_EFI_SIZE
from atvdisk.inputs.tree import FileTree
from atvdisk.layout.schema import TYPE_GUIDS, Role, role_for_guid
from atvdisk.target.source import SourceDisk

RESTORE_NAME = "atv_restore.tar.gz"
PLIST = "com.apple.Boot.plist"
MAX_PLIST = 1 << 20
# HFS+'s own metadata at the root, never user files (TN1150 "Hard Links"; the journal's files).
PRIVATE_DIR = "\u2400\u2400\u2400\u2400HFS+ Private Data"  # "\0\0\0\0HFS+ Private Data" as decoded
PRIVATE_DIR_DIRS = ".HFS+ Private Directory Data\r"
JOURNAL_FILES = (".journal", ".journal_info_block")
# Files that show a Recovery volume was already turned into a patchstick (not Apple's as shipped).
PATCHSTICK_FILES = ("patchstick.sh", "keyword", "atvdisk-manifest.json")


class ExtractError(UsageError):
    """The source has no volume to extract, or the volume cannot be read consistently."""


@dataclass(frozen=True)
class HfsPartition:
    number: int
    name: str  # GPT partition name
    role: Role
    offset: int
    length: int
    kind: str  # "H+" or "HX"


@dataclass
class ExtractReport:
    partition: HfsPartition
    output: str
    volume_name: str
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    data_bytes: int = 0
    sha256: str = ""  # of the tarball
    boot_efi_size: int | None = None
    kernel_flags: str | None = None
    warnings: list[str] = field(default_factory=list)


def hfs_partitions(src: SourceDisk) -> list[HfsPartition]:
    """The GPT partitions of ``src`` that hold an HFS+ or HFSX volume (by signature)."""
    try:
        with os.fdopen(os.dup(src.fd), "rb") as f:
            table = read_primary(f, src.sector_size)
    except GptError as e:
        raise ExtractError(f"{src.path}: no readable GPT ({e})", hint="is it an Apple TV disk, or an image of the whole disk?") from None
    found = []
    for number, e in table.partitions:
        offset = e.first_lba * src.sector_size
        length = (e.last_lba - e.first_lba + 1) * src.sector_size
        if offset + length > src.size_bytes:
            continue
        kind = probe(src.fd, offset, length)
        if kind.is_hfs:
            found.append(HfsPartition(number, e.name, role_for_guid(e.type_guid), offset, length, "HX" if kind.value == "hfsx" else "H+"))
    return found


def choose(parts: list[HfsPartition], src: SourceDisk, *, number: int | None) -> HfsPartition:
    """``--partition N``, or else the recovery partition (the atvrecv type GUID)."""
    listing = ", ".join(f"{p.number} ({p.name or 'unnamed'}, {p.role})" for p in parts) or "none"
    if number is not None:
        for p in parts:
            if p.number == number:
                return p
        raise ExtractError(f"{src.path}: partition {number} holds no HFS+ volume", hint=f"HFS+ partitions: {listing}")
    recovery = [p for p in parts if p.role is Role.ATVRECV]
    if not recovery:
        raise ExtractError(
            f"{src.path}: no Apple TV recovery partition (type {TYPE_GUIDS[Role.ATVRECV]}) with an HFS+ volume",
            hint=f"HFS+ partitions: {listing}; choose one with --partition N, or all with --all",
        )
    return recovery[0]


def default_output(p: HfsPartition) -> str:
    if p.role is Role.ATVRECV:
        return RESTORE_NAME
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in (p.name or f"partition{p.number}"))
    return f"{safe}.tar.gz"


def tar_name(path: str) -> str:
    """A stored (decomposed) path as it goes into the tarball: each component recomposed when
    HFS+ would decompose the composed form back to exactly the stored one."""
    out = []
    for component in path.split("/"):
        composed = unicodedata.normalize("NFC", component)
        out.append(composed if composed != component and hfs_decompose(composed) == component else component)
    return "/".join(out)


def _members(vol: HfsVolume, report: ExtractReport) -> Iterator[tuple[HfsEntry, HfsEntry | None]]:
    """(entry, data entry) in catalog order, metadata left out; hard links resolved to their
    inode file (the data entry)."""
    inodes: dict[str, HfsEntry] = {}
    skipped_root = {PRIVATE_DIR, PRIVATE_DIR_DIRS}
    if vol.journaled:
        skipped_root |= set(JOURNAL_FILES)
    entries = []
    for e in vol.walk():
        top = e.path.split("/", 1)[0]
        if top == PRIVATE_DIR and "/" in e.path:
            inodes[e.name] = e
        if top in skipped_root:
            continue
        entries.append(e)
    for e in entries:
        if e.kind == "file" and e.finder_type == kHardLinkFileType and e.finder_creator == kHFSPlusCreator:
            target = inodes.get(f"iNode{e.special}")
            if target is None:
                raise ExtractError(f"{vol.name}: /{e.path} is a hard link to inode {e.special}, which is missing", hint="the volume is damaged; run fsck_hfs on a copy")
            yield e, target
        elif e.kind == "special":
            report.warnings.append(f"/{e.path}: a device node, FIFO or socket: left out")
        else:
            yield e, e


def extract_volume(src: SourceDisk, part: HfsPartition, output: str | os.PathLike[str], *, force: bool = False) -> ExtractReport:
    """Write partition ``part``'s volume as a tarball at ``output`` (atomically: a temporary
    name beside it, renamed when complete and re-read by the same checks ``build --restore``
    applies)."""
    out = Path(output)
    if out.exists() and not force:
        raise TargetRefused(f"{out} already exists", hint="give --force to replace it, or another name with -o")
    if not out.parent.is_dir():
        raise TargetRefused(f"{out.parent}: no such directory", hint="create it first")
    try:
        vol = HfsVolume(src.fd, part.offset, part.length, name=f"{src.path} partition {part.number}")
    except HfsError as e:
        raise ExtractError(f"{src.path} partition {part.number}: {e}", hint="the volume cannot be read") from None
    report = ExtractReport(part, str(out), "")
    try:
        report.volume_name = vol.volume_name
        if not vol.clean:
            report.warnings.append(
                f"partition {part.number} ({part.name}): the volume was not cleanly unmounted"
                + (" (marked inconsistent)" if vol.inconsistent else "")
                + ": read as it lies on the disk (nothing is repaired or written)"
            )
        if vol.journaled:
            state = vol.journal_state()
            if state is not None and not state.get("empty", True):
                report.warnings.append(
                    f"partition {part.number} ({part.name}): the journal holds transactions that were never replayed:"
                    " the files are read as they lie on the disk, without the journal's latest changes"
                )
        fd, tmpname = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
        try:
            with os.fdopen(fd, "wb") as raw:
                _write_tar(vol, raw, report)
                raw.flush()
                os.fsync(raw.fileno())
            with open(tmpname, "rb") as f:
                h = hashlib.sha256()
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            report.sha256 = h.hexdigest()
            # What build --restore will do with it: every member checked, as the build checks.
            # A faithful copy may hold what a build refuses (an absolute symlink): say so.
            try:
                tarsafe.scan(tmpname, FileTree(default_mtime=0), origin=str(out))
            except InputError as e:
                report.warnings.append(f"`atvdisk build` would refuse this tarball as an input: {e}")
            os.chmod(tmpname, 0o644)
            os.replace(tmpname, out)
        except BaseException:
            if os.path.exists(tmpname):
                os.unlink(tmpname)
            raise
    except HfsError as e:
        raise ExtractError(f"{src.path} partition {part.number} ({part.name}): {e}", hint="the volume is damaged where it was read; nothing was written to it") from None
    finally:
        vol.close()
    if part.role is Role.ATVRECV:
        if report.boot_efi_size is None:
            report.warnings.append("no boot.efi at the root: the ATV firmware would not boot this Recovery")
        elif report.boot_efi_size != BOOT_EFI_SIZE:
            report.warnings.append(f"boot.efi is {report.boot_efi_size} bytes, not the {BOOT_EFI_SIZE} bytes of Apple's ATV boot.efi")
    return report


def _write_tar(vol: HfsVolume, raw, report: ExtractReport) -> None:  # noqa: ANN001 - a binary file
    found_patchstick = []
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            rows = sorted(_members(vol, report), key=lambda pair: tar_name(pair[0].path).split("/"))
            for e, data in rows:
                name = tar_name(e.path)
                info = tarfile.TarInfo(name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                assert data is not None
                # A hard link's mode and times live in its inode file (Linux and macOS show those).
                info.mtime = max(0, data.mtime)
                info.mode = data.mode & 0o7777
                if e.kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                    report.dirs += 1
                elif e.kind == "symlink":
                    info.type = tarfile.SYMTYPE
                    info.linkname = e.link_target or ""
                    info.mode = 0o777
                    tar.addfile(info)
                    report.symlinks += 1
                else:
                    info.type = tarfile.REGTYPE
                    info.size = data.size
                    tar.addfile(info, _Reader(vol, data))
                    report.files += 1
                    report.data_bytes += data.size
                    if "/" not in name:
                        if name == "boot.efi":
                            report.boot_efi_size = data.size
                        elif name == PLIST and data.size <= MAX_PLIST:
                            report.kernel_flags = _kernel_flags(b"".join(vol.read(data)), report)
                        if name in PATCHSTICK_FILES:
                            found_patchstick.append(name)
    if found_patchstick:
        report.warnings.append(
            f"this volume holds {', '.join(found_patchstick)}: it was already set up as a patchstick, not Apple's restore"
            " files as shipped (the tarball holds them as they are)"
        )


def _kernel_flags(data: bytes, report: ExtractReport) -> str | None:
    try:
        doc = plistlib.loads(data)
    except Exception as e:  # noqa: BLE001 - plistlib raises many types on bad input
        report.warnings.append(f"{PLIST} cannot be read ({type(e).__name__})")
        return None
    flags = doc.get("Kernel Flags") if isinstance(doc, dict) else None
    return flags if isinstance(flags, str) else None


class _Reader:
    """A file's data fork as a file object for tarfile (streamed, bounded memory)."""

    def __init__(self, vol: HfsVolume, entry: HfsEntry) -> None:
        self._chunks = vol.read(entry)
        self._buf = memoryview(b"")

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            rest = bytes(self._buf) + b"".join(self._chunks)
            self._buf = memoryview(b"")
            return rest
        while len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf = memoryview(bytes(self._buf) + chunk) if self._buf else memoryview(chunk)
        out = bytes(self._buf[:n])
        self._buf = self._buf[n:]
        return out


def extract(src: SourceDisk, *, number: int | None = None, every: bool = False, output: str | None = None, out_dir: str = ".", force: bool = False) -> list[ExtractReport]:
    """Extract the recovery volume (default), partition ``number``, or ``every`` HFS+ volume."""
    parts = hfs_partitions(src)
    if every:
        if output is not None:
            raise UsageError("-o names one tarball; with --all give --out-dir")
        if not parts:
            raise ExtractError(f"{src.path}: no HFS+ volume in its GPT", hint="is it an Apple TV disk?")
        chosen = parts
    else:
        chosen = [choose(parts, src, number=number)]
    if every:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    names = [Path(out_dir) / default_output(p) for p in chosen] if output is None else [Path(output)]
    if len({str(n) for n in names}) != len(names):
        names = [Path(out_dir) / f"{n.name.removesuffix('.tar.gz')}-{p.number}.tar.gz" for n, p in zip(names, chosen, strict=True)]
    for n in names:
        if n.exists() and not force:
            raise TargetRefused(f"{n} already exists", hint="give --force to replace it, or another name")
    return [extract_volume(src, p, n, force=force) for p, n in zip(chosen, names, strict=True)]


__all__ = ["ExtractError", "ExtractReport", "HfsPartition", "extract", "extract_volume", "hfs_partitions", "tar_name", "RESTORE_NAME"]
