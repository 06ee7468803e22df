"""What the commands share: the console (what the user sees) and common options.

Kept apart from :mod:`atvdisk.cli.main` so that the command modules need not import the entry
module that registers them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import click
import click.shell_completion

from atvdisk.cli.console import Console
from atvdisk.errors import DiskTooSmall, PlanError, UsageError
from atvdisk.layout.schema import SEED_MAX, IdentityValueError, check_seed
from atvdisk.layout.units import (
    MIB,
    Quantity,
    SizeSyntaxError,
    format_iec,
    format_parted,
    parse_quantity,
)

if TYPE_CHECKING:
    from atvdisk.layout.plan import Plan
    from atvdisk.layout.schema import Layout

__all__ = ["Console", "layout_option", "missing_inputs", "parse_seed_option", "parse_size_option", "refuse_missing_inputs", "resolve_for", "seed_option"]


def parse_size_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Quantity | None:
    """A disk size: bytes with a unit (4G, 4GB) or sectors (8451072s, of --sector-size bytes)."""
    if value is None:
        return None
    try:
        size = parse_quantity(value)
    except SizeSyntaxError as e:
        raise click.BadParameter(str(e)) from None
    if size.value <= 0:
        raise click.BadParameter("size must be positive")
    return size


def parse_seed_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A seed for every identifier: 1 to 200 printable characters."""
    if value is None:
        return None
    try:
        return check_seed(value)
    except IdentityValueError:
        raise click.BadParameter(f"a seed is 1 to {SEED_MAX} printable characters, e.g. --seed shop-2024-001") from None


seed_option = click.option(
    "--seed",
    callback=parse_seed_option,
    metavar="TEXT",
    default=None,
    help="Derive every identifier (disk/partition GUIDs, filesystem UUIDs) from TEXT: with"
    " SOURCE_DATE_EPOCH, builds are bit-identical. Default: fresh random identifiers per disk.",
)


def _complete_layout(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[click.shell_completion.CompletionItem]:
    """Shell completion of --layout: the bundled layouts' names, else files."""
    from atvdisk.layout.schema import bundled_layouts

    names = [n for n in bundled_layouts() if n.startswith(incomplete)]
    if names:
        return [click.shell_completion.CompletionItem(n) for n in names]
    return [click.shell_completion.CompletionItem(incomplete, type="file")]


layout_option = click.option(
    "--layout",
    "layout_name",
    default="atv1-openelec",
    show_default=True,
    metavar="NAME|PATH",
    shell_complete=_complete_layout,
    help="A bundled layout (see `atvdisk layouts`) or a layout .toml file.",
)


# -- the plan, with its usual failures said in the user's terms -----------------------------------

INPUT_OPTIONS = {  # placeholder -> (option, what the user gives)
    "openelec": ("--openelec", "the OpenELEC ATV release: OpenELEC-ATV.i386-*.tar, or the directory it unpacks to"),
    "restore": ("--restore", "atv_restore.tar.gz: Apple's restore files (boot.efi, mach_kernel, ...)"),
    "recovery": ("--recovery", "atv_recovery.tar.gz: the patchstick files (atv-bootloader)"),
}


def missing_inputs(layout: Layout, given: dict[str, bool]) -> list[str]:
    """The inputs (``openelec``, ``restore``, ``recovery``) the layout needs and were not given,
    in the order the layout first needs them."""
    missing: list[str] = []
    for p in layout.partitions:
        for c in p.contents:
            if c.source is None or c.optional:
                continue
            for name in re.findall(r"\{([a-z_]+)\}", c.source):
                if name in INPUT_OPTIONS and not given.get(name) and name not in missing:
                    missing.append(name)
    return missing


def refuse_missing_inputs(layout: Layout, given: dict[str, bool]) -> None:
    """All the missing inputs in one message, named by their options."""
    missing = missing_inputs(layout, given)
    if not missing:
        return
    missing.sort(key=list(INPUT_OPTIONS).index)
    options = [INPUT_OPTIONS[n][0] for n in missing]
    listed = options[0] if len(options) == 1 else ", ".join(options[:-1]) + " and " + options[-1]
    what = "".join(f"\n  {INPUT_OPTIONS[n][0]}: {INPUT_OPTIONS[n][1]}" for n in missing)
    raise UsageError(
        f"missing input{'s' if len(missing) > 1 else ''} for layout {layout.name}: {listed}{what}",
        hint=f"give {'them' if len(missing) > 1 else 'it'}, or add --example to use atvdisk's sample payload (fake files, to try atvdisk out) for what is not given",
    )


def size_option_text(nbytes: int) -> str:
    """A --size the user can type that holds ``nbytes``: whole MiB."""
    return f"{-(-nbytes // MIB)}MiB"


def resolve_for(layout: Layout, disk_bytes: int, sector_size: int, *, target: str, image: bool, seed: str | None = None) -> Plan:
    """resolve(), with a disk too small and a sector size the layout is not for explained in
    the user's terms: ``target`` names the disk ("/dev/sdf", "demo.img (--size 1G)"), ``image``
    says whether --size is the remedy."""
    from atvdisk.layout.resolver import resolve

    if disk_bytes % sector_size and image:
        down = disk_bytes // sector_size
        raise UsageError(
            f"{target}: {disk_bytes} bytes is not a positive multiple of the {sector_size}-byte sector size",
            hint=f"give --size {down}s ({format_parted(down * sector_size)}, rounded down to whole sectors), or a size in MiB such as {disk_bytes // MIB}MiB",
        )
    try:
        return resolve(layout, disk_bytes, sector_size, seed=seed)
    except DiskTooSmall as e:
        need = e.need_bytes
        remedy = f"give --size {size_option_text(need)} or more" if image else f"use a disk of at least {format_parted(need)}"
        raise DiskTooSmall(
            f"{target} is too small for layout {layout.name}: it has {format_parted(disk_bytes)} ({disk_bytes} bytes);"
            f" the layout needs at least {format_parted(need)} ({need} bytes, {format_iec(need)})",
            need_bytes=need,
            hint=f"{remedy}, or a layout with smaller partitions (--layout)",
        ) from None
    except PlanError as e:
        if sector_size == layout.disk.sector_size:
            raise
        raise PlanError(
            f"layout {layout.name} is laid out in {layout.disk.sector_size}-byte sectors and does not fit {target}, which has"
            f" {sector_size}-byte sectors ({e.message.split(': ', 2)[-1]})",
            hint=_sector_hint(layout, sector_size, image),
        ) from None


def _sector_hint(layout: Layout, sector_size: int, image: bool) -> str:
    from atvdisk.layout.schema import bundled_layouts, load_layout

    fitting = [name for name, path in bundled_layouts().items() if load_layout(str(path)).disk.sector_size == sector_size]
    if fitting:
        return f"use --layout {fitting[0]}, made for {sector_size}-byte sectors"
    if image:
        return (
            f"no bundled layout is made for {sector_size}-byte sectors, and the Apple TV reads its disk in 512-byte sectors:"
            " build the image with --sector-size 512 (the default)"
        )
    return (
        f"no bundled layout is made for {sector_size}-byte sectors, and the Apple TV reads its disk in 512-byte sectors: use a"
        " disk with 512-byte logical sectors (512n or 512e: nearly every CF card, SSD and USB adapter; `atvdisk devices` shows"
        " each disk's sector size)"
    )
