"""The console script's entry point: Ctrl-C and SIGTERM are quiet from the first instruction.

Importing the CLI takes a few hundred milliseconds; a Ctrl-C then used to print a traceback of
whatever was being imported. Until :class:`~atvdisk.cli.main.AtvdiskGroup` takes over (it
reports an interruption in the one error style, exit 130, after the cleanups ran), SIGINT and
SIGTERM end the process at once with exit 130: nothing has been done yet that needs undoing.
"""

from __future__ import annotations

import os
import signal
import sys

EXIT_INTERRUPTED = 130  # atvdisk.errors' value: nothing of atvdisk is imported before the handlers


def _early_interrupt(signum: int, frame: object) -> None:
    try:
        os.write(2, b"\natvdisk: interrupted\n")
    finally:
        os._exit(EXIT_INTERRUPTED)


def quiet_until_ready() -> None:
    """Install the early handlers (AtvdiskGroup.main replaces them once it can report)."""
    signal.signal(signal.SIGINT, _early_interrupt)
    signal.signal(signal.SIGTERM, _early_interrupt)


def main() -> None:
    quiet_until_ready()
    from atvdisk.cli.main import main as cli

    code = cli.main(standalone_mode=False)
    if code == EXIT_INTERRUPTED:
        # Reported, and every cleanup ran. Exit now: a KeyboardInterrupt that went through exec()
        # (dataclasses, while a command was imported) leaves CPython's "unhandled Ctrl-C" flag
        # set, and the interpreter would then kill itself with SIGINT instead of exiting 130.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
