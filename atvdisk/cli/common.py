"""What the commands share: the console (what the user sees) and common options.

Kept apart from :mod:`atvdisk.cli.main` so that the command modules need not import the entry
module that registers them.
"""

from __future__ import annotations

import click

from atvdisk.cli.console import Console
from atvdisk.layout.units import Quantity, SizeSyntaxError, parse_quantity

__all__ = ["Console", "layout_option", "parse_seed_option", "parse_size_option", "seed_option"]


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
    if not value or len(value) > 200 or not value.isprintable():
        raise click.BadParameter("a seed is 1 to 200 printable characters, e.g. --seed shop-2024-001")
    return value


seed_option = click.option(
    "--seed",
    callback=parse_seed_option,
    metavar="TEXT",
    default=None,
    help="Derive every identifier (disk/partition GUIDs, filesystem UUIDs) from TEXT: with"
    " SOURCE_DATE_EPOCH, builds are bit-identical. Default: fresh random identifiers per disk.",
)


layout_option = click.option(
    "--layout",
    "layout_name",
    default="atv1-openelec",
    show_default=True,
    metavar="NAME|PATH",
    help="A bundled layout (see `atvdisk layouts`) or a layout .toml file.",
)
