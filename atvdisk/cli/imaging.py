"""`atvdisk extract`, `atvdisk write`, `atvdisk backup`: the command-line side of
:mod:`atvdisk.imaging`."""

from __future__ import annotations

import os
import stat
import tempfile
import time
from contextlib import ExitStack, nullcontext

import click

from atvdisk.cli.common import Console, parse_size_option
from atvdisk.cli.console import Writing
from atvdisk.errors import VerifyError
from atvdisk.imaging.extract import extract
from atvdisk.imaging.image import ImageInfo, open_image
from atvdisk.imaging.write import (
    Mode,
    WritePlan,
    WriteResult,
    execute,
    plan_write,
    read_back,
)
from atvdisk.inputs.payload import BOOT_EFI_SIZE
from atvdisk.layout.units import Quantity, format_iec
from atvdisk.progress import Progress
from atvdisk.target import checks as targets
from atvdisk.target import guard
from atvdisk.target.access import BlockAccess, ImageAccess, drop_cached
from atvdisk.target.probe import TargetKind
from atvdisk.target.source import open_source
from atvdisk.verify import verify_manifest


@click.command("extract")
@click.argument("source", metavar="SOURCE")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="The tarball to write [default: atv_restore.tar.gz for the recovery partition, NAME.tar.gz for others].")
@click.option("--partition", "number", type=click.IntRange(1, 128), default=None, help="Extract GPT partition N instead of the recovery partition.")
@click.option("--all", "every", is_flag=True, help="Extract every HFS+ volume, one tarball each (into --out-dir).")
@click.option("--out-dir", type=click.Path(file_okay=False), default=".", show_default=True, help="Where the tarballs go.")
@click.option("--force", is_flag=True, help="Replace existing tarballs.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report on stdout.")
@click.pass_obj
def extract_cmd(console: Console, source: str, output: str | None, number: int | None, every: bool, out_dir: str, force: bool, as_json: bool) -> None:
    """Extract an HFS+ volume of an Apple TV disk (or an image of one) as a tarball: by default
    the Recovery partition, as the atv_restore.tar.gz that `build --restore` takes.

    SOURCE is opened read-only and never written, even when a volume on it is damaged or was
    not cleanly unmounted (then it is read as it lies, with a warning). The tarball is
    deterministic: members sorted, owner 0:0, modes and times from HFS+.

    \b
    Examples:
      atvdisk extract /dev/sdg                     # the old disk's Recovery -> atv_restore.tar.gz
      atvdisk extract old-atv.img --all --out-dir backup/
      atvdisk extract /dev/sdg --partition 3 -o osboot.tar.gz
    """
    if every and number is not None:
        raise click.UsageError("give --partition N or --all, not both")
    described = open_source(source)
    for w in described.warnings:
        console.warn(w)
    with described as src:
        reports = extract(src, number=number, every=every, output=output, out_dir=out_dir, force=force)
    if as_json:
        console.out_json({"format": "atvdisk-extract/1", "source": source, "volumes": [
            {"partition": r.partition.number, "partition_name": r.partition.name, "role": str(r.partition.role), "volume_name": r.volume_name,
             "output": r.output, "sha256": r.sha256, "files": r.files, "directories": r.dirs, "symlinks": r.symlinks, "data_bytes": r.data_bytes,
             "boot_efi_size": r.boot_efi_size, "kernel_flags": r.kernel_flags, "warnings": r.warnings} for r in reports]}, indent=2)
    for r in reports:
        for w in r.warnings:
            console.warn(w)
        if as_json:
            continue
        p = r.partition
        console.result(
            f"partition {p.number} ({p.name}, {p.role}, volume {r.volume_name!r}): {r.files} files, {r.dirs} directories,"
            f" {r.symlinks} symlinks, {format_iec(r.data_bytes)} -> {r.output}"
        )
        console.info(f"  sha256 {r.sha256}")
        if r.boot_efi_size is not None:
            console.info(f"  boot.efi: {r.boot_efi_size} bytes" + (" (Apple's ATV boot.efi)" if r.boot_efi_size == BOOT_EFI_SIZE else ""))
        if r.kernel_flags is not None:
            console.info(f"  com.apple.Boot.plist Kernel Flags: {r.kernel_flags!r}")


