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
                raise held_exclusively(self.path) from None
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

    def show_partitions(self, expected: dict[int, tuple[int, int]]) -> list[str]:
        """After the table is written: check that the kernel shows exactly the ``expected``
        partitions (number -> (start, size) in bytes), adding them with BLKPG when it does not
        (a kernel without a GPT parser, a loop device without partscan). Returns what is still
        wrong, for the user (empty when all is well)."""
        with self.exclusive() as fd:
            # First: a loop device without partscan gets it (its rescan also drops partitions
            # left over from before, which could look just right), so detaching drops ours.
            _enable_loop_partscan(fd, self.path)
            if kernel_partitions(self.path) == expected:
                return []
            problems = add_kernel_partitions(fd, self.path, expected)
        if not problems:
            log.info("the kernel did not read the new partition table of %s; its partitions were added with BLKPG", self.path)
        return problems

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


# --------------------------------------------------------------------------------------------
# Does the kernel show the partitions just written?

BLKPG = 0x1269
BLKPG_ADD_PARTITION = 1
BLKPG_DEL_PARTITION = 2
# struct blkpg_partition: long long start, length (bytes); int pno; char devname[64], volname[64];
# padded to 152 bytes. struct blkpg_ioctl_arg: int op, flags, datalen; void *data.
_BLKPG_PARTITION = struct.Struct("=qqi64s64s4x")
_BLKPG_ARG = struct.Struct("@iiiP")


def kernel_partitions(path: str) -> dict[int, tuple[int, int]]:
    """The partitions the kernel shows for the disk ``path``: number -> (start, size) in bytes."""
    dev = sysblock_of_node(path)
    out: dict[int, tuple[int, int]] = {}
    try:
        children = list(dev.sysdir.iterdir())
    except OSError:
        return out
    for child in children:
        try:
            number = int((child / "partition").read_text())
            start = int((child / "start").read_text()) * 512  # sysfs counts 512-byte units
            size = int((child / "size").read_text()) * 512
        except (OSError, ValueError):
            continue
        out[number] = (start, size)
    return out


def _blkpg(fd: int, op: int, number: int, start: int = 0, length: int = 0) -> None:
    import ctypes

    data = ctypes.create_string_buffer(_BLKPG_PARTITION.pack(start, length, number, b"", b""), _BLKPG_PARTITION.size)
    fcntl.ioctl(fd, BLKPG, _BLKPG_ARG.pack(op, 0, _BLKPG_PARTITION.size, ctypes.addressof(data)))


LOOP_GET_STATUS64 = 0x4C05


def _enable_loop_partscan(fd: int, path: str) -> bool:
    """A loop device attached without --partscan keeps partitions added with BLKPG after it is
    detached, where they would describe the next image attached to it: turn partscan on first
    (LOOP_SET_STATUS64), so that detaching drops them. True when it was turned on now."""
    dev = sysblock_of_node(path)
    if dev.attr("loop/partscan") != "0":
        return False
    try:
        info = bytearray(_LOOP_INFO64.size)
        fcntl.ioctl(fd, LOOP_GET_STATUS64, info)
        fields = list(_LOOP_INFO64.unpack(bytes(info)))
        fields[8] |= LO_FLAGS_PARTSCAN  # lo_flags
        fcntl.ioctl(fd, LOOP_SET_STATUS64, _LOOP_INFO64.pack(*fields))
    except OSError as e:
        log.info("could not turn on partition scanning of %s: %s", path, e.strerror)
        return False
    log.info("turned on partition scanning of the loop device %s", path)
    return True


def add_kernel_partitions(fd: int, path: str, expected: dict[int, tuple[int, int]]) -> list[str]:
    """Make the kernel's partitions of ``path`` those of ``expected`` (number -> (start, size) in
    bytes) with BLKPG, as ``partx --update`` does: stale ones deleted, missing ones added. For
    kernels that did not parse the new table (no GPT parser, a loop device without partscan).
    Returns what could not be done (empty: the kernel now shows exactly ``expected``)."""
    problems: list[str] = []
    for number, geometry in sorted(kernel_partitions(path).items()):
        if expected.get(number) != geometry:
            try:
                _blkpg(fd, BLKPG_DEL_PARTITION, number)
            except OSError as e:
                problems.append(f"old partition {number} could not be removed ({e.strerror})")
    shown = kernel_partitions(path)
    for number, (start, length) in sorted(expected.items()):
        if shown.get(number) == (start, length):
            continue
        try:
            _blkpg(fd, BLKPG_ADD_PARTITION, number, start, length)
        except OSError as e:
            problems.append(f"partition {number} could not be added ({e.strerror})")
    shown = kernel_partitions(path)
    missing = [n for n, g in sorted(expected.items()) if shown.get(n) != g]
    if missing and not problems:
        problems.append("partition(s) " + ", ".join(map(str, missing)) + " are not shown")
    return problems


