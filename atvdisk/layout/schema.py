"""Declarative disk layouts: TOML files parsed into frozen dataclasses and validated.

A layout says *what* the disk holds, independent of any particular disk: partition order, sizes
(some of them relative, ``rest``), filesystems and their options, and what goes into each
filesystem. :mod:`atvdisk.layout.resolver` turns a layout and a disk size into a :class:`~atvdisk.layout.plan.Plan`.

Every error names the layout file, the TOML path of the offending value and the value itself, and
says what would fix it. The README's "Layout files" section documents the schema; keep it in step.
"""

from __future__ import annotations

import dataclasses
import re
import string
import tomllib
import unicodedata
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from atvdisk.errors import LayoutError
from atvdisk.layout import atv
from atvdisk.layout.units import (
    Quantity,
    SizeSyntaxError,
    is_power_of_two,
    parse_quantity,
)


class Role(StrEnum):
    """What a partition is for; each role has a GPT partition type GUID."""

    EFI = "efi"
    ATVRECV = "atvrecv"
    HFSPLUS = "hfsplus"
    LINUX = "linux"
    SWAP = "swap"
    RAW = "raw"  # a layout that gives a type GUID itself


# GPT partition type GUIDs (atv1-facts.md; UEFI spec; Apple; freedesktop discoverable partitions).
TYPE_GUIDS: dict[Role, str] = {
    Role.EFI: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
    Role.ATVRECV: "5265636F-7665-11AA-AA11-00306543ECAC",
    Role.HFSPLUS: "48465300-0000-11AA-AA11-00306543ECAC",
    Role.LINUX: "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
    Role.SWAP: "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
}


def role_for_guid(guid: str) -> Role:
    for role, g in TYPE_GUIDS.items():
        if g == guid.upper():
            return role
    return Role.RAW


class FsKind(StrEnum):
    FAT32 = "fat32"
    HFSPLUS = "hfsplus"
    HFSX = "hfsx"
    EXT4 = "ext4"
    SWAP = "swap"
    NONE = "none"

    @property
    def is_hfs(self) -> bool:
        return self in (FsKind.HFSPLUS, FsKind.HFSX)

    @property
    def holds_files(self) -> bool:
        return self in (FsKind.FAT32, FsKind.HFSPLUS, FsKind.HFSX, FsKind.EXT4)


# Which filesystems make sense in which partition type. The ATV firmware reads the recovery
# partition as FAT32 or HFS+ (atv1-facts.md, boot chain); a raw type GUID allows anything.
ALLOWED_FS: dict[Role, tuple[FsKind, ...]] = {
    Role.EFI: (FsKind.FAT32, FsKind.NONE),
    Role.ATVRECV: (FsKind.HFSPLUS, FsKind.HFSX, FsKind.FAT32, FsKind.NONE),
    Role.HFSPLUS: (FsKind.HFSPLUS, FsKind.HFSX, FsKind.NONE),
    Role.LINUX: (FsKind.EXT4, FsKind.NONE),
    Role.SWAP: (FsKind.SWAP, FsKind.NONE),
    Role.RAW: tuple(FsKind),
}

# The options each filesystem kind accepts (beyond ``kind``).
FS_OPTIONS: dict[FsKind, frozenset[str]] = {
    FsKind.FAT32: frozenset({"label", "cluster_size"}),
    FsKind.HFSPLUS: frozenset({"label", "journal", "block_size", "journal_size"}),
    FsKind.HFSX: frozenset({"label", "journal", "block_size", "journal_size"}),
    FsKind.EXT4: frozenset({"label", "journal", "block_size", "reserved_percent"}),
    FsKind.SWAP: frozenset({"label"}),
    FsKind.NONE: frozenset(),
}

# Label limits of each on-disk format, in bytes of the stored encoding (HFS+: UTF-16 units).
LABEL_LIMITS: dict[FsKind, int] = {
    FsKind.FAT32: 11,  # the BPB's 11-byte volume label
    FsKind.EXT4: 16,  # s_volume_name
    FsKind.SWAP: 16,  # swap header volume_name
    FsKind.HFSPLUS: 255,  # HFSUniStr255 of the root folder's catalog key
    FsKind.HFSX: 255,
}

FAT_LABEL_CHARS = set(string.ascii_uppercase + string.digits + " !#$%&'()-@^_`{}~")


class ContentKind(StrEnum):
    TARBALL = "tarball"  # extract an archive (gzip/bzip2/xz/plain tar) at ``path``
    DIRECTORY = "directory"  # copy a host directory's tree to ``path``
    FILE = "file"  # copy one host file to ``path``
    TEXT = "text"  # write literal text to ``path``
    DIR = "dir"  # create an empty directory at ``path``
    SYMLINK = "symlink"  # create a symbolic link at ``path`` pointing to ``target``
    BOOTSCRIPT = "bootscript"  # the generated ATV boot script (see [boot])
    BOOTPLIST = "bootplist"  # com.apple.Boot.plist from [boot]: generated (bootefi) or fixed (kexec)
    REMOVE = "remove"  # remove ``path`` (put there by an earlier entry)


