"""How the build reaches its target: a path for the external tools and file descriptors for
atvdisk's own writes, from an image file or from a disk held by a
:class:`~atvdisk.target.blockdev.BlockDeviceSession` (exclusive opens, flush, partition re-read).
"""

from __future__ import annotations

import errno
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from atvdisk.target.blockdev import BlockDeviceError, BlockDeviceSession

log = logging.getLogger("atvdisk.build")


class DiskAccess(ABC):
    """How apply() reaches the target: a path for external tools and fds for its own writes."""

    path: str
    known_zero: bool  # the whole target reads as zeros (a new sparse image)
    is_block: bool

    @abstractmethod
    def own_writes(self) -> AbstractContextManager[int]:
        """A file descriptor for atvdisk's own writes (exclusive on block devices)."""

    def after_partition_table(self) -> None:  # noqa: B027 - a no-op by default (image files)
        """Make the OS see the new table (block devices)."""


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

    def after_partition_table(self) -> None:
        self.session.fsync()
        try:
            self.session.reread_partitions()
        except BlockDeviceError as e:
            # The disk is complete either way (verify reads it whole); the kernel's view may lag.
            if e.errno not in (errno.EINVAL, errno.EBUSY):
                raise
            log.warning("%s (%s)", e.message, e.hint)


def drop_cached(path: str) -> None:
    """Flush ``path`` (a disk or image) and drop its cached pages, so that what is read next
    comes from the medium, not from memory. Best effort: never raises."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError as e:
        log.info("could not drop the cache of %s: %s", path, e.strerror)
    finally:
        os.close(fd)
