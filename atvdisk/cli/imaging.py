"""`atvdisk extract`, `atvdisk write`, `atvdisk backup`: the command-line side of
:mod:`atvdisk.imaging`."""

from __future__ import annotations

import json

import click

from atvdisk.cli.common import Console
from atvdisk.imaging.extract import extract
from atvdisk.inputs.payload import BOOT_EFI_SIZE
from atvdisk.layout.units import format_iec
from atvdisk.target.source import open_source


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
        console.out(json.dumps({"format": "atvdisk-extract/1", "source": source, "volumes": [
            {"partition": r.partition.number, "partition_name": r.partition.name, "role": str(r.partition.role), "volume_name": r.volume_name,
             "output": r.output, "sha256": r.sha256, "files": r.files, "directories": r.dirs, "symlinks": r.symlinks, "data_bytes": r.data_bytes,
             "boot_efi_size": r.boot_efi_size, "kernel_flags": r.kernel_flags, "warnings": r.warnings} for r in reports]}, indent=2, ensure_ascii=False))
    for r in reports:
        for w in r.warnings:
            console.warn(w)
        if as_json:
            continue
        p = r.partition
        console.info(
            f"partition {p.number} ({p.name}, {p.role}, volume {r.volume_name!r}): {r.files} files, {r.dirs} directories,"
            f" {r.symlinks} symlinks, {format_iec(r.data_bytes)} -> {r.output}"
        )
        console.info(f"  sha256 {r.sha256}")
        if r.boot_efi_size is not None:
            console.info(f"  boot.efi: {r.boot_efi_size} bytes" + (" (Apple's ATV boot.efi)" if r.boot_efi_size == BOOT_EFI_SIZE else ""))
        if r.kernel_flags is not None:
            console.info(f"  com.apple.Boot.plist Kernel Flags: {r.kernel_flags!r}")