CONTENT_KEYS: dict[ContentKind, tuple[frozenset[str], frozenset[str]]] = {
    # kind: (required keys, optional keys); "kind" itself is implied.
    ContentKind.TARBALL: (frozenset({"source"}), frozenset({"path", "owner", "optional", "members"})),
    ContentKind.DIRECTORY: (frozenset({"source"}), frozenset({"path", "owner", "optional"})),
    ContentKind.FILE: (frozenset({"source", "path"}), frozenset({"owner", "mode", "optional"})),
    ContentKind.TEXT: (frozenset({"path", "text"}), frozenset({"owner", "mode"})),
    ContentKind.DIR: (frozenset({"path"}), frozenset({"owner", "mode"})),
    ContentKind.SYMLINK: (frozenset({"path", "target"}), frozenset({"owner"})),
    ContentKind.BOOTSCRIPT: (frozenset({"path"}), frozenset({"owner", "mode"})),
    ContentKind.BOOTPLIST: (frozenset({"path"}), frozenset({"owner", "mode"})),
    ContentKind.REMOVE: (frozenset({"path"}), frozenset({"optional"})),
}

# User inputs that a ``source`` may name; resolved by the build from its command line.
PLACEHOLDERS = ("openelec", "restore", "recovery", "layout_dir")


# Where Apple's boot.efi reads its settings, and the scripts atv-bootloader runs per atv-boot= mode
# (reference: atv-bootchain.md). A boot script anywhere else would never run.
BOOT_PLIST = "com.apple.Boot.plist"
SCRIPT_MODES = {"patchstick.sh": "patchstick", "boot_linux.sh": "manual"}


class BootMethod(StrEnum):
    """How the ATV starts OpenELEC's kernel."""

    KEXEC = "kexec"  # boot.efi starts atv-bootloader, which runs the boot script, which kexecs KERNEL
    BOOTEFI = "bootefi"  # boot.efi starts MACH_KERNEL itself (OpenELEC 4.x)


class NameBy(StrEnum):
    """How the generated boot script names partitions."""

    DEVICE = "device"  # /dev/sda3 (the ATV's device names)
    LABEL = "label"  # LABEL=OSBoot
    UUID = "uuid"  # UUID=... (from the layout seed, or random per build)


@dataclass(frozen=True)
class FsSpec:
    kind: FsKind
    label: str | None = None
    journal: bool | None = None
    block_size: int | None = None
    cluster_size: int | None = None
    journal_size: int | None = None  # bytes; HFS+ only
    reserved_percent: int | None = None  # ext4 only


@dataclass(frozen=True)
class ContentSpec:
    kind: ContentKind
    path: str = ""  # destination inside the filesystem, relative, POSIX
    source: str | None = None
    text: str | None = None
    target: str | None = None
    mode: int | None = None
    owner: tuple[int, int] = (0, 0)
    optional: bool = False
    members: tuple[str, ...] | None = None  # tarball: only these paths (and what is below them)


@dataclass(frozen=True)
class PartitionSpec:
    name: str
    role: Role
    type_guid: str
    size: Quantity | None  # None means ``rest``
    start: Quantity | None = None
    min_size: Quantity | None = None  # for ``rest``: the smallest acceptable size
    fs: FsSpec = field(default_factory=lambda: FsSpec(FsKind.NONE))
    contents: tuple[ContentSpec, ...] = ()

    @property
    def is_rest(self) -> bool:
        return self.size is None


@dataclass(frozen=True)
class DiskSpec:
    label: str = "gpt"
    sector_size: int = 512  # the unit of ``s`` sizes in this file
    min_size: Quantity | None = None
    warn_above: Quantity | None = None
    align: Quantity | None = None  # alignment of starts that the layout leaves implicit
    atv_disk: str = "/dev/sda"
    hybrid_mbr: bool = False
    seed: str | None = None


@dataclass(frozen=True)
class BootSpec:
    boot: str  # partition name holding the kernel (OpenELEC's boot=)
    storage: str  # partition name of OpenELEC's storage (disk=)
    kernel: str = "KERNEL"
    options: str = "quiet nosplash"
    name_by: NameBy = NameBy.DEVICE
    fsck: bool = True
    method: BootMethod = BootMethod.KEXEC


@dataclass(frozen=True)
class Layout:
    name: str
    source: str  # file name (for messages) or "<string>"
    description: str
    disk: DiskSpec
    partitions: tuple[PartitionSpec, ...]
    boot: BootSpec | None = None
    directory: str | None = None  # directory of the layout file, for {layout_dir}
    text: str | None = field(default=None, repr=False, compare=False)  # the TOML it was parsed from (the on-disk manifest records it)

    def partition(self, name: str) -> PartitionSpec:
        for p in self.partitions:
            if p.name == name:
                return p
        raise KeyError(name)


# --------------------------------------------------------------------------------------------
# Loading


