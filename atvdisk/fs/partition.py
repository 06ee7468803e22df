"""The partition table, written with libparted (pyparted) as the plan says, then finished by
:mod:`atvdisk.fs.gpt`: disk and partition GUIDs from the layout seed and raw type GUIDs (which
libparted 3.5 cannot set), and the optional hybrid MBR.
"""

from __future__ import annotations

import logging

import parted

from atvdisk.errors import BuildError
from atvdisk.fs.gpt import (
    MBR_TYPE_EFI,
    MBR_TYPE_FAT32_LBA,
    MBR_TYPE_HFS,
    MBR_TYPE_LINUX,
    MBR_TYPE_SWAP,
    GptEntry,
    hybrid_mbr,
    read_table,
    rewrite_table,
)
from atvdisk.layout.plan import Plan
from atvdisk.layout.schema import TYPE_GUIDS, FsKind, Role

log = logging.getLogger("atvdisk.partition")

# MBR partition types for the hybrid MBR, by GPT type GUID (what gptsync maps them to).
MBR_TYPES = {
    TYPE_GUIDS[Role.EFI]: MBR_TYPE_EFI,
    TYPE_GUIDS[Role.ATVRECV]: MBR_TYPE_HFS,
    TYPE_GUIDS[Role.HFSPLUS]: MBR_TYPE_HFS,
    TYPE_GUIDS[Role.LINUX]: MBR_TYPE_LINUX,
    TYPE_GUIDS[Role.SWAP]: MBR_TYPE_SWAP,
    "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": MBR_TYPE_FAT32_LBA,  # Microsoft basic data
}


def write_partition_table(path: str, plan: Plan) -> None:
    """Write a fresh GPT on ``path`` (an image file or a whole-disk device) as ``plan`` says.

    The caller has wiped the old tables; libparted writes the protective MBR, both GPT headers
    and entry arrays; then GUIDs are set from the plan and both copies rewritten with new CRCs.
    """
    try:
        device = parted.getDevice(path)
    except parted.IOException as e:
        raise BuildError(f"libparted cannot open {path}: {e}", hint="is the device still there?") from e
    if device.sectorSize != plan.sector_size or device.length != plan.total_sectors:
        raise BuildError(
            f"{path} is {device.length} sectors of {device.sectorSize} bytes; the plan is for {plan.total_sectors} of {plan.sector_size}",
            hint="the target changed size since it was checked",
        )
    disk = parted.freshDisk(device, "gpt")
    for p in plan.partitions:
        geometry = parted.Geometry(device=device, start=p.start, end=p.end)
        fs = None
        if p.role is Role.HFSPLUS or (p.role is Role.RAW and p.fs.kind.is_hfs):
            fs = parted.FileSystem(type="hfs+", geometry=geometry)
        elif p.role is Role.SWAP:
            fs = parted.FileSystem(type="linux-swap(v1)", geometry=geometry)
        elif p.fs.kind is FsKind.EXT4:
            fs = parted.FileSystem(type="ext4", geometry=geometry)
        partition = parted.Partition(disk=disk, type=parted.PARTITION_NORMAL, fs=fs, geometry=geometry)
        disk.addPartition(partition, constraint=parted.Constraint(exactGeom=geometry))
        partition.set_name(p.name)
        if p.role is Role.EFI:
            partition.setFlag(parted.PARTITION_BOOT)
        elif p.role is Role.ATVRECV:
            partition.setFlag(parted.PARTITION_APPLE_TV_RECOVERY)
        if partition.number != p.number or partition.geometry.start != p.start or partition.geometry.end != p.end:
            raise BuildError(f"libparted placed partition {p.name} as {partition.number} at {partition.geometry.start}-{partition.geometry.end}", hint="this is a bug: please report it")
    try:
        disk.commit()
    except parted.IOException as e:
        raise BuildError(f"libparted could not write the partition table to {path}: {e}", hint="is a partition of this disk in use?") from e
    finish_table(path, plan)


def finish_table(path: str, plan: Plan) -> None:
    """Set the plan's GUIDs (and raw type GUIDs) in both GPT copies; write the hybrid MBR."""
    with open(path, "r+b", buffering=0) as f:
        table = read_table(f, plan.sector_size, plan.total_sectors)
        entries = list(table.entries)
        for p in plan.partitions:
            old = entries[p.number - 1]
            if old.type_guid != p.type_guid:
                log.info("partition %d: type %s -> %s (libparted cannot set raw type GUIDs)", p.number, old.type_guid, p.type_guid)
            entries[p.number - 1] = GptEntry(
                type_guid=p.type_guid,
                unique_guid=p.guid or old.unique_guid,
                first_lba=old.first_lba,
                last_lba=old.last_lba,
                attributes=old.attributes,
                # The plan's name, not libparted's copy: libparted 3.5 drops a character outside
                # the BMP (two UTF-16 units) at the end of a 36-unit name.
                name=p.name,
            )
        mbr = None
        if plan.hybrid_mbr:
            used = [(i, e) for i, e in enumerate(entries, 1) if not e.unused]
            mbr = hybrid_mbr(used, plan.total_sectors, MBR_TYPES)
        rewrite_table(f, plan.sector_size, table, tuple(entries), plan.disk_guid or table.primary.disk_guid, mbr)
        f.flush()
