"""Is this block device a safe target, and did the user really mean it? Checks before any write.

One job: decide, from the kernel's and lsblk's view, whether a whole disk may be erased, and get
the user's confirmation. The API the build uses:

- :func:`check_block_target` -> :class:`TargetReport` (or :class:`UnsafeTarget`, a TargetRefused)
- :func:`confirm_destruction` (type the device name, ``--yes``, no terminal -> refuse)
- :func:`assess` -> list of :class:`Refusal` (also used by ``atvdisk devices``)

The writing side lives in :mod:`atvdisk.target.blockdev` (:class:`BlockDeviceSession`,
:class:`LoopDevice`) and :mod:`atvdisk.target.imagefile` (:class:`ImageTarget`), re-exported here, as are
:func:`list_disks`, :func:`describe` and :func:`system_disks`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TextIO

from atvdisk.errors import TargetRefused, ToolError
from atvdisk.layout.units import format_iec, format_parted
from atvdisk.run import run
from atvdisk.target.blockdev import (
    BlockDeviceError,
    BlockDeviceSession,
    LoopDevice,
    TargetBusy,
)
from atvdisk.target.imagefile import ImageTarget
from atvdisk.target.interrupt import Terminated
from atvdisk.target.lsblk import (
    BlockDisk,
    BlockHolder,
    BlockPartition,
    describe,
    list_disks,
    partition_refusal,
)
from atvdisk.target.sysblock import (
    DevNum,
    MountEntry,
    SwapEntry,
    leaf_disks,
    read_mounts,
    read_swaps,
    sysblock,
    sysblock_of_node,
    system_disk_devnums,
    system_disks,
    whole_disk,
)

__all__ = [
    "BlockDeviceError",
    "BlockDeviceSession",
    "BlockDisk",
    "BlockHolder",
    "BlockPartition",
    "ImageTarget",
    "LoopDevice",
    "Refusal",
    "RefusalKind",
    "TargetBusy",
    "TargetReport",
    "Terminated",
    "UnsafeTarget",
    "assess",
    "check_block_target",
    "confirm_destruction",
    "describe",
    "list_disks",
    "system_disks",
]

log = logging.getLogger("atvdisk.target")


class RefusalKind(StrEnum):
    """Why atvdisk will not write a disk. The values are stable (``atvdisk devices --json``)."""

    PARTITION = "partition"  # a partition where a whole disk is expected
    NOT_A_DISK = "not-a-disk"  # dm, md, rom, ...
    SYSTEM = (
        "system"  # holds /, /boot, /usr, /var or /home: never, whatever flags are given
    )
    NOT_ATTACHED = "not-attached"  # a loop device with no backing file
    READ_ONLY = "read-only"
    TOO_SMALL = "too-small"
    LAYOUT = (
        "layout"  # the layout cannot be resolved for this disk (e.g. its sector size)
    )
    HELD = "held"  # LVM/LUKS/md built on it: must be deactivated first
    MOUNTED = "mounted"  # --unmount fixes it
    SWAP = "swap"  # active swap on it (not the system disk); --unmount swapoffs it


# What --unmount can fix; everything else is final.
UNMOUNTABLE = frozenset({RefusalKind.MOUNTED, RefusalKind.SWAP})


@dataclass(frozen=True)
class Refusal:
    kind: RefusalKind
    message: str
    hint: str | None = None


class UnsafeTarget(TargetRefused):
    """The target failed one or more safety checks (``refusals``); nothing was written."""

    def __init__(
        self, path: str, refusals: list[Refusal], *, actions: tuple[str, ...] = ()
    ) -> None:
        self.path = path
        self.refusals = tuple(refusals)
        self.actions = actions
        if len(refusals) == 1:
            message = f"refusing {path}: {refusals[0].message}"
        else:
            message = f"refusing {path}:\n  - " + "\n  - ".join(
                r.message for r in refusals
            )
        if actions:
            message += "\n  (done before this: " + "; ".join(actions) + ")"
        hints = []
        for r in refusals:
            if r.hint and r.hint not in hints:
                hints.append(r.hint)
        super().__init__(message, hint="; ".join(hints) or None)

    @property
    def kinds(self) -> set[RefusalKind]:
        return {r.kind for r in self.refusals}


@dataclass(frozen=True)
class TargetReport:
    """What the user must see before a disk is erased; returned by :func:`check_block_target`.

    ``path`` is the kernel's device node (``/dev/sdf``) even when the user gave a
    /dev/disk/by-id link (``given``). ``warnings`` are for the user (the build goes on);
    ``actions`` says what ``unmount=True`` did (``umount /media/x (/dev/sdf1)``, ``swapoff ...``).
    """

    path: str
    given: str
    disk: BlockDisk
    warnings: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.disk.name

    @property
    def model(self) -> str | None:
        return self.disk.model

    @property
    def serial(self) -> str | None:
        return self.disk.serial

    @property
    def size(self) -> int:
        return self.disk.size

    @property
    def sector_size(self) -> int:
        return self.disk.sector_size

    @property
    def transport(self) -> str | None:
        return self.disk.transport

    @property
    def removable(self) -> bool:
        return self.disk.removable or self.disk.hotplug

    @property
    def partitions(self) -> tuple[BlockPartition, ...]:
        return self.disk.partitions

    def lines(self) -> list[str]:
        """The human description: one line for the disk, one per partition."""
        return describe_disk_lines(self.disk)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the disk's keys are those of ``atvdisk devices --json``."""
        return {
            "path": self.path,
            "given": self.given,
            **disk_to_dict(self.disk),
            "warnings": list(self.warnings),
            "actions": list(self.actions),
        }


