"""The command line. The only place that prints messages for errors and sets exit codes."""

from __future__ import annotations

import importlib
import logging
import shlex
import signal
import sys
import threading
import traceback
from typing import Any

import click

from atvdisk import __version__
from atvdisk.cli.common import (
    layout_option,
    parse_size_option,
    resolve_for,
    seed_option,
)
from atvdisk.cli.console import DEBUG, NORMAL, QUIET, VERBOSE, Console
from atvdisk.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, AtvdiskError
from atvdisk.layout.schema import bundled_layouts, load_layout
from atvdisk.layout.units import Quantity, format_parted
from atvdisk.target.interrupt import terminate_raises

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
    """One way out for every error: library exceptions, click's usage errors, Ctrl-C and bugs
    all end in :func:`report` (``atvdisk: error: ...`` / ``  hint: ...``, JSON on stdout too
    with ``--json``) and an exit code. Global options work after the subcommand as well."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:  # noqa: D102
        args = list(sys.argv[1:] if args is None else args)
        options = args[: args.index("--")] if "--" in args else args
        self._json_errors = "--json" in options
        self._command_line = args
        self._console: Console | None = None
        try:
            # Ctrl-C is a KeyboardInterrupt from here on (cli/launch.py exited quietly before),
            # and SIGTERM/SIGHUP too (Terminated): every cleanup runs, then report() says so.
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.default_int_handler)
            with terminate_raises():
                code = super().main(args, prog_name or "atvdisk", complete_var, standalone_mode=False, **extra)
        except click.ClickException as e:  # the group's own options (atvdisk --bogus)
            code = report(self._fallback_console(), e)
        except click.Abort:
            code = report(self._fallback_console(), KeyboardInterrupt())
        except KeyboardInterrupt as e:
            code = report(self._fallback_console(), e)
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code

    def _fallback_console(self) -> Console:
        console = self._console or Console()
        console.json = self._json_errors
        console.command_line = self._command_line
        return console

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[name].split(":")
            command = getattr(importlib.import_module(module), attr)
            self.add_command(command, name)
        if command is not None:
            add_global_options(command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        console = ctx.ensure_object(Console)
        self._console = console
        console.json = getattr(self, "_json_errors", False)
        console.command_line = getattr(self, "_command_line", [])
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BaseException as e:  # noqa: BLE001 - every error is reported the same way
            if not isinstance(e, Exception | KeyboardInterrupt):
                raise
            ctx.exit(report(console, e))


def _kind(e: BaseException) -> str:
    """The error's kind in --json (stable names)."""
    from atvdisk.errors import (
        BuildError,
        DiskTooSmall,
        InputError,
        LayoutError,
        TargetRefused,
        VerifyError,
    )

    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    if isinstance(e, click.ClickException):
        return "usage"
    for cls, name in ((VerifyError, "verify"), (BuildError, "build"), (TargetRefused, "refused"), (DiskTooSmall, "refused"), (LayoutError, "layout"), (InputError, "input")):
        if isinstance(e, cls):
            return name
    if isinstance(e, AtvdiskError):
        return "usage" if e.exit_code == EXIT_USAGE else "error"
    return "internal"


def report(console: Console, e: BaseException) -> int:
    """Tell the user about ``e`` in the one error style; return the exit code."""
    from atvdisk.errors import VerifyError

    if console.debug and not isinstance(e, click.ClickException):
        traceback.print_exception(e)
    more: list[str] = []
    prefix = "error"
    extra: dict[str, Any] = {}
    if isinstance(e, AtvdiskError):
        code, message, hint = e.exit_code, e.message, e.hint
        if isinstance(e, VerifyError):
            extra["mismatches"] = e.mismatches
    elif isinstance(e, click.ClickException):
        code, message, hint = e.exit_code, e.format_message(), None
        usage_ctx = getattr(e, "ctx", None)
        if isinstance(e, click.UsageError) and usage_ctx is not None:
            more.append("usage: " + usage_ctx.get_usage().removeprefix("Usage: ").strip())
            hint = f"'{usage_ctx.command_path} --help' explains every option"
    elif isinstance(e, KeyboardInterrupt):
        code, prefix = EXIT_INTERRUPTED, "interrupted"
        message = str(e) if str(e) else "stopped by Ctrl-C"
        hint = None
    else:  # a bug: say so, and keep the traceback for --debug
        code, prefix = EXIT_INTERNAL, "internal error"
        message = f"{type(e).__name__}: {e}"
        hint = "run again with --debug for the traceback, and please report it" if not console.debug else "please report it, with the traceback above"
    writing = console.writing
    if writing is not None and writing.disk and not isinstance(e, VerifyError):
        again = "atvdisk " + shlex.join(console.command_line) if console.command_line else "the same atvdisk command"
        more.append(f"{writing.target} is now incomplete: its old partition table was wiped and the build did not finish, so it will not boot")
        hint = (hint + "; then " if hint and code != EXIT_INTERRUPTED else "") + f"build {writing.target} again: {again}"
        extra["target_incomplete"] = writing.target
    elif writing is not None:
        more.append(f"nothing was left at {writing.target}: the unfinished image was removed")
    console.error(message, hint, prefix=prefix, more=more)
    if console.json:
        document = {"format": "atvdisk-error/1", "exit_code": code, "error": _kind(e), "message": message, "hint": hint, **extra}
        console.out_json(document, indent=2)
    return code


