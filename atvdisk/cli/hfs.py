"""``atvdisk mkhfs`` and ``atvdisk lshfs``: make and list HFS+ volumes without hfsprogs.

``lshfs --json`` prints one object with stable keys (format ``atvdisk-lshfs/1``)::

    {"format": "atvdisk-lshfs/1",
     "volume": {"signature": "H+"|"HX", "version": 4|5, "name": str, "block_size": int,
                "total_blocks": int, "free_blocks": int, "file_count": int,
                "folder_count": int, "journaled": bool, "clean": bool,
                "case_sensitive": bool, "volume_id": "16 hex digits"},
     "entries": [{"path": str (NFC), "path_stored": str (as stored, decomposed),
                  "type": "dir"|"file"|"symlink"|"special", "mode": "0755" (permission bits,
                  octal), "uid": int, "gid": int, "size": int (data fork bytes; 0 for dirs),
                  "sha256": str|null (files only), "target": str|null (symlinks only),
                  "cnid": int, "mtime": int (Unix seconds)}, ...]}

Entries come parents first, in catalog order.
"""

from __future__ import annotations

import hashlib
import os
import stat
from contextlib import ExitStack
from dataclasses import replace

import click

from atvdisk.cli.text import printable
from atvdisk.errors import TargetRefused, UsageError
from atvdisk.fs.hfsplus.layout import VolumeOptions, plan_volume
from atvdisk.fs.hfsplus.reader import HfsVolume
from atvdisk.fs.hfsplus.tree import HfsTree
from atvdisk.fs.hfsplus.writer import VolumeWriter
from atvdisk.fs.region import Region
from atvdisk.layout.schema import IdentityValueError, check_epoch
from atvdisk.layout.units import SizeSyntaxError, format_iec, parse_bytes
from atvdisk.target import guard
from atvdisk.target.blockdev import BlockDeviceSession
from atvdisk.target.imagefile import ImageTarget
from atvdisk.target.probe import TargetKind
from atvdisk.target.sysblock import sysblock_of_node, whole_disk


