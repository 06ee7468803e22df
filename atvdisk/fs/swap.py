"""Linux swap: ``mkswap`` writes the signature page into a sparse scratch file of the partition's
size (mkswap has no offset option), and that one page is copied into the partition.
"""

from __future__ import annotations

import tempfile

from atvdisk.errors import BuildError
from atvdisk.fs.region import Region
from atvdisk.layout.plan import PlannedPartition
from atvdisk.run import run

PAGE = 4096  # the ATV is i386: swap pages are 4 KiB


def swap_header(p: PlannedPartition, *, workdir: str) -> bytes:
    """The first page of the swap area, made by mkswap."""
    with tempfile.NamedTemporaryFile(prefix="atvdisk-swap-", dir=workdir) as scratch:
        scratch.truncate(p.size_bytes)
        scratch.flush()
        command = ["mkswap", "-p", str(PAGE)]
        if p.fs.label:
            command += ["-L", p.fs.label]
        if p.fs.uuid:
            command += ["-U", p.fs.uuid]
        run(command + [scratch.name])
        scratch.seek(0)
        page = scratch.read(PAGE)
    if page[PAGE - 10 :] != b"SWAPSPACE2":
        raise BuildError("mkswap did not write a swap signature", hint="check util-linux's mkswap")
    return page


def write_swap(disk: Region, p: PlannedPartition, *, workdir: str) -> None:
    """Write the swap signature page at the start of partition ``p`` (``disk`` spans the disk)."""
    disk.write(p.offset, swap_header(p, workdir=workdir))
