"""A bounded writer over a byte region of an image file or block device.

:class:`Region` is the only way the HFS+ writer (and the build) puts bytes on a target. It
refuses, with :class:`~atvdisk.fs.hfsplus.errors.RegionError`, any write that falls outside
``[0, length)`` of the region or overlaps a range written (or claimed) before: a layout bug
then fails loudly instead of silently corrupting a neighbour.

Positions are relative to the region start (``offset`` bytes into the file or device).

* ``known_zero`` says whether the region is known to read as zeros already (a freshly created
  sparse image, or a hole). Callers use it to skip writing zeros: never-written areas of an
  image stay sparse. On a target that is not known to be zero (a used block device), areas
  that must read as zero have to be written explicitly (``write_zeros``).
* ``claim_zero(pos, n)`` records a range as done without writing it; allowed only when
  ``known_zero`` is true.
* ``copy_from(pos, src_fd, src_pos, n)`` streams from another file descriptor in large chunks,
  with ``os.copy_file_range`` where the kernel supports it, then ``os.sendfile``, then
  ``pread``/``pwrite`` through one reusable buffer (memory does not grow with ``n``).
* ``write_stream(pos, stream, n)`` copies exactly ``n`` bytes from a file-like object (a tar
  member, say) and raises if it ends early or holds more.
* Write-back starts early: every :data:`WRITEBACK_BYTES` written, the kernel is asked to start
  writing that range to the medium (``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which does not
  wait), so the final ``fsync`` finds little left to flush and the flushing overlaps the work.

Open with :meth:`Region.open` (a path) or the constructor (a file descriptor or binary file
object); use it as a context manager or call :meth:`close`.
"""

from __future__ import annotations

import bisect
import errno
import os
import stat
import threading
from typing import BinaryIO

from atvdisk.fs.hfsplus.errors import RegionError

CHUNK = 2 * 1024 * 1024  # a tar chunk (tarstream.CHUNK): larger buffers only cost memory, in every writing thread
_ZERO_CHUNK = bytes(1024 * 1024)
WRITEBACK_BYTES = 8 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h