def _bytes_option(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_bytes(value)
    except SizeSyntaxError as e:
        raise click.BadParameter(str(e), param_hint=name) from e


def _owner(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        uid, gid = (int(x) for x in value.split(":"))
        if not (0 <= uid <= 0xFFFFFFFF and 0 <= gid <= 0xFFFFFFFF):
            raise ValueError
    except ValueError as e:
        raise click.BadParameter(f"expected UID:GID (numbers), got {value!r}", param_hint="--owner") from e
    return uid, gid


def _refuse_partition(path: str, offset: int) -> None:
    """A partition node is refused as build refuses it, with the --offset that means it."""
    dev = sysblock_of_node(path)
    if dev.is_partition:
        disk = whole_disk(dev)
        start = int(dev.attr("start") or 0) * 512
        raise TargetRefused(
            f"{path} is partition {dev.partition} of {disk.devnode}; atvdisk writes whole disks, checked as a whole",
            hint=f"atvdisk mkhfs {disk.devnode} --offset {start + offset} ... writes where that partition starts",
        )


def _reproducible(volume_name: str) -> tuple[int | None, int | None]:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None, None
    try:
        t = check_epoch(epoch)
    except IdentityValueError as e:
        raise UsageError(e.message, hint=e.hint) from None
    vid = int.from_bytes(hashlib.sha256(f"atvdisk-hfs:{t}:{volume_name}".encode()).digest()[:8], "big")
    return t, vid


@click.command("mkhfs")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--size", "size_text", metavar="SIZE",
              help="Volume size (512M, 2GiB, 4GB...). Needed for a new IMAGE; for an existing "
                   "file or device it defaults to everything after --offset.")  # fmt: skip
@click.option("--from", "from_dir", type=click.Path(exists=True, file_okay=False),
              help="Copy this directory's tree onto the volume (default: an empty volume).")  # fmt: skip
@click.option("--volume-name", default="untitled", show_default=True, help="Volume name (label).")
@click.option("--journal", is_flag=True, help="Journaled volume (Linux mounts it read-only).")
@click.option("--case-sensitive", is_flag=True, help="Case-sensitive HFSX instead of HFS+.")
@click.option("--offset", "offset_text", default="0", metavar="BYTES", show_default=True,
              help="Where the volume starts in IMAGE.")  # fmt: skip
@click.option("--block-size", type=int, default=4096, show_default=True, help="Allocation block size.")
@click.option("--owner", metavar="UID:GID", help="Owner and group of every entry (default: as in --from).")
@click.option("--force", is_flag=True, help="Write into an existing image file.")
@click.option("--yes", is_flag=True, help="Do not ask before writing a disk (for scripts).")
@click.pass_obj
def mkhfs(
    console,
    image: str,
    size_text: str | None,
    from_dir: str | None,
    volume_name: str,
    journal: bool,
    case_sensitive: bool,
    offset_text: str,
    block_size: int,
    owner: str | None,
    force: bool,
    yes: bool,
) -> None:
    """Make an HFS+ (or HFSX) volume holding DIR's tree, without mounting anything.

    IMAGE is created as a sparse file, or, if it exists, written in place from --offset: an image
    file with --force, a whole disk (never a partition: give its disk and --offset) after the
    checks and the confirmation `atvdisk build` makes (system disk, mounted, too small, in use;
    type the disk's name, or --yes). Regular files, directories and symlinks are copied with
    their modes, owners and times; hard links become independent copies; device nodes, FIFOs
    and sockets are refused. With SOURCE_DATE_EPOCH set, the creation date and volume UUID
    derive from it, so the same tree gives the same bytes.

    \b
    Examples:
      atvdisk mkhfs boot.hfs --size 32M --from ./boot --volume-name BOOT
      atvdisk mkhfs disk.img --offset 35672064 --size 400M --from ./recovery
                        # Recovery of an atv1-openelec disk: sector 69672 x 512
    """
    offset = _bytes_option(offset_text, "--offset") or 0
    size = _bytes_option(size_text, "--size")
    uid_gid = _owner(owner)
    # The target first, through the safety model every writing command shares (target.guard).
    dest = guard.destination(
        image,
        size_bytes=None if os.path.lexists(image) else (size if size is not None else 0) + offset,
        force=force,
        force_hint=f"pass --force to write the volume into it at byte {offset}, or choose another name",
    )
    if not dest.exists and size is None:
        raise click.UsageError("a new IMAGE needs --size")
    if dest.exists and size is None:  # an existing file or device: everything after --offset
        size = dest.size_bytes - offset
        if size <= 0:
            raise click.UsageError(f"--offset {offset} is at or past the end of {image}")
    assert size is not None
    with ExitStack() as stack:
        check = None
        if dest.kind is TargetKind.BLOCK:
            _refuse_partition(image, offset)
            lock = stack.enter_context(guard.hold(image))
            check = guard.check_disk(image, need_bytes=offset + size, lock=lock)
            check.report = replace(check.report, warnings=(*check.report.warnings, f"mkhfs writes bytes {offset} to {offset + size} of it (an HFS+ volume of {format_iec(size)})"))

        tree = HfsTree()
        if from_dir is not None:
            tree.add_host_dir(from_dir, owner=uid_gid)
        elif uid_gid is not None:
            tree.add_dir("/", uid=uid_gid[0], gid=uid_gid[1])
        ct, vid = _reproducible(volume_name)
        options = VolumeOptions(
            volume_name=volume_name,
            case_sensitive=case_sensitive,
            journaled=journal,
            block_size=block_size,
            create_time=ct,
            volume_id=vid,
        )
        layout = plan_volume(tree, options, size)  # refuses before anything is touched

        if check is not None:
            guard.confirm(check, yes=yes, console=console)
            session = stack.enter_context(BlockDeviceSession(image))
            region = Region(stack.enter_context(session.exclusive()), offset, size, known_zero=False, name=f"{image} at byte {offset}")
        elif dest.exists:
            region = stack.enter_context(Region.open(image, offset, size))
        else:
            new = stack.enter_context(ImageTarget(image, offset + size))  # renamed into place on success
            assert new.fd is not None
            region = Region(new.fd, offset, size, known_zero=True, name=image)
        writer = VolumeWriter(layout, region)
        writer.write()
        writer.finish()
        region.sync()
    kind = "HFSX (case-sensitive)" if case_sensitive else "HFS+"
    console.result(
        f"{image}: {kind} volume {volume_name!r}, {format_iec(layout.region_size)}"
        f"{', journaled' if journal else ''}; {layout.counts['files']} files, "
        f"{layout.counts['folders']} folders, {format_iec(layout.used_bytes)} used"
    )


def _type_char(kind: str) -> str:
    return {"dir": "d", "file": "-", "symlink": "l"}.get(kind, "?")


@click.command("lshfs")
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--offset", "offset_text", default="0", metavar="BYTES", show_default=True,
              help="Where the volume starts in IMAGE.")  # fmt: skip
