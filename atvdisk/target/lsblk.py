"""Disks and partitions as lsblk sees them: frozen records parsed from ``lsblk --json --bytes``.

One job: ask lsblk (util-linux >= 2.37) and turn its JSON into :class:`BlockDisk` /
:class:`BlockPartition` / :class:`BlockHolder` records. Filesystem and partition-table fields come
from the udev database; where there is none (containers, rescue systems, no udevd) and we are
root, they are filled in by a low-level ``blkid -p`` probe of each device, so the user still sees
labels and filesystem types before anything is destroyed.

Public API: :func:`list_disks`, :func:`describe`, :func:`parse_lsblk`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from atvdisk.errors import TargetRefused, ToolError
from atvdisk.run import run
from atvdisk.target.sysblock import (
    SysBlock,
    sysblock_by_name,
    sysblock_of_node,
    whole_disk,
)

log = logging.getLogger("atvdisk.lsblk")

LSBLK_COLUMNS = (
    "NAME", "KNAME", "PATH", "TYPE", "MAJ:MIN", "SIZE", "START", "LOG-SEC", "PHY-SEC",
    "RO", "RM", "HOTPLUG", "TRAN", "SUBSYSTEMS", "VENDOR", "MODEL", "SERIAL", "WWN",
    "PTTYPE", "PTUUID", "FSTYPE", "LABEL", "UUID", "PARTLABEL", "PARTTYPE", "PARTTYPENAME",
    "PARTUUID", "MOUNTPOINTS",
)  # fmt: skip

# Top-level lsblk types that a user can mean as a target disk (not rom, not zram's "disk" of size 0).
DISK_TYPES = ("disk", "loop")

UDEV_DATA = Path("/run/udev/data")

# lsblk names partition types from its own table; when we fill in from blkid we name the common ones.
PARTTYPE_NAMES = {
    "c12a7328-f81f-11d2-ba4b-00a0c93ec93b": "EFI System",
    "5265636f-7665-11aa-aa11-00306543ecac": "Apple TV recovery partition",
    "48465300-0000-11aa-aa11-00306543ecac": "Apple HFS/HFS+",
    "7c3457ef-0000-11aa-aa11-00306543ecac": "Apple APFS",
    "0fc63daf-8483-4772-8e79-3d69d8477de4": "Linux filesystem",
    "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": "Linux swap",
    "e6d6d379-f507-44c2-a23c-238f2a3df928": "Linux LVM",
    "a19d880f-05fc-4d3b-a006-743f0f84911e": "Linux RAID",
    "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7": "Microsoft basic data",
    "e3c9e316-0b5c-4db8-817d-f92df00215ae": "Microsoft reserved",
    "21686148-6449-6e6f-744e-656564454649": "BIOS boot",
}


@dataclass(frozen=True)
class BlockHolder:
    """A device built on a disk or partition (LVM volume, LUKS mapping, md array): it keeps the
    device busy until deactivated."""

    name: str
    path: str
    type: str  # lsblk's TYPE: lvm, crypt, raid1, dm, ...
    mountpoints: tuple[str, ...]


@dataclass(frozen=True)
class BlockPartition:
    """One partition. ``size`` and ``start`` in bytes; text fields None when unknown/absent.

    ``mountpoints`` lists where it is mounted (``[SWAP]`` for active swap, as lsblk says).
    """

    path: str
    name: str
    number: int | None
    start: int | None
    size: int
    fstype: str | None
    label: str | None  # filesystem label
    uuid: str | None  # filesystem UUID
    partlabel: str | None  # GPT partition name
    parttype: str | None  # GPT type GUID (lower case) or MBR type code (0x83)
    parttypename: str | None
    partuuid: str | None
    read_only: bool
    mountpoints: tuple[str, ...]
    holders: tuple[BlockHolder, ...] = ()

    def all_mountpoints(self) -> tuple[str, ...]:
        return self.mountpoints + tuple(m for h in self.holders for m in h.mountpoints)


@dataclass(frozen=True)
class BlockDisk:
    """A whole disk (or attached loop device) and its partitions, from lsblk.

    ``size`` in bytes, ``sector_size`` the logical sector size. ``tran`` is lsblk's transport
    (usb, sata, nvme, mmc, ... or None); :attr:`transport` also names virtio and loop.
    ``fstype``/``label``/``mountpoints`` describe a filesystem directly on the disk (no table).
    ``holders``: devices built directly on the whole disk. ``backing_file``: for a loop device.
    """

    path: str
    name: str
    devnum: tuple[int, int]
    type: str  # disk, loop
    size: int
    sector_size: int
    physical_sector_size: int
    model: str | None
    vendor: str | None
    serial: str | None
    wwn: str | None
    tran: str | None
    subsystems: str | None
    removable: bool
    hotplug: bool
    read_only: bool
    pttype: str | None  # gpt, dos, or None
    ptuuid: str | None
    fstype: str | None
    label: str | None
    mountpoints: tuple[str, ...]
    partitions: tuple[BlockPartition, ...]
    holders: tuple[BlockHolder, ...] = ()
    backing_file: str | None = None

    @property
    def transport(self) -> str | None:
        """usb, sata, nvme, mmc, ... as lsblk says; else virtio, loop, or None."""
        if self.tran:
            return self.tran
        if self.type == "loop":
            return "loop"
        chain = (self.subsystems or "").split(":")
        for known in ("virtio", "mmc", "nvme", "usb", "scsi"):
            if known in chain:
                return known
        return None

    @property
    def is_loop(self) -> bool:
        return self.type == "loop"

    def all_mountpoints(self) -> tuple[str, ...]:
        """Every mount point on the disk, its partitions and their holders (incl. ``[SWAP]``)."""
        points = list(self.mountpoints)
        points += [m for h in self.holders for m in h.mountpoints]
        for p in self.partitions:
            points += p.all_mountpoints()
        return tuple(points)

    def all_holders(self) -> tuple[BlockHolder, ...]:
        return self.holders + tuple(h for p in self.partitions for h in p.holders)

    def describe_model(self) -> str:
        """ "Vendor Model" or, for a loop device, its backing file; "-" when unknown."""
        if self.is_loop and self.backing_file:
            return self.backing_file
        words = [w for w in (self.vendor, self.model) if w and not w.startswith("0x")]
        if self.vendor and self.model and self.model.startswith(self.vendor):
            words = [self.model]
        return " ".join(words) or "-"


# --------------------------------------------------------------------------------------------
# Parsing


def _text(value: Any) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip() in ("1", "true")


def _mountpoints(node: dict[str, Any]) -> tuple[str, ...]:
    points = node.get("mountpoints")
    if points is None:
        points = [node.get("mountpoint")]
    return tuple(p for p in points if p)


def _holders(node: dict[str, Any]) -> tuple[BlockHolder, ...]:
    """Every device stacked on ``node`` (children that are not partitions), flattened."""
    out: list[BlockHolder] = []
    for child in node.get("children") or []:
        if child.get("type") == "part":
            continue
        out.append(
            BlockHolder(
                _text(child.get("name")) or "?",
                _text(child.get("path")) or "?",
                _text(child.get("type")) or "?",
                _mountpoints(child),
            )
        )
        out.extend(_holders(child))
    return tuple(out)


def _partition(node: dict[str, Any], log_sec: int) -> BlockPartition:
    name = _text(node.get("name")) or ""
    number = None
    dev = sysblock_by_name(_text(node.get("kname")) or name)
    if dev is not None:
        number = dev.partition
    start = _int(node.get("start"))
    parttype = _text(node.get("parttype"))
    return BlockPartition(
        path=_text(node.get("path")) or f"/dev/{name}",
        name=name,
        number=number,
        start=start * 512
        if start is not None
        else None,  # lsblk START counts 512-byte units
        size=_int(node.get("size")) or 0,
        fstype=_text(node.get("fstype")),
        label=_text(node.get("label")),
        uuid=_text(node.get("uuid")),
        partlabel=_text(node.get("partlabel")),
        parttype=parttype.lower() if parttype else None,
        parttypename=_text(node.get("parttypename")),
        partuuid=_text(node.get("partuuid")),
        read_only=_bool(node.get("ro")),
        mountpoints=_mountpoints(node),
        holders=_holders(node),
    )


def _disk(node: dict[str, Any]) -> BlockDisk:
    name = _text(node.get("name")) or ""
    kname = _text(node.get("kname")) or name
    majmin = _text(node.get("maj:min")) or "0:0"
    major, minor = (int(x) for x in majmin.split(":"))
    log_sec = _int(node.get("log-sec")) or 512
    backing = None
    if node.get("type") == "loop":
        dev = sysblock_by_name(kname)
        backing = dev.loop_backing_file if dev is not None else None
    partitions = tuple(
        _partition(child, log_sec)
        for child in node.get("children") or []
        if child.get("type") == "part"
    )
    return BlockDisk(
        path=_text(node.get("path")) or f"/dev/{name}",
        name=name,
        devnum=(major, minor),
        type=_text(node.get("type")) or "disk",
        size=_int(node.get("size")) or 0,
        sector_size=log_sec,
        physical_sector_size=_int(node.get("phy-sec")) or log_sec,
        model=_text(node.get("model")),
        vendor=_text(node.get("vendor")),
        serial=_text(node.get("serial")),
        wwn=_text(node.get("wwn")),
        tran=_text(node.get("tran")),
        subsystems=_text(node.get("subsystems")),
        removable=_bool(node.get("rm")),
        hotplug=_bool(node.get("hotplug")),
        read_only=_bool(node.get("ro")),
        pttype=_text(node.get("pttype")),
        ptuuid=_text(node.get("ptuuid")),
        fstype=_text(node.get("fstype")),
        label=_text(node.get("label")),
        mountpoints=_mountpoints(node),
        partitions=partitions,
        holders=_holders(node),
        backing_file=backing,
    )


def parse_lsblk(data: str | dict[str, Any]) -> list[BlockDisk]:
    """Records for the top-level devices of ``lsblk --json --bytes -o`` :data:`LSBLK_COLUMNS`
    output (any top-level type; :func:`list_disks` filters)."""
    if isinstance(data, str):
        data = json.loads(data)
    return [_disk(node) for node in data.get("blockdevices", [])]


# --------------------------------------------------------------------------------------------
# Asking lsblk (and blkid when there is no udev database)


def _lsblk(paths: list[str]) -> list[BlockDisk]:
    cmd = ["lsblk", "--json", "--bytes", "-o", ",".join(LSBLK_COLUMNS), *paths]
    try:
        result = run(cmd)
    except ToolError as e:
        if "unknown column" in e.stderr:
            raise TargetRefused(
                "lsblk is too old to describe disks",
                hint="atvdisk needs util-linux 2.37 or later",
            ) from e
        raise TargetRefused(
            f"lsblk could not describe {' '.join(paths) or 'the disks'}: {e.stderr.strip()}"
        ) from e
    disks = parse_lsblk(result.stdout)
    if _should_probe():
        disks = [_fill_from_blkid(d) for d in disks]
    return disks


def list_disks(*, include_empty: bool = False) -> list[BlockDisk]:
    """The disks a user could mean: lsblk's top-level ``disk`` and ``loop`` devices (attached
    loop devices with backing files count as disks). Devices of size 0 (empty card readers,
    unused zram) are left out unless ``include_empty``."""
    return [
        d for d in _lsblk([]) if d.type in DISK_TYPES and (include_empty or d.size > 0)
    ]


def describe(path: str) -> BlockDisk:
    """The :class:`BlockDisk` for ``path``, a whole disk (``/dev/sdf``, a /dev/disk/by-id link,
    ``/dev/loop0``). A partition path raises TargetRefused naming its disk."""
    dev = sysblock_of_node(path)
    if dev.is_partition:
        raise partition_refusal(path, dev)
    if dev.name.startswith("loop") and dev.attr("loop/backing_file") is None:
        raise TargetRefused(
            f"{dev.devnode} is a loop device not attached to any file",
            hint="attach an image first (`losetup --find --show --partscan FILE`), or build an image with --loop",
        )
    if dev.attr("size") == "0":
        raise TargetRefused(
            f"{dev.devnode} has no medium (size 0)",
            hint="insert the card or disk, or check the adapter",
        )
    disks = _lsblk([dev.devnode])
    if len(disks) != 1:
        raise TargetRefused(f"lsblk did not describe {path}")
    return disks[0]


def partition_refusal(path: str, dev: SysBlock) -> TargetRefused:
    """The error for a partition given where a whole disk is expected."""
    disk = whole_disk(dev)
    shown = path if path == dev.devnode else f"{path} ({dev.devnode})"
    return TargetRefused(
        f"{shown} is partition {dev.partition} of {disk.devnode}; atvdisk writes a whole disk",
        hint=f"give the whole disk: {disk.devnode} (everything on it will be erased; see `atvdisk devices`)",
    )


def _should_probe() -> bool:
    return os.geteuid() == 0 and not UDEV_DATA.is_dir()


def _blkid(path: str) -> dict[str, str]:
    try:
        result = run(["blkid", "-p", "-o", "export", path])
    except ToolError:  # 2: nothing found, 8: ambivalent; either way nothing to add
        return {}
    return dict(
        line.split("=", 1) for line in result.stdout.splitlines() if "=" in line
    )


def _fill_from_blkid(disk: BlockDisk) -> BlockDisk:
    """Fill fields lsblk takes from the udev database by probing the devices (root only)."""
    if disk.size == 0:
        return disk
    info = _blkid(disk.path)
    parts = []
    for p in disk.partitions:
        pi = _blkid(p.path)
        ptype = p.parttype or (pi.get("PART_ENTRY_TYPE") or "").lower() or None
        parts.append(
            replace(
                p,
                fstype=p.fstype or pi.get("TYPE"),
                label=p.label or pi.get("LABEL"),
                uuid=p.uuid or pi.get("UUID"),
                partlabel=p.partlabel or pi.get("PART_ENTRY_NAME"),
                parttype=ptype,
                parttypename=p.parttypename
                or (PARTTYPE_NAMES.get(ptype) if ptype else None),
                partuuid=p.partuuid or pi.get("PART_ENTRY_UUID"),
            )
        )
    return replace(
        disk,
        pttype=disk.pttype or info.get("PTTYPE"),
        ptuuid=disk.ptuuid or info.get("PTUUID"),
        fstype=disk.fstype or info.get("TYPE"),
        label=disk.label or info.get("LABEL"),
        partitions=tuple(parts),
    )
