"""Writing to a block device safely: the udev lock, exclusive opens, flush, partition re-read,
and loop devices that are always detached.

One job: own a block device for the duration of a build.

- :class:`BlockDeviceSession` — ``with BlockDeviceSession("/dev/sdf") as dev:`` holds the udev
  BSD lock (``flock(LOCK_EX)`` on the whole disk, see systemd's BLOCK_DEVICE_LOCKING convention)
  for the whole build, so udev does not probe half-written data; ``dev.exclusive()`` gives an
  ``O_RDWR|O_EXCL`` fd for atvdisk's own writes (close it around mke2fs/mkfs.fat, which take
  their own O_EXCL and fail with EBUSY otherwise); ``dev.fsync()``; ``dev.reread_partitions()``.
  On exit: unlock, then ask udev to re-probe and settle (when udevadm is installed).
- :class:`LoopDevice` — ``with LoopDevice("disk.img") as loop:`` attaches with
  ``losetup --find --show --partscan``; detaches on every exit path (exceptions, Ctrl-C,
  SIGTERM/SIGHUP via :mod:`atvdisk.target.interrupt`).

Safety checks (system disk, mounts, ...) are :func:`atvdisk.target.checks.check_block_target`'s job and
must run first.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import stat
import struct
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

from atvdisk.errors import BuildError, TargetRefused, ToolError
from atvdisk.run import run
from atvdisk.target.interrupt import signals_deferred, terminate_raises
from atvdisk.target.sysblock import sysblock_of_node, system_disk_devnums

log = logging.getLogger("atvdisk.blockdev")

BLKRRPART = 0x125F
BLKGETSIZE64 = 0x80081272
BLKSSZGET = 0x1268

LOCK_TIMEOUT = 10.0  # seconds to wait for udev to release its shared lock
UDEV_CONTROL = Path("/run/udev/control")


class TargetBusy(TargetRefused):
    """The device is opened exclusively by someone else (mounted, LVM, another tool). Raised
    before anything was written."""


class BlockDeviceError(BuildError):
    """Opening, flushing or re-reading a block device failed during the build. ``errno`` set."""

    def __init__(
        self, message: str, *, errno_: int | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.errno = errno_


class BlockDeviceSession:
    """Own the whole-disk block device ``path`` for a build. See the module docstring.

    Attributes once entered: ``path`` (kernel node, e.g. /dev/sdf), ``size_bytes``,
    ``sector_size``, ``lock_fd`` (read-only fd holding the flock; usable for reads).
    Entering raises :class:`TargetBusy` if the disk is opened exclusively elsewhere or the lock
    is held for more than ``lock_timeout`` seconds, TargetRefused for a partition, the system
    disk (a last check: :func:`atvdisk.target.checks.check_block_target` must run first) or non-root.
    """

    def __init__(self, path: str, *, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.given = path
        self.path = path
        self.lock_timeout = lock_timeout
        self.lock_fd: int | None = None
        self.size_bytes = 0
        self.sector_size = 512
        self._excl_fd: int | None = None
        self._stack: ExitStack | None = None

    # -- entering/leaving --------------------------------------------------------------------

    def __enter__(self) -> Self:
        dev = sysblock_of_node(self.given)
        if dev.is_partition:
            raise TargetRefused(
                f"{self.given} is partition {dev.partition} of /dev/{dev.parent}",
                hint=f"give the whole disk /dev/{dev.parent}",
            )
        self.path = dev.devnode
        system = system_disk_devnums(include_swap=False).get(dev.devnum)
        if (
            system
        ):  # check_block_target refuses it first; this is the last line of defence
            raise TargetRefused(
                f"refusing {self.path}: it is a disk the running system uses ({'; '.join(system)})",
                hint="atvdisk never writes the system disk; choose another disk (see `atvdisk devices`)",
            )
        stack = ExitStack()
        stack.enter_context(terminate_raises())
        try:
            self.lock_fd = _open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            stack.callback(self._release)
            self._lock()
            # Prove nobody holds the disk exclusively (a mounted partition, LVM, another build).
            with self.exclusive():
                pass
            self.size_bytes = struct.unpack(
                "Q", fcntl.ioctl(self.lock_fd, BLKGETSIZE64, b"\0" * 8)
            )[0]
            self.sector_size = struct.unpack(
                "i", fcntl.ioctl(self.lock_fd, BLKSSZGET, b"\0" * 4)
            )[0]
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        log.info(
            "holding %s (udev lock, %d bytes, %d-byte sectors)",
            self.path,
            self.size_bytes,
            self.sector_size,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None
        stack, self._stack = self._stack, None
        stack.close()

    def _lock(self) -> None:
        assert self.lock_fd is not None
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TargetBusy(
                        f"{self.path} is locked by another program (udev or another partitioning tool) for more than {self.lock_timeout:.0f} s",
                        hint="wait for it to finish (`udevadm settle`), then try again",
                    ) from None
                time.sleep(0.1)

    def _release(self) -> None:
        """Close every fd and unlock (signals held meanwhile), then let udev see the new
        contents (interruptible: a hung udev must not trap Ctrl-C). Raises nothing but a signal."""
        with signals_deferred():
            if self._excl_fd is not None:
                _close(self._excl_fd)
                self._excl_fd = None
            if self.lock_fd is not None:
                try:
                    fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
                except OSError:
                    pass
                _close(self.lock_fd)
                self.lock_fd = None
        _udev_settle(self.path)

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def exclusive(self) -> Iterator[int]:
        """An fd opened ``O_RDWR|O_EXCL|O_CLOEXEC`` on the disk for atvdisk's own writes; closed
        when the block ends. Nested use yields the same fd. Do not run mke2fs/mkfs.fat/mkswap
        on the disk inside this block: they open it O_EXCL themselves."""
        if self._excl_fd is not None:
            yield self._excl_fd
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_EXCL | os.O_CLOEXEC)
        except OSError as e:
            if e.errno == errno.EBUSY:
                raise TargetBusy(
                    f"{self.path} is in use (a mounted partition, LVM/RAID, or another program has it open exclusively)",
                    hint=f"see `atvdisk devices` and `lsblk {self.path}`; unmount it or pass --unmount",
                ) from None
            raise _open_error(self.path, e) from None
        self._excl_fd = fd
        try:
            yield fd
        finally:
            self._excl_fd = None
            _close(fd)

    def fsync(self) -> None:
        """Flush everything written to the disk (by atvdisk or the tools) to the device."""
        assert self.lock_fd is not None, "session not entered"
        try:
            os.fsync(self._excl_fd if self._excl_fd is not None else self.lock_fd)
        except OSError as e:
            raise BlockDeviceError(
                f"flushing {self.path} failed: {e.strerror}",
                errno_=e.errno,
                hint="the device may be failing or was unplugged",
            ) from e

    def reread_partitions(self) -> None:
        """Make the kernel re-read the partition table (BLKRRPART). Raises BlockDeviceError when
        a partition is busy (EBUSY) or the device cannot have partitions (EINVAL: a loop device
        attached without --partscan). The disk's contents are written either way."""
        with self.exclusive() as fd:
            for attempt in range(5):
                try:
                    fcntl.ioctl(fd, BLKRRPART)
                    log.info("kernel re-read the partition table of %s", self.path)
                    return
                except OSError as e:
                    if e.errno == errno.EBUSY and attempt < 4:
                        time.sleep(0.2)
                        continue
                    if e.errno == errno.EBUSY:
                        raise BlockDeviceError(
                            f"the kernel could not re-read the partition table of {self.path}: a partition is in use",
                            errno_=e.errno,
                            hint="the disk is written; unplug and replug it (or reboot) before using its partitions",
                        ) from e
                    if e.errno == errno.EINVAL:
                        raise BlockDeviceError(
                            f"{self.path} does not support partitions (a loop device attached without --partscan?)",
                            errno_=e.errno,
                            hint=f"the disk is written; `partx -a {self.path}` shows the partitions",
                        ) from e
                    raise BlockDeviceError(
                        f"re-reading the partition table of {self.path} failed: {e.strerror}",
                        errno_=e.errno,
                    ) from e