def bundled_layout_dir() -> Path:
    """Where the bundled layouts are: package data when installed, ``layouts/`` in a checkout."""
    package = Path(__file__).resolve().parent.parent  # atvdisk/
    for candidate in (package / "layouts", package.parent / "layouts"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    raise LayoutError("the bundled layouts are missing from this installation", hint="reinstall atvdisk")


def bundled_layouts() -> dict[str, Path]:
    return {p.stem: p for p in sorted(bundled_layout_dir().glob("*.toml"))}


def find_layout(name_or_path: str) -> Path:
    """A bundled layout by name (``atv1-openelec``) or a TOML file by path."""
    bundled = bundled_layouts()
    if name_or_path in bundled:
        return bundled[name_or_path]
    path = Path(name_or_path)
    if path.suffix == ".toml" or "/" in name_or_path or path.exists():
        if path.exists() and not path.is_file():
            raise LayoutError(f"{name_or_path} is not a regular file", hint="give a bundled layout name or a .toml path")
        if not path.is_file():
            raise LayoutError(f"layout file not found: {name_or_path}", hint="give a bundled layout name or a .toml path")
        return path
    raise LayoutError(
        f"unknown layout {name_or_path!r}",
        hint="bundled layouts: " + ", ".join(bundled) + " (or give the path of a .toml file)",
    )


LAYOUT_FILE_LIMIT = 1 << 20  # bytes; the bundled layouts are 3 KiB


def load_layout(name_or_path: str) -> Layout:
    path = find_layout(name_or_path)
    try:
        with open(path, "rb") as f:
            raw = f.read(LAYOUT_FILE_LIMIT + 1)
        if len(raw) > LAYOUT_FILE_LIMIT:
            raise LayoutError(f"the file is larger than {LAYOUT_FILE_LIMIT} bytes: not a layout", source=str(path), hint="give the layout's .toml file")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LayoutError(f"cannot read layout: {e}", source=str(path), hint="give a readable UTF-8 .toml file") from e
    return parse_layout(text, source=str(path), name=path.stem, directory=str(path.parent.resolve()))


def parse_layout(text: str, *, source: str = "<string>", name: str = "layout", directory: str | None = None) -> Layout:
    try:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise LayoutError(f"not valid TOML: {e}", source=source, hint="check the syntax at the position given") from e
        layout = _Parser(source, name, directory).layout(data)
    except RecursionError:
        # tomllib (and the checks after it) recurse once per level of nested arrays and tables.
        raise LayoutError("values are nested too deeply to read", source=source, hint="a layout nests tables and arrays a few levels at most") from None
    return dataclasses.replace(layout, text=text)


_GUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
_OWNER = re.compile(r"^(\d+):(\d+)$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class _Parser:
    def __init__(self, source: str, name: str, directory: str | None) -> None:
        self.source = source
        self.name = name
        self.directory = directory

    def fail(self, where: str, message: str, value: object = None, *, hint: str) -> LayoutError:
        return LayoutError(message, source=self.source, where=where, value=value, hint=hint)

    def check_keys(self, where: str, table: dict[str, Any], allowed: set[str] | frozenset[str]) -> None:
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            raise self.fail(
                where,
                f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}",
                unknown,
                hint="allowed here: " + ", ".join(sorted(allowed)),
            )

    def get(self, where: str, table: dict[str, Any], key: str, types: type | tuple[type, ...], default: Any = None, *, required: bool = False) -> Any:
        if key not in table:
            if required:
                raise self.fail(f"{where}.{key}" if where else key, "is required", hint=f"add '{key} = ...'")
            return default
        value = table[key]
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.fail(f"{where}.{key}" if where else key, f"expected {_type_names(types)}, got {value!r}", value, hint=f"write {key} as {_type_names(types)}")
        if not isinstance(value, types):
            raise self.fail(f"{where}.{key}" if where else key, f"expected {_type_names(types)}, got {value!r}", value, hint=f"write {key} as {_type_names(types)}")
        return value

    def quantity(self, where: str, value: Any) -> Quantity:
        try:
            q = parse_quantity(value)
        except SizeSyntaxError as e:
            raise self.fail(where, str(e), value, hint="sizes look like '40s' (layout sectors), '35MiB', '4GB' or 'rest'") from e
        return q

    # ---------------------------------------------------------------------------------------

    def layout(self, data: dict[str, Any]) -> Layout:
        self.check_keys("", data, {"description", "disk", "boot", "partition"})
        description = self.get("", data, "description", str, "")
        disk = self.disk(self.get("", data, "disk", dict, {}))
        raw_parts = self.get("", data, "partition", list, [], required=True)
        if not raw_parts:
            raise self.fail("partition", "the layout has no partitions", hint="add at least one [[partition]] table")
        if len(raw_parts) > 128:
            raise self.fail("partition", f"{len(raw_parts)} partitions; a GPT holds at most 128", len(raw_parts), hint="remove partitions")
        parts = tuple(self.partition(i, p, disk) for i, p in enumerate(raw_parts, 1))
        names = [p.name for p in parts]
        for i, n in enumerate(names, 1):
            if names.index(n) + 1 != i:
                raise self.fail(f"partition[{i}].name", f"duplicate partition name {n!r} (also partition {names.index(n) + 1})", n, hint="give every partition its own name")
        rests = [i for i, p in enumerate(parts, 1) if p.is_rest]
        if len(rests) > 1:
            raise self.fail(
                f"partition[{rests[1]}].size",
                f"more than one partition has size 'rest' (partitions {', '.join(map(str, rests))})",
                "rest",
                hint="only one partition can take the rest of the disk; give the others a fixed size",
            )
        boot = self.boot(self.get("", data, "boot", dict), parts) if "boot" in data else None
        self.boot_files(boot, parts)
        return Layout(
            name=self.name,
            source=self.source,
            description=description,
            disk=disk,
            partitions=parts,
            boot=boot,
            directory=self.directory,
        )

    def disk(self, t: dict[str, Any]) -> DiskSpec:
        w = "disk"
        self.check_keys(w, t, {"label", "sector_size", "min_size", "warn_above", "align", "atv_disk", "hybrid_mbr", "seed"})
        label = self.get(w, t, "label", str, "gpt")
        if label != "gpt":
            raise self.fail(f"{w}.label", f"unsupported partition table {label!r}", label, hint="the Apple TV boots from GPT disks only: use label = \"gpt\"")
        sector_size = self.get(w, t, "sector_size", int, 512)
        if sector_size not in (512, 1024, 2048, 4096):
            raise self.fail(f"{w}.sector_size", f"unsupported sector size {sector_size}", sector_size, hint="use 512 (the unit the ATV layouts are written in) or 4096")
        min_size = self.quantity(f"{w}.min_size", t["min_size"]) if "min_size" in t else None
        warn_above = self.quantity(f"{w}.warn_above", t["warn_above"]) if "warn_above" in t else None
        align = self.quantity(f"{w}.align", t["align"]) if "align" in t else None
        if align is not None and align.value == 0:
            raise self.fail(f"{w}.align", "alignment must be positive", str(t["align"]), hint="e.g. align = \"1MiB\", or remove it")
        atv_disk = self.get(w, t, "atv_disk", str, "/dev/sda")
        try:
            atv_disk = atv.atv_disk(atv_disk)
        except atv.AtvValueError as e:
            raise self.fail(f"{w}.atv_disk", e.message, atv_disk, hint=e.hint) from None
        hybrid = self.get(w, t, "hybrid_mbr", bool, False)
        seed = self.get(w, t, "seed", str)
        if seed is not None and not seed:
            raise self.fail(f"{w}.seed", "seed must not be empty", seed, hint="remove it for random identifiers, or give any text")
        if seed is not None:
            try:
                check_seed(seed)
            except IdentityValueError as e:
                raise self.fail(f"{w}.seed", e.message, seed, hint=e.hint) from None
        return DiskSpec(label, sector_size, min_size, warn_above, align, atv_disk, hybrid, seed)

    def partition(self, i: int, t: Any, disk: DiskSpec) -> PartitionSpec:
        w = f"partition[{i}]"
        if not isinstance(t, dict):
            raise self.fail(w, f"expected a table, got {t!r}", t, hint="write each partition as a [[partition]] table")
        self.check_keys(w, t, {"name", "type", "start", "size", "min_size", "fs", "contents"})
        name = self.get(w, t, "name", str, required=True)
        if not name or len(name.encode("utf-16-le")) > 72:
            raise self.fail(f"{w}.name", f"GPT partition names are 1 to 36 UTF-16 units: {name!r}", name, hint="use a short name such as \"OSBoot\"")
        controls = _controls(name)
        if controls:
            # The GPT stores the name NUL-terminated (a NUL would cut it, and libparted refuses it
            # after the filesystems were written); other control characters cannot be typed or shown.
            raise self.fail(f"{w}.name", f"a GPT partition name must not contain control characters ({controls}): {name!r}", name, hint="use letters, digits and punctuation")
        type_text = self.get(w, t, "type", str, required=True)
        if type_text in {r.value for r in Role if r is not Role.RAW}:
            role = Role(type_text)
            type_guid = TYPE_GUIDS[role]
        elif _GUID.match(type_text):
            type_guid = type_text.upper()
            role = role_for_guid(type_guid)
        else:
            raise self.fail(
                f"{w}.type",
                f"unknown partition type {type_text!r}",
                type_text,
                hint="use efi, atvrecv, hfsplus, linux, swap, or a type GUID like 0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            )
        if type_guid == "00000000-0000-0000-0000-000000000000":
            raise self.fail(f"{w}.type", "the all-zero GUID marks an unused GPT entry", type_text, hint="use a real partition type GUID or a role name")
        size_raw = self.get(w, t, "size", (str, int), required=True)
        size = None if size_raw == "rest" else self.quantity(f"{w}.size", size_raw)
        if size is not None and size.value == 0:
            raise self.fail(f"{w}.size", "size must be positive", size_raw, hint="give a size such as '100MiB', or 'rest'")
        start = self.quantity(f"{w}.start", t["start"]) if "start" in t else None
        min_size = None
        if "min_size" in t:
            if size is not None:
                raise self.fail(f"{w}.min_size", "min_size only applies to a partition of size 'rest'", t["min_size"], hint="remove min_size, or set size = \"rest\"")
            min_size = self.quantity(f"{w}.min_size", t["min_size"])
        fs = self.fs(f"{w}.fs", self.get(w, t, "fs", dict, {"kind": "none"}), role, name)
        raw_contents = self.get(w, t, "contents", list, [])
        contents = tuple(self.content(f"{w}.contents[{j}]", c) for j, c in enumerate(raw_contents, 1))
        if contents and not fs.kind.holds_files:
            raise self.fail(f"{w}.contents", f"a {fs.kind} partition cannot hold files", fs.kind.value, hint="remove contents, or give the partition a filesystem")
        return PartitionSpec(name, role, type_guid, size, start, min_size, fs, contents)

    def fs(self, w: str, t: dict[str, Any], role: Role, pname: str) -> FsSpec:
        kind_text = self.get(w, t, "kind", str, required=True)
        try:
            kind = FsKind(kind_text)
        except ValueError:
            raise self.fail(f"{w}.kind", f"unknown filesystem kind {kind_text!r}", kind_text, hint="use fat32, hfsplus, hfsx, ext4, swap or none") from None
        if kind not in ALLOWED_FS[role]:
            raise self.fail(
                f"{w}.kind",
                f"{kind} does not belong on a partition of type {role} ({pname})",
                kind.value,
                hint=f"a {role} partition takes: {', '.join(k.value for k in ALLOWED_FS[role])}",
            )
        self.check_keys(w, t, FS_OPTIONS[kind] | {"kind"})
        label = self.get(w, t, "label", str)
        if label is not None:
            self.check_label(f"{w}.label", kind, label)
        journal = self.get(w, t, "journal", bool)
        block_size = self.get(w, t, "block_size", int)
        if block_size is not None:
            if kind is FsKind.EXT4 and block_size not in (1024, 2048, 4096):
                raise self.fail(f"{w}.block_size", f"ext4 block size must be 1024, 2048 or 4096, not {block_size}", block_size, hint="use 4096")
            if kind.is_hfs and not (is_power_of_two(block_size) and 512 <= block_size <= 65536):
                raise self.fail(f"{w}.block_size", f"HFS+ block size must be a power of two from 512 to 65536, not {block_size}", block_size, hint="4096 is what Apple's newfs_hfs uses")
        cluster_size = self.get(w, t, "cluster_size", int)
        if cluster_size is not None and not (is_power_of_two(cluster_size) and 512 <= cluster_size <= 65536):
            raise self.fail(f"{w}.cluster_size", f"FAT cluster size must be a power of two from 512 to 65536 bytes, not {cluster_size}", cluster_size, hint="remove it to let atvdisk choose, or use 512 for a 34 MiB EFI partition")
        journal_size = None
        if "journal_size" in t:
            q = self.quantity(f"{w}.journal_size", t["journal_size"])
            if q.unit != "bytes":
                raise self.fail(f"{w}.journal_size", "the journal size must be in bytes, not sectors", t["journal_size"], hint="e.g. journal_size = \"8MiB\"")
            journal_size = q.value
            if journal is False:
                raise self.fail(f"{w}.journal_size", "journal_size given but journal = false", t["journal_size"], hint="remove journal_size, or set journal = true")
        reserved = self.get(w, t, "reserved_percent", int)
        if reserved is not None and not 0 <= reserved <= 50:
            raise self.fail(f"{w}.reserved_percent", f"must be 0 to 50, not {reserved}", reserved, hint="5 is mke2fs's default; 0 or 1 suits a media partition")
        if kind.is_hfs and journal is None:
            journal = False
        if kind is FsKind.EXT4 and journal is None:
            journal = True
        if kind.is_hfs and block_size is None:
            block_size = 4096
        if kind is FsKind.EXT4 and block_size is None:
            block_size = 4096
        return FsSpec(kind, label, journal, block_size, cluster_size, journal_size, reserved)

    def check_label(self, w: str, kind: FsKind, label: str) -> None:
        if kind is FsKind.NONE:
            return
        controls = _controls(label)
        if controls:
            # Stored NUL-padded (a NUL would cut it; mke2fs/mkswap cannot even be given one).
            raise self.fail(w, f"a filesystem label must not contain control characters ({controls})", label, hint="use letters, digits and punctuation")
        limit = LABEL_LIMITS[kind]
        if kind.is_hfs:
            from atvdisk.fs.hfsplus.unicode import hfs_name_units

            if not label:
                raise self.fail(w, "an HFS+ volume name must not be empty", label, hint="give a name, or remove label to use the partition name")
            units = hfs_name_units(label)
            if units > limit:
                raise self.fail(w, f"HFS+ volume name is {units} UTF-16 units once decomposed; the limit is {limit}", label, hint="shorten the volume name")
            return
        if kind is FsKind.FAT32:
            if len(label) > limit or not set(label) <= FAT_LABEL_CHARS:
                raise self.fail(w, f"a FAT label is at most {limit} characters of A-Z, 0-9, space and !#$%&'()-@^_`{{}}~", label, hint="e.g. label = \"EFI\"")
            return
        n = len(label.encode("utf-8"))
        if n > limit:
            raise self.fail(w, f"label is {n} bytes; {kind} labels are at most {limit}", label, hint="shorten the label")

    def content(self, w: str, t: Any) -> ContentSpec:
        if not isinstance(t, dict):
            raise self.fail(w, f"expected a table, got {t!r}", t, hint="write contents as tables: { kind = \"file\", ... }")
        kind_text = self.get(w, t, "kind", str, required=True)
        try:
            kind = ContentKind(kind_text)
        except ValueError:
            raise self.fail(f"{w}.kind", f"unknown content kind {kind_text!r}", kind_text, hint="use " + ", ".join(k.value for k in ContentKind)) from None
        required, optional = CONTENT_KEYS[kind]
        self.check_keys(w, t, required | optional | {"kind"})
        for key in sorted(required):
            if key not in t:
                raise self.fail(f"{w}.{key}", f"is required for a {kind} entry", hint=f"add '{key} = ...'")
        path = self.get(w, t, "path", str, "")
        path = self.dest_path(f"{w}.path", path, allow_root=kind in (ContentKind.TARBALL, ContentKind.DIRECTORY))
        source = self.get(w, t, "source", str)
        if source is not None:
            for m in _PLACEHOLDER.finditer(source):
                if m.group(1) not in PLACEHOLDERS:
                    raise self.fail(f"{w}.source", f"unknown placeholder {{{m.group(1)}}}", source, hint="placeholders: " + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
            if not source:
                raise self.fail(f"{w}.source", "source must not be empty", source, hint="give a path or a placeholder such as {openelec}/KERNEL")
        text = self.get(w, t, "text", str)
        target = self.get(w, t, "target", str)
        if target is not None and not target:
            raise self.fail(f"{w}.target", "a symlink target must not be empty", target, hint="give the path the link points to")
        if target is not None and "\0" in target:
            raise self.fail(f"{w}.target", "a symlink target must not contain NUL", target, hint="give the path the link points to")
        mode = None
        if "mode" in t:
            mode = self.mode(f"{w}.mode", t["mode"])
        owner = (0, 0)
        if "owner" in t:
            owner_text = self.get(w, t, "owner", str)
            m = _OWNER.match(owner_text)
            if not m:
                raise self.fail(f"{w}.owner", f"owner must be 'uid:gid' in numbers, not {owner_text!r}", owner_text, hint='e.g. owner = "0:0"')
            owner = (int(m.group(1)), int(m.group(2)))
        optional_flag = self.get(w, t, "optional", bool, False)
        members = None
        if "members" in t:
            raw = self.get(w, t, "members", list)
            if not raw:
                raise self.fail(f"{w}.members", "members must name at least one path", raw, hint='e.g. members = ["boot.efi", "System"], or remove it to extract everything')
            picked = []
            for k, m in enumerate(raw, 1):
                if not isinstance(m, str):
                    raise self.fail(f"{w}.members[{k}]", f"expected a path, got {m!r}", m, hint='e.g. members = ["boot.efi", "System"]')
                picked.append(self.dest_path(f"{w}.members[{k}]", m, allow_root=False))
            members = tuple(picked)
        if kind is ContentKind.BOOTPLIST and path != BOOT_PLIST:
            raise self.fail(f"{w}.path", f"boot.efi reads its settings from /{BOOT_PLIST}, not /{path}", path, hint=f'path = "{BOOT_PLIST}"')
        return ContentSpec(kind, path, source, text, target, mode, owner, optional_flag, members)

    def mode(self, w: str, value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"0?[0-7]{3,4}", value):
            mode = int(value, 8)
        elif isinstance(value, int) and not isinstance(value, bool):
            mode = value
        else:
            raise self.fail(w, f"mode must be an octal string, not {value!r}", value, hint='e.g. mode = "0755"')
        if not 0 <= mode <= 0o7777:
            raise self.fail(w, f"mode out of range: {oct(mode)}", value, hint='permission bits only, at most "7777"')
        special = [name for bit, name in ((0o4000, "setuid"), (0o2000, "setgid"), (0o1000, "sticky")) if mode & bit]
        if special:
            # As for archive members (tarsafe drops them): nothing atvdisk writes runs as another user.
            raise self.fail(w, f"mode {mode:04o} sets {' and '.join(special)}: atvdisk never writes setuid, setgid or sticky bits", value, hint=f'use the permission bits only: mode = "{mode & 0o777:04o}"')
        return mode

    def dest_path(self, w: str, path: str, *, allow_root: bool) -> str:
        p = path.strip("/")
        if not p:
            if allow_root:
                return ""
            raise self.fail(w, "a path inside the filesystem is required here", path, hint='e.g. path = "KERNEL"')
        parts = PurePosixPath(p).parts
        if any(part in ("..", ".") for part in parts) or "\0" in p:
            raise self.fail(w, f"path must stay inside the filesystem: {path!r}", path, hint="use a relative path without '..'")
        return "/".join(parts)

    def boot_files(self, boot: BootSpec | None, parts: tuple[PartitionSpec, ...]) -> None:
        """Where the boot script and the boot plist may go, for each boot method."""
        found: dict[ContentKind, list[tuple[int, int]]] = {ContentKind.BOOTSCRIPT: [], ContentKind.BOOTPLIST: []}
        for i, p in enumerate(parts, 1):
            for j, c in enumerate(p.contents, 1):
                if c.kind in found:
                    found[c.kind].append((i, j))
        for kind, places in found.items():
            if places and boot is None:
                i, j = places[0]
                raise self.fail(f"partition[{i}].contents[{j}]", f"a {kind} needs a [boot] table", kind.value, hint="add [boot] with boot = and storage = partition names")
            if len(places) > 1:
                i, j = places[1]
                raise self.fail(f"partition[{i}].contents[{j}]", f"a second {kind} (the first is partition[{places[0][0]}].contents[{places[0][1]}])", kind.value, hint=f"keep one {kind} entry")
        if boot is None:
            return
        for kind in (ContentKind.BOOTSCRIPT, ContentKind.BOOTPLIST):
            for i, j in found[kind]:
                fs = parts[i - 1].fs.kind
                if kind is ContentKind.BOOTPLIST and not (fs.is_hfs or fs is FsKind.FAT32):
                    raise self.fail(f"partition[{i}].contents[{j}]", f"boot.efi reads HFS+ and FAT32 partitions, not {fs}", fs.value, hint="put the boot plist on the HFS+ (or FAT32) partition boot.efi boots from")
        if boot.method is BootMethod.KEXEC:
            for i, j in found[ContentKind.BOOTSCRIPT]:
                path = parts[i - 1].contents[j - 1].path
                if path not in SCRIPT_MODES:
                    raise self.fail(
                        f"partition[{i}].contents[{j}].path",
                        f"atv-bootloader never runs /{path}: it runs patchstick.sh (atv-boot=patchstick) or boot_linux.sh (atv-boot=manual) at a partition's root",
                        path,
                        hint='path = "patchstick.sh"',
                    )
            for i, j in found[ContentKind.BOOTPLIST]:
                if not found[ContentKind.BOOTSCRIPT] or found[ContentKind.BOOTSCRIPT][0][0] != i:
                    raise self.fail(f"partition[{i}].contents[{j}]", "the boot plist of a kexec layout sets atv-boot= for the boot script: both belong on the same partition", "bootplist", hint="put the bootplist entry after the bootscript entry of that partition")
        else:
            if found[ContentKind.BOOTSCRIPT]:
                i, j = found[ContentKind.BOOTSCRIPT][0]
                raise self.fail(f"partition[{i}].contents[{j}]", "a bootefi layout has no boot script: boot.efi starts the kernel itself", "bootscript", hint='remove the bootscript entry, or use method = "kexec"')
            names = [p.name for p in parts]
            bi = names.index(boot.boot) + 1
            if [i for i, _ in found[ContentKind.BOOTPLIST]] != [bi]:
                raise self.fail("boot.method", f"boot.efi starts {boot.kernel} from the boot partition {boot.boot!r}: it needs a bootplist entry there", "bootefi", hint=f'add {{ kind = "bootplist", path = "{BOOT_PLIST}" }} to {boot.boot}\'s contents')
            if not (parts[bi - 1].fs.kind.is_hfs or parts[bi - 1].fs.kind is FsKind.FAT32):
                raise self.fail(f"partition[{bi}].fs.kind", f"boot.efi reads HFS+ and FAT32 partitions, not {parts[bi - 1].fs.kind}", parts[bi - 1].fs.kind.value, hint='use kind = "hfsx" (as OpenELEC\'s installer) or "hfsplus"')

    def boot(self, t: dict[str, Any], parts: tuple[PartitionSpec, ...]) -> BootSpec:
        w = "boot"
        self.check_keys(w, t, {"boot", "storage", "kernel", "options", "name_by", "fsck", "method"})
        method_text = self.get(w, t, "method", str, "kexec")
        try:
            method = BootMethod(method_text)
        except ValueError:
            raise self.fail(f"{w}.method", f"unknown boot method {method_text!r}", method_text, hint="kexec (atv-bootloader runs the boot script: OpenELEC 1.x-3.2) or bootefi (boot.efi starts MACH_KERNEL: OpenELEC 4.x)") from None
        names = [p.name for p in parts]
        boot = self.get(w, t, "boot", str, required=True)
        storage = self.get(w, t, "storage", str, required=True)
        for key, value in (("boot", boot), ("storage", storage)):
            if value not in names:
                raise self.fail(f"{w}.{key}", f"no partition named {value!r}", value, hint="partitions: " + ", ".join(names))
        bp = parts[names.index(boot)]
        if not bp.fs.kind.holds_files:
            raise self.fail(f"{w}.boot", f"the boot partition {boot!r} has no filesystem to hold the kernel", boot, hint="name the partition that holds KERNEL (OSBoot)")
        sp = parts[names.index(storage)]
        if not sp.fs.kind.holds_files:
            raise self.fail(f"{w}.storage", f"the storage partition {storage!r} has no filesystem", storage, hint="name OpenELEC's storage partition (Media)")
        kernel = self.get(w, t, "kernel", str, "KERNEL" if method is BootMethod.KEXEC else "MACH_KERNEL")
        try:
            atv.file_name(kernel)
        except atv.AtvValueError as e:
            raise self.fail(f"{w}.kernel", e.message, kernel, hint=e.hint) from None
        if method is BootMethod.KEXEC and not (bp.fs.kind.is_hfs or bp.fs.kind is FsKind.FAT32):
            raise self.fail(
                f"{w}.boot",
                f"atv-bootloader's kernel (Linux 2.6.24: HFS+ and FAT, no ext4) cannot read {kernel} from the {bp.fs.kind} partition {boot!r}",
                boot,
                hint="put the kernel on an HFS+ partition (OSBoot)",
            )
        options = self.get(w, t, "options", str, "quiet nosplash")
        try:
            atv.kernel_options(options)
        except atv.AtvValueError as e:
            raise self.fail(f"{w}.options", e.message, options, hint=e.hint) from None
        name_by_text = self.get(w, t, "name_by", str, "device")
        try:
            name_by = NameBy(name_by_text)
        except ValueError:
            raise self.fail(f"{w}.name_by", f"unknown name_by {name_by_text!r}", name_by_text, hint="use device, label or uuid") from None
        if name_by is NameBy.LABEL:
            for key, p in (("boot", bp), ("storage", sp)):
                if not p.fs.label:
                    raise self.fail(f"{w}.name_by", f"name_by = 'label' but the {key} partition {p.name!r} has no fs.label", name_by_text,
                                    hint=f"give {p.name} a label (fs = {{ ..., label = \"{p.name}\" }}), or use name_by = \"device\" or \"uuid\"")
                try:
                    atv.label(p.fs.label, p.name)
                except atv.AtvValueError as e:
                    raise self.fail(f"{w}.name_by", f"name_by = 'label': the {key} partition: {e.message}", name_by_text, hint=e.hint) from None
        fsck = self.get(w, t, "fsck", bool, True)
        if method is BootMethod.BOOTEFI and "fsck" in t:
            raise self.fail(f"{w}.fsck", "a bootefi layout runs no boot script to check filesystems (OpenELEC's init checks them)", fsck, hint="remove fsck")
        return BootSpec(boot, storage, kernel, options, name_by, fsck, method)


def _controls(text: str) -> str:
    """The control characters (Unicode category Cc: C0, DEL, C1) in ``text``, for a message."""
    found = sorted({c for c in text if unicodedata.category(c) == "Cc"})
    return ", ".join(f"U+{ord(c):04X}" for c in found)


def _type_names(types: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", dict: "a table", list: "an array"}
    if isinstance(types, tuple):
        return " or ".join(names.get(t, t.__name__) for t in types)
    return names.get(types, types.__name__)


SEED_MAX = 200  # characters: --seed, a layout's disk.seed and a manifest's seed alike
EPOCH_MAX = 2**32 - 1  # 2106-02-07: what every filesystem atvdisk writes can date (HFS+ clamps at 2040)


class IdentityValueError(ValueError):
    """A seed or SOURCE_DATE_EPOCH atvdisk does not take (``message`` and ``hint`` for the caller's error)."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def check_seed(value: object) -> str:
    """A seed for every identifier: 1 to SEED_MAX printable characters."""
    if not isinstance(value, str) or not value or len(value) > SEED_MAX or not value.isprintable():
        raise IdentityValueError(
            f"a seed is 1 to {SEED_MAX} printable characters, not {value!r}"[:300],
            hint="e.g. shop-2024-001; leave it out for fresh identifiers on every disk",
        )
    return value


def check_epoch(value: object) -> int:
    """SOURCE_DATE_EPOCH: whole seconds since 1970, 0 to EPOCH_MAX (as `date +%s` prints them)."""
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 20:
            raise IdentityValueError(f"SOURCE_DATE_EPOCH={value[:40]!r} is not a number of seconds since 1970", hint="unset it or give what `date +%s` prints")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= EPOCH_MAX:
        raise IdentityValueError(f"SOURCE_DATE_EPOCH={value!r} is outside 0..{EPOCH_MAX} (1970 to 2106)", hint="unset it or give what `date +%s` prints")
    return value


def seeded_uuid(seed: str, what: str) -> uuid.UUID:
    """A deterministic UUID for ``what`` (e.g. ``"partition/2"``) from the layout seed."""
    return uuid.uuid5(_ATVDISK_NAMESPACE, f"{seed}/{what}")


# A fixed namespace: identifiers depend only on the seed and what they name.
_ATVDISK_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "atvdisk.invalid")