# --------------------------------------------------------------------------------------------
# Rendering (shared with `atvdisk devices`)


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def describe_disk_lines(disk: BlockDisk) -> list[str]:
    head = (
        f"{disk.path}  {format_parted(disk.size)} ({format_iec(disk.size)}, {disk.size} bytes)"
        f"  {disk.describe_model()}"
        f"  serial {disk.serial or '-'}  transport {disk.transport or '-'}"
        f"  removable {_yes_no(disk.removable or disk.hotplug)}"
    )
    lines = [head]
    if disk.pttype:
        lines.append(f"  partition table: {disk.pttype}")
    if disk.fstype or disk.mountpoints:
        lines.append("  " + _fs_text(disk.fstype, disk.label, None, disk.mountpoints))
    if not disk.partitions and not disk.fstype and not disk.mountpoints:
        lines.append("  no partitions")
    for p in disk.partitions:
        number = f"{p.number}" if p.number is not None else "?"
        lines.append(
            f"  {number:>2} {p.path:<16} {format_parted(p.size):>8}  {_fs_text(p.fstype, p.label, p.partlabel, p.mountpoints)}"
        )
        for h in p.holders:
            lines.append(
                f"       used by {h.path} ({h.type})"
                + (f" mounted at {', '.join(h.mountpoints)}" if h.mountpoints else "")
            )
    for h in disk.holders:
        lines.append(
            f"  used by {h.path} ({h.type})"
            + (f" mounted at {', '.join(h.mountpoints)}" if h.mountpoints else "")
        )
    return lines


def _fs_text(
    fstype: str | None,
    label: str | None,
    partlabel: str | None,
    mountpoints: tuple[str, ...],
) -> str:
    words = [fstype or "unknown"]
    if label:
        words.append(f'label "{label}"')
    if partlabel:
        words.append(f'name "{partlabel}"')
    swap = [m for m in mountpoints if m == "[SWAP]"]
    mounted = [m for m in mountpoints if m != "[SWAP]"]
    if mounted:
        words.append("mounted at " + ", ".join(mounted))
    if swap:
        words.append("active swap")
    return "  ".join(words)


def disk_to_dict(disk: BlockDisk) -> dict[str, Any]:
    """Stable JSON keys for a disk (documented in devices_cli)."""
    return {
        "name": disk.name,
        "type": disk.type,
        "size": disk.size,
        "sector_size": disk.sector_size,
        "physical_sector_size": disk.physical_sector_size,
        "model": disk.model,
        "vendor": disk.vendor,
        "serial": disk.serial,
        "transport": disk.transport,
        "removable": disk.removable,
        "hotplug": disk.hotplug,
        "read_only": disk.read_only,
        "backing_file": disk.backing_file,
        "pttype": disk.pttype,
        "fstype": disk.fstype,
        "label": disk.label,
        "mountpoints": list(disk.mountpoints),
        "partitions": [
            {
                "path": p.path,
                "name": p.name,
                "number": p.number,
                "start": p.start,
                "size": p.size,
                "fstype": p.fstype,
                "label": p.label,
                "uuid": p.uuid,
                "partlabel": p.partlabel,
                "parttype": p.parttype,
                "parttypename": p.parttypename,
                "partuuid": p.partuuid,
                "mountpoints": list(p.mountpoints),
                "holders": [_holder_dict(h) for h in p.holders],
            }
            for p in disk.partitions
        ],
        "holders": [_holder_dict(h) for h in disk.holders],
    }


