"""A disk or image opened to be read, never written: the source of ``extract`` and ``backup``.

One job: :func:`open_source` opens a whole disk or an image file ``O_RDONLY`` (there is no
write path: the descriptor cannot write, whatever state the filesystems on it are in), says how
large it is and in which sector size, and warns when a partition of the disk is mounted (the
copy may then not be consistent). A partition node is refused naming its disk.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from atvdisk.errors import TargetRefused
from atvdisk.target.probe import TargetKind, probe_size
from atvdisk.target.sysblock import read_mounts, sysblock_of_node, whole_disk


@dataclass
class SourceDisk:
    """``with open_source("/dev/sdg") as src:`` — ``src.fd`` is a read-only descriptor."""

    path: str
    kind: TargetKind
    size_bytes: int
    sector_size: int
    warnings: tuple[str, ...] = ()
    fd: int = -1

    def __enter__(self) -> Self:
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except PermissionError:
            raise TargetRefused(f"{self.path}: permission denied", hint="run as root (sudo) to read a disk") from None
        except OSError as e:
            raise TargetRefused(f"{self.path}: cannot open: {e.strerror}") from e
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_source(path: str) -> SourceDisk:
    """Describe ``path`` (a whole disk or an image file) for reading; enter it to open it."""
    info = probe_size(path)
    warnings: list[str] = []
    if info.kind is TargetKind.BLOCK:
        dev = sysblock_of_node(path)
        if dev.is_partition:
            disk = whole_disk(dev)
            raise TargetRefused(
                f"{path} is partition {dev.partition} of {disk.devnode}",
                hint=f"give the whole disk: {disk.devnode} (with --partition {dev.partition} for that one)",
            )
        mounted = []
        for m in read_mounts():
            try:
                st = os.stat(m.source)
            except OSError:
                continue
            if stat.S_ISBLK(st.st_mode):
                node = sysblock_of_node(m.source)
                if (whole_disk(node) if node.is_partition else node).devnum == dev.devnum:
                    mounted.append(f"{m.source} at {m.mountpoint}")
        if mounted:
            warnings.append(f"{path} has mounted filesystems ({', '.join(mounted)}): what is read may change meanwhile")
    return SourceDisk(info.path, info.kind, info.size_bytes, info.sector_size, tuple(warnings))
