"""From a planned partition's ``contents`` and the user's inputs to a :class:`FileTree`.

Everything that can be wrong with the inputs is found here, before the target is touched: a
missing tarball or file (naming the option that would provide it), unsafe tarball members, a
``remove`` of a path nothing put there.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

from atvdisk.bootscript import BootScript
from atvdisk.errors import InputError
from atvdisk.inputs import tarsafe
from atvdisk.inputs.payload import OPTION_FOR, Inputs
from atvdisk.inputs.tree import FileTree, HostFile, Inline
from atvdisk.layout.plan import Plan, PlannedPartition
from atvdisk.layout.schema import ContentKind, ContentSpec

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class PartitionContents:
    partition: PlannedPartition
    tree: FileTree
    bootscript_path: str | None  # where the generated boot script went, if here
    complete: bool = True  # False: some inputs were not given (verify without them)


def build_trees(plan: Plan, inputs: Inputs, bootscript: BootScript | None, *, epoch: int, skipped: list[str] | None = None) -> dict[int, PartitionContents]:
    """The file tree of every partition that holds files, keyed by partition number.

    With ``skipped`` (a list), entries whose input was not given are left out and described in
    that list instead of raising (``atvdisk verify`` checks what it can); the partition is then
    marked incomplete.
    """
    result = {}
    for p in plan.partitions:
        if not p.fs.kind.holds_files:
            continue
        tree = FileTree(default_mtime=epoch)
        script_path = None
        complete = True
        for i, c in enumerate(p.contents, 1):
            where = f"{p.name} contents[{i}] ({c.kind})"
            try:
                applied = _apply(tree, c, inputs, bootscript, where)
            except MissingInput as e:
                if skipped is None:
                    raise
                skipped.append(f"partition {p.number} ({p.name}): {c.kind} {c.source} (give {e.option} to check it)")
                complete = False
                continue
            if applied and c.kind is ContentKind.BOOTSCRIPT:
                script_path = c.path
        result[p.number] = PartitionContents(p, tree, script_path, complete)
    return result


class MissingInput(InputError):
    """A content entry needs an input (--openelec, --restore, --recovery) that was not given."""

    def __init__(self, message: str, *, option: str, hint: str) -> None:
        self.option = option
        super().__init__(message, hint=hint)


def _resolve_source(c: ContentSpec, inputs: Inputs, where: str) -> str | None:
    """The host path a ``source`` names, or None when an optional input was not given."""
    assert c.source is not None
    missing = []

    def sub(m: re.Match[str]) -> str:
        value = inputs.path_for(m.group(1))
        if value is None:
            missing.append(m.group(1))
            return ""
        return value

    path = _PLACEHOLDER.sub(sub, c.source)
    if missing:
        if c.optional:
            return None
        name = missing[0]
        option = OPTION_FOR.get(name, f"{{{name}}}")
        raise MissingInput(f"{where}: needs {option} (the layout's source {c.source!r})", option=option, hint=f"give {option} PATH")
    return path


def _apply(tree: FileTree, c: ContentSpec, inputs: Inputs, bootscript: BootScript | None, where: str) -> bool:
    uid, gid = c.owner
    if c.kind is ContentKind.TEXT:
        data = (c.text or "").encode()
        tree.add_file(c.path, Inline(data), len(data), mode=c.mode if c.mode is not None else 0o644, uid=uid, gid=gid, origin=where)
        return True
    if c.kind is ContentKind.DIR:
        tree.add_dir(c.path, mode=c.mode if c.mode is not None else 0o755, uid=uid, gid=gid, origin=where)
        return True
    if c.kind is ContentKind.SYMLINK:
        assert c.target is not None
        tree.add_symlink(c.path, c.target, uid=uid, gid=gid, origin=where)
        return True
    if c.kind is ContentKind.REMOVE:
        tree.remove(c.path, missing_ok=c.optional, origin=where)
        return True
    if c.kind is ContentKind.BOOTSCRIPT:
        if bootscript is None:
            raise InputError(f"{where}: the layout has no [boot] table to generate a boot script from", hint="add [boot]")
        data = bootscript.text.encode()
        tree.add_file(c.path, Inline(data), len(data), mode=c.mode if c.mode is not None else 0o755, uid=uid, gid=gid, origin=where)
        return True

    # Sources from the host.
    if c.source and c.source.startswith("{openelec}/") and inputs.openelec is not None:
        name = c.source[len("{openelec}/") :]
        f = inputs.openelec.files.get(name)
        if f is None:
            if c.optional:
                return False
            raise InputError(f"{where}: the OpenELEC release {inputs.openelec.path} has no {name}", hint="check --openelec")
        tree.add_file(c.path, f.source, f.size, mode=c.mode if c.mode is not None else 0o644, uid=uid, gid=gid, origin=where)
        return True
    path = _resolve_source(c, inputs, where)
    if path is None:
        return False
    if c.kind is ContentKind.TARBALL:
        if not os.path.isfile(path):
            raise InputError(f"{where}: {path}: no such file", hint="check the tarball's path")
        tarsafe.scan(path, tree, dest=c.path, owner=c.owner, origin=path)
        return True
    if c.kind is ContentKind.FILE:
        try:
            st = os.stat(path)
        except OSError:
            if c.optional:
                return False
            raise InputError(f"{where}: {path}: no such file", hint="check the path") from None
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{where}: {path} is not a regular file", hint="give a file")
        check_readable(path, where)
        tree.add_file(c.path, HostFile(path), st.st_size, mode=c.mode if c.mode is not None else st.st_mode & 0o777, uid=uid, gid=gid, mtime=int(st.st_mtime), origin=where)
        return True
    if c.kind is ContentKind.DIRECTORY:
        if not os.path.isdir(path):
            if c.optional:
                return False
            raise InputError(f"{where}: {path}: no such directory", hint="check the path")
        add_host_directory(tree, path, c.path, owner=c.owner, origin=where)
        return True
    raise AssertionError(c.kind)


def add_host_directory(tree: FileTree, root: str, dest: str, *, owner: tuple[int, int], origin: str) -> None:
    """Add a host directory's tree (files, directories, symlinks; nothing else) under ``dest``."""
    uid, gid = owner
    prefix = dest.strip("/")
    def unreadable(e: OSError) -> None:
        raise InputError(f"{origin}: cannot read the directory {e.filename}: {e.strerror}", hint="check its permissions")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=False):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir
        for name in sorted(dirnames) + sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = f"{rel_dir}/{name}" if rel_dir else name
            where = f"{prefix}/{rel}" if prefix else rel
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError(f"{origin}: {full!r} has a name that is not valid UTF-8", hint="rename it") from None
            st = os.lstat(full)
            what = f"{origin}: {full}"
            if stat.S_ISDIR(st.st_mode):
                tree.add_dir(where, mode=st.st_mode & 0o777, uid=uid, gid=gid, mtime=int(st.st_mtime), origin=what)
            elif stat.S_ISREG(st.st_mode):
                check_readable(full, origin)
                tree.add_file(where, HostFile(full), st.st_size, mode=st.st_mode & 0o777, uid=uid, gid=gid, mtime=int(st.st_mtime), origin=what)
            elif stat.S_ISLNK(st.st_mode):
                tree.add_symlink(where, os.readlink(full), uid=uid, gid=gid, mtime=int(st.st_mtime), origin=what)
            else:
                kind = "device node" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "FIFO" if stat.S_ISFIFO(st.st_mode) else "socket"
                raise InputError(f"{what} is a {kind}", hint="only files, directories and symlinks can be copied")


def check_readable(path: str, where: str) -> None:
    """Refuse now a host file the writer could not open later (after the disk was wiped)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise InputError(f"{where}: cannot read {path}: {e.strerror}", hint="check its permissions") from None
    os.close(fd)
