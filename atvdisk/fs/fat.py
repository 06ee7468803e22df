"""FAT32 with dosfstools and mtools: ``mkfs.fat --offset`` builds the filesystem at the
partition's sector, ``mmd``/``mcopy -i IMAGE@@OFFSET`` fill it; nothing is mounted.
"""

from __future__ import annotations

import math
import os
import tempfile

from atvdisk.errors import BuildError, InputError
from atvdisk.inputs.staging import check_stageable, materialise
from atvdisk.inputs.tree import FileTree, NodeKind
from atvdisk.layout.plan import PlannedPartition
from atvdisk.run import capture, run

FAT_SECTOR = 512  # mkfs.fat's logical sector, and the unit of its --offset


# VFAT long names (what mtools writes and Linux's vfat reads): no control characters and none of
# these; no trailing dot or space (VFAT drops them, so "a." would come back as "a"); not a DOS
# device name (mtools refuses them); compared without case.
_FAT_FORBIDDEN = set('"*/:<>?\\|') | {chr(c) for c in range(0x20)} | {"\x7f"}
_DOS_DEVICES = {"CON", "PRN", "AUX", "NUL", "CLOCK$", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def check_tree(p: PlannedPartition, tree: FileTree) -> None:
    """Refuse, before anything is written, what a FAT32 filesystem cannot hold as the tree says:
    symlinks, names VFAT forbids or changes, two names of one directory that FAT sees as one
    (it ignores case), names over 255 UTF-16 units. Raises InputError naming the entries and
    where they came from."""
    where = f"partition {p.number} ({p.name}, FAT32)"
    check_stageable(tree, where)
    seen: dict[tuple[str, str], str] = {}
    for path, node in tree:
        if not path:
            continue
        if node.kind is NodeKind.SYMLINK:
            raise InputError(f"{where}: FAT cannot hold the symlink /{path} (from {node.origin})", hint="put a copy of the file there instead, or use another filesystem")
        parent, _, name = path.rpartition("/")
        bad = sorted(set(name) & _FAT_FORBIDDEN)
        if bad:
            raise InputError(f"{where}: {'/' + path!r}: FAT names cannot contain {', '.join(repr(c) for c in bad)} (from {node.origin})", hint="rename it")
        if name.endswith((".", " ")):
            raise InputError(f"{where}: /{path}: FAT drops a name's trailing dots and spaces (from {node.origin})", hint="rename it")
        if name.split(".", 1)[0].upper() in _DOS_DEVICES:
            raise InputError(f"{where}: /{path}: {name!r} is a DOS device name, which FAT tools refuse (from {node.origin})", hint="rename it")
        if len(name.encode("utf-16-le", "surrogatepass")) > 510:
            raise InputError(f"{where}: /{path}: FAT names are at most 255 UTF-16 units (from {node.origin})", hint="shorten the name")
        key = (parent.casefold(), name.casefold())
        other = seen.get(key)
        if other is not None:
            raise InputError(
                f"{where}: /{other} and /{path} are the same name on FAT, which ignores case"
                f" (/{other} from {tree.nodes[other].origin}; /{path} from {node.origin})",
                hint="rename one of them, or use a filesystem that keeps case apart",
            )
        seen[key] = path


def make_fat32(device: str, p: PlannedPartition, tree: FileTree, *, workdir: str, epoch: int, hashes: dict[str, str] | None = None) -> None:
    fs = p.fs
    assert fs.cluster_size is not None
    if p.offset % FAT_SECTOR or p.size_bytes % 1024:
        raise BuildError(f"partition {p.name} is not on 512-byte and 1 KiB boundaries for mkfs.fat", hint="align the partition")
    command = [
        "mkfs.fat",
        "-F",
        "32",
        "-S",
        str(FAT_SECTOR),
        "-s",
        str(fs.cluster_size // FAT_SECTOR),
        "-h",
        str(p.start),  # hidden sectors: where the partition starts (the BPB records it)
        # mkfs.fat rounds the filesystem down to whole tracks: with a device's 63-sector tracks it
        # would leave the partition's last sectors out. 64 heads of up to 32 sectors per track,
        # as many as divide the partition (32 for the ATV's 34 MiB EFI partition).
        "-g",
        f"64/{math.gcd(p.size_bytes // FAT_SECTOR, 32)}",
        f"--offset={p.offset // FAT_SECTOR}",
        # --invariant first: it would otherwise overwrite the volume id given with -i.
        "--invariant",
        # The target is a whole disk that may still have partition nodes from its old table;
        # atvdisk has done its own safety checks and writes inside the new partition's range.
        "-I",
    ]
    if fs.uuid:
        command += ["-i", fs.uuid.replace("-", "")]
    if fs.label:
        command += ["-n", fs.label]
    command += [device, str(p.size_bytes // 1024)]
    run(command)
    entries = [(path, node) for path, node in tree if path]
    if not entries:
        return
    for path, node in entries:
        if node.kind is NodeKind.SYMLINK:
            raise BuildError(f"FAT cannot hold the symlink /{path} on {p.name}", hint="put a copy of the file there instead")
    image = f"{device}@@{p.offset}"
    env = {"MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0", "SOURCE_DATE_EPOCH": str(epoch)}
    with tempfile.TemporaryDirectory(prefix="atvdisk-fat-", dir=workdir) as tmp:
        staging = materialise(tree, tmp, hashes)
        dirs = [f"::/{path}" for path, node in entries if node.kind is NodeKind.DIR]
        if dirs:
            run(["mmd", "-i", image, *dirs], env=env)
        for path, node in entries:
            if node.kind is NodeKind.FILE:
                run(["mcopy", "-i", image, "-p", "-m", "-o", str(staging / path), f"::/{path}"], env=env)


def add_file(device: str, p: PlannedPartition, name: str, data: bytes, *, workdir: str, epoch: int) -> None:
    """Add one file at the root of partition ``p``'s FAT filesystem (already made), dated ``epoch``."""
    with tempfile.TemporaryDirectory(prefix="atvdisk-fat-", dir=workdir) as tmp:
        src = f"{tmp}/{name}"
        with open(src, "wb") as f:
            f.write(data)
        os.utime(src, (epoch, epoch))
        env = {"MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0", "SOURCE_DATE_EPOCH": str(epoch)}
        run(["mcopy", "-i", f"{device}@@{p.offset}", "-p", "-m", "-o", src, f"::/{name}"], env=env)


def read_file(device: str, offset: int, name: str, *, limit: int) -> bytes | None:
    """The bytes of the file ``name`` at the root of the FAT filesystem at ``offset``; None when
    it is not there. Raises BuildError when it is larger than ``limit`` bytes."""
    result = capture(["mtype", "-i", f"{device}@@{offset}", f"::/{name}"], limit=limit, env={"MTOOLS_SKIP_CHECK": "1"}, ok_codes=tuple(range(256)))
    if result is None:
        raise BuildError(f"{device}: /{name} on the FAT filesystem at byte {offset} is larger than {limit} bytes", hint="it is not a file atvdisk wrote")
    code, data, _ = result
    return data if code == 0 else None
