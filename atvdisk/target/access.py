"""How the build reaches its target: a path for the external tools and file descriptors for
atvdisk's own writes, from an image file or from a disk held by a
:class:`~atvdisk.target.blockdev.BlockDeviceSession` (exclusive opens, flush, partition re-read).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from atvdisk.target.blockdev import BlockDeviceError, BlockDeviceSession
from atvdisk.target.capacity import drop_block_cache, probe_capacity

log = logging.getLogger("atvdisk.build")


class DiskAccess(ABC):
    """How apply() reaches the target: a path for external tools and fds for its own writes."""

    path: str
    known_zero: bool  # the whole target reads as zeros (a new sparse image)
    is_block: bool

    @abstractmethod
    def own_writes(self) -> AbstractContextManager[int]:
        """A file descriptor for atvdisk's own writes (exclusive on block devices)."""

    def after_partition_table(self, partitions: dict[int, tuple[int, int]] | None = None) -> None:  # noqa: B027 - a no-op by default (image files)
        """Make the OS see the new table (block devices): ``partitions`` (number -> (start, size)
        in bytes) are the ones it should then show."""

    def check_keeps_writes(self) -> None:  # noqa: B027 - a no-op by default (image files)
        """Before anything else is written: check that the disk keeps what is written to it
        (block devices: :func:`~atvdisk.target.capacity.probe_capacity`, against fake-capacity
        cards). Raises DeviceForgets."""


class ImageAccess(DiskAccess):
    def __init__(self, path: str | os.PathLike[str], *, known_zero: bool) -> None:
        self.path = os.fspath(path)
        self.known_zero = known_zero
        self.is_block = False

    @contextmanager
    def own_writes(self) -> Iterator[int]:
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        try:
            yield fd
            os.fsync(fd)
        finally:
            os.close(fd)


class BlockAccess(DiskAccess):
    def __init__(self, session: BlockDeviceSession) -> None:
        self.session = session
        self.path = os.fspath(session.path)
        self.known_zero = False
        self.is_block = True

    @contextmanager
    def own_writes(self) -> Iterator[int]:
        with self.session.exclusive() as fd:
            yield fd
            os.fsync(fd)

    def check_keeps_writes(self) -> None:
        with self.own_writes() as fd:
            probe_capacity(fd, self.path, self.session.size_bytes)

    def after_partition_table(self, partitions: dict[int, tuple[int, int]] | None = None) -> None:
        self.session.fsync()
        reread_error = None
        try:
            self.session.reread_partitions()
        except BlockDeviceError as e:
            # The disk is complete either way (verify reads it whole); the kernel's view may lag.
            if e.errno not in (errno.EINVAL, errno.EBUSY):
                raise
            reread_error = e
        if partitions is None:
            if reread_error is not None:
                log.warning("%s (%s)", reread_error.message, reread_error.hint)
            return
        # The kernel may have re-read nothing (no GPT parser, a loop device without partscan):
        # check what it shows, and add the partitions with BLKPG (as partx -a does) if needed.
        problems = self.session.show_partitions(partitions)
        if problems:
            why = f" ({reread_error.message})" if reread_error is not None else ""
            log.warning(
                "the disk is written, but the kernel does not show its new partitions: %s%s; unplug and replug %s"
                " (or run `partx -u %s`) before using them",
                "; ".join(problems), why, self.path, self.path,
            )
        else:
            log.info("the kernel shows the %d partitions of %s", len(partitions), self.path)


def drop_cached(path: str) -> None:
    """Flush ``path`` (a disk or image) and drop its cached pages (BLKFLSBUF on a disk), so
    that what is read next comes from the medium, not from memory. Best effort: never raises."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if stat.S_ISBLK(os.fstat(fd).st_mode):
            drop_block_cache(fd)
        else:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError as e:
        log.info("could not drop the cache of %s: %s", path, e.strerror)
    finally:
        os.close(fd)
