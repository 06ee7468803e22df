"""From a planned partition's ``contents`` and the user's inputs to a :class:`FileTree`.

Everything that can be wrong with the inputs is found here, before the target is touched: a
missing tarball or file (naming the option that would provide it), unsafe tarball members, a
``remove`` of a path nothing put there.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass

from atvdisk.bootplist import BootPlist, bootefi_plist, kexec_plist
from atvdisk.bootscript import BootScript
from atvdisk.errors import InputError
from atvdisk.inputs import tarsafe
from atvdisk.inputs.payload import OPTION_FOR, Inputs
from atvdisk.inputs.tree import FileTree, HostFile, Inline, Node, NodeKind
from atvdisk.layout.plan import Plan, PlannedPartition
from atvdisk.layout.resolver import stays_inside
from atvdisk.layout.schema import (
    SCRIPT_MODES,
    BootMethod,
    ContentKind,
    ContentSpec,
    NameBy,
)

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class PartitionContents:
    partition: PlannedPartition
    tree: FileTree
    bootscript_path: str | None  # where the generated boot script went, if here
    complete: bool = True  # False: some inputs were not given (verify without them)
    bootplist_path: str | None = None  # where the boot plist went, if here


@dataclass
class BootFiles:
    """The boot chain's generated files, for the ``bootscript`` and ``bootplist`` entries.

    ``read_bytes(node)`` returns the bytes of a small file node (the recovery's plist, which
    the kexec method fixes). ``plist`` is set when the bootplist entry is applied.
    """

    plan: Plan
    script: BootScript | None
    read_bytes: Callable[[Node], bytes]
    name_by: NameBy | None = None
    keep_plist: bool = False
    plist: BootPlist | None = None


def build_trees(plan: Plan, inputs: Inputs, boot: BootFiles | None, *, epoch: int, skipped: list[str] | None = None, spooler: tarsafe.Spooler | None = None) -> dict[int, PartitionContents]:
    """The file tree of every partition that holds files, keyed by partition number.

    With ``skipped`` (a list), entries whose input was not given are left out and described in
    that list instead of raising (``atvdisk verify`` checks what it can); the partition is then
    marked incomplete. ``spooler``: keep compressed tarballs decompressed for the writing
    (:mod:`atvdisk.inputs.tarsafe`).
    """
    result = {}
    for p in plan.partitions:
        if not p.fs.kind.holds_files:
            continue
        tree = FileTree(default_mtime=epoch)
        script_path = plist_path = None
        complete = True
        for i, c in enumerate(p.contents, 1):
            where = f"{p.name} contents[{i}] ({c.kind})"
            try:
                if c.kind is ContentKind.BOOTPLIST and not complete:
                    # A kexec plist is the recovery's, fixed: without its inputs it is unknown.
                    raise MissingInput(f"{where}: made from the inputs not given", option="the inputs above", hint="give every input")
                applied = _apply(tree, c, inputs, boot, where, spooler)
            except MissingInput as e:
                if skipped is None:
                    raise
                skipped.append(f"partition {p.number} ({p.name}): {c.kind} {c.source or c.path} (give {e.option} to check it)")
                complete = False
                continue
            if applied and c.kind is ContentKind.BOOTSCRIPT:
                script_path = c.path
            if applied and c.kind is ContentKind.BOOTPLIST:
                plist_path = c.path
        result[p.number] = PartitionContents(p, tree, script_path, complete, plist_path)
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


def _apply(tree: FileTree, c: ContentSpec, inputs: Inputs, boot: BootFiles | None, where: str, spooler: tarsafe.Spooler | None = None) -> bool:
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
        if boot is not None and boot.plan.boot is not None and boot.script is None:
            raise MissingInput(f"{where}: the boot script names the disk's identifiers, unknown here", option="the build's --seed", hint="give the build's --seed")
        if boot is None or boot.script is None:
            raise InputError(f"{where}: the layout has no [boot] table to generate a boot script from", hint="add [boot]")
        data = boot.script.text.encode()
        tree.add_file(c.path, Inline(data), len(data), mode=c.mode if c.mode is not None else 0o755, uid=uid, gid=gid, origin=where)
        return True
    if c.kind is ContentKind.BOOTPLIST:
        if boot is None or boot.plan.boot is None:
            raise InputError(f"{where}: the layout has no [boot] table to generate a boot plist from", hint="add [boot]")
        root_files = {path for path, node in tree.nodes.items() if "/" not in path and node.kind is NodeKind.FILE}
        if boot.plan.boot.method is BootMethod.BOOTEFI:
            plist = bootefi_plist(boot.plan, boot.name_by, root_files)
        else:
            script = boot.script
            mode = SCRIPT_MODES.get(script_path_of(boot.plan) or "")
            if script is None or mode is None:
                raise InputError(f"{where}: a kexec layout's boot plist sets atv-boot= for its boot script, and there is none", hint="add a bootscript entry (patchstick.sh)")
            node = tree.nodes.get(c.path)
            existing = None
            if node is not None and node.kind is NodeKind.FILE:
                existing = boot.read_bytes(node)
            elif node is not None:
                raise InputError(f"{where}: /{c.path} is a {node.kind} in the recovery files, not a plist", hint="check the recovery files")
            plist = kexec_plist(existing, mode, root_files, keep=boot.keep_plist, origin=f"/{c.path} ({node.origin})" if node else f"/{c.path}")
        boot.plist = plist
        tree.add_file(c.path, Inline(plist.data), len(plist.data), mode=c.mode if c.mode is not None else 0o644, uid=uid, gid=gid, origin=where)
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
        if c.members is None:
            tarsafe.scan(path, tree, dest=c.path, owner=c.owner, origin=path, spooler=spooler)
        else:
            _scan_members(path, tree, c, where, spooler)
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


def script_path_of(plan: Plan) -> str | None:
    for p in plan.partitions:
        for c in p.contents:
            if c.kind is ContentKind.BOOTSCRIPT:
                return c.path
    return None


def _scan_members(path: str, tree: FileTree, c: ContentSpec, where: str, spooler: tarsafe.Spooler | None = None) -> None:
    """Extract only ``c.members`` (each a path of the archive, with what is below it).

    The whole archive is still checked (every member, as for a full extraction); the chosen
    entries are then copied into ``tree`` under ``c.path``. A member that is not there is refused.
    """
    assert c.members is not None
    scratch = FileTree(default_mtime=tree.default_mtime)
    tarsafe.scan(path, scratch, owner=c.owner, origin=path, spooler=spooler)
    prefix = c.path.strip("/")
    found = set()
    for rel, node in scratch:
        chosen = next((m for m in c.members if rel == m or rel.startswith(m + "/")), None)
        if chosen is None:
            continue
        found.add(chosen)
        dest = f"{prefix}/{rel}" if prefix else rel
        if node.kind is NodeKind.DIR:
            tree.add_dir(dest, mode=node.mode, uid=node.uid, gid=node.gid, mtime=node.mtime, origin=node.origin)
        elif node.kind is NodeKind.SYMLINK:
            assert node.target is not None
            tree.add_symlink(dest, node.target, uid=node.uid, gid=node.gid, mtime=node.mtime, origin=node.origin)
        else:
            assert node.source is not None
            tree.add_file(dest, node.source, node.size, mode=node.mode, uid=node.uid, gid=node.gid, mtime=node.mtime, origin=node.origin)
    missing = [m for m in c.members if m not in found]
    if missing:
        raise InputError(
            f"{where}: {path} has no {', '.join(missing)} (the layout takes {', '.join(c.members)} from it)",
            hint="check that this is the right archive (atv_restore.tar.gz holds boot.efi, BootLogo.png and System/)",
        )


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


def outside_sources(plan: Plan, inputs: Inputs) -> list[str]:
    """Contents whose ``{layout_dir}/...`` source lies in the layout's directory on paper but
    resolves (through a symlink) to a file outside it. The plan already names the sources that
    are outside on paper (layout.resolver.host_source_warnings); together they say every file
    of this computer a build reads that is neither an input given nor the layout's own."""
    if inputs.layout_dir is None:
        return []
    base = os.path.realpath(inputs.layout_dir)
    out = []
    for p in plan.partitions:
        for i, c in enumerate(p.contents, 1):
            if c.source is None or not c.source.startswith("{layout_dir}"):
                continue
            try:
                path = _resolve_source(c, inputs, "")
            except InputError:
                continue
            if path is None:
                continue
            real = os.path.realpath(path)
            if real != base and not real.startswith(base + os.sep) and stays_inside(c.source[len("{layout_dir}"):]):
                out.append(
                    f"partition {p.number} ({p.name}) contents[{i}] copies {c.source!r}, which resolves to {real}:"
                    " outside the inputs given and the layout's directory"
                )
    return out

