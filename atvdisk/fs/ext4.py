"""ext4 with e2fsprogs: ``mke2fs -d`` at the partition's byte offset, then ``debugfs`` to give
every inode the owner and times the tree says (so that a build without root still produces
root-owned files, and images are reproducible: ``mke2fs -d`` copies ctime from the staging copy).
"""

from __future__ import annotations

import hashlib
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from atvdisk.errors import BuildError, InputError
from atvdisk.fs.region import WritebackPump
from atvdisk.inputs.staging import check_stageable, materialise
from atvdisk.inputs.tree import FileTree, HostFile
from atvdisk.layout.plan import PlannedPartition
from atvdisk.run import capture, run

# At most this many inodes: mke2fs's default (one per 16 KiB) up to 64 GiB, capped above. 134
# million inodes on a 2 TiB disk would be 32 GiB of inode tables that an ATV's media never fills,
# and e2fsck -fn (verification) walks every one of them: 2.4 s of CPU at 2 TiB, 0.25 s with the
# cap. Four million files is still far more than OpenELEC's storage holds (videos, thumbnails,
# add-ons).
MAX_INODES = 1 << 22
INODE_RATIO = 16384  # mke2fs.conf's default inode_ratio


def inode_count(size_bytes: int) -> int | None:
    """The ``-N`` for a partition of ``size_bytes``: None (mke2fs's default) up to the cap."""
    return MAX_INODES if size_bytes // INODE_RATIO > MAX_INODES else None


LINK_MIN = 1 << 20  # host files this large are hard-linked into the staging directory


def _hash_host_files(tree: FileTree, paths: list[str]) -> dict[str, str]:
    """sha256 of host files (read once more, from the page cache: mke2fs is reading them too)."""
    out = {}
    for path in paths:
        src = tree.nodes[path].source
        assert isinstance(src, HostFile)
        h = hashlib.sha256()
        with open(src.path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        out[path] = h.hexdigest()
    return out


def check_tree(p: PlannedPartition, tree: FileTree) -> None:
    """Refuse, before anything is written, what this ext4 writer cannot put in the tree: names
    over 255 bytes, paths the staging directory cannot hold, symlink targets over 4095 bytes, and
    names with a line break (owners and times are set with debugfs, which reads its commands line
    by line). Raises InputError naming the entry and where it came from."""
    where = f"partition {p.number} ({p.name}, ext4)"
    check_stageable(tree, where)
    for path, node in tree:
        if "\n" in path or "\r" in path:
            raise InputError(f"{where}: /{path!r}: a name with a line break (from {node.origin})", hint="rename it: atvdisk sets ext4 owners with debugfs, which reads line by line")


def debugfs_quote(path: str) -> str:
    if "\n" in path or "\r" in path:
        raise BuildError(f"cannot set the owner of /{path} on ext4: its name contains a line break", hint="rename the file")
    return '"' + path.replace('"', '""') + '"'


def make_ext4(device: str, p: PlannedPartition, tree: FileTree, *, workdir: str, epoch: int, hashes: dict[str, str] | None = None, prezeroed: bool) -> None:
    """Create the ext4 filesystem of partition ``p`` inside ``device`` (image or disk) holding ``tree``.

    ``prezeroed``: the region is known to read as zeros (a new sparse image), so mke2fs need not
    zero the journal and inode tables (keeps images sparse and fast).
    """
    fs = p.fs
    extended = [f"offset={p.offset}", "nodiscard", "root_owner=0:0"]
    if fs.hash_seed:
        extended.append(f"hash_seed={fs.hash_seed}")
    if prezeroed:
        extended.append("assume_storage_prezeroed=1")
    command = ["mke2fs", "-q", "-F", "-t", "ext4", "-b", str(fs.block_size), "-E", ",".join(extended)]
    if fs.label:
        command += ["-L", fs.label]
    if fs.uuid:
        command += ["-U", fs.uuid]
    if not fs.journal:
        command += ["-O", "^has_journal"]
    if fs.reserved_percent is not None:
        command += ["-m", str(fs.reserved_percent)]
    inodes = inode_count(p.size_bytes)
    if inodes is not None:
        command += ["-N", str(inodes)]
    with tempfile.TemporaryDirectory(prefix="atvdisk-ext4-", dir=workdir) as tmp:
        # Large host files are hard-linked into the staging directory, not copied (mke2fs -d
        # reads them where they are); they are hashed alongside mke2fs, on the other core.
        linked: list[str] = []
        staging = materialise(tree, tmp, hashes, link_min=LINK_MIN, linked=linked)
        command += ["-d", str(staging), device, f"{p.size_bytes // 1024}k"]
        with ThreadPoolExecutor(max_workers=1) as pool:
            hashing = pool.submit(_hash_host_files, tree, linked) if hashes is not None and linked else None
            with WritebackPump(device, p.offset, p.size_bytes):
                run(command, env={"E2FSPROGS_FAKE_TIME": str(epoch)}, hint="see the message above; the partition may be too small for its contents")
            if hashing is not None:
                assert hashes is not None
                hashes.update(hashing.result())
        commands = []
        for path, node in tree:
            q = debugfs_quote("/" + path)
            commands += [
                f"sif {q} uid {node.uid}",
                f"sif {q} gid {node.gid}",
                f"sif {q} ctime @{node.mtime}",
                f"sif {q} atime @{node.mtime}",
                f"sif {q} crtime @{epoch}",
            ]
        for path in linked:  # staged as links to the user's files: their mode and mtime as they are
            node = tree.nodes[path]
            q = debugfs_quote("/" + path)
            commands += [f"sif {q} mode 0{0o100000 | node.mode:o}", f"sif {q} mtime @{node.mtime}"]
        script = Path(tmp) / "owners.debugfs"
        script.write_text("\n".join(commands) + "\n")
        result = run(["debugfs", "-w", "-f", str(script), f"{device}?offset={p.offset}"])
        errors = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("debugfs ")]
        if errors:
            raise BuildError(f"debugfs could not set owners and times on {p.name}: {errors[0]}", hint="run with --debug for the full output")


