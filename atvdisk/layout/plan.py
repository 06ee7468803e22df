"""The resolved plan: every sector, identifier and step a build will use, as frozen data.

A :class:`Plan` is produced by :func:`atvdisk.layout.resolver.resolve` (pure, no I/O) and consumed by the
build and by ``verify``. It serialises to JSON with stable keys (``to_json`` / ``from_json``, format
``atvdisk-plan/1``, documented in the README) so that scripts can read what a build will do.
"""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
import types
import typing
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

from atvdisk.layout.schema import BootSpec, ContentSpec, FsKind, NameBy, Role
from atvdisk.layout.units import format_iec, format_parted

PLAN_FORMAT = "atvdisk-plan/1"


class RegionKind(StrEnum):
    RESERVED = "reserved"
    PARTITION = "partition"


@dataclass(frozen=True)
class Region:
    """An inclusive range of device sectors that something owns (GPT metadata or a partition)."""

    name: str
    kind: RegionKind
    start: int
    end: int


@dataclass(frozen=True)
class PlannedFs:
    kind: FsKind
    label: str | None
    uuid: str | None  # ext4/swap UUID, FAT volume id (XXXX-XXXX), HFS+ volume id (16 hex digits)
    journal: bool | None = None
    block_size: int | None = None
    cluster_size: int | None = None  # FAT32, resolved (never None for fat32)
    journal_size: int | None = None
    reserved_percent: int | None = None
    hash_seed: str | None = None  # ext4 directory hash seed (reproducible images)


@dataclass(frozen=True)
class PlannedPartition:
    number: int
    name: str
    role: Role
    type_guid: str
    guid: str | None  # the partition's unique GUID (None: random at build time)
    start: int  # device sectors, inclusive
    end: int
    sector_size: int
    fs: PlannedFs
    contents: tuple[ContentSpec, ...]
    atv_device: str  # e.g. /dev/sda3: the partition's name on the Apple TV

    @property
    def sectors(self) -> int:
        return self.end - self.start + 1

    @property
    def offset(self) -> int:
        return self.start * self.sector_size

    @property
    def size_bytes(self) -> int:
        return self.sectors * self.sector_size


class StepKind(StrEnum):
    CHECK = "check"
    WIPE = "wipe"
    MKFS = "mkfs"
    FILL = "fill"
    PARTITION = "partition"
    MBR = "mbr"
    VERIFY = "verify"


@dataclass(frozen=True)
class Step:
    kind: StepKind
    partition: int | None
    description: str


