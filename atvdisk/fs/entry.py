"""The record verification compares: one filesystem entry, as read from a disk or as its sources
say it should be. Readers of every filesystem (HFS+, ext4, FAT) produce these; owning it here,
below both the readers and :mod:`atvdisk.verify`, keeps either from importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from atvdisk.inputs.tree import NodeKind


@dataclass(frozen=True)
class Entry:
    """A file system entry as found on the disk or expected from the sources."""

    path: str
    kind: NodeKind
    size: int = 0
    mode: int | None = None  # permission bits; None where the filesystem has none (FAT)
    uid: int | None = None
    gid: int | None = None
    sha256: str | None = None
    target: str | None = None
