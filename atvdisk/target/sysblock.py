"""What the running kernel says about block devices, read from /sys and /proc. Read-only.

One job: map device nodes to kernel block devices and answer "which whole disks does this rest
on?" through partitions, device-mapper/LVM/LUKS, md RAID and loop devices (a loop device rests on
the disk holding its backing file). :func:`system_disks` uses that for the mounts and swap the
running system needs; :mod:`atvdisk.target.checks` uses it to find what is mounted from a target disk.

Device numbers are ``(major, minor)`` tuples (:data:`DevNum`). Nothing here runs a tool.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from atvdisk.errors import TargetRefused

SYS_DEV_BLOCK = Path("/sys/dev/block")
SYS_CLASS_BLOCK = Path("/sys/class/block")
MOUNTINFO = Path("/proc/self/mountinfo")
SWAPS = Path("/proc/swaps")

# Mount points whose disk the running system needs: never a target, whatever flags are given.
SYSTEM_MOUNTPOINTS = ("/", "/boot", "/boot/efi", "/efi", "/usr", "/var", "/home")

DevNum = tuple[int, int]


@dataclass(frozen=True)
class SysBlock:
    """One kernel block device (a disk, a partition, a loop, dm or md device)."""

    name: str  # kernel name: sdf, sdf1, mmcblk0p1, loop0, dm-0
    devnum: DevNum
    sysdir: Path  # resolved /sys/devices/... directory
    devnode: str  # /dev/... as the kernel names it (DEVNAME in uevent)
    partition: int | None  # partition number, None for a whole device
    parent: str | None  # for a partition: the kernel name of its disk

    @property
    def is_partition(self) -> bool:
        return self.partition is not None

    def attr(self, name: str) -> str | None:
        """A sysfs attribute of this device, stripped, or None when absent/unreadable."""
        try:
            return (self.sysdir / name).read_text().strip()
        except OSError:
            return None

    @property
    def slaves(self) -> list[str]:
        """Kernel names of the devices this one is built on (dm, md)."""
        try:
            return sorted(os.listdir(self.sysdir / "slaves"))
        except OSError:
            return []

    @property
    def holders(self) -> list[str]:
        """Kernel names of the devices built on this one (dm, md) — they keep it busy."""
        try:
            return sorted(os.listdir(self.sysdir / "holders"))
        except OSError:
            return []

    @property
    def loop_backing_file(self) -> str | None:
        """For an attached loop device: its backing file (the kernel appends " (deleted)")."""
        value = self.attr("loop/backing_file")
        return value or None

    @property
    def read_only(self) -> bool:
        return self.attr("ro") == "1"


def devnum_of_node(path: str | os.PathLike[str]) -> DevNum:
    """The device number of a block device node. Raises TargetRefused when it is not one."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise TargetRefused(
            f"{path}: no such device",
            hint="see `atvdisk devices` for the disks on this computer",
        ) from None
    except OSError as e:
        raise TargetRefused(f"{path}: {e.strerror}") from e
    if not stat.S_ISBLK(st.st_mode):
        raise TargetRefused(
            f"{path} is not a block device",
            hint="give a whole disk such as /dev/sdX (see `atvdisk devices`)",
        )
    return (os.major(st.st_rdev), os.minor(st.st_rdev))


def sysblock(devnum: DevNum) -> SysBlock:
    """The kernel's view of ``devnum``. Raises TargetRefused when the kernel has no such device."""
    link = (
        SYS_DEV_BLOCK / f"{devnum[0]}:{devnum[1]}"
    )  # looked up at call time: tests point it elsewhere
    try:
        sysdir = link.resolve(strict=True)
    except OSError:
        raise TargetRefused(
            f"the kernel has no block device {devnum[0]}:{devnum[1]}",
            hint="was the device unplugged?",
        ) from None
    uevent = _read_uevent(sysdir / "uevent")
    name = sysdir.name
    devnode = "/dev/" + uevent.get("DEVNAME", name)
    partition = None
    parent = None
    if (sysdir / "partition").exists():
        try:
            partition = int((sysdir / "partition").read_text().strip())
        except (OSError, ValueError):
            partition = 0
        parent = sysdir.parent.name
    return SysBlock(name, devnum, sysdir, devnode, partition, parent)


def sysblock_by_name(name: str) -> SysBlock | None:
    """The block device with kernel name ``name`` (``sdf``, ``dm-0``), or None."""
    try:
        text = (SYS_CLASS_BLOCK / name / "dev").read_text().strip()
    except OSError:
        return None
    major, minor = text.split(":")
    return sysblock((int(major), int(minor)))


def sysblock_of_node(path: str | os.PathLike[str]) -> SysBlock:
    return sysblock(devnum_of_node(path))


def whole_disk(dev: SysBlock) -> SysBlock:
    """The disk a partition is on; a whole device is its own disk."""
    if dev.parent is None:
        return dev
    parent = sysblock_by_name(dev.parent)
    if parent is None:  # the partition's parent vanished between two reads
        raise TargetRefused(
            f"{dev.devnode}: its disk {dev.parent} disappeared",
            hint="was the device unplugged?",
        )
    return parent


def _devnum_under_path(path: str) -> DevNum | None:
    """The block device that holds ``path``: the node itself for a block device, else its fs."""
    if path.endswith(" (deleted)") and not os.path.exists(path):
        path = path[: -len(" (deleted)")]
    try:
        st = os.stat(path)
    except OSError:
        return None
    dev = st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev
    return (os.major(dev), os.minor(dev))


