"""What the user sees: every line atvdisk prints goes through one :class:`Console`.

- stdout holds results only: the one-line result of a command, tables, JSON. ``-q`` keeps them.
- stderr holds the conversation: progress, information, warnings, questions, errors.
- Verbosity: ``-q`` -1 (results, warnings and errors), 0 (progress and information), ``-v`` 1
  (also each command run and the details of each step), ``-vv`` 2 (also the commands' output).
- Colour only on a terminal, never with ``NO_COLOR`` set (https://no-color.org) or ``TERM=dumb``;
  the live progress display too uses escape codes only on such a terminal (with ``NO_COLOR`` it
  rewrites one status line with a carriage return; elsewhere it prints plain lines).
- Errors: one style, ``atvdisk: error: MESSAGE`` then ``  hint: WHAT TO DO`` (see
  :mod:`atvdisk.cli.main`); with ``--json`` also a JSON document on stdout.

Commands get the console as their click object (``@click.pass_obj``); library code never prints,
it logs (shown at -v) and reports progress (:mod:`atvdisk.progress`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

import click

from atvdisk.cli.text import json_text, printable
from atvdisk.progress import Progress

QUIET, NORMAL, VERBOSE, DEBUG = -1, 0, 1, 2

def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass
class Writing:
    """What the command is writing, once it has started (for the message if it is interrupted)."""

    target: str
    disk: bool  # a disk (left incomplete) or an image file (removed)


class Console:
    """``verbosity``: -1 quiet, 0 normal, 1 verbose, 2 the commands' output too."""

    def __init__(self, verbosity: int = NORMAL, debug: bool = False, *, environ: dict[str, str] | None = None) -> None:
        self.verbosity = verbosity
        self.debug = debug
        self.json = False  # errors as JSON on stdout too (a command's --json)
        self.writing: Writing | None = None
        self.command_line: list[str] = []  # argv after the program name, for "run it again" hints
        self.environ = os.environ if environ is None else environ
        self.lock = threading.RLock()
        self._display = None  # the live display, while a job runs

    # -- streams and styles ------------------------------------------------------------------

    @property
    def stdout(self) -> TextIO:
        return sys.stdout  # looked up each time: click's test runner swaps it

    @property
    def stderr(self) -> TextIO:
        return sys.stderr

    @property
    def terminal(self) -> bool:
        """stderr is a terminal that can take a live display."""
        return _isatty(self.stderr) and self.environ.get("TERM", "") != "dumb"

    @property
    def color(self) -> bool:
        return self.terminal and not self.environ.get("NO_COLOR")

    def style(self, text: str, **styles: object) -> str:
        return click.style(text, **styles) if self.color else text  # type: ignore[arg-type]

    def _emit(self, stream: TextIO, text: str) -> None:
        with self.lock:
            display = self._display
            if display is not None and hasattr(display, "write_to"):
                display.write_to(stream, text)
                return
            stream.write(text + "\n")
            stream.flush()

    # -- what commands print -------------------------------------------------------------------

    def out(self, text: str = "") -> None:
        """A result (a table): always printed, on stdout."""
        self._emit(self.stdout, printable(text))

    def out_json(self, document: object, **dumps: object) -> None:
        """A JSON result, always printed, on stdout (see :func:`json_text`)."""
        self._emit(self.stdout, json_text(document, **dumps))

    def result(self, text: str) -> None:
        """The one-line result of a command: on stdout, also with -q (not with --json)."""
        if not self.json:
            self._emit(self.stdout, printable(text))

    def info(self, text: str) -> None:
        if self.verbosity >= NORMAL:
            self._emit(self.stderr, printable(text))

    def detail(self, text: str) -> None:
        """Steps' details and the commands run: -v."""
        if self.verbosity >= VERBOSE:
            self._emit(self.stderr, printable(text))

    def output(self, text: str) -> None:
        """The commands' own output: -vv."""
        if self.verbosity >= DEBUG:
            self._emit(self.stderr, printable(text))

    def warn(self, text: str) -> None:
        """Something the user should know; shown at every verbosity."""
        self._emit(self.stderr, self.style("warning: ", fg="yellow", bold=True) + printable(text))

    def note(self, text: str) -> None:
        if self.verbosity >= NORMAL:
            self._emit(self.stderr, self.style("note: ", bold=True) + printable(text))

    def error(self, message: str, hint: str | None = None, *, prefix: str = "error", more: list[str] | None = None) -> None:
        """``atvdisk: error: MESSAGE`` and ``  hint: ...`` (the one error style)."""
        lines = [self.style(f"atvdisk: {prefix}: ", fg="red", bold=True) + printable(message)]
        lines += [f"  {printable(line)}" for line in more or []]
        if hint:
            lines.append(self.style("  hint: ", bold=True) + printable(hint))
        self._emit(self.stderr, "\n".join(lines))

    def ask(self, question: str, *, stdin: TextIO | None = None) -> str | None:
        """Ask on stderr (no prefix, the live display paused) and read one line; None at the end
        of input."""
        stdin = stdin if stdin is not None else sys.stdin
        with self.lock:
            display = self._display
            pause = display.paused() if display is not None else _nothing()
            with pause:
                self.stderr.write(self.style(printable(question), bold=True) + " ")
                self.stderr.flush()
                answer = stdin.readline()
                if not answer:
                    self.stderr.write("\n")
                return answer or None

    # -- progress ------------------------------------------------------------------------------

    @contextmanager
    def progress(self, *, show: bool = True) -> Iterator[Progress]:
        """A Progress drawn for this console while the block runs: live on a terminal, plain
        lines otherwise, nothing with -q or ``show=False`` (--json)."""
        from atvdisk.cli.display import LiveDisplay, PlainDisplay

        progress = Progress()
        if not show or self.verbosity < NORMAL:
            yield progress
            return
        if self.terminal:
            display = LiveDisplay(progress, self.stderr, self.lock, ansi=not self.environ.get("NO_COLOR"))
        else:
            display = PlainDisplay(progress, lambda text: self._emit(self.stderr, text))
        progress.listener = display
        with self.lock:
            if isinstance(display, LiveDisplay):
                self._display = display
            display.start()
        try:
            yield progress
        finally:
            display.stop()
            with self.lock:
                self._display = None

    def log_handler(self) -> logging.Handler:
        return _ConsoleHandler(self)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


class _ConsoleHandler(logging.Handler):
    """Library logging through the console: INFO (the commands run) at -v, DEBUG (their output)
    at -vv, warnings always."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.DEBUG)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken log call must not break the build
            text = str(record.msg)
        if record.levelno >= logging.WARNING:
            self.console.warn(text)
        elif record.levelno >= logging.INFO:
            self.console.detail(text)
        else:
            self.console.output(text)
