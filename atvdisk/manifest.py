"""The manifest atvdisk writes on every disk it builds: which layout, which options, which
atvdisk, which seed, and the sha256 of every file written.

It lets a disk (or an image of one) speak for itself: ``atvdisk verify DISK`` with no options
re-checks everything against it, and ``atvdisk write`` learns from it how to grow an image to a
larger disk (the layout's own TOML is embedded, so a later atvdisk with a changed bundled layout
still reads an older disk right).

Where: a file :data:`MANIFEST_NAME` at the root of the first FAT32 partition (the EFI partition
of the ATV layouts, which the ATV's boot chain never reads), else of the first ext4 partition
(OpenELEC's storage). A layout with neither gets no manifest (the build says so). It is written
after every filesystem and before the partition table, so it can hold the sha256 of data that
was streamed while writing.

The format (``atvdisk-manifest/1``) is compact JSON (no whitespace: Python's C encoder, a
third less than an indented document) with sorted keys, so that builds with ``--seed`` and
``SOURCE_DATE_EPOCH`` stay bit-identical: no host paths (input files by base name), no clock.
A manifest read from a disk is untrusted input: its size is bounded and every field is checked
(:class:`ManifestError`). The bound is one the build keeps too (:func:`fits`): atvdisk never
writes a manifest it would refuse to read.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from typing import Any

from atvdisk import __version__
from atvdisk.errors import AtvdiskError, InputError, LayoutError, ToolError
from atvdisk.fs import ext4, fat
from atvdisk.fs.entry import Entry
from atvdisk.fs.gpt import GptError, read_primary
from atvdisk.fs.signature import probe
from atvdisk.inputs.tree import NodeKind
from atvdisk.layout import atv
from atvdisk.layout.plan import Plan, PlannedPartition
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import (
    FsKind,
    IdentityValueError,
    Layout,
    NameBy,
    check_epoch,
    check_seed,
    parse_layout,
)

MANIFEST_FORMAT = "atvdisk-manifest/1"
MANIFEST_NAME = "atvdisk-manifest.json"
# The largest manifest atvdisk writes, and so the largest it reads. On the bundled layouts it
# lives on the 34 MiB FAT32 EFI partition, which holds at most ~34 MiB of it: about 200,000 files
# (a file's entry is ~170 bytes with a typical path: path, size, mode, owner, sha256; 100,000
# files make 16.8 MB). Twice that leaves room for a layout with a larger holder (~390,000
# files) while a reader's json.loads stays bounded. A build whose manifest would be larger, or
# would not fit its partition, learns it before the first write and gets no manifest
# (build.prepare warns): `verify DISK` never meets a manifest of atvdisk's that it refuses.
MAX_MANIFEST_BYTES = 64 << 20
MAX_ENTRIES = 1_000_000
PLACEHOLDER_SHA256 = "0" * 64  # stands for a digest not yet known when the size is predicted


class ManifestError(InputError):
    """A manifest found on a disk is unreadable or malformed."""


@dataclass(frozen=True)
class ManifestPartition:
    number: int
    name: str
    fs: FsKind
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Manifest:
    atvdisk_version: str
    layout_name: str
    layout_text: str
    seed: str
    epoch: int
    name_by: NameBy | None  # the boot script's naming (None: the layout has no [boot])
    atv_disk: str
    inputs: dict[str, str | None]  # option -> base name of the file given (or None)
    disk_bytes: int  # the size it was built for (an image written to a larger disk grows)
    sector_size: int
    partitions: tuple[ManifestPartition, ...]

    # -- what it says ------------------------------------------------------------------------

    def layout(self) -> Layout:
        """The embedded layout, with the build's ATV disk name."""
        layout = parse_layout(self.layout_text, source=f"{MANIFEST_NAME} (layout {self.layout_name})", name=self.layout_name)
        return replace(layout, disk=replace(layout.disk, atv_disk=self.atv_disk))

    def plan(self, disk_bytes: int | None = None, sector_size: int | None = None) -> Plan:
        """The plan the build had, resolved for a disk of ``disk_bytes`` (default: as built)."""
        return resolve(self.layout(), disk_bytes or self.disk_bytes, sector_size or self.sector_size, seed=self.seed)

    def expected(self) -> dict[int, list[Entry]]:
        return {p.number: list(p.entries) for p in self.partitions}

    @property
    def files(self) -> int:
        return sum(1 for p in self.partitions for e in p.entries if e.kind is NodeKind.FILE)

    # -- JSON --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "atvdisk_version": self.atvdisk_version,
            "layout": {"name": self.layout_name, "sha256": hashlib.sha256(self.layout_text.encode()).hexdigest(), "text": self.layout_text},
            "seed": self.seed,
            "source_date_epoch": self.epoch,
            "options": {"name_by": self.name_by.value if self.name_by else None, "atv_disk": self.atv_disk, "inputs": dict(self.inputs)},
            "disk": {"bytes": self.disk_bytes, "sector_size": self.sector_size},
            "partitions": [
                {"number": p.number, "name": p.name, "fs": p.fs.value, "entries": [_entry_dict(e) for e in p.entries]}
                for p in self.partitions
            ],
        }

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str = MANIFEST_NAME) -> Manifest:
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{where}: {len(data)} bytes is too large for an atvdisk manifest")
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise ManifestError(f"{where}: not valid JSON ({e})", hint="the file is damaged; verify with the build's options instead") from None
        return _Reader(where).manifest(doc)