@click.command("write")
@click.argument("image", metavar="IMAGE")
@click.argument("target", metavar="DISK")
@click.option("--size", callback=parse_size_option, metavar="SIZE", help="DISK is an image file to create, of this size [default: the image's].")
@click.option("--dry-run", is_flag=True, help="Check everything and say what would be written; write nothing.")
@click.option("--yes", is_flag=True, help="Do not ask before erasing the disk (for scripts).")
@click.option("--unmount", is_flag=True, help="Unmount the disk's partitions and turn off its swap first (after you confirm).")
@click.option("--force", is_flag=True, help="Replace an existing image file DISK.")
@click.option("--no-verify", is_flag=True, help="Skip reading everything back at the end.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
@click.pass_obj
def write_cmd(console: Console, image: str, target: str, size: Quantity | None, dry_run: bool, yes: bool, unmount: bool, force: bool, no_verify: bool, as_json: bool) -> None:
    """Write IMAGE (.img, .img.gz, .img.xz) to DISK, grown to fit: build once, flash many.

    An image atvdisk built carries its manifest (layout, seed): the layout's `rest` partition
    (Media) takes the disk's extra space, partitions after it (swap) move to the end, the backup
    GPT goes to the last sectors. Only the image's data is written, and what the filesystems
    rely on being zero; the partition table last. Other images are written as they are.
    DISK is checked and confirmed exactly as `atvdisk build` does it.

    \b
    Examples:
      atvdisk build atv.img --size 4G --openelec ... --restore ... --recovery ...
      atvdisk write atv.img /dev/sdf
      atvdisk write atv.img.xz /dev/sdg --dry-run
    """
    info = open_image(image)
    try:
        _write(console, info, target, size, dry_run=dry_run, yes=yes, unmount=unmount, force=force, verify_after=not no_verify, as_json=as_json)
    finally:
        info.close()


def _write(console: Console, info: ImageInfo, target: str, size: Quantity | None, *, dry_run: bool, yes: bool, unmount: bool, force: bool, verify_after: bool, as_json: bool) -> None:
    # One safety model with build (target/guard.py): what DISK is; a disk's own checks (a
    # partition, the system disk, mounted, in use, held by another atvdisk, too small); the
    # atvdisk lock held from here to the end; the plan for this image on it; the confirmation.
    # Nothing is written before all of them passed, and a dry run makes every one of them
    # ("would be refused: ...", exit 3).
    checking = guard.dry_run if dry_run else nullcontext
    with ExitStack() as stack:
        with checking():
            try:
                is_block = stat.S_ISBLK(os.stat(target).st_mode)
            except FileNotFoundError:
                is_block = False
            image_bytes = size.to_bytes(512) if size is not None else (None if is_block else info.size)
            dest = guard.destination(target, size_bytes=image_bytes, force=force, force_hint="give --force to replace it, or another name")
            check = None
            if dest.kind is TargetKind.BLOCK:
                lock = None if dry_run else stack.enter_context(guard.hold(target))
                check = guard.check_disk(target, need_bytes=info.size, unmount=unmount, lock=lock)
            plan = plan_write(info, dest.size_bytes, dest.sector_size)
        for w in plan.warnings:
            console.warn(w)
        if dry_run:
            if as_json:
                console.out_json(_write_summary(plan, target, None, None, dry_run=True), indent=2)
                return
            for line in plan.describe():
                console.out(line)
            console.out(f"\nDry run: nothing was written to {target}.")
            return
        for line in plan.describe():
            console.info(line)
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="atvdisk-write-") as workdir:
            if check is not None:
                guard.confirm(check, yes=yes, console=console)
            with console.progress(show=not as_json) as progress:
                if check is not None:
                    with targets.BlockDeviceSession(target) as session:
                        console.writing = Writing(target, disk=True)  # an error from here on leaves it incomplete
                        result = execute(plan, BlockAccess(session), progress, workdir=workdir)
                        console.writing = None
                        checks = _verify_written(plan, session.path, result, progress, workdir) if verify_after else None
                else:
                    console.writing = Writing(target, disk=False)
                    with targets.ImageTarget(target, dest.size_bytes, overwrite=force) as out:
                        for w in out.warnings:
                            console.warn(w)
                        result = execute(plan, ImageAccess(out.path, known_zero=True), progress, workdir=workdir)
                        checks = _verify_written(plan, str(out.path), result, progress, workdir) if verify_after else None
                    console.writing = None
        seconds = time.monotonic() - start
    if as_json:
        console.out_json(_write_summary(plan, target, result, checks, dry_run=False, seconds=seconds), indent=2)
        return
    verified = f", verified ({len(checks)} checks, read back from the disk)" if checks is not None else ", not verified (--no-verify)"
    console.result(f"Wrote {info.path} to {target}: {format_iec(result.bytes_written)} written ({format_iec(result.zeroed)} of them zeros) in {seconds:.1f} s{verified}.")


