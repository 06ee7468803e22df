"""A fake-capacity card for tests: a FUSE file system with one file, ``card.img``, that reports
REPORTED bytes but keeps only REAL of them in BACKING: a byte written at offset X lands at
X % REAL, as on a counterfeit flash card whose controller ignores the high address bits. Run:

    python tests/fakecard.py MOUNTPOINT BACKING REPORTED REAL

It mounts in the foreground (unmount with `fusermount3 -u` or `umount`; SIGTERM unmounts too),
with direct_io, so the kernel caches nothing of the file: every read reaches this process.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import threading
import time

import mfusepy as fuse

NAME = "/card.img"


class FakeCard(fuse.Operations):
    use_ns = True
    def __init__(self, backing: str, reported: int, real: int) -> None:
        self.fd = os.open(backing, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self.fd, real)
        self.reported = reported
        self.real = real
        self.lock = threading.Lock()
        self.now = time.time()

    def getattr(self, path, fh=None):
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_mtime": self.now, "st_ctime": self.now, "st_atime": self.now}
        if path == NAME:
            return {"st_mode": stat.S_IFREG | 0o600, "st_nlink": 1, "st_size": self.reported, "st_mtime": self.now, "st_ctime": self.now, "st_atime": self.now}
        raise fuse.FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return [".", "..", NAME[1:]]

    def open(self, path, flags):
        if path != NAME:
            raise fuse.FuseOSError(errno.ENOENT)
        return 0

    def _pieces(self, offset: int, size: int):
        """(backing offset, length) pieces of [offset, offset + size), wrapped at REAL."""
        while size > 0:
            at = offset % self.real
            n = min(size, self.real - at)
            yield at, n
            offset += n
            size -= n

    def read(self, path, size, offset, fh):
        size = max(0, min(size, self.reported - offset))
        out = bytearray()
        with self.lock:
            for at, n in self._pieces(offset, size):
                out += os.pread(self.fd, n, at)
        return bytes(out)

    def write(self, path, data, offset, fh):
        if offset >= self.reported:
            raise fuse.FuseOSError(errno.ENOSPC)
        data = bytes(data[: self.reported - offset])
        done = 0
        with self.lock:
            for at, n in self._pieces(offset, len(data)):
                os.pwrite(self.fd, data[done : done + n], at)
                done += n
        return done

    def truncate(self, path, length, fh=None):
        if length != self.reported:
            raise fuse.FuseOSError(errno.EPERM)
        return 0

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        os.fsync(self.fd)
        return 0

    def release(self, path, fh):
        return 0


def main() -> None:
    mountpoint, backing, reported, real = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    fuse.FUSE(FakeCard(backing, reported, real), mountpoint, foreground=True, direct_io=True, nothreads=False)


if __name__ == "__main__":
    main()