def _entry_dict(e: Entry) -> dict[str, Any]:
    d: dict[str, Any] = {"path": e.path, "kind": e.kind.value}
    if e.kind is NodeKind.FILE:
        d.update(size=e.size, sha256=e.sha256)
    if e.kind is NodeKind.SYMLINK:
        d["target"] = e.target
    if e.mode is not None:
        d["mode"] = f"{e.mode:04o}"
    if e.uid is not None:
        d.update(uid=e.uid, gid=e.gid)
    return d


class _Reader:
    """Checks every field of an untrusted manifest document."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, what: str) -> ManifestError:
        return ManifestError(f"{self.where}: {what}", hint="the manifest is damaged or not atvdisk's; verify with the build's options instead")

    def get(self, d: Any, key: str, types: type | tuple[type, ...], *, optional: bool = False) -> Any:
        if not isinstance(d, dict):
            raise self.fail(f"expected an object around {key!r}")
        if key not in d:
            if optional:
                return None
            raise self.fail(f"no {key!r}")
        value = d[key]
        if value is None and optional:
            return None
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.fail(f"{key!r} has the wrong type")
        if not isinstance(value, types):
            raise self.fail(f"{key!r} has the wrong type")
        return value

    def manifest(self, doc: Any) -> Manifest:
        fmt = self.get(doc, "format", str)
        if fmt != MANIFEST_FORMAT:
            raise ManifestError(f"{self.where}: format {fmt!r}, not {MANIFEST_FORMAT!r}", hint="a newer atvdisk wrote it: upgrade atvdisk")
        layout = self.get(doc, "layout", dict)
        text = self.get(layout, "text", str)
        name = self.get(layout, "name", str)
        options = self.get(doc, "options", dict)
        name_by = self.get(options, "name_by", str, optional=True)
        if name_by is not None and name_by not in {n.value for n in NameBy}:
            raise self.fail(f"unknown name_by {name_by!r}")
        inputs = self.get(options, "inputs", dict)
        for k, v in inputs.items():
            if not isinstance(k, str) or not (v is None or isinstance(v, str)):
                raise self.fail("inputs must map names to file names")
        disk = self.get(doc, "disk", dict)
        disk_bytes = self.get(disk, "bytes", int)
        sector = self.get(disk, "sector_size", int)
        if disk_bytes <= 0 or sector not in (512, 1024, 2048, 4096):
            raise self.fail(f"disk of {disk_bytes} bytes in {sector}-byte sectors")
        epoch = self.get(doc, "source_date_epoch", int)
        seed = self.get(doc, "seed", str)
        atv_disk = self.get(options, "atv_disk", str)
        try:
            check_epoch(epoch)
            check_seed(seed)
        except IdentityValueError as e:
            raise self.fail(e.message) from None
        try:
            atv_disk = atv.atv_disk(atv_disk)
        except atv.AtvValueError as e:
            raise self.fail(f"atv_disk: {e.message}") from None
        parts = []
        count = 0
        for pd in self.get(doc, "partitions", list):
            number = self.get(pd, "number", int)
            try:
                kind = FsKind(self.get(pd, "fs", str))
            except ValueError:
                raise self.fail(f"partition {number}: unknown filesystem") from None
            entries = []
            for ed in self.get(pd, "entries", list):
                count += 1
                if count > MAX_ENTRIES:
                    raise self.fail(f"more than {MAX_ENTRIES} entries")
                entries.append(self.entry(ed))
            parts.append(ManifestPartition(number, self.get(pd, "name", str), kind, tuple(entries)))
        return Manifest(
            atvdisk_version=self.get(doc, "atvdisk_version", str),
            layout_name=name,
            layout_text=text,
            seed=seed,
            epoch=epoch,
            name_by=NameBy(name_by) if name_by else None,
            atv_disk=atv_disk,
            inputs=inputs,
            disk_bytes=disk_bytes,
            sector_size=sector,
            partitions=tuple(parts),
        )

    def entry(self, ed: Any) -> Entry:
        path = self.get(ed, "path", str)
        if not path or path.startswith("/") or "\0" in path or ".." in path.split("/"):
            raise self.fail(f"bad path {path!r}")
        try:
            kind = NodeKind(self.get(ed, "kind", str))
        except ValueError:
            raise self.fail(f"{path}: unknown kind") from None
        mode_text = self.get(ed, "mode", str, optional=True)
        mode = None
        if mode_text is not None:
            if not (mode_text.isdigit() and set(mode_text) <= set("01234567") and len(mode_text) <= 5):
                raise self.fail(f"{path}: bad mode {mode_text!r}")
            mode = int(mode_text, 8)
        uid = self.get(ed, "uid", int, optional=True)
        gid = self.get(ed, "gid", int, optional=True)
        size, sha, target = 0, None, None
        if kind is NodeKind.FILE:
            size = self.get(ed, "size", int)
            sha = self.get(ed, "sha256", str)
            if size < 0 or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                raise self.fail(f"{path}: bad size or sha256")
        elif kind is NodeKind.SYMLINK:
            target = self.get(ed, "target", str)
        return Entry(path, kind, size, mode, uid, gid, sha, target)


# --------------------------------------------------------------------------------------------
# Making one


def holder(plan: Plan) -> PlannedPartition | None:
    """The partition that holds the manifest: the first FAT32, else the first ext4, else none."""
    for kind in (FsKind.FAT32, FsKind.EXT4):
        for p in plan.partitions:
            if p.fs.kind is kind:
                return p
    return None


def make(layout: Layout, plan: Plan, *, seed: str, epoch: int, name_by: NameBy | None, inputs: dict[str, str | None], entries: dict[int, list[Entry]]) -> Manifest:
    """The manifest of a build (``entries``: every partition's files, with their sha256)."""
    if layout.text is None:
        raise ValueError("the layout's text is needed for the manifest")
    effective = None
    if plan.boot is not None:
        effective = name_by or plan.boot.name_by
    parts = tuple(
        ManifestPartition(p.number, p.name, p.fs.kind, tuple(sorted(entries.get(p.number, []), key=lambda e: e.path)))
        for p in plan.partitions
        if p.fs.kind.holds_files
    )
    return Manifest(
        atvdisk_version=__version__,
        layout_name=layout.name,
        layout_text=layout.text,
        seed=seed,
        epoch=epoch,
        name_by=effective,
        atv_disk=plan.atv_disk,
        inputs={k: (os.path.basename(v.rstrip("/")) if v else None) for k, v in sorted(inputs.items())},
        disk_bytes=plan.disk_bytes,
        sector_size=plan.sector_size,
        partitions=parts,
    )


def fits(size: int, p: PlannedPartition, used_bytes: int) -> str | None:
    """Why a manifest of ``size`` bytes cannot go on partition ``p`` (which holds ``used_bytes``
    of other data, counted in its own blocks), or None when it can. The room is counted as
    conservatively as build's check of the partition's own contents (3 % of a FAT32 and 10 % of
    an ext4 kept for the filesystem)."""
    if size > MAX_MANIFEST_BYTES:
        return f"its manifest would be {size:,} bytes, more than the {MAX_MANIFEST_BYTES:,} bytes atvdisk reads back"
    overhead = {FsKind.FAT32: 0.03, FsKind.EXT4: 0.10}[p.fs.kind]
    block = p.fs.cluster_size or p.fs.block_size or 4096
    room = int(p.size_bytes * (1 - overhead)) - used_bytes
    need = -(-size // block) * block
    if need > room:
        return f"its manifest ({size:,} bytes) would not fit partition {p.number} ({p.name}) beside its {used_bytes:,} bytes of files"
    return None


def write(device: str, p: PlannedPartition, manifest: Manifest, *, workdir: str) -> bytes:
    """Put the manifest at the root of partition ``p`` (FAT32 or ext4, already made); returns
    the bytes written."""
    data = manifest.to_bytes()
    if p.fs.kind is FsKind.FAT32:
        fat.add_file(device, p, MANIFEST_NAME, data, workdir=workdir, epoch=manifest.epoch)
    elif p.fs.kind is FsKind.EXT4:
        ext4.add_file(device, p, MANIFEST_NAME, data, workdir=workdir, epoch=manifest.epoch)
    else:
        raise ValueError(f"no manifest on {p.fs.kind}")
    return data


# --------------------------------------------------------------------------------------------
# Finding one


@dataclass(frozen=True)
class Found:
    manifest: Manifest
    partition: int  # the GPT partition number that holds it
    data: bytes


def find(device: str, sector_size: int) -> Found | None:
    """The manifest on the disk or image ``device`` (read only), or None when there is none: no
    GPT, or no FAT32/ext4 partition with the file. Raises ManifestError for a damaged one."""
    try:
        with open(device, "rb") as f:
            table = read_primary(f, sector_size)
            candidates = []
            for number, e in table.partitions:
                offset = e.first_lba * sector_size
                length = (e.last_lba - e.first_lba + 1) * sector_size
                kind = probe(f.fileno(), offset, length)
                if kind in (FsKind.FAT32, FsKind.EXT4):
                    candidates.append((0 if kind is FsKind.FAT32 else 1, number, kind, offset))
    except GptError:
        return None
    except OSError as e:
        raise AtvdiskError(f"{device}: cannot read: {e.strerror}") from e
    for _, number, kind, offset in sorted(candidates):
        reader = fat.read_file if kind is FsKind.FAT32 else ext4.read_file
        try:
            data = reader(device, offset, MANIFEST_NAME, limit=MAX_MANIFEST_BYTES)
        except ToolError:
            continue
        if data is None:
            continue
        manifest = Manifest.from_bytes(data, f"{device} partition {number}: /{MANIFEST_NAME}")
        try:
            manifest.layout()
        except LayoutError as e:
            raise ManifestError(f"{device} partition {number}: /{MANIFEST_NAME}: its layout is invalid: {e}") from None
        return Found(manifest, number, data)
    return None


__all__ = ["MANIFEST_FORMAT", "MANIFEST_NAME", "MAX_MANIFEST_BYTES", "Found", "Manifest", "ManifestError", "ManifestPartition", "find", "fits", "holder", "make", "write"]
