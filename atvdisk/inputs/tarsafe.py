"""Tarballs, read safely and in a stream.

:func:`scan` reads a whole archive once, before the target is touched: it refuses truncated or
corrupt archives and any member that could escape the partition or make no sense there (absolute
paths, ``..``, links pointing outside, device nodes, FIFOs), naming the member. It adds the
members to a :class:`~atvdisk.inputs.tree.FileTree` without keeping their data.

:func:`stream` reads the archive a second time, after every block of the target is laid out, and
hands each wanted member's data to a callback in chunks: no member is ever held in memory whole.

Inflate once: given a :class:`Spooler`, :func:`scan` keeps the decompressed archive of a
compressed tarball as a plain tar in a nameless temporary file (a :class:`Spool`: written
beside the decompression, on the other core), and :func:`stream` reads that instead of
decompressing the tarball again (and so writes exactly the bytes that were checked, even if the
tarball changes meanwhile). The spool only exists once the whole archive passed the scan; one that
would leave too little free space is given up on the way and the tarball read again as before.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from atvdisk.errors import InputError
from atvdisk.inputs.tarstream import Member, TarStream, TarStreamError, is_compressed
from atvdisk.inputs.tree import ArchiveMember, FileTree, Spool, check_link_inside

SPOOL_RESERVE = 1 << 30  # free bytes a spool never takes (the image being built may need them)


class Spooler:
    """Where the spools of one build go (see the module docstring): files in ``directory``
    (default: TMPDIR) that have no name from the moment they are made (O_TMPFILE, or unlinked at
    once), read back through ``/proc/self/fd``: nothing is left behind, even when the process is
    killed (SIGKILL, a power cut). Spools take at most half of the free space of ``directory``'s
    filesystem beyond :data:`SPOOL_RESERVE` (``budget`` overrides it): an image built on the same
    filesystem keeps room. :meth:`close` frees them all (the build's writing is then done)."""

    def __init__(self, directory: str | None = None, *, budget: int | None = None) -> None:
        self.directory = directory or tempfile.gettempdir()
        if budget is None:
            st = os.statvfs(self.directory)
            budget = max(0, (st.f_bavail * st.f_frsize - SPOOL_RESERVE) // 2)
        self.left = budget
        self._writers: list[_SpoolWriter] = []

    def start(self, archive: str) -> _SpoolWriter | None:
        """A spool for ``archive``, or None where none can be made (no /proc: read it again)."""
        if not os.path.isdir("/proc/self/fd"):
            return None
        try:
            fd = _nameless_file(self.directory)
        except OSError:
            return None
        writer = _SpoolWriter(self, Spool(f"/proc/self/fd/{fd}"), fd)
        self._writers.append(writer)
        return writer

    @property
    def open_spools(self) -> int:
        """How many spools hold storage now."""
        return sum(1 for w in self._writers if w.fd is not None)

    def close(self) -> None:
        for writer in self._writers:
            writer.release()
        self._writers.clear()

    def __enter__(self) -> Spooler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _nameless_file(directory: str) -> int:
    """A new read-write file in ``directory`` that no name points to."""
    try:
        return os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except (AttributeError, OSError):  # no O_TMPFILE here, or not on this filesystem
        fd, path = tempfile.mkstemp(prefix="atvdisk-spool-", dir=directory)
        os.unlink(path)
        return fd


class _SpoolWriter:
    """Writes one archive's decompressed bytes into its spool while scan() reads them."""

    def __init__(self, spooler: Spooler, spool: Spool, fd: int) -> None:
        self._spooler = spooler
        self.spool = spool
        self.fd: int | None = fd
        self._writing = True

    def write(self, chunk: bytes) -> None:
        if not self._writing or self.fd is None:
            return
        if len(chunk) > self._spooler.left:
            self.abandon()  # too large for the room it may take: the tarball is read again instead
            return
        try:
            view = memoryview(chunk)
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError:  # full, quota: read the tarball again instead
            self.abandon()
            return
        self._spooler.left -= len(chunk)

    def finish(self) -> None:
        """The scan read the whole archive and found nothing wrong: the spool may be used (its
        descriptor stays open: it is the spool's only hold on its data)."""
        if self._writing and self.fd is not None:
            self._writing = False
            self.spool.ready = True

    def abandon(self) -> None:
        self._writing = False
        self.release()

    def release(self) -> None:
        self.spool.ready = False
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@dataclass(frozen=True)
class ScanResult:
    members: int
    files: int
    data_bytes: int


def _compressed(path: str) -> bool:
    try:
        return is_compressed(path)
    except OSError:
        return False  # _open_stream says what is wrong with it


def _open_stream(path: str, *, readahead: bool = False, tee: Callable[[bytes], object] | None = None) -> TarStream:
    try:
        return TarStream(path, readahead=readahead, tee=tee)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", hint="check the path of the tarball") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}", hint="check the file") from None


PATH_LIMIT = 4095  # bytes: Linux's PATH_MAX less its NUL; no file system of the ATV holds longer


def _member_path(tar_path: str, member: Member) -> str:
    name = member.name
    if any("\udc80" <= c <= "\udcff" for c in name):
        raise InputError(f"{tar_path}: member {name!r} has a name that is not valid UTF-8", hint="repack the archive with UTF-8 names")
    if "\0" in name:
        raise InputError(f"{tar_path}: member {name!r} has a NUL in its name", hint="repack the archive")
    if len(name.encode()) > PATH_LIMIT:
        raise InputError(f"{tar_path}: member {name[:60]!r}... has a {len(name.encode())}-byte name; paths are at most {PATH_LIMIT} bytes", hint="repack the archive")
    if name.startswith("/"):
        raise InputError(f"{tar_path}: member {name!r} has an absolute path", hint="refusing to extract outside the partition")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InputError(f"{tar_path}: member {name!r} contains '..'", hint="refusing to extract outside the partition")
    return "/".join(parts)


def scan(
    path: str,
    tree: FileTree,
    *,
    dest: str = "",
    owner: tuple[int, int] = (0, 0),
    origin: str | None = None,
    spooler: Spooler | None = None,
) -> ScanResult:
    """Check every member of the archive at ``path`` and add it to ``tree`` under ``dest``.

    Owners are set to ``owner`` (root by default: the ATV runs as root and the original procedure
    chowned everything); permission bits are kept without setuid, setgid and sticky bits.
    ``spooler``: keep a compressed archive's decompressed bytes for :func:`stream`.
    """
    origin = origin or path
    prefix = dest.strip("/")
    members = files = data = 0
    seen: dict[str, tuple[int, int, str]] = {}  # member path -> (index, size, name) of regular files
    writer = spooler.start(path) if spooler is not None and _compressed(path) else None  # None: read it again
    spool = writer.spool if writer is not None else None
    try:
        # Spooling: decompressed in a thread, written to the spool in this one, beside it.
        tar = _open_stream(path, readahead=writer is not None, tee=writer.write if writer is not None else None)
    except BaseException:
        if writer is not None:
            writer.abandon()
        raise
    ok = False
    try:
        for index, m in enumerate(_iterate(tar, path)):
            members += 1
            rel = _member_path(path, m)
            if not rel:
                if m.isdir():
                    continue  # "./" itself
                raise InputError(f"{origin}: member {m.name!r} is a {_kind(m)} with an empty name (or the root directory's)", hint="repack the archive")
            if m.name.endswith("/") and not m.isdir():
                raise InputError(f"{origin}: member {m.name!r} is a {_kind(m)} whose name ends in '/'", hint="repack the archive")
            where = f"{prefix}/{rel}" if prefix else rel
            mode = m.mode & 0o777
            uid, gid = owner
            what = f"{origin}: member {m.name!r}"
            if m.isreg():
                tree.add_file(where, ArchiveMember(path, m.name, index, spool), m.size, mode=mode, uid=uid, gid=gid, mtime=int(m.mtime), origin=what)
                seen[rel] = (index, m.size, m.name)
                files += 1
                data += m.size
            elif m.isdir():
                tree.add_dir(where, mode=mode | 0o700, uid=uid, gid=gid, mtime=int(m.mtime), origin=what)
            elif m.issym():
                if "\0" in m.linkname:
                    raise InputError(f"{what} is a symlink with a NUL in its target", hint="repack the archive")
                check_link_inside(where, m.linkname, what)
                tree.add_symlink(where, m.linkname, uid=uid, gid=gid, mtime=int(m.mtime), origin=what)
            elif m.islnk():
                link = m.linkname
                parts = [x for x in link.split("/") if x not in ("", ".")]
                if link.startswith("/") or ".." in parts:
                    raise InputError(f"{what} is a hard link to {link!r}, outside the partition", hint="refusing links that point outside the archive")
                target = "/".join(parts)
                if target not in seen:
                    raise InputError(
                        f"{what} is a hard link to {m.linkname!r}, which is not an earlier file of this archive (outside the partition?)",
                        hint="refusing links that point outside the archive",
                    )
                # Hard links become independent copies of the same data (documented in README).
                tindex, tsize, tname = seen[target]
                tree.add_file(where, ArchiveMember(path, tname, tindex, spool), tsize, mode=mode, uid=uid, gid=gid, mtime=int(m.mtime), origin=what)
                seen[rel] = (tindex, tsize, tname)
                files += 1
                data += tsize
            elif m.ischr() or m.isblk():
                raise InputError(f"{what} is a device node", hint="device nodes do not belong on the ATV's partitions; repack the archive without it")
            elif m.isfifo():
                raise InputError(f"{what} is a FIFO", hint="repack the archive without it")
            else:
                raise InputError(f"{what} has an unsupported type {m.type!r}", hint="repack the archive without it")
        ok = True
    finally:
        tar.close()
        if writer is not None:
            writer.finish() if ok else writer.abandon()
    return ScanResult(members, files, data)


def _kind(m: Member) -> str:
    if m.isreg():
        return "file"
    if m.issym():
        return "symlink"
    if m.islnk():
        return "hard link"
    return f"member of type {m.type!r}"


def _iterate(tar: TarStream, path: str) -> Iterator[Member]:
    """Members in order, reading (and so checking) every byte of the archive."""
    it = iter(tar)
    while True:
        try:
            member = next(it)
        except StopIteration:
            return
        except TarStreamError as e:
            if not _looks_like_tar(path):
                raise InputError(f"{path}: not a readable tar archive ({e})", hint="is it really a .tar, .tar.gz, .tar.bz2 or .tar.xz?") from None
            raise InputError(f"{path}: the archive is truncated or corrupt ({e})", hint="download or copy the tarball again") from None
        yield member


def _looks_like_tar(path: str) -> bool:
    """Whether the file starts like a compressed stream or a tar header (for the message)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return True
    return len(head) == 512 and head[257:262] in (b"ustar", b"\0\0\0\0\0")


def stream(path: str, wanted: dict[int, list[str]], sink: Callable[[list[str], BinaryIO, int], None], *, spool: Spool | None = None) -> None:
    """Read the archive again and call ``sink(tree_paths, fileobj, size)`` for each wanted member.

    ``wanted`` maps member indexes to the tree paths they supply (several paths when a hard link
    became a copy). The sink must read exactly ``size`` bytes from ``fileobj``. ``spool``: the
    archive's spool from :func:`scan`, read instead of the archive when it is ready (messages
    still name the archive).
    """
    if not wanted:
        return
    remaining = set(wanted)
    tar = _open_stream(spool.path if spool is not None and spool.ready else path, readahead=True)
    try:
        for index, m in enumerate(_iterate(tar, path)):
            if index in remaining:
                if not m.isreg():
                    raise InputError(f"{path}: member {m.name!r} changed since it was checked", hint="do not modify input files during a build")
                try:
                    sink(wanted[index], tar, m.size)  # type: ignore[arg-type] - TarStream reads like a file
                except TarStreamError as e:
                    raise InputError(f"{path}: the archive is truncated or corrupt ({e})", hint="download or copy the tarball again") from None
                remaining.discard(index)
                if not remaining:
                    break
    finally:
        tar.close()
    if remaining:
        raise InputError(f"{path}: the archive changed since it was checked", hint="do not modify input files during a build")
