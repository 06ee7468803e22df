"""One safety model for every command that writes a disk or an image (build, mkhfs, write, ...).

A writing command goes through the same four steps, and its ``--dry-run`` through the first two
(every check the real run makes, none of its writes):

1. :func:`destination` -- what the user named: a whole disk (its size and sector size) or an
   image file. Refuses a path under /dev that does not exist (a mistyped disk must never become
   an image file in /dev), something that is neither a disk nor a regular file, an existing image
   without ``force``, an image in a directory that does not exist or cannot be written.
2. :func:`check_disk` -- for a disk: :func:`~atvdisk.target.checks.check_block_target` (a
   partition, the system disk, read-only, too small, LVM/RAID/LUKS, mounted unless ``unmount``),
   then that no other atvdisk holds it (:class:`~atvdisk.target.blockdev.AtvdiskLock`) and no
   other program has it open exclusively, then that this user may write it.
   :func:`check_image` -- for an image file: the same refusals ``ImageTarget`` would make.
3. :func:`hold` -- for a disk, before the inputs are read: take the atvdisk lock, so a second
   atvdisk is refused at once ("in use by another atvdisk (pid N)").
4. :func:`confirm` -- show the disk and make the user type its name (or ``--yes``); only then
   unmount (``--unmount``), and only then write (through ``BlockDeviceSession`` or ``ImageTarget``).

:func:`dry_run` turns a refusal into "would be refused: ..." with the same exit code (3).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from atvdisk.errors import DiskTooSmall, TargetRefused, UsageError
from atvdisk.target.blockdev import AtvdiskLock, TargetBusy, held_exclusively
from atvdisk.target.checks import (
    UNMOUNTABLE,
    ConsoleLike,
    TargetReport,
    UnsafeTarget,
    check_block_target,
    confirm_destruction,
    describe,
)
from atvdisk.target.probe import TargetKind, probe_size, refuse_missing_device


class WouldBeRefused(TargetRefused):
    """What a dry run says when the real run would refuse the target (exit 3, like the refusal)."""


@contextmanager
def dry_run() -> Iterator[None]:
    """Inside this block a target refusal (a disk too small included) reads "would be refused:
    ..." (the same exit code, 3)."""
    try:
        yield
    except WouldBeRefused:
        raise
    except (TargetRefused, DiskTooSmall) as e:
        raise WouldBeRefused(f"would be refused: {e.message}", hint=e.hint) from None


@dataclass(frozen=True)
class Destination:
    path: str
    kind: TargetKind
    size_bytes: int  # the disk's size, or the image's (the existing file's, or the size asked)
    sector_size: int
    exists: bool


