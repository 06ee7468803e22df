"""Target layer logic that needs no root: parsers, a fake /sys tree, the refusal rules and the
confirmation prompt."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from atvdisk.errors import EXIT_REFUSED, TargetRefused
from atvdisk.target import sysblock
from atvdisk.target.checks import (
    LoopDevice,
    RefusalKind,
    SystemState,
    TargetReport,
    UnsafeTarget,
    assess,
    confirm_destruction,
)
from atvdisk.target.lsblk import (
    BlockDisk,
    BlockPartition,
    parse_lsblk,
    partition_refusal,
)
from atvdisk.target.sysblock import (
    MountEntry,
    SwapEntry,
    leaf_disks,
    parse_mountinfo,
    parse_swaps,
    system_disk_devnums,
)

# --------------------------------------------------------------------------------------------
# /proc parsers


MOUNTINFO = r"""22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw
31 27 8:1 / /boot/efi rw,relatime shared:2 master:1 - vfat /dev/sda1 rw
40 27 0:45 /@home /home rw,relatime - btrfs /dev/sdb1 rw,space_cache
41 27 8:49 / /media/my\040stick rw,nosuid - ext4 /dev/sdd1 rw
"""


def test_parse_mountinfo_with_optional_fields_and_escapes():
    entries = parse_mountinfo(MOUNTINFO)
    assert [
        (e.mount_id, e.devnum, e.mountpoint, e.fstype, e.source) for e in entries
    ] == [
        (22, (0, 21), "/proc", "proc", "proc"),
        (27, (8, 2), "/", "ext4", "/dev/sda2"),
        (31, (8, 1), "/boot/efi", "vfat", "/dev/sda1"),
        (40, (0, 45), "/home", "btrfs", "/dev/sdb1"),
        (41, (8, 49), "/media/my stick", "ext4", "/dev/sdd1"),
    ]


def test_parse_swaps():
    text = "Filename\tType\tSize\tUsed\tPriority\n/dev/sdc2   partition\t1048572\t0\t-2\n/swap\\040file   file\t1024\t0\t-3\n"
    assert parse_swaps(text) == [
        SwapEntry("/dev/sdc2", "partition"),
        SwapEntry("/swap file", "file"),
    ]
    assert parse_swaps("Filename\tType\tSize\tUsed\tPriority\n") == []


# --------------------------------------------------------------------------------------------
# A fake /sys: disks sdb (dm-0 on sdb2), sdc+sdd (md0 on sdc1+sdd1), mmcblk0, nvme0n1, loop0


DEVICES = {
    # name: (major, minor, parent or None, partition number or None, slaves)
    "sdb": (8, 16, None, None, []),
    "sdb1": (8, 17, "sdb", 1, []),
    "sdb2": (8, 18, "sdb", 2, []),
    "sdc": (8, 32, None, None, []),
    "sdc1": (8, 33, "sdc", 1, []),
    "sdd": (8, 48, None, None, []),
    "sdd1": (8, 49, "sdd", 1, []),
    "dm-0": (254, 0, None, None, ["sdb2"]),
    "md0": (9, 0, None, None, ["sdc1", "sdd1"]),
    "dm-1": (254, 1, None, None, ["md0"]),
    "mmcblk0": (179, 0, None, None, []),
    "mmcblk0p1": (179, 1, "mmcblk0", 1, []),
    "nvme0n1": (259, 0, None, None, []),
    "nvme0n1p1": (259, 1, "nvme0n1", 1, []),
    "loop0": (7, 0, None, None, []),
    "loop0p1": (259, 8, "loop0", 1, []),
}


@pytest.fixture
def fake_sys(tmp_path, monkeypatch):
    devices = tmp_path / "sys" / "devices"
    dev_block = tmp_path / "sys" / "dev" / "block"
    class_block = tmp_path / "sys" / "class" / "block"
    for d in (devices, dev_block, class_block):
        d.mkdir(parents=True)
    dirs: dict[str, Path] = {}
    for name, (major, minor, parent, number, _) in DEVICES.items():
        d = (dirs[parent] / name) if parent else (devices / name)
        d.mkdir()
        dirs[name] = d
        (d / "dev").write_text(f"{major}:{minor}\n")
        (d / "uevent").write_text(f"MAJOR={major}\nMINOR={minor}\nDEVNAME={name}\n")
        (d / "ro").write_text("0\n")
        (d / "holders").mkdir()
        (d / "slaves").mkdir()
        if number is not None:
            (d / "partition").write_text(f"{number}\n")
        (dev_block / f"{major}:{minor}").symlink_to(d)
        (class_block / name).symlink_to(d)
    for name, (*_, slaves) in DEVICES.items():
        for s in slaves:
            (dirs[name] / "slaves" / s).symlink_to(dirs[s])
            (dirs[s] / "holders" / name).symlink_to(dirs[name])
    monkeypatch.setattr(sysblock, "SYS_DEV_BLOCK", dev_block)
    monkeypatch.setattr(sysblock, "SYS_CLASS_BLOCK", class_block)
    return dirs


@pytest.mark.parametrize(
    "name, disk",
    [
        ("sdb1", "sdb"),
        ("mmcblk0p1", "mmcblk0"),
        ("nvme0n1p1", "nvme0n1"),
        ("loop0p1", "loop0"),
    ],
)
def test_partition_refusal_names_the_disk(fake_sys, name, disk):
    major, minor = DEVICES[name][:2]
    dev = sysblock.sysblock((major, minor))
    assert dev.is_partition and dev.partition == 1 and dev.parent == disk
    error = partition_refusal(f"/dev/{name}", dev)
    assert str(error).startswith(f"/dev/{name} is partition 1 of /dev/{disk}")
    assert f"/dev/{disk}" in error.hint
    assert error.exit_code == EXIT_REFUSED


def test_partition_given_by_link_shows_both_names(fake_sys):
    dev = sysblock.sysblock((8, 17))
    error = partition_refusal("/dev/disk/by-id/usb-CF_Card-part1", dev)
    assert (
        "/dev/disk/by-id/usb-CF_Card-part1 (/dev/sdb1) is partition 1 of /dev/sdb"
        in str(error)
    )


def test_leaf_disks_through_dm_md_and_partitions(fake_sys):
    assert leaf_disks((254, 0)) == {(8, 16)}  # dm-0 -> sdb2 -> sdb
    assert leaf_disks((254, 1)) == {(8, 32), (8, 48)}  # dm-1 -> md0 -> sdc1, sdd1
    assert leaf_disks((8, 17)) == {(8, 16)}
    assert leaf_disks((179, 0)) == {(179, 0)}
    assert leaf_disks((0, 45)) == set()  # not a block device (btrfs, tmpfs)


def test_system_disks_through_the_stack(fake_sys):
    mounts = [
        MountEntry(1, (254, 1), "/", "ext4", "/dev/mapper/vg-root"),  # LVM on md RAID1
        MountEntry(2, (254, 0), "/home", "ext4", "/dev/mapper/home"),  # LUKS on sdb2
        MountEntry(
            3, (179, 1), "/media/card", "vfat", "/dev/mmcblk0p1"
        ),  # not a system mount
    ]

    class FakeSwap(
        SwapEntry
    ):  # the real one stats the node, which the fake /sys has not
        def block_devnum(self):
            return (259, 1)

    swaps: list[SwapEntry] = [FakeSwap("/dev/nvme0n1p1", "partition")]
    result = system_disk_devnums(mounts, swaps)
    assert result == {
        (8, 32): ["/ is mounted from /dev/dm-1"],
        (8, 48): ["/ is mounted from /dev/dm-1"],
        (8, 16): ["/home is mounted from /dev/dm-0"],
        (259, 0): ["active swap /dev/nvme0n1p1"],
    }
    assert (259, 0) not in system_disk_devnums(mounts, swaps, include_swap=False)


# --------------------------------------------------------------------------------------------
# lsblk records


LSBLK_JSON = """{
 "blockdevices": [
  {"name": "sdf", "kname": "sdf", "path": "/dev/sdf", "type": "disk", "maj:min": "8:80",
   "size": 4327464960, "start": null, "log-sec": 512, "phy-sec": 512, "ro": false, "rm": true,
   "hotplug": true, "tran": "usb", "subsystems": "block:scsi:usb:pci", "vendor": "SanDisk ",
   "model": "SanDisk CF Card", "serial": "AA010203", "wwn": null, "pttype": "gpt",
   "ptuuid": "0b1c", "fstype": null, "label": null, "uuid": null, "partlabel": null,
   "parttype": null, "parttypename": null, "partuuid": null, "mountpoints": [null],
   "children": [
    {"name": "sdf1", "kname": "sdf1", "path": "/dev/sdf1", "type": "part", "maj:min": "8:81",
     "size": 35651584, "start": 40, "log-sec": 512, "phy-sec": 512, "ro": false, "rm": true,
     "fstype": "vfat", "label": "EFI", "uuid": "67E3-17ED", "partlabel": "EFI",
     "parttype": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "parttypename": "EFI System",
     "partuuid": "p1", "mountpoints": ["/media/efi", "/mnt/efi"]},
    {"name": "sdf2", "kname": "sdf2", "path": "/dev/sdf2", "type": "part", "maj:min": "8:82",
     "size": 419430400, "start": 69672, "ro": false, "rm": true, "fstype": "LVM2_member",
     "mountpoints": [null],
     "children": [
      {"name": "vg-data", "kname": "dm-3", "path": "/dev/mapper/vg-data", "type": "lvm",
       "maj:min": "254:3", "size": 419430400, "mountpoints": ["/data"]}
     ]},
    {"name": "sdf5", "kname": "sdf5", "path": "/dev/sdf5", "type": "part", "maj:min": "8:85",
     "size": 134217728, "start": 8189952, "ro": "0", "rm": "1", "fstype": "swap",
     "mountpoints": ["[SWAP]"]}
   ]},
  {"name": "loop3", "kname": "loop3", "path": "/dev/loop3", "type": "loop", "maj:min": "7:3",
   "size": 67108864, "log-sec": 4096, "phy-sec": 4096, "ro": true, "rm": false, "hotplug": false,
   "tran": null, "subsystems": "block", "mountpoints": [null]},
  {"name": "sr0", "path": "/dev/sr0", "type": "rom", "maj:min": "11:0", "size": 1073741824,
   "mountpoints": [null]}
 ]
}"""


def test_parse_lsblk_records():
    sdf, loop3, sr0 = parse_lsblk(LSBLK_JSON)
    assert (
        sdf.path,
        sdf.devnum,
        sdf.size,
        sdf.sector_size,
        sdf.tran,
        sdf.removable,
    ) == ("/dev/sdf", (8, 80), 4327464960, 512, "usb", True)
    assert sdf.describe_model() == "SanDisk CF Card"
    assert [p.path for p in sdf.partitions] == ["/dev/sdf1", "/dev/sdf2", "/dev/sdf5"]
    efi = sdf.partitions[0]
    assert (efi.start, efi.size, efi.fstype, efi.label, efi.partlabel) == (
        40 * 512,
        35651584,
        "vfat",
        "EFI",
        "EFI",
    )
    assert efi.parttype == "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
    assert efi.mountpoints == ("/media/efi", "/mnt/efi")
    assert sdf.partitions[1].holders[0].path == "/dev/mapper/vg-data"
    assert sdf.partitions[1].holders[0].type == "lvm"
    assert (
        sdf.partitions[2].mountpoints == ("[SWAP]",)
        and sdf.partitions[2].read_only is False
    )
    assert set(sdf.all_mountpoints()) == {"/media/efi", "/mnt/efi", "/data", "[SWAP]"}
    assert [h.name for h in sdf.all_holders()] == ["vg-data"]
    assert (
        loop3.type,
        loop3.sector_size,
        loop3.read_only,
        loop3.transport,
        loop3.partitions,
    ) == ("loop", 4096, True, "loop", ())
    assert sr0.type == "rom"


def _disk(**kw) -> BlockDisk:
    base = {
        "path": "/dev/sdf", "name": "sdf", "devnum": (8, 80), "type": "disk", "size": 4327464960, "sector_size": 512,
        "physical_sector_size": 512, "model": "CF Card", "vendor": "SanDisk", "serial": "AA01", "wwn": None, "tran": "usb",
        "subsystems": "block:scsi:usb", "removable": True, "hotplug": True, "read_only": False, "pttype": "gpt", "ptuuid": None,
        "fstype": None, "label": None, "mountpoints": (), "partitions": (), "holders": (), "backing_file": None,
    }  # fmt: skip
    base.update(kw)
    return BlockDisk(**base)


def _state(**kw) -> SystemState:
    return SystemState(
        mounts=kw.get("mounts", []),
        swaps=kw.get("swaps", []),
        system=kw.get("system", {}),
    )


def test_assess_rules():
    assert assess(_disk(), _state(), need_bytes=2 * 10**9) == []
    small = assess(_disk(size=10**9), _state(), need_bytes=2 * 10**9)
    assert [r.kind for r in small] == [RefusalKind.TOO_SMALL]
    assert "short by 1000000000 bytes" in small[0].message
    assert [r.kind for r in assess(_disk(read_only=True), _state())] == [
        RefusalKind.READ_ONLY
    ]
    system = assess(_disk(), _state(system={(8, 80): ["/ is mounted from /dev/sdf2"]}))
    assert [r.kind for r in system] == [
        RefusalKind.SYSTEM
    ] and "/ is mounted from /dev/sdf2" in system[0].message
    sdf = parse_lsblk(LSBLK_JSON)[0]
    held = assess(sdf, _state())
    assert [r.kind for r in held] == [
        RefusalKind.HELD
    ] and "/dev/mapper/vg-data (lvm)" in held[0].message
    assert [
        r.kind for r in assess(_disk(type="loop", backing_file=None), _state())
    ] == [RefusalKind.NOT_ATTACHED]
    assert [r.kind for r in assess(_disk(type="rom"), _state())] == [
        RefusalKind.NOT_A_DISK
    ]


def test_unsafe_target_message_lists_every_refusal():
    e = UnsafeTarget(
        "/dev/sdf", assess(_disk(size=1, read_only=True), _state(), need_bytes=2)
    )
    assert e.kinds == {RefusalKind.READ_ONLY, RefusalKind.TOO_SMALL}
    assert "refusing /dev/sdf:\n  - it is read-only\n  - it is too small" in str(e)
    assert "write-protect" in e.hint and "larger disk" in e.hint
    assert e.exit_code == EXIT_REFUSED


# --------------------------------------------------------------------------------------------
# Confirmation


class RecordingConsole:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def out(self, text: str = "") -> None:
        self.lines.append(("out", text))

    def info(self, text: str) -> None:
        self.lines.append(("info", text))

    def warn(self, text: str) -> None:
        self.lines.append(("warn", text))

    def text(self) -> str:
        return "\n".join(t for _, t in self.lines)


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _report(**kw) -> TargetReport:
    part = BlockPartition(
        path="/dev/sdf1", name="sdf1", number=1, start=20480, size=35651584, fstype="vfat", label="EFI", uuid=None,
        partlabel="EFI", parttype=None, parttypename=None, partuuid=None, read_only=False, mountpoints=(),
    )  # fmt: skip
    return TargetReport(
        path="/dev/sdf",
        given=kw.get("given", "/dev/sdf"),
        disk=_disk(partitions=(part,)),
        warnings=("big disk",),
    )


@pytest.mark.parametrize(
    "answer", ["sdf\n", "/dev/sdf\n", "  sdf  \n", "/dev/disk/by-id/usb-CF\n"]
)
def test_confirm_accepts_the_device_name(answer):
    console = RecordingConsole()
    confirm_destruction(
        _report(given="/dev/disk/by-id/usb-CF"),
        yes=False,
        console=console,
        stdin=FakeTty(answer),
    )
    text = console.text()
    assert ("warn", "Type the device name (sdf) to erase it, anything else to cancel:") in console.lines
    assert "ALL DATA ON /dev/sdf WILL BE DESTROYED" in text
    for shown in (
        "SanDisk CF Card",
        "serial AA01",
        "transport usb",
        "removable yes",
        "/dev/sdf1",
        'label "EFI"',
        "vfat",
        "big disk",
    ):
        assert shown in text


@pytest.mark.parametrize("answer", ["sdg\n", "yes\n", "SDF\n", "\n", ""])
def test_confirm_refuses_anything_else(answer):
    with pytest.raises(TargetRefused) as info:
        confirm_destruction(
            _report(), yes=False, console=RecordingConsole(), stdin=FakeTty(answer)
        )
    assert str(info.value).startswith("not erasing /dev/sdf")


def test_confirm_without_a_terminal_refuses_and_yes_skips():
    with pytest.raises(TargetRefused) as info:
        confirm_destruction(
            _report(), yes=False, console=RecordingConsole(), stdin=io.StringIO("sdf\n")
        )
    assert "no terminal" in str(info.value) and "--yes" in info.value.hint
    console = RecordingConsole()
    confirm_destruction(_report(), yes=True, console=console, stdin=io.StringIO(""))
    assert any(
        kind == "warn" and "WILL BE DESTROYED" in t for kind, t in console.lines
    )  # shown even with --quiet


def test_loop_device_needs_root(monkeypatch, tmp_path):
    image = tmp_path / "x.img"
    image.write_bytes(b"\0" * 4096)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(TargetRefused) as info, LoopDevice(image):
        pass
    assert "root" in str(info.value) and "--loop" in info.value.hint