def _set_verbose(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value:
        _configure(ctx, **{param.name or "": value})


def _configure(ctx: click.Context, *, verbose: int = 0, quiet: bool = False, debug: bool = False) -> None:
    """Global options, given before or after the subcommand (they add up)."""
    console = ctx.ensure_object(Console)
    flags = ctx.find_root().meta.setdefault("atvdisk.global", {"verbose": 0, "quiet": False, "debug": False})
    flags["verbose"] += verbose
    flags["quiet"] |= quiet
    flags["debug"] |= debug
    verbosity = QUIET if flags["quiet"] else min(flags["verbose"], DEBUG)
    if flags["debug"]:
        verbosity = DEBUG
    console.verbosity = verbosity
    console.debug = flags["debug"]
    logger = logging.getLogger("atvdisk")
    for handler in [h for h in logger.handlers if getattr(h, "atvdisk_console", False)]:
        logger.removeHandler(handler)
    handler = console.log_handler()
    handler.atvdisk_console = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel({QUIET: logging.WARNING, NORMAL: logging.WARNING, VERBOSE: logging.INFO, DEBUG: logging.DEBUG}[verbosity])


def _global_options() -> list[click.Option]:
    return [
        click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=_set_verbose, help="Say more: -v the steps and every command run, -vv their output too."),
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_set_verbose, help="Only the one-line result, warnings and errors."),
        click.Option(["--debug"], is_flag=True, expose_value=False, callback=_set_verbose, help="Tracebacks for errors, and everything -vv shows."),
    ]


def add_global_options(command: click.Command) -> None:
    """Give a subcommand -v/-q/--debug too, so that `atvdisk verify x.img -q` works."""
    names = {name for p in command.params for name in p.opts}
    if "--quiet" in names:
        return
    command.params.extend(o for o in _global_options() if not set(o.opts) & names)


def _root_options(f):  # noqa: ANN001, ANN202
    for option in reversed(_global_options()):
        f.__click_params__ = [*getattr(f, "__click_params__", []), option]
    return f


@click.group(cls=AtvdiskGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="atvdisk")
@_root_options
@click.pass_context
def main(ctx: click.Context) -> None:
    """Rebuild the internal disk of an Apple TV (1st generation) so it boots OpenELEC,
    or write the same disk as an image.

    Start with `atvdisk plan --size 4G` to see what a build does, `atvdisk devices` to find
    your disk, and `atvdisk build --help`. Global options (-v, -q, --debug) may also follow
    the command.
    """
    _configure(ctx)


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
    from atvdisk.target.probe import probe_size

    if (size is None) == (target is None):
        raise click.UsageError("give either --size SIZE or a TARGET (not both)")
    layout = load_layout(layout_name)
    if target is not None:
        info = probe_size(target, image_sector_size=int(sector_size or 512))
        if sector_size and int(sector_size) != info.sector_size:
            raise click.UsageError(f"{target} has {info.sector_size}-byte sectors; --sector-size {sector_size} does not apply")
        plan = resolve_for(layout, info.size_bytes, info.sector_size, seed=seed, target=target, image=False)
    else:
        assert size is not None
        sector = int(sector_size or 512)
        disk_bytes = size.to_bytes(sector)
        plan = resolve_for(layout, disk_bytes, sector, seed=seed, target=f"a disk of {format_parted(disk_bytes)}", image=True)
    console.out(plan.to_json() if as_json else plan.render())