def _holder_dict(h: BlockHolder) -> dict[str, Any]:
    return {
        "path": h.path,
        "name": h.name,
        "type": h.type,
        "mountpoints": list(h.mountpoints),
    }


# --------------------------------------------------------------------------------------------
# The checks


@dataclass
class SystemState:
    """One snapshot of mounts, swaps and system disks, so a listing of many disks reads /proc once."""

    mounts: list[MountEntry] = field(default_factory=read_mounts)
    swaps: list[SwapEntry] = field(default_factory=read_swaps)
    # Disks holding /, /boot, /usr, /var, /home: final. Swap is a separate, liftable refusal.
    system: dict[DevNum, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.system:
            self.system = system_disk_devnums(
                self.mounts, self.swaps, include_swap=False
            )

    def mounts_on(self, disk: DevNum) -> list[MountEntry]:
        out = []
        for m in self.mounts:
            dev = m.block_devnum()
            if dev is not None and disk in leaf_disks(dev):
                out.append(m)
        return out

    def swaps_on(self, disk: DevNum) -> list[SwapEntry]:
        out = []
        for s in self.swaps:
            dev = s.block_devnum()
            if dev is not None and disk in leaf_disks(dev):
                out.append(s)
        return out


def assess(
    disk: BlockDisk, state: SystemState | None = None, *, need_bytes: int | None = None
) -> list[Refusal]:
    """Every reason atvdisk would refuse to erase ``disk`` (empty: it may be written).

    ``need_bytes``: the smallest size the build needs (None: size not checked). Order: the most
    fundamental first (system disk, read-only, size, holders, then what --unmount fixes).
    """
    state = state or SystemState()
    refusals: list[Refusal] = []
    if disk.type not in ("disk", "loop"):
        refusals.append(
            Refusal(
                RefusalKind.NOT_A_DISK,
                f"it is a {disk.type} device, not a disk",
                "give a whole disk such as /dev/sdX (see `atvdisk devices`)",
            )
        )
    reasons = state.system.get(disk.devnum)
    if reasons:
        refusals.append(
            Refusal(
                RefusalKind.SYSTEM,
                "it is a disk the running system uses (" + "; ".join(reasons) + ")",
                "atvdisk never writes the system disk, whatever flags are given; choose another disk (see `atvdisk devices`)",
            )
        )
    if disk.is_loop and not disk.backing_file:
        refusals.append(
            Refusal(
                RefusalKind.NOT_ATTACHED,
                "the loop device is not attached to a file",
                "attach an image with `losetup --find --show FILE`, or use --loop",
            )
        )
    if disk.read_only or _sys_read_only(disk.devnum):
        refusals.append(
            Refusal(
                RefusalKind.READ_ONLY,
                "it is read-only",
                "check the write-protect switch of the card/adapter; `blockdev --setrw` if the kernel set it read-only",
            )
        )
    if need_bytes is not None and disk.size < need_bytes:
        short = need_bytes - disk.size
        refusals.append(
            Refusal(
                RefusalKind.TOO_SMALL,
                f"it is too small: {format_parted(disk.size)} ({disk.size} bytes) but the layout needs at least"
                f" {format_parted(need_bytes)} ({need_bytes} bytes): short by {short} bytes ({format_iec(short)})",
                "use a larger disk, or a layout with smaller partitions",
            )
        )
    if reasons:
        # The system disk stays refused whatever is unmounted or deactivated: listing its
        # mounts and holders (and hinting at --unmount) would only mislead.
        return refusals
    holders = disk.all_holders()
    if holders:
        names = ", ".join(f"{h.path} ({h.type})" for h in holders)
        refusals.append(
            Refusal(
                RefusalKind.HELD,
                f"it is in use by {names}",
                "deactivate them first (umount, then `vgchange -an VG`, `cryptsetup close NAME` or `mdadm --stop /dev/mdN`)",
            )
        )
    mounts = state.mounts_on(disk.devnum)
    if mounts:
        where = ", ".join(f"{m.mountpoint} ({m.source})" for m in mounts)
        refusals.append(
            Refusal(
                RefusalKind.MOUNTED,
                f"it has mounted filesystems: {where}",
                "unmount them, or pass --unmount to let atvdisk unmount them",
            )
        )
    swaps = state.swaps_on(disk.devnum)
    if swaps:
        refusals.append(
            Refusal(
                RefusalKind.SWAP,
                "it has active swap: " + ", ".join(s.path for s in swaps),
                "swapoff it, or pass --unmount to let atvdisk do it",
            )
        )
    return refusals


def _sys_read_only(devnum: DevNum) -> bool:
    try:
        return sysblock(devnum).read_only
    except TargetRefused:
        return False


def _whole_disk_or_refuse(path: str) -> str:
    """The kernel device node of ``path`` if it is a whole disk; else UnsafeTarget/TargetRefused."""
    dev = sysblock_of_node(path)
    if dev.is_partition:
        error = partition_refusal(path, dev)
        disk = whole_disk(dev)
        if disk.devnum in system_disk_devnums(include_swap=False):
            error = TargetRefused(
                error.message
                + f" (and {disk.devnode} is the system disk: atvdisk will refuse it too)",
                hint="choose another disk (see `atvdisk devices`)",
            )
        raise error
    if dev.slaves:
        raise UnsafeTarget(
            path,
            [
                Refusal(
                    RefusalKind.NOT_A_DISK,
                    f"{dev.devnode} is built on {', '.join(dev.slaves)} (device-mapper/RAID), not a disk",
                    "give the whole physical disk (see `atvdisk devices`)",
                )
            ],
        )
    return dev.devnode


def check_block_target(
    path: str, *, need_bytes: int, warn_above: int | None = None, unmount: bool = False
) -> TargetReport:
    """Check that the block device ``path`` may be erased by a build needing ``need_bytes``.

    Refuses (:class:`UnsafeTarget` / TargetRefused, exit code 3, nothing written): a partition
    (names its disk), a dm/md device, the system disk (whatever the flags), a detached loop
    device, a read-only device, a disk smaller than ``need_bytes`` (says by how much), a disk
    used by LVM/LUKS/md, and a disk with mounted filesystems or active swap — unless ``unmount``,
    in which case those are swapoff'ed and unmounted first (listed in ``report.actions``;
    anything else wrong is refused before anything is unmounted).

    Warns (``report.warnings``) when the disk is larger than ``warn_above`` bytes or is a fixed
    (non-removable) disk.
    """
    node = _whole_disk_or_refuse(path)
    disk = describe(node)
    state = SystemState()
    refusals = assess(disk, state, need_bytes=need_bytes)
    actions: list[str] = []
    if refusals and unmount and all(r.kind in UNMOUNTABLE for r in refusals):
        actions = _unmount_all(node, disk, state)
        disk = describe(node)
        state = SystemState()
        refusals = assess(disk, state, need_bytes=need_bytes)
    if refusals:
        raise UnsafeTarget(node, refusals, actions=tuple(actions))
    warnings = []
    if warn_above is not None and disk.size > warn_above:
        warnings.append(
            f"{node} is {format_parted(disk.size)}, larger than {format_parted(warn_above)}: a disk this large is more"
            " likely a backup drive than an Apple TV disk. Check the model and serial below"
        )
    if not disk.is_loop and not (disk.removable or disk.hotplug):
        warnings.append(
            f"{node} is a fixed disk (transport {disk.transport or 'unknown'}, not removable): make sure it is the"
            " Apple TV's disk and not one of this computer's own disks"
        )
    return TargetReport(
        path=node,
        given=path,
        disk=disk,
        warnings=tuple(warnings),
        actions=tuple(actions),
    )


def _unmount_all(node: str, disk: BlockDisk, state: SystemState) -> list[str]:
    """swapoff, then umount (deepest mount point first) everything on ``disk``; returns what was done."""
    actions: list[str] = []
    for s in state.swaps_on(disk.devnum):
        _tool(
            ["swapoff", s.path],
            node,
            f"could not swapoff {s.path}",
            "stop what uses the swap, then `swapoff` it yourself",
        )
        actions.append(f"swapoff {s.path}")
    for _ in range(8):  # stacked mounts on one mount point need one umount each
        mounts = SystemState().mounts_on(disk.devnum)
        if not mounts:
            break
        for m in sorted(
            mounts, key=lambda m: (m.mountpoint.count("/"), m.mount_id), reverse=True
        ):
            _tool(
                ["umount", m.mountpoint],
                node,
                f"could not unmount {m.mountpoint} ({m.source})",
                f"close what uses it (`fuser -vm {m.mountpoint}`) and unmount it yourself",
            )
            actions.append(f"umount {m.mountpoint} ({m.source})")
    return actions


def _tool(cmd: list[str], node: str, what: str, hint: str) -> None:
    try:
        run(cmd)
    except ToolError as e:
        raise TargetRefused(
            f"refusing {node}: {what}: {e.stderr.strip() or e}", hint=hint
        ) from e


# --------------------------------------------------------------------------------------------
# Confirmation


class ConsoleLike(Protocol):
    def out(self, text: str = "") -> None: ...
    def info(self, text: str) -> None: ...
    def warn(self, text: str) -> None: ...


def confirm_destruction(
    report: TargetReport,
    *,
    yes: bool,
    console: ConsoleLike,
    stdin: TextIO | None = None,
    will_hold: Sequence[str] = (),
) -> None:
    """Show what will be destroyed and make the user type the device name (``sdf`` or
    ``/dev/sdf``) to confirm. ``yes`` skips the prompt (``--yes``). Without a terminal on stdin
    and without ``yes``, or on any other answer (or end of input), raises TargetRefused: nothing
    has been written.

    ``console``: anything with ``out``/``info``/``warn`` (atvdisk.cli.common.Console). The one-line
    summary goes through ``warn`` (shown even with --quiet), the partition list through ``info``.
    So is the prompt (through ``warn``: nothing here prints); the answer is read from ``stdin``
    (default sys.stdin). ``will_hold``: lines saying what the disk will hold (the CLI's plan
    summary), shown after what it holds now. A console with an ``ask`` method asks through it
    (the question without a ``warning:`` prefix, a live progress display paused).
    """
    stdin = stdin if stdin is not None else sys.stdin
    lines = report.lines()
    disk = report.disk
    console.warn(
        f"ALL DATA ON {report.path} WILL BE DESTROYED: {disk.describe_model()}, {format_parted(disk.size)},"
        f" serial {disk.serial or '-'}, transport {disk.transport or '-'}, removable {_yes_no(report.removable)}"
    )
    for line in lines:
        console.info("  " + line)
    for w in report.warnings:
        console.warn(w)
    for a in report.actions:
        console.info(f"  done: {a}")
    for line in will_hold:
        console.info(line)
    if yes:
        console.info(f"--yes given: erasing {report.path} without asking")
        return
    try:
        tty = stdin.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        raise TargetRefused(
            f"not erasing {report.path}: no terminal to confirm on",
            hint="run it in a terminal, or pass --yes to confirm in a script (check the disk first with `atvdisk devices`)",
        )
    console.info(
        f"Once erasing has begun there is no going back: if the build is interrupted after this"
        f" point, {report.path} must be built again."
    )
    question = f"Type the device name ({report.name}) to erase it, anything else to cancel:"
    ask = getattr(console, "ask", None)
    if ask is not None:
        answer = ask(question, stdin=stdin) or ""
    else:
        console.warn(question)
        answer = stdin.readline()
    if not answer:
        raise TargetRefused(
            f"not erasing {report.path}: no answer (end of input)",
            hint="type the device name to confirm",
        )
    answer = answer.strip()
    accepted = {report.name, report.path, report.given}
    if answer not in accepted:
        raise TargetRefused(
            f"not erasing {report.path}: you typed {answer!r}, not {report.name!r}",
            hint="nothing was written; run again and type the device name exactly to confirm",
        )