def _load_sync_file_range():  # a ctypes function or None
    """libc's sync_file_range (Python's os module has none), or None where it is missing."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        f = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    f.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    f.restype = ctypes.c_int
    return f


_sync_file_range = _load_sync_file_range() if hasattr(os, "sched_getaffinity") else None  # Linux only


def region_reads_as_zero(fd: int, offset: int, length: int) -> bool:
    """True when ``[offset, offset+length)`` of a regular file is entirely a hole or past EOF.

    Uses ``SEEK_DATA``; any doubt (not a regular file, no SEEK_DATA support) answers False.
    """
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    if offset >= st.st_size or length == 0:
        return True
    try:
        data = os.lseek(fd, offset, os.SEEK_DATA)
    except OSError as e:
        if e.errno == errno.ENXIO:  # no data at or after offset
            return True
        return False
    return data >= offset + length


class Region:
    """A bounded, overlap-checked writer over ``[offset, offset+length)`` of a file or device."""

    def __init__(
        self,
        target: int | BinaryIO,
        offset: int,
        length: int,
        *,
        known_zero: bool,
        name: str | None = None,
        cancel: threading.Event | None = None,
        _owns_fd: bool = False,
    ) -> None:
        if offset < 0 or length < 0:
            raise RegionError(f"invalid region offset {offset} / length {length}")
        if isinstance(target, int):
            self._fd = target
        else:
            target.flush()
            self._fd = target.fileno()
        self.offset = offset
        self.length = length
        self.known_zero = known_zero
        self.name = name or f"fd {self._fd}"
        self._owns_fd = _owns_fd
        # Set by another thread (a build writing partitions in parallel failed or was interrupted):
        # the next write raises instead of going on.
        self._cancel = cancel
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._buf: bytearray | None = None
        self._cfr_ok = hasattr(os, "copy_file_range")
        self._sendfile_ok = hasattr(os, "sendfile")
        self.bytes_written = 0
        # Early write-back: the absolute byte range written since the last kick, and its size.
        self._wb_ok = _sync_file_range is not None
        self._wb_lo = self._wb_hi = 0
        self._wb_bytes = 0

    # -- opening / closing ------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        offset: int = 0,
        length: int | None = None,
        *,
        create: bool = False,
        known_zero: bool | None = None,
    ) -> Region:
        """Open ``path`` for writing the region.

        ``create=True`` creates a new sparse file of ``offset + length`` bytes (it must not
        exist) whose region is known to be zero. Otherwise the file or device must exist;
        ``length`` defaults to the rest of it, a regular file shorter than ``offset + length`` is
        extended (sparsely), and ``known_zero`` defaults to what ``SEEK_DATA`` can prove.
        """
        path = os.fspath(path)
        if create:
            if length is None:
                raise RegionError("a new image needs a length")
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise RegionError(f"cannot create {path}: {e.strerror}") from e
            try:
                os.ftruncate(fd, offset + length)
            except OSError as e:
                os.close(fd)
                raise RegionError(f"cannot size {path} to {offset + length} bytes: {e.strerror}") from e
            return cls(fd, offset, length, known_zero=True, name=path, _owns_fd=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise RegionError(f"cannot open {path} for writing: {e.strerror}") from e
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            st = os.fstat(fd)
            if length is None:
                length = size - offset
                if length <= 0:
                    raise RegionError(f"{path}: offset {offset} is at or past its end ({size} bytes)")
            if offset + length > size:
                if stat.S_ISREG(st.st_mode):
                    os.ftruncate(fd, offset + length)
                else:
                    raise RegionError(
                        f"{path}: region {offset}+{length} ends past the device end ({size} bytes)"
                    )
            if known_zero is None:
                known_zero = region_reads_as_zero(fd, offset, length)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, offset, length, known_zero=known_zero, name=path, _owns_fd=True)

    def close(self) -> None:
        if self._owns_fd and self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> Region:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        return self._fd

    def sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EROFS):
                raise RegionError(f"{self.name}: fsync failed: {e.strerror}") from e

    # -- bookkeeping ------------------------------------------------------------------------

    def _claim(self, pos: int, n: int) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise RegionError(f"{self.name}: writing stopped (another part of the build failed or was interrupted)")
        if n < 0 or pos < 0 or pos + n > self.length:
            raise RegionError(
                f"{self.name}: write of {n} bytes at {pos} is outside the region of {self.length} bytes",
                hint="this is a bug in the layout: please report it",
            )
        if n == 0:
            return
        end = pos + n
        starts, ends = self._starts, self._ends
        i = bisect.bisect_right(starts, pos)
        if i > 0 and ends[i - 1] > pos:
            raise RegionError(
                f"{self.name}: write [{pos}, {end}) overlaps an earlier write "
                f"[{starts[i - 1]}, {ends[i - 1]})",
                hint="this is a bug in the layout: please report it",
            )
        if i < len(starts) and starts[i] < end:
            raise RegionError(
                f"{self.name}: write [{pos}, {end}) overlaps an earlier write [{starts[i]}, {ends[i]})",
                hint="this is a bug in the layout: please report it",
            )
        merge_prev = i > 0 and ends[i - 1] == pos
        merge_next = i < len(starts) and starts[i] == end
        if merge_prev and merge_next:
            ends[i - 1] = ends[i]
            del starts[i]
            del ends[i]
        elif merge_prev:
            ends[i - 1] = end
        elif merge_next:
            starts[i] = pos
        else:
            starts.insert(i, pos)
            ends.insert(i, end)

    def written(self) -> list[tuple[int, int]]:
        """The merged ``(start, end)`` ranges written or claimed so far."""
        return list(zip(self._starts, self._ends))

    # -- writing ----------------------------------------------------------------------------

    def _pwrite_all(self, data: memoryview | bytes, abs_pos: int) -> None:
        mv = memoryview(data)
        while mv:
            try:
                n = os.pwrite(self._fd, mv, abs_pos)
            except OSError as e:
                raise RegionError(f"{self.name}: write at byte {abs_pos} failed: {e.strerror}") from e
            if n <= 0:
                raise RegionError(f"{self.name}: short write at byte {abs_pos}")
            self._written_at(abs_pos, n)
            mv = mv[n:]
            abs_pos += n
            self.bytes_written += n

    def _written_at(self, abs_pos: int, n: int) -> None:
        """Record ``n`` bytes written at ``abs_pos``; start their write-back once enough are pending."""
        if self._cancel is not None and self._cancel.is_set():
            raise RegionError(f"{self.name}: writing stopped (another part of the build failed or was interrupted)")
        if not self._wb_ok:
            return
        if self._wb_bytes:
            self._wb_lo = min(self._wb_lo, abs_pos)
            self._wb_hi = max(self._wb_hi, abs_pos + n)
        else:
            self._wb_lo, self._wb_hi = abs_pos, abs_pos + n
        self._wb_bytes += n
        if self._wb_bytes >= WRITEBACK_BYTES:
            self.start_writeback()

    def start_writeback(self) -> None:
        """Ask the kernel to start writing what was written since the last call (does not wait)."""
        if not self._wb_bytes or not self._wb_ok or _sync_file_range is None:
            return
        lo, hi = self._wb_lo, self._wb_hi
        self._wb_bytes = 0
        if _sync_file_range(self._fd, lo, hi - lo, _SYNC_FILE_RANGE_WRITE) != 0:
            self._wb_ok = False  # not supported here (a pipe, an old kernel): the fsync does it all

    def write(self, pos: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at region position ``pos``."""
        n = len(data)
        self._claim(pos, n)
        self._pwrite_all(data, self.offset + pos)

    def write_zeros(self, pos: int, n: int) -> None:
        """Write ``n`` zero bytes at ``pos`` (explicitly, even on a known-zero region)."""
        self._claim(pos, n)
        abs_pos = self.offset + pos
        while n:
            k = min(n, len(_ZERO_CHUNK))
            self._pwrite_all(memoryview(_ZERO_CHUNK)[:k], abs_pos)
            abs_pos += k
            n -= k

    def claim_zero(self, pos: int, n: int) -> None:
        """Record ``[pos, pos+n)`` as done without writing: it already reads as zero."""
        if not self.known_zero:
            raise RegionError(
                f"{self.name}: cannot leave [{pos}, {pos + n}) unwritten: region not known to be zero"
            )
        self._claim(pos, n)

    def zero_or_claim(self, pos: int, n: int) -> None:
        """Make ``[pos, pos+n)`` read as zero, writing only when the region is not known zero."""
        if self.known_zero:
            self.claim_zero(pos, n)
        else:
            self.write_zeros(pos, n)

    def _buffer(self) -> bytearray:
        if self._buf is None:
            self._buf = bytearray(CHUNK)
        return self._buf

    def copy_from(self, pos: int, src_fd: int, src_pos: int, n: int) -> None:
        """Copy ``n`` bytes from ``src_fd`` at ``src_pos`` to region position ``pos``.

        Raises :class:`RegionError` if the source ends early.
        """
        self._claim(pos, n)
        dst = self.offset + pos
        while n > 0:
            # 32 MiB per call, so that the write-back of each piece starts while the next is copied
            k = min(n, 4 * WRITEBACK_BYTES)
            done = self._copy_fast(src_fd, src_pos, dst, k)
            if done:
                self._written_at(dst, done)
            else:
                done = self._copy_slow(src_fd, src_pos, dst, k)  # its pwrites record themselves
            src_pos += done
            dst += done
            n -= done
            self.bytes_written += done

    def _copy_fast(self, src_fd: int, src_pos: int, dst: int, n: int) -> int:
        """Try the kernel copy paths; returns bytes copied (0: use the slow path)."""
        if self._cfr_ok:
            total = 0
            while total < n:
                try:
                    got = os.copy_file_range(src_fd, self._fd, n - total, src_pos + total, dst + total)
                except OSError as e:
                    if e.errno in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF):
                        self._cfr_ok = False
                        break
                    raise RegionError(f"{self.name}: copy to byte {dst + total} failed: {e.strerror}") from e
                if got == 0:
                    raise RegionError(
                        f"{self.name}: source ended early while copying to byte {dst + total}",
                    )
                total += got
            if total:
                return total
        if self._sendfile_ok:
            total = 0
            try:
                os.lseek(self._fd, dst, os.SEEK_SET)
                while total < n:
                    got = os.sendfile(self._fd, src_fd, src_pos + total, n - total)
                    if got == 0:
                        raise RegionError(
                            f"{self.name}: source ended early while copying to byte {dst + total}"
                        )
                    total += got
            except OSError as e:
                if e.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF) and total == 0:
                    self._sendfile_ok = False
                    return 0
                if total:
                    return total
                raise RegionError(f"{self.name}: copy to byte {dst} failed: {e.strerror}") from e
            return total
        return 0

    def _copy_slow(self, src_fd: int, src_pos: int, dst: int, n: int) -> int:
        buf = self._buffer()
        mv = memoryview(buf)
        total = 0
        while total < n:
            k = min(len(buf), n - total)
            try:
                got = os.preadv(src_fd, [mv[:k]], src_pos + total)
            except OSError as e:
                raise RegionError(f"{self.name}: reading the source failed: {e.strerror}") from e
            if got == 0:
                raise RegionError(f"{self.name}: source ended early while copying to byte {dst + total}")
            self._pwrite_all(mv[:got], dst + total)
            self.bytes_written -= got  # counted by copy_from
            total += got
        return total

    def write_stream(
        self, pos: int, stream: BinaryIO, n: int, *, exact: bool = True, skip_zero_chunks: bool = False
    ) -> None:
        """Copy ``n`` bytes from ``stream`` to ``pos``.

        Raises :class:`RegionError` when the stream ends before ``n`` bytes, or (``exact``) when
        it holds more. With ``skip_zero_chunks`` on a known-zero region, all-zero chunks are
        left unwritten (they already read as zero).
        """
        self._claim(pos, n)
        skip = skip_zero_chunks and self.known_zero
        dst = self.offset + pos
        remaining = n
        buf = self._buffer()
        mv = memoryview(buf)
        readinto = getattr(stream, "readinto", None)
        while remaining > 0:
            k = min(len(buf), remaining)
            if readinto is not None:
                got = readinto(mv[:k])
                if got is None:
                    raise RegionError(f"{self.name}: non-blocking stream returned no data")
                chunk = mv[:got]
            else:
                data = stream.read(k)
                got = len(data)
                chunk = memoryview(data)
            if got == 0:
                raise RegionError(
                    f"{self.name}: stream ended after {n - remaining} of {n} bytes",
                    hint="the source is shorter than declared",
                )
            if not (skip and _all_zero(chunk)):
                self._pwrite_all(chunk, dst)
            dst += got
            remaining -= got
        extra = stream.read(1) if exact else b""
        if extra:
            raise RegionError(
                f"{self.name}: stream holds more than the declared {n} bytes",
                hint="the source is longer than declared",
            )