def destination(path: str, *, size_bytes: int | None, force: bool, image_sector_size: int = 512, force_hint: str = "pass --force to replace it, or choose another name") -> Destination:
    """What ``path`` is, for a command that will write it (see the module docstring, step 1).

    ``size_bytes``: the size of a new image file (--size); a disk must not be given one.
    """
    refuse_missing_device(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except PermissionError:
        raise TargetRefused(f"{path}: permission denied", hint="check the directory's permissions, or run as root (sudo)") from None
    if st is not None and stat.S_ISBLK(st.st_mode):
        if size_bytes is not None:
            raise UsageError(f"{path} is a disk: --size only applies to image files", hint="leave --size out to write the whole disk")
        info = probe_size(path)
        return Destination(path, TargetKind.BLOCK, info.size_bytes, info.sector_size, True)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise TargetRefused(f"{path} is neither a disk nor a regular file", hint="give a disk such as /dev/sdX or an image file name")
    if st is None and size_bytes is None:
        raise UsageError(f"{path} does not exist: give --size to create an image file, or a disk such as /dev/sdX", hint="see `atvdisk devices` for the disks attached")
    check_image(path, overwrite=force, force_hint=force_hint)
    size = size_bytes if size_bytes is not None else st.st_size  # type: ignore[union-attr]
    return Destination(path, TargetKind.IMAGE, size, image_sector_size, st is not None)


def check_image(path: str, *, overwrite: bool, force_hint: str = "pass --force to replace it, or choose another name") -> None:
    """Every refusal :class:`~atvdisk.target.imagefile.ImageTarget` would make, without creating
    anything: an existing file without ``overwrite``, a directory or device at the path, a
    directory that does not exist or cannot be written, a path in /dev."""
    refuse_missing_device(path)
    final = Path(path)
    try:
        st = os.lstat(final)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise TargetRefused(f"{final}: {e.strerror}") from None
    if st is not None:
        if stat.S_ISBLK(st.st_mode):
            raise TargetRefused(f"{final} is a block device, not an image file", hint="to write a disk, give it without --size (see `atvdisk devices`)")
        if stat.S_ISDIR(st.st_mode):
            raise TargetRefused(f"{final} is a directory", hint="give a file name for the image, e.g. atv.img")
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise TargetRefused(f"{final} exists and is not a regular file")
        if not overwrite:
            raise TargetRefused(f"{final} already exists", hint=force_hint)
    directory = final.parent if str(final.parent) else Path(".")
    if not directory.is_dir():
        raise TargetRefused(f"{directory}: no such directory", hint="create it first, or choose another path for the image")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise TargetRefused(f"{directory}: permission denied: cannot create the image there", hint="choose a directory you can write to")


@dataclass
class DiskCheck:
    """The outcome of :func:`check_disk`: what the user must confirm, and what ``--unmount``
    will undo after the confirmation (``pending_unmount``)."""

    report: TargetReport
    need_bytes: int
    warn_above: int | None
    pending_unmount: UnsafeTarget | None = None


def check_disk(path: str, *, need_bytes: int, warn_above: int | None = None, unmount: bool = False, lock: AtvdiskLock | None = None) -> DiskCheck:
    """Every check made before a disk is written (module docstring, step 2). With ``unmount``,
    mounted filesystems and active swap are not refused but listed (``pending_unmount``): they
    are unmounted by :func:`confirm`, after the user confirmed. ``lock``: the atvdisk lock this
    process already holds on the disk (then another atvdisk cannot hold it)."""
    pending = None
    try:
        report = check_block_target(path, need_bytes=need_bytes, warn_above=warn_above, unmount=False)
    except UnsafeTarget as e:
        if not (unmount and e.kinds <= UNMOUNTABLE):
            raise
        pending = e
        disk = describe(path)
        report = TargetReport(disk.path, path, disk, warnings=tuple(f"--unmount: {r.message}; it will be unmounted after you confirm" for r in e.refusals))
    node = report.path
    other = (lock or AtvdiskLock(node)).holder()
    if other is not None:
        raise TargetBusy(f"{node} is in use by another atvdisk (pid {other})", hint="wait for it to finish; two builds on one disk would write over each other")
    if pending is None:
        _refuse_if_held_exclusively(node)
    if not os.access(node, os.W_OK):
        raise TargetRefused(f"{node}: permission denied", hint="run as root (sudo) to write a disk")
    return DiskCheck(report, need_bytes, warn_above, pending)


def _refuse_if_held_exclusively(node: str) -> None:
    """What BlockDeviceSession proves before its first write, asked now: does another program
    (a mounted filesystem, LVM, mkfs, another partitioning tool) hold the disk exclusively?"""
    try:
        fd = os.open(node, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.EBUSY:
            raise held_exclusively(node) from None
        return  # permission and the like: said by the checks after this one
    os.close(fd)


@contextmanager
def hold(path: str) -> Iterator[AtvdiskLock]:
    """Hold the atvdisk lock of the disk ``path`` (module docstring, step 3)."""
    with AtvdiskLock(path) as lock:
        yield lock


def confirm(check: DiskCheck, *, yes: bool, console: ConsoleLike, will_hold: Sequence[str] = ()) -> TargetReport:
    """Show the disk (and what it ``will_hold``), have the user confirm (or ``yes``), then do
    ``--unmount``'s work. Returns the report of the disk as it is now (after unmounting)."""
    confirm_destruction(check.report, yes=yes, console=console, will_hold=will_hold)
    if check.pending_unmount is None:
        return check.report
    report = check_block_target(check.report.given, need_bytes=check.need_bytes, warn_above=check.warn_above, unmount=True)
    for action in report.actions:
        console.info(f"done: {action}")
    return report


__all__ = [
    "Destination",
    "DiskCheck",
    "WouldBeRefused",
    "check_disk",
    "check_image",
    "confirm",
    "destination",
    "dry_run",
    "hold",
    "refuse_missing_device",
]
