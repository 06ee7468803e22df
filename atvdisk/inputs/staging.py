"""Materialise a :class:`~atvdisk.inputs.tree.FileTree` as a directory, for tools that read one
(``mke2fs -d``, ``mcopy``). Data is copied with ``copy_file_range`` where the kernel can (a
reflink on filesystems that share blocks), never hard-linked: setting modes and times on a hard
link would change the user's own files. Owners are applied inside the target filesystem afterwards
(see :mod:`atvdisk.fs.ext4`), so this works without root.
"""

from __future__ import annotations

import errno
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from atvdisk.inputs.feed import copy_exact, feed
from atvdisk.inputs.tree import FileTree, NodeKind, Source


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


def materialise(tree: FileTree, parent: str | Path, hashes: dict[str, str] | None = None) -> Path:
    """Create a directory below ``parent`` holding ``tree``; return its path. ``hashes`` gets the
    sha256 of every file's data as it was copied (see :func:`atvdisk.inputs.feed.feed`)."""
    root = Path(tempfile.mkdtemp(prefix="atvdisk-staging-", dir=parent))
    for path, node in tree:
        if not path:
            continue
        target = root / path
        if node.kind is NodeKind.DIR:
            target.mkdir()
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

    feed(tree, sink, hashes=hashes)
    # Modes and times last, children before parents (creating an entry changes a directory's mtime).
    for path, node in sorted(tree, key=lambda pn: -(pn[0].count("/") + 1) if pn[0] else 0):
        target = root / path if path else root
        if node.kind is not NodeKind.SYMLINK:
            os.chmod(target, node.mode)
        os.utime(target, (node.mtime, node.mtime), follow_symlinks=False)
    return root