def _verify_written(plan: WritePlan, device: str, result: WriteResult, progress: Progress, workdir: str) -> list[str]:
    with progress.step("verify: read everything back from the disk and compare"):
        drop_cached(device)
        if plan.mode is Mode.MANIFEST:
            assert plan.image.found is not None
            _, report = verify_manifest(device, plan.image.found, plan.target_bytes, plan.sector_size, workdir=workdir)
            mismatches, checked = report.mismatches, report.checked
        else:
            mismatches = read_back(device, result)
            checked = [f"{len(result.digests)} copied ranges ({format_iec(result.written.total)}) read back: same sha256 as written"]
    if mismatches:
        raise VerifyError(mismatches, hint="the disk does not hold what was written: it may be failing, or fake its capacity")
    return checked


def _write_summary(plan: WritePlan, target: str, result: WriteResult | None, checks: list[str] | None, *, dry_run: bool, seconds: float | None = None) -> dict:
    found = plan.image.found
    return {
        "format": "atvdisk-write/1",
        "image": plan.image.path,
        "compression": plan.image.compression,
        "image_bytes": plan.image.size,
        "target": target,
        "target_bytes": plan.target_bytes,
        "mode": plan.mode.value,
        "layout": found.manifest.layout_name if found else None,
        "seed": found.manifest.seed if found else None,
        "dry_run": dry_run,
        "partitions": [{"number": m.number, "name": m.name, "fs": m.kind.value, "action": m.action.value, "image_offset": m.src, "image_bytes": m.size, "offset": m.dst, "bytes": m.new_size} for m in plan.moves],
        "plan": plan.target_plan.to_dict() if plan.target_plan else None,
        "warnings": plan.warnings,
        "bytes_written": result.bytes_written if result else None,
        "zero_bytes_written": result.zeroed if result else None,
        "seconds": round(seconds, 3) if seconds is not None else None,
        "verified": checks,
    }


@click.command("backup")
@click.argument("source", metavar="DISK")
@click.argument("output", metavar="FILE.img")
@click.option("--force", is_flag=True, help="Replace an existing FILE.img.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report on stdout.")
@click.pass_obj
def backup_cmd(console: Console, source: str, output: str, force: bool, as_json: bool) -> None:
    """Back DISK (an ATV disk, or an image of one) up as a sparse image holding only the blocks
    its filesystems use (HFS+ allocation files, FAT, ext4 via e2fsprogs); `atvdisk write
    FILE.img DISK` restores it. DISK is opened read-only and never written.

    \b
    Examples:
      atvdisk backup /dev/sdg old-atv.img
      atvdisk write old-atv.img /dev/sdh
    """
    from atvdisk.imaging.backup import backup

    described = open_source(source)
    for w in described.warnings:
        console.warn(w)
    start = time.monotonic()
    with described as src, console.progress(show=not as_json) as progress:
        progress.expect(0, steps=1)
        with progress.step(f"copy the used blocks of {source} to {output}"):
            report = backup(src, output, force=force)
    seconds = time.monotonic() - start
    for w in report.warnings:
        console.warn(w)
    if as_json:
        console.out_json({"format": "atvdisk-backup/1", "source": source, "output": output, "disk_bytes": report.disk_bytes,
                                "bytes_read": report.read, "bytes_stored": report.stored, "seconds": round(seconds, 3),
                                "partitions": [{"number": p.number, "name": p.name, "fs": p.kind.value, "bytes": p.size, "kept": p.kept, "whole": p.whole} for p in report.partitions]}, indent=2)
        return
    for p in report.partitions:
        console.info(f"partition {p.number} ({p.name}, {p.kind}): {format_iec(p.kept)} of {format_iec(p.size)} in use" + (" (kept whole)" if p.whole else ""))
    console.result(f"Backed {source} ({format_iec(report.disk_bytes)}) up to {output}: {format_iec(report.read)} read, {format_iec(report.stored)} stored, in {seconds:.1f} s.")