@click.option("--size", "size_text", metavar="SIZE", help="Volume size (default: the rest of IMAGE).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (format atvdisk-lshfs/1).")
@click.pass_obj
def lshfs(console, image: str, offset_text: str, size_text: str | None, as_json: bool) -> None:
    """List an HFS+ volume: type, mode, owner, size, sha256 and path of every entry.

    \b
    Examples:
      atvdisk lshfs boot.hfs
      atvdisk lshfs disk.img --offset 35672064 --json    # Recovery: sector 69672 x 512
    """
    offset = _bytes_option(offset_text, "--offset") or 0
    size = _bytes_option(size_text, "--size")
    with HfsVolume.open(image, offset, size) as vol:
        rows = []
        for e in vol.walk():
            rows.append((e, vol.sha256(e) if e.kind == "file" else None))
        vh = vol.header
        if as_json:
            doc = {
                "format": "atvdisk-lshfs/1",
                "volume": {
                    "signature": vol.signature,
                    "version": vol.version,
                    "name": vol.volume_name,
                    "block_size": vol.block_size,
                    "total_blocks": vol.total_blocks,
                    "free_blocks": vh.freeBlocks,
                    "file_count": vh.fileCount,
                    "folder_count": vh.folderCount,
                    "journaled": vol.journaled,
                    "clean": vol.clean,
                    "case_sensitive": vol.case_sensitive,
                    "volume_id": f"{vol.volume_id:016X}",
                },
                "entries": [
                    {
                        "path": e.path_nfc,
                        "path_stored": e.path,
                        "type": e.kind,
                        "mode": f"{e.mode & 0o7777:04o}",
                        "uid": e.uid,
                        "gid": e.gid,
                        "size": e.size,
                        "sha256": digest,
                        "target": e.link_target,
                        "cnid": e.cnid,
                        "mtime": e.mtime,
                    }
                    for e, digest in rows
                ],
            }
            console.out_json(doc, indent=2)
            return
        flags = [vol.signature, "journaled" if vol.journaled else "not journaled",
                 "clean" if vol.clean else "NOT CLEAN",
                 "case-sensitive" if vol.case_sensitive else "case-insensitive"]  # fmt: skip
        console.info(
            f"volume {vol.volume_name!r}: {', '.join(flags)}; {vol.total_blocks} blocks of "
            f"{vol.block_size} bytes, {vh.freeBlocks} free"
        )
        journal = vol.journal_state()
        if journal is not None and not journal["empty"]:
            console.warn("the journal holds transactions that were not replayed: this listing may be stale")
        for e, digest in rows:
            mode = stat.filemode(e.mode)
            owner = f"{e.uid}:{e.gid}"
            path = printable(e.path_nfc, one_line=True) + (f" -> {printable(e.link_target, one_line=True)}" if e.link_target is not None else "")
            console.out(f"{_type_char(e.kind)} {mode} {owner:>11} {e.size:>12} {digest or '-':64} {path}")