# --------------------------------------------------------------------------------------------
# One atvdisk at a time per disk


LOCK_DIRS = ("/run/lock/atvdisk", "/run/atvdisk")


class AtvdiskLock:
    """``with AtvdiskLock("/dev/sdf"):`` -- this process is the only atvdisk writing that disk.

    A lock file per device number (so /dev/sdf and its /dev/disk/by-id links are one disk) in
    /run/lock/atvdisk, held with ``flock(LOCK_EX | LOCK_NB)`` for the whole command and holding
    the owner's pid. A second atvdisk is refused at once, before it checks its inputs, with
    :class:`TargetBusy` "in use by another atvdisk (pid N)" -- it does not queue behind the
    first and then rebuild over it. The kernel drops the lock when its holder exits, however
    it exits (SIGKILL included), so no stale lock is ever left behind.
    """

    def __init__(self, path: str) -> None:
        st = os.stat(path)
        self.path = path
        self.devnum = (os.major(st.st_rdev), os.minor(st.st_rdev))
        self.fd: int | None = None

    @property
    def name(self) -> str:
        return f"block-{self.devnum[0]}-{self.devnum[1]}.lock"

    def holder(self) -> int | None:
        """The pid of the atvdisk holding this disk's lock, None when nobody does (or we do)."""
        if self.fd is not None:
            return None
        for directory in LOCK_DIRS:
            try:
                fd = os.open(os.path.join(directory, self.name), os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    continue
                except BlockingIOError:
                    return _pid_in(fd)
            finally:
                os.close(fd)
        return None

    def __enter__(self) -> Self:
        last_error: OSError | None = None
        for directory in LOCK_DIRS:
            try:
                os.makedirs(directory, mode=0o755, exist_ok=True)
                fd = os.open(os.path.join(directory, self.name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                last_error = e
                continue
            if not _flock_exclusive(fd):
                pid = _pid_in(fd)
                os.close(fd)
                raise TargetBusy(
                    f"{self.path} is in use by another atvdisk (pid {pid if pid is not None else 'unknown'})",
                    hint="wait for it to finish; two builds on one disk would write over each other",
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self.fd = fd
            return self
        assert last_error is not None
        raise _open_error(os.path.join(LOCK_DIRS[0], self.name), last_error)

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            _close(self.fd)  # closing drops the flock
            self.fd = None


# A lock that stays taken this long is held, not probed: holder() (another atvdisk's checks) and
# flock(1) probes take it shared for an instant, and an atvdisk that started then must not be
# refused as "in use" (naming the previous holder's stale pid), as it was.
LOCK_PROBE_GRACE = 1.0  # seconds


def _flock_exclusive(fd: int) -> bool:
    """Take ``fd``'s flock exclusively; False if somebody holds it beyond LOCK_PROBE_GRACE."""
    deadline = time.monotonic() + LOCK_PROBE_GRACE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def held_exclusively(path: str) -> TargetBusy:
    """The refusal when opening ``path`` with O_EXCL says EBUSY."""
    return TargetBusy(
        f"{path} is in use (a mounted partition, LVM/RAID, or another program has it open exclusively)",
        hint=f"see `atvdisk devices` and `lsblk {path}`; unmount it or pass --unmount",
    )


def _pid_in(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


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


LOOP_CONTROL = "/dev/loop-control"
LOOP_CTL_GET_FREE = 0x4C82
LOOP_SET_FD = 0x4C00
LOOP_CLR_FD = 0x4C01
LOOP_SET_STATUS64 = 0x4C04
LOOP_SET_BLOCK_SIZE = 0x4C09
LOOP_CONFIGURE = 0x4C0A
LO_FLAGS_READ_ONLY = 1
LO_FLAGS_AUTOCLEAR = 4
LO_FLAGS_PARTSCAN = 8
# struct loop_info64: 5 u64 (device, inode, rdevice, offset, sizelimit), 4 u32 (number,
# encrypt_type, encrypt_key_size, flags), file_name[64], crypt_name[64], encrypt_key[32], 2 u64.
_LOOP_INFO64 = struct.Struct("=5Q4I64s64s32s2Q")
# struct loop_config: u32 fd, u32 block_size, struct loop_info64, u64 __reserved[8].
_LOOP_CONFIG = struct.Struct(f"=II{_LOOP_INFO64.size}s8Q")


def _loop_info(image_path: str, flags: int) -> bytes:
    name = os.fsencode(image_path)[:63]
    return _LOOP_INFO64.pack(0, 0, 0, 0, 0, 0, 0, 0, flags, name, b"", b"", 0, 0)


class LoopDevice:
    """Attach ``image_path`` to a free loop device for the duration of a ``with`` block.

    ``with LoopDevice("disk.img", sector_size=512) as loop_path:`` yields ``/dev/loopN``. It is
    attached with the kernel's ioctls (LOOP_CONFIGURE, or LOOP_SET_FD on kernels before 5.8) and
    ``LO_FLAGS_AUTOCLEAR``: this object holds a descriptor on the device for the whole block, and
    the kernel detaches the device when the last descriptor closes -- also when atvdisk is killed
    with SIGKILL, which nothing can catch. ``partscan`` sets ``LO_FLAGS_PARTSCAN`` (losetup's
    --partscan). Detached at once on every other exit path (LOOP_CLR_FD, as ``losetup -d``): normal
    exit, exceptions, Ctrl-C, SIGTERM/SIGHUP (turned into
    :class:`atvdisk.target.interrupt.Terminated` while active). Needs root: TargetRefused otherwise.
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
        self.fd: int | None = None  # held open: the device stays attached while it is
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
        stack = ExitStack()
        stack.enter_context(terminate_raises())
        try:
            with signals_deferred():  # nothing may come between attaching and knowing the name
                self.path, self.fd = self._attach()
                stack.callback(self._detach)
            self._check_backing(st)
        except BaseException:
            stack.close()  # a signal delivered as the block ended still detaches
            raise
        self._stack = stack
        log.info("attached %s to %s (autoclear)", self.image_path, self.path)
        return self.path

    def _attach(self) -> tuple[str, int]:
        flags = LO_FLAGS_AUTOCLEAR | (LO_FLAGS_PARTSCAN if self.partscan else 0) | (LO_FLAGS_READ_ONLY if self.read_only else 0)
        mode = os.O_RDONLY if self.read_only else os.O_RDWR
        try:
            control = os.open(LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise TargetRefused(
                f"cannot open {LOOP_CONTROL}: {e.strerror}",
                hint="is the loop module loaded (`modprobe loop`)?",
            ) from None
        try:
            backing = os.open(self.image_path, mode | os.O_CLOEXEC)
        except OSError as e:
            os.close(control)
            raise TargetRefused(f"{self.image_path}: {e.strerror}") from None
        try:
            for _ in range(20):  # another program may take the free device between the two calls
                number = fcntl.ioctl(control, LOOP_CTL_GET_FREE)
                path = f"/dev/loop{number}"
                fd = os.open(path, mode | os.O_CLOEXEC)
                try:
                    self._configure(fd, backing, flags)
                except OSError as e:
                    os.close(fd)
                    if e.errno == errno.EBUSY:
                        continue
                    raise TargetRefused(f"could not attach {self.image_path} to {path}: {e.strerror}") from None
                return path, fd
            raise TargetRefused(f"could not attach {self.image_path}: every free loop device was taken meanwhile", hint="try again")
        finally:
            os.close(backing)
            os.close(control)

    def _configure(self, fd: int, backing: int, flags: int) -> None:
        info = _loop_info(self.image_path, flags)
        try:
            fcntl.ioctl(fd, LOOP_CONFIGURE, _LOOP_CONFIG.pack(backing, self.sector_size, info, *([0] * 8)))
            return
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOTTY):  # kernels before 5.8: no LOOP_CONFIGURE
                raise
        fcntl.ioctl(fd, LOOP_SET_FD, backing)
        try:
            fcntl.ioctl(fd, LOOP_SET_STATUS64, info)
            if self.sector_size != 512:
                fcntl.ioctl(fd, LOOP_SET_BLOCK_SIZE, self.sector_size)
        except OSError:
            fcntl.ioctl(fd, LOOP_CLR_FD)
            raise

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
        stack.close()

    def _detach(self) -> None:
        """LOOP_CLR_FD (detaches now, or when the last other user -- udev probing it -- closes it),
        then close our descriptor. Never raises: autoclear detaches it in any case."""
        path, fd = self.path, self.fd
        if fd is None:
            return
        with signals_deferred():
            try:
                fcntl.ioctl(fd, LOOP_CLR_FD)
            except OSError as e:
                if e.errno != errno.ENXIO:  # already detached
                    log.warning("detaching %s: %s (the kernel detaches it when its last user closes it)", path, e.strerror)
            _close(fd)
            self.fd = None
            self.path = None
            log.info("detached %s", path)


def loop_backing_file(path: str) -> str | None:
    """The backing file of the loop device ``path``, None when it is not attached."""
    dev = sysblock_of_node(path)
    return dev.loop_backing_file