def _all_zero(mv: memoryview) -> bool:
    """Whether every byte of ``mv`` is zero: its ends first (data is rarely zero there), then
    1 MiB at a time with bytes' memcmp (comparing memoryviews goes element by element, 30x slower)."""
    n = len(mv)
    if n == 0:
        return True
    if mv[0] or mv[n - 1]:
        return False
    step = len(_ZERO_CHUNK)
    for i in range(0, n, step):
        part = mv[i : i + step].tobytes()
        if part != (_ZERO_CHUNK if len(part) == step else _ZERO_CHUNK[: len(part)]):
            return False
    return True


class WritebackPump:
    """While an external tool writes a byte range of a file or disk (mke2fs -d), start the
    write-back of what it has written every ``interval`` seconds from a thread, as :class:`Region`
    does for atvdisk's own writes: the tool's final fsync then finds most of it on the medium.
    A hint only: nothing is waited for, and failures just stop the pump.

    ``with WritebackPump(path, offset, length): run(["mke2fs", ...])``
    """

    def __init__(self, path: str | os.PathLike[str], offset: int, length: int, *, interval: float = 0.05) -> None:
        self.path, self.offset, self.length, self.interval = os.fspath(path), offset, length, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd = -1

    def __enter__(self) -> WritebackPump:
        if _sync_file_range is None:
            return self
        try:
            # Not O_EXCL: the tool holds the disk exclusively, and this only reads its page cache.
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return self
        self._thread = threading.Thread(target=self._run, name="atvdisk-writeback", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        assert _sync_file_range is not None
        while not self._stop.wait(self.interval):
            if _sync_file_range(self._fd, self.offset, self.length, _SYNC_FILE_RANGE_WRITE) != 0:
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
