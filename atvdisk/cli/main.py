"""The command line. The only place that prints messages for errors and sets exit codes."""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from typing import Any

import click

from atvdisk import __version__
from atvdisk.cli.common import Console, layout_option, parse_size_option, seed_option
from atvdisk.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, AtvdiskError
from atvdisk.layout.schema import bundled_layouts, load_layout
from atvdisk.layout.units import Quantity

log = logging.getLogger("atvdisk")


# Commands defined in other modules, imported only when run or listed (each pulls in a good part
# of atvdisk: a build should not pay for importing the HFS+ reader of `lshfs`, say).
LAZY_COMMANDS = {
    "build": "atvdisk.cli.build:build_cmd",
    "verify": "atvdisk.cli.build:verify_cmd",
    "devices": "atvdisk.cli.devices:devices_cmd",
    "mkhfs": "atvdisk.cli.hfs:mkhfs",
    "lshfs": "atvdisk.cli.hfs:lshfs",
    "extract": "atvdisk.cli.imaging:extract_cmd",
    "write": "atvdisk.cli.imaging:write_cmd",
    "backup": "atvdisk.cli.imaging:backup_cmd",
}


class AtvdiskGroup(click.Group):
    """Turns library exceptions into messages and exit codes; tracebacks only with --debug."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[name].split(":")
            command = getattr(importlib.import_module(module), attr)
            self.add_command(command, name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AtvdiskError as e:
            _report(ctx, e)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("\natvdisk: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as e:  # a bug: say so, and keep the traceback for --debug
            console = ctx.find_object(Console)
            if console is not None and console.debug:
                traceback.print_exc()
            click.echo(f"atvdisk: internal error: {type(e).__name__}: {e}", err=True)
            if console is None or not console.debug:
                click.echo("  run again with --debug for the traceback, and please report it", err=True)
            ctx.exit(EXIT_INTERNAL)


def _report(ctx: click.Context, e: AtvdiskError) -> None:
    console = ctx.find_object(Console)
    if console is not None and console.debug:
        traceback.print_exc()
    click.echo(click.style("atvdisk: error: ", fg="red", bold=True) + str(e), err=True)
    if e.hint:
        click.echo("  hint: " + e.hint, err=True)


@click.group(cls=AtvdiskGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="atvdisk")
@click.option("-v", "--verbose", count=True, help="Say more (repeat for the commands run).")
@click.option("-q", "--quiet", is_flag=True, help="Only results and errors.")
@click.option("--debug", is_flag=True, help="Show tracebacks and every command run.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool, debug: bool) -> None:
    """Rebuild the internal disk of an Apple TV (1st generation) so it boots OpenELEC,
    or write the same disk as an image.

    Start with `atvdisk plan --size 4G` to see what a build does, `atvdisk devices` to find
    your disk, and `atvdisk build --help`.
    """
    verbosity = -1 if quiet else min(verbose, 2)
    if debug:
        verbosity = max(verbosity, 2)
    ctx.obj = Console(verbosity=verbosity, debug=debug)
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}[verbosity]
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)


@main.command("layouts")
@click.pass_obj
def layouts_cmd(console: Console) -> None:
    """List the bundled layouts with a one-line description."""
    for name, path in bundled_layouts().items():
        layout = load_layout(str(path))
        console.out(f"{name:<16} {layout.description}")


@main.command("plan")
@layout_option
@click.option("--size", callback=parse_size_option, metavar="SIZE", help="Plan for a disk of this size: 4G, 4GB, 8451072s (sectors).")
@click.option("--sector-size", type=click.Choice(["512", "4096"]), default=None, help="Logical sector size [default: the target's, or 512].")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (format atvdisk-plan/1).")
@seed_option
@click.argument("target", required=False, metavar="[TARGET]")
@click.pass_obj
def plan_cmd(console: Console, layout_name: str, size: Quantity | None, sector_size: str | None, as_json: bool, seed: str | None, target: str | None) -> None:
    """Show what a build would do: the partition table, filesystems and steps.

    Give either --size (a hypothetical disk) or TARGET (an existing image file or disk, read
    only). Nothing is written.

    \b
    Example:
      atvdisk plan --size 4G
      atvdisk plan --layout atv1-factory --size 40GB --json
    """
    from atvdisk.layout.resolver import resolve
    from atvdisk.target.probe import probe_size

    if (size is None) == (target is None):
        raise click.UsageError("give either --size SIZE or a TARGET (not both)")
    layout = load_layout(layout_name)
    if target is not None:
        info = probe_size(target, image_sector_size=int(sector_size or 512))
        if sector_size and int(sector_size) != info.sector_size:
            raise click.UsageError(f"{target} has {info.sector_size}-byte sectors; --sector-size {sector_size} does not apply")
        plan = resolve(layout, info.size_bytes, info.sector_size, seed=seed)
    else:
        assert size is not None
        sector = int(sector_size or 512)
        plan = resolve(layout, size.to_bytes(sector), sector, seed=seed)
    console.out(plan.to_json() if as_json else plan.render())