def leaf_disks(devnum: DevNum, _seen: set[DevNum] | None = None) -> set[DevNum]:
    """The whole disks ``devnum`` rests on: through partitions (their disk), dm/md (their
    slaves) and file-backed loop devices (the disk holding the backing file), recursively.

    A device number the kernel does not know as a block device (0:xx of btrfs, tmpfs, overlay)
    rests on no disk. Cycles cannot recurse forever.
    """
    seen = _seen if _seen is not None else set()
    if devnum in seen:
        return set()
    seen.add(devnum)
    try:
        dev = sysblock(devnum)
    except TargetRefused:
        return set()
    if dev.is_partition:
        disk = whole_disk(dev)
        return leaf_disks(disk.devnum, seen)
    result: set[DevNum] = set()
    for slave in dev.slaves:
        s = sysblock_by_name(slave)
        if s is not None:
            result |= leaf_disks(s.devnum, seen)
    backing = dev.loop_backing_file
    if backing:
        under = _devnum_under_path(backing)
        if under is not None:
            result |= leaf_disks(under, seen)
    if not dev.slaves:
        # A real disk, or a loop device: a loop is itself a disk a user can target, and it
        # also rests on the disk of its backing file (added above).
        result.add(dev.devnum)
    return result


# --------------------------------------------------------------------------------------------
# /proc/self/mountinfo and /proc/swaps


@dataclass(frozen=True)
class MountEntry:
    mount_id: int
    devnum: DevNum
    mountpoint: str
    fstype: str
    source: str

    def block_devnum(self) -> DevNum | None:
        """The block device behind this mount: its st_dev when that is a block device, else
        the device node named as the source (btrfs and others report an anonymous 0:xx)."""
        if (SYS_DEV_BLOCK / f"{self.devnum[0]}:{self.devnum[1]}").exists():
            return self.devnum
        if self.source.startswith("/dev/"):
            try:
                st = os.stat(self.source)
            except OSError:
                return None
            if stat.S_ISBLK(st.st_mode):
                return (os.major(st.st_rdev), os.minor(st.st_rdev))
        return None


@dataclass(frozen=True)
class SwapEntry:
    path: str
    kind: str  # "partition" or "file"

    def block_devnum(self) -> DevNum | None:
        return _devnum_under_path(self.path)


def _unescape(field: str) -> str:
    """mountinfo and /proc/swaps escape space, tab, newline and backslash as \\ooo."""
    out = []
    i = 0
    while i < len(field):
        c = field[i]
        if c == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or "-" not in fields[6:]:
            continue
        sep = fields.index("-", 6)
        major, minor = fields[2].split(":")
        entries.append(
            MountEntry(
                mount_id=int(fields[0]),
                devnum=(int(major), int(minor)),
                mountpoint=_unescape(fields[4]),
                fstype=fields[sep + 1],
                source=_unescape(fields[sep + 2]),
            )
        )
    return entries


def read_mounts() -> list[MountEntry]:
    return parse_mountinfo(MOUNTINFO.read_text())


def parse_swaps(text: str) -> list[SwapEntry]:
    entries = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2:
            entries.append(SwapEntry(_unescape(fields[0]), fields[1]))
    return entries


def read_swaps() -> list[SwapEntry]:
    try:
        return parse_swaps(SWAPS.read_text())
    except FileNotFoundError:  # a kernel without swap support
        return []


# --------------------------------------------------------------------------------------------
# The disks the running system needs


def system_disk_devnums(
    mounts: list[MountEntry] | None = None,
    swaps: list[SwapEntry] | None = None,
    *,
    include_swap: bool = True,
) -> dict[DevNum, list[str]]:
    """Whole disks holding / /boot /boot/efi /efi /usr /var /home or (``include_swap``) active
    swap -> reasons."""
    mounts = read_mounts() if mounts is None else mounts
    swaps = read_swaps() if swaps is None else swaps
    reasons: dict[DevNum, list[str]] = {}

    def add(devnum: DevNum | None, reason: str) -> None:
        if devnum is None:
            return
        for disk in sorted(leaf_disks(devnum)):
            if reason not in reasons.setdefault(disk, []):
                reasons[disk].append(reason)

    for m in mounts:
        if m.mountpoint in SYSTEM_MOUNTPOINTS:
            dev = m.block_devnum()
            if dev is not None:
                add(dev, f"{m.mountpoint} is mounted from {_node_name(dev)}")
    for s in swaps if include_swap else []:
        add(s.block_devnum(), f"active swap {s.path}")
    return reasons


def system_disks() -> dict[str, list[str]]:
    """Whole disks (device paths, e.g. ``/dev/vda``) that the running system needs, mapped to the
    reasons (``"/ is mounted from /dev/vda2"``, ``"active swap /dev/sda3"``).

    Read from /proc/self/mountinfo (``/``, ``/boot``, ``/boot/efi``, ``/efi``, ``/usr``,
    ``/var``, ``/home``) and /proc/swaps, resolved through partitions, dm/LVM/LUKS and md
    (``/sys/class/block/*/slaves``) and loop devices (the disk of the backing file). atvdisk
    refuses the disks holding those mount points whatever flags are given; a disk whose only
    reason is active swap is refused unless the build may swapoff it (``--unmount``).
    """
    return {
        _node_name(devnum): reasons for devnum, reasons in system_disk_devnums().items()
    }


def _node_name(devnum: DevNum) -> str:
    try:
        return sysblock(devnum).devnode
    except TargetRefused:
        return f"{devnum[0]}:{devnum[1]}"


def _read_uevent(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
