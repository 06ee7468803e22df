"""Materialise a :class:`~atvdisk.inputs.tree.FileTree` as a directory, for tools that read one
(``mke2fs -d``, ``mcopy``). Data is copied with ``copy_file_range`` where the kernel can (a
reflink on filesystems that share blocks). With ``link_min``, large host files are hard-linked
instead of copied (no second copy of a video in the page cache): such a link is left exactly as
it is, never chmod'ed or touched (that would change the user's own file), so the tool that reads
the directory must set their modes and times itself (:mod:`atvdisk.fs.ext4` does, with debugfs),
and their data is not hashed here (the caller is told which, to hash them alongside the tool).
Owners are applied inside the target filesystem afterwards, so this works without root.
"""

from __future__ import annotations

import errno
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from atvdisk.errors import InputError
from atvdisk.inputs.feed import copy_exact, feed
from atvdisk.inputs.tree import FileTree, HostFile, NodeKind, Source

NAME_MAX = 255  # bytes of one name on the staging filesystem (and on ext4)
PATH_MAX = 4096  # bytes of a path the kernel takes, with its NUL
SYMLINK_MAX = 4095  # bytes of a symlink's target
# The staging directory's own path: $TMPDIR/atvdisk-work-XXXXXXXX/atvdisk-ext4-XXXXXXXX/atvdisk-staging-XXXXXXXX/
_STAGING_SUFFIX = len("/atvdisk-work-XXXXXXXX/atvdisk-ext4-XXXXXXXX/atvdisk-staging-XXXXXXXX/")


def staging_path_limit() -> int:
    """The longest tree path :func:`materialise` can create below the build's work directory."""
    return PATH_MAX - 1 - len(os.fsencode(os.path.realpath(tempfile.gettempdir()))) - _STAGING_SUFFIX


def check_stageable(tree: FileTree, where: str) -> None:
    """Refuse (InputError, before anything is written) what :func:`materialise` cannot create on
    the host for a tool that reads a directory (mke2fs -d, mcopy): a name over NAME_MAX bytes, a
    path longer than the staging directory leaves room for, a symlink target over 4095 bytes."""
    limit = staging_path_limit()
    for path, node in tree:
        if not path:
            continue
        raw = path.encode("utf-8", "surrogateescape")
        name = raw.rpartition(b"/")[2]
        if len(name) > NAME_MAX:
            raise InputError(f"{where}: /{path[:80]}...: a name of {len(name)} bytes (the most is {NAME_MAX}), from {node.origin}", hint="shorten the name")
        if len(raw) > limit:
            raise InputError(
                f"{where}: /{path[:80]}...: a path of {len(raw)} bytes; atvdisk stages this filesystem's files under"
                f" {tempfile.gettempdir()}, which leaves room for {limit} (from {node.origin})",
                hint="shorten the path, or set TMPDIR to a shorter directory",
            )
        if node.kind is NodeKind.SYMLINK and node.target is not None and "\0" in node.target:
            raise InputError(f"{where}: symlink /{path} has a NUL in its target, from {node.origin}", hint="fix the link")
        if node.kind is NodeKind.SYMLINK and node.target is not None and len(node.target.encode("utf-8", "surrogateescape")) > SYMLINK_MAX:
            raise InputError(f"{where}: symlink /{path} has a target of {len(node.target.encode('utf-8', 'surrogateescape'))} bytes (the most is {SYMLINK_MAX}), from {node.origin}", hint="shorten the link")


def copy_into_fd(src: BinaryIO, dst: int, size: int, what: str) -> None:
    """Copy exactly ``size`` bytes: copy_file_range when ``src`` is a real file, else read/write."""
    try:
        src_fd = src.fileno()
        start = src.tell()
    except (OSError, AttributeError, io.UnsupportedOperation):
        src_fd = None
    left = size
    if src_fd is not None:
        try:
            while left:
                n = os.copy_file_range(src_fd, dst, min(left, 1 << 30), start + size - left)
                if n == 0:
                    break
                left -= n
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF):
                raise
        src.seek(start + size - left)
    if left:
        copy_exact(src, left, lambda b: _write_all(dst, b), what)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def materialise(tree: FileTree, parent: str | Path, hashes: dict[str, str] | None = None, *, link_min: int | None = None, linked: list[str] | None = None) -> Path:
    """Create a directory below ``parent`` holding ``tree``; return its path. ``hashes`` gets the
    sha256 of every file's data as it was copied (see :func:`atvdisk.inputs.feed.feed`).

    ``link_min``: hard-link host files of at least this many bytes where the filesystem allows
    (each host file once: a second path to the same file is copied, so the tool never sees two
    names of one inode); their tree paths are appended to ``linked`` and they are neither hashed
    nor given the tree's mode and times."""
    root = Path(tempfile.mkdtemp(prefix="atvdisk-staging-", dir=parent))
    done: set[str] = set()
    if link_min is not None:
        seen: set[tuple[int, int]] = set()
        for path, node in tree.files():
            src = node.source
            if not isinstance(src, HostFile) or node.size < link_min:
                continue
            try:
                st = os.stat(src.path)
            except OSError:
                continue  # feed() below names the problem
            if (st.st_dev, st.st_ino) in seen or st.st_nlink > 1 or st.st_size != node.size:
                continue  # already linked, or linked by the user: copy instead
            try:
                if os.listxattr(src.path):
                    continue  # a link would carry the user's extended attributes along
            except OSError:
                continue
            seen.add((st.st_dev, st.st_ino))
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src.path, target)
            except OSError:
                continue  # another filesystem, no permission: copy it
            done.add(path)
            if linked is not None:
                linked.append(path)
    for path, node in tree:
        if not path:
            continue
        target = root / path
        if node.kind is NodeKind.DIR:
            target.mkdir(exist_ok=True)
        elif node.kind is NodeKind.SYMLINK:
            assert node.target is not None
            os.symlink(node.target, target)

    def sink(paths: list[str], source: Source, f: BinaryIO, size: int) -> None:
        first = root / paths[0]
        fd = os.open(first, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            copy_into_fd(f, fd, size, paths[0])
        finally:
            os.close(fd)
        for other in paths[1:]:
            with open(first, "rb") as src:
                fd = os.open(root / other, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    copy_into_fd(src, fd, size, other)
                finally:
                    os.close(fd)

    feed(tree, sink, hashes=hashes, skip=done)
    # Modes and times last, children before parents (creating an entry changes a directory's mtime).
    for path, node in sorted(tree, key=lambda pn: -(pn[0].count("/") + 1) if pn[0] else 0):
        if path in done:
            continue  # a hard link to the user's file: left alone
        target = root / path if path else root
        if node.kind is not NodeKind.SYMLINK:
            os.chmod(target, node.mode)
        os.utime(target, (node.mtime, node.mtime), follow_symlinks=False)
    return root