def add_file(device: str, p: PlannedPartition, name: str, data: bytes, *, workdir: str, epoch: int) -> None:
    """Add one file at the root of partition ``p``'s ext4 filesystem (already made): owned by
    root, mode 0644, every time ``epoch`` (reproducible images)."""
    with tempfile.TemporaryDirectory(prefix="atvdisk-ext4-", dir=workdir) as tmp:
        src = Path(tmp) / "data"
        src.write_bytes(data)
        q = debugfs_quote("/" + name)
        script = Path(tmp) / "add.debugfs"
        script.write_text(
            "\n".join(
                [f"write {debugfs_quote(str(src))} {debugfs_quote(name)}", f"sif {q} uid 0", f"sif {q} gid 0", f"sif {q} mode 0100644"]
                + [f"sif {q} {t} @{epoch}" for t in ("mtime", "ctime", "atime", "crtime")]
            )
            + "\n"
        )
        result = run(["debugfs", "-w", "-f", str(script), f"{device}?offset={p.offset}"], env={"E2FSPROGS_FAKE_TIME": str(epoch)})
        errors = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("debugfs ")]
        if errors:
            raise BuildError(f"debugfs could not add /{name} to {p.name}: {errors[0]}", hint="run with --debug for the full output")


def read_file(device: str, offset: int, name: str, *, limit: int) -> bytes | None:
    """The bytes of the regular file ``name`` at the root of the ext4 filesystem at ``offset``;
    None when it is not there. Raises BuildError when it is larger than ``limit`` bytes."""
    spec = f"{device}?offset={offset}"
    q = debugfs_quote("/" + name)
    stat = run(["debugfs", "-R", f"stat {q}", spec], ok_codes=tuple(range(256)))
    if "Type: regular" not in stat.stdout:
        return None
    result = capture(["debugfs", "-R", f"cat {q}", spec], limit=limit, ok_codes=tuple(range(256)))
    if result is None:
        raise BuildError(f"{device}: /{name} on the ext4 filesystem at byte {offset} is larger than {limit} bytes", hint="it is not a file atvdisk wrote")
    return result[1]