def _open(path: str, flags: int) -> int:
    try:
        return os.open(path, flags)
    except OSError as e:
        raise _open_error(path, e) from None


def _open_error(path: str, e: OSError) -> TargetRefused:
    if e.errno in (errno.EACCES, errno.EPERM):
        return TargetRefused(
            f"{path}: permission denied", hint="run as root (sudo) to write a disk"
        )
    if e.errno == errno.EROFS:
        return TargetRefused(
            f"{path} is read-only",
            hint="check the write-protect switch of the card or adapter",
        )
    return TargetRefused(f"{path}: cannot open: {e.strerror}")


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _udev_settle(path: str) -> None:
    """Ask udev to re-probe ``path`` (if udevd runs) and wait for its queue. Never raises."""
    if (
        shutil.which("udevadm")
        or shutil.which("udevadm", path="/usr/sbin:/sbin:/usr/bin:/bin")
    ) is None:
        return
    try:
        if UDEV_CONTROL.exists():
            run(["udevadm", "trigger", "--action=change", path])
        run(["udevadm", "settle", "--timeout=60"])
    except ToolError as e:
        log.warning("udevadm: %s", e)


# --------------------------------------------------------------------------------------------
# Loop devices


class LoopDevice:
    """Attach ``image_path`` to a free loop device for the duration of a ``with`` block.

    ``with LoopDevice("disk.img", sector_size=512) as loop_path:`` yields ``/dev/loopN``
    (attached with ``--partscan``, and ``--sector-size`` when not 512). Detached on every exit
    path: normal exit, exceptions, Ctrl-C, and SIGTERM/SIGHUP (turned into
    :class:`atvdisk.target.interrupt.Terminated` while active). Needs root: TargetRefused otherwise.
    A failed detach raises BlockDeviceError on a normal exit, and is only logged when another
    exception is already on its way.
    """

    def __init__(
        self,
        image_path: str | os.PathLike[str],
        sector_size: int = 512,
        *,
        partscan: bool = True,
        read_only: bool = False,
    ) -> None:
        self.image_path = os.fspath(image_path)
        self.sector_size = sector_size
        self.partscan = partscan
        self.read_only = read_only
        self.path: str | None = None
        self._stack: ExitStack | None = None

    def __enter__(self) -> str:
        if os.geteuid() != 0:
            raise TargetRefused(
                "attaching a loop device needs root",
                hint="run with sudo, or build the image file without --loop",
            )
        try:
            st = os.stat(self.image_path)
        except OSError as e:
            raise TargetRefused(f"{self.image_path}: {e.strerror}") from e
        if not stat.S_ISREG(st.st_mode):
            raise TargetRefused(
                f"{self.image_path} is not a regular file",
                hint="--loop attaches an image file",
            )
        cmd = ["losetup", "--find", "--show"]
        if self.partscan:
            cmd.append("--partscan")
        if self.read_only:
            cmd.append("--read-only")
        if self.sector_size != 512:
            cmd += ["--sector-size", str(self.sector_size)]
        cmd.append(self.image_path)
        stack = ExitStack()
        stack.enter_context(terminate_raises())
        try:
            with (
                signals_deferred()
            ):  # nothing may come between attaching and knowing the name
                try:
                    result = run(cmd)
                except ToolError as e:
                    raise TargetRefused(
                        f"could not attach {self.image_path} to a loop device: {e.stderr.strip()}",
                        hint="is the loop module loaded (`modprobe loop`) and a /dev/loop-control present?",
                    ) from e
                self.path = result.stdout.strip()
                stack.callback(self._detach)
            self._check_backing(st)
        except BaseException:
            stack.close()  # a signal delivered as the block ended still detaches
            raise
        self._stack = stack
        log.info("attached %s to %s", self.image_path, self.path)
        return self.path

    def _check_backing(self, st: os.stat_result) -> None:
        dev = sysblock_of_node(self.path or "")
        backing = dev.loop_backing_file
        try:
            bst = os.stat(backing) if backing else None
        except OSError:
            bst = None
        if bst is None or (bst.st_dev, bst.st_ino) != (st.st_dev, st.st_ino):
            raise BuildError(
                f"{self.path} is not backed by {self.image_path} (backing file: {backing})",
                hint="another program attached it at the same time; try again",
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None
        stack, self._stack = self._stack, None
        self._exc_pending = exc is not None
        stack.close()

    def _detach(self) -> None:
        path = self.path
        if path is None:
            return
        with signals_deferred():
            try:
                run(["losetup", "--detach", path])
                self.path = None
                log.info("detached %s", path)
            except ToolError as e:
                if getattr(self, "_exc_pending", True):
                    log.error("could not detach %s: %s", path, e)
                    return
                raise BlockDeviceError(
                    f"could not detach {path}: {e.stderr.strip()}",
                    hint=f"detach it yourself: losetup -d {path}",
                ) from e


def loop_backing_file(path: str) -> str | None:
    """The backing file of the loop device ``path``, None when it is not attached."""
    dev = sysblock_of_node(path)
    return dev.loop_backing_file