@dataclass(frozen=True)
class Plan:
    layout_name: str
    layout_source: str
    description: str
    disk_bytes: int
    sector_size: int
    total_sectors: int
    first_usable: int
    last_usable: int
    disk_guid: str | None
    seed: str | None
    atv_disk: str
    hybrid_mbr: bool
    reserved: tuple[Region, ...]
    partitions: tuple[PlannedPartition, ...]
    boot: BootSpec | None
    steps: tuple[Step, ...]
    warnings: tuple[str, ...] = ()

    # -- queries ----------------------------------------------------------------------------

    def partition(self, name: str) -> PlannedPartition:
        for p in self.partitions:
            if p.name == name:
                return p
        raise KeyError(name)

    def gaps(self) -> list[tuple[int, int]]:
        """Usable sector ranges that no partition covers (inclusive)."""
        gaps = []
        cursor = self.first_usable
        for p in sorted(self.partitions, key=lambda p: p.start):
            if p.start > cursor:
                gaps.append((cursor, p.start - 1))
            cursor = max(cursor, p.end + 1)
        if cursor <= self.last_usable:
            gaps.append((cursor, self.last_usable))
        return gaps

    # -- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = _to_jsonable(self)
        data = {"format": PLAN_FORMAT, **data}
        for p, pd in zip(self.partitions, data["partitions"], strict=True):
            pd["size_bytes"] = p.size_bytes
            pd["size_human"] = format_parted(p.size_bytes)
            pd["offset_bytes"] = p.offset
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        if data.get("format") != PLAN_FORMAT:
            raise ValueError(f"not an {PLAN_FORMAT} document: format={data.get('format')!r}")
        return _from_jsonable(cls, data)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls.from_dict(json.loads(text))

    # -- text -------------------------------------------------------------------------------

    def render(self, width: int = 80) -> str:
        """What `atvdisk plan` prints, every line within ``width`` columns (80: a terminal's
        least). The partition table is compact (the type GUIDs under it); a table that cannot be
        made that narrow (long names, huge disks) becomes one block of lines per partition."""
        lines = [
            f"Layout:  {self.layout_name} ({self.layout_source})",
            f"Disk:    {self.total_sectors}s x {self.sector_size} B = {self.disk_bytes} B"
            f" ({format_parted(self.disk_bytes)}, {format_iec(self.disk_bytes)})",
            f"GPT:     usable sectors {self.first_usable}-{self.last_usable}; backup GPT from {self.last_usable + 1}s",
            f"         disk GUID {self.disk_guid or 'random at build'}",
            *(["MBR:     hybrid, synced to the GPT (EFI and three partitions, as gptsync makes it)"] if self.hybrid_mbr else []),
            f"On the ATV this disk is {self.atv_disk} (partition N is {self.atv_disk}N)",
            "",
        ]
        header = ("#", "Name", "Start", "End", "Size", "Type", "Filesystem", "Label")
        rows = [header]
        for p in self.partitions:
            rows.append(
                (
                    str(p.number),
                    p.name,
                    f"{p.start}s",
                    f"{p.end}s",
                    format_parted(p.size_bytes),
                    p.role if p.role != "raw" else "other",
                    _fs_text(p.fs),
                    p.fs.label or "-",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        if sum(widths) + 2 * (len(widths) - 1) <= width:
            for r in rows:
                lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        else:
            for p, r in zip(self.partitions, rows[1:], strict=True):
                lines.append(f"{p.number}  {p.name}")
                lines.append(f"   sectors {r[2]}-{r[3]} ({r[4]}), type {r[5]}, {r[6]}, label {r[7]}")
        types: dict[str, str] = {}
        for p in self.partitions:
            types.setdefault(p.type_guid, p.role if p.role != "raw" else "other")
        role_width = max((len(r) for r in types.values()), default=0)
        for i, (guid, role) in enumerate(types.items()):
            lines.append(("Types:   " if i == 0 else " " * 9) + f"{role:<{role_width}}  {guid}")
        for a, b in self.gaps():
            lines.append(f"(sectors {a}-{b} are usable but left unpartitioned: {b - a + 1} sectors)")
        if self.boot is not None:
            how = "boot.efi starts the kernel" if self.boot.method == "bootefi" else "atv-bootloader's boot script kexecs the kernel"
            lines += ["", f"Boot:    {how}: boot={self.boot.boot} storage={self.boot.storage} kernel={self.boot.kernel}"
                      f" options={self.boot.options!r} names by {self.boot.name_by}"]
        lines += ["", "Steps a build takes:"]
        for i, s in enumerate(self.steps, 1):
            lines.append(f"  {i:2}. {s.description}")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        return "\n".join(_wrap(line, width) for line in lines)


def _wrap(line: str, width: int) -> str:
    """A line longer than ``width``, broken at spaces, continued under its text."""
    if len(line) <= width:
        return line
    head = len(line) - len(line.lstrip(" "))
    marker = re.match(r" *(\d+\. |[A-Za-z ]+:  *|warning: |\(|)", line)
    indent = " " * (marker.end() if marker else head)
    return textwrap.fill(line, width=width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def _fs_text(fs: PlannedFs) -> str:
    """Compact: the kind, its block or cluster size, and whether it is journaled."""
    def size(n: int | None) -> str:
        return "" if n is None else f" {n // 1024}K" if n >= 1024 and n % 1024 == 0 else f" {n}B"

    if fs.kind is FsKind.FAT32:
        return f"FAT32{size(fs.cluster_size)}"
    if fs.kind.is_hfs:
        return f"{'HFSX' if fs.kind is FsKind.HFSX else 'HFS+'}{size(fs.block_size)}{' journal' if fs.journal else ''}"
    if fs.kind is FsKind.EXT4:
        return f"ext4{size(fs.block_size)}{'' if fs.journal else ' no journal'}"
    return fs.kind.value


# --------------------------------------------------------------------------------------------
# Generic conversion between frozen dataclasses and JSON-able values.


def _to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_to_jsonable(v) for v in value]
    return value


def _from_jsonable(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _from_jsonable(args[0], value)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_jsonable(args[0], v) for v in value)
        return tuple(_from_jsonable(a, v) for a, v in zip(args, value, strict=True))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        kwargs = {f.name: _from_jsonable(hints[f.name], value[f.name]) for f in dataclasses.fields(tp) if f.name in value}
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(value)
    return value


__all__ = ["Plan", "PlannedPartition", "PlannedFs", "Region", "RegionKind", "Step", "StepKind", "NameBy", "PLAN_FORMAT"]
