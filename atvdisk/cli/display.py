"""Drawing a :class:`~atvdisk.progress.Progress` for a person: the whole job's percentage, ETA
and running steps live at the bottom of a terminal, or plain lines in a log.

Three forms, chosen by :func:`atvdisk.cli.console.Console.progress`:

- :class:`LiveDisplay` (a terminal): finished steps scroll by as lines; below them, redrawn ten
  times a second, one line per running step (bytes done, elapsed) and a bar with the job's
  percentage, speed and ETA. With ``ansi`` it moves the cursor with escape codes; without
  (``NO_COLOR``) it keeps to one status line rewritten with a carriage return, no escape codes.
- :class:`PlainDisplay` (a pipe, a file, ``TERM=dumb``): one line when a step starts and one when
  it ends, with the job's percentage, and a line every 10 s during a long step.
- nothing (``-q``, ``--json``).

Written by hand rather than with rich or tqdm: the whole of it is this file, it imports nothing
beyond the standard library (rich costs ~0.1 s of start-up, more than the rest of the CLI; tqdm
draws one bar per task and has no notion of a job made of parallel steps), and it shares one lock
with the console so that messages, commands run (-v) and the live lines never tear each other.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from atvdisk.cli.text import printable
from atvdisk.layout.units import format_iec
from atvdisk.progress import Progress, Snapshot, StepRecord

SPINNER = "|/-\\"


def format_duration(seconds: float) -> str:
    """``0:07``, ``12:34``, ``1:02:03``."""
    s = int(seconds + 0.5)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02}:{s:02}" if h else f"{m}:{s:02}"


def _shown(record: StepRecord) -> str:
    """A step's description as it may reach the terminal (it can name files from the inputs)."""
    return printable(record.description, one_line=True)


def step_label(progress: Progress, record: StepRecord) -> str:
    total = progress.total_steps
    if not total:
        return f"[{record.number}]"
    width = len(str(total))
    return f"[{record.number:>{width}}/{total}]"


def job_summary(snap: Snapshot) -> str:
    """``47%  1.2 GiB of 2.6 GiB  38.0 MiB/s  ETA 0:05`` (what is known of it)."""
    parts = []
    if snap.fraction is not None:
        parts.append(f"{100 * snap.fraction:3.0f}%")
    if snap.total:
        parts.append(f"{format_iec(snap.done)} of {format_iec(snap.total)}")
    if snap.rate:
        parts.append(f"{format_iec(int(snap.rate))}/s")
    eta = snap.eta
    parts.append(f"ETA {format_duration(eta)}" if eta is not None else "ETA --:--")
    return "  ".join(parts)


def bar(fraction: float | None, width: int) -> str:
    if width < 3:
        return ""
    inner = width - 2
    if fraction is None:
        return "[" + " " * inner + "]"
    full = int(inner * fraction)
    head = ">" if full < inner else ""
    return "[" + "=" * full + head + " " * (inner - full - len(head)) + "]"


class LiveDisplay:
    """The terminal form. ``write`` puts a line above the live lines (thread-safe)."""

    INTERVAL = 0.1
    MAX_RUNNING = 4  # running steps shown; more are summed up in one line

    def __init__(self, progress: Progress, stream: TextIO, lock: threading.RLock, *, ansi: bool, clock: Callable[[], float] = time.monotonic, width: Callable[[], int] | None = None) -> None:
        self.progress = progress
        self.stream = stream
        self.lock = lock
        self.ansi = ansi
        self.clock = clock
        self._width = width or (lambda: shutil.get_terminal_size((80, 24)).columns)
        self._drawn = 0  # live lines on screen (ansi) / length of the status line (plain \r)
        self._paused = 0
        self._tick = 0
        self._stop = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    # -- the Listener side (called with the progress lock held) --------------------------------

    def started(self, progress: Progress, record: StepRecord) -> None:
        pass  # the next redraw shows it

    def advanced(self, progress: Progress, record: StepRecord) -> None:
        pass

    def finished(self, progress: Progress, record: StepRecord) -> None:
        if record.ok:
            self.write(f"{step_label(progress, record)} {_shown(record)} ({record.seconds:.1f} s)")

    # -- drawing -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="atvdisk-display", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self.lock:
            self._clear()
            self._stopped = True
            self.stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            self.redraw()

    def write(self, text: str) -> None:
        """A line above the live lines."""
        self.write_to(self.stream, text)

    def write_to(self, stream: TextIO, text: str) -> None:
        """A line on ``stream`` (stdout or stderr), the live lines drawn again below it."""
        with self.lock:
            self._clear()
            if stream is not self.stream:
                self.stream.flush()
            stream.write(text + "\n")
            stream.flush()
            self._draw()
            self.stream.flush()

    def redraw(self) -> None:
        with self.lock:
            self._tick += 1
            self._clear()
            self._draw()
            self.stream.flush()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No live lines meanwhile (a question is asked)."""
        with self.lock:
            self._paused += 1
            self._clear()
            self.stream.flush()
        try:
            yield
        finally:
            with self.lock:
                self._paused -= 1

    def lines(self) -> list[str]:
        """What the live part shows now (each line within the terminal's width)."""
        width = max(20, self._width() - 1)  # never the last column: no automatic wrap
        snap = self.progress.snapshot()
        now = self.clock()
        spin = SPINNER[self._tick % len(SPINNER)]
        running = sorted(snap.running, key=lambda r: r.number)
        out = []
        for r in running[: self.MAX_RUNNING if self.ansi else 1]:
            out.append(_fit(f"{spin} {step_label(self.progress, r)} {_shown(r)}", _step_state(r, now), width))
        if len(running) > self.MAX_RUNNING and self.ansi:
            out.append(_fit(f"  ... and {len(running) - self.MAX_RUNNING} more steps", "", width))
        summary = job_summary(snap)
        room = width - len(summary) - 1
        if self.ansi:
            out.append(f"{bar(snap.fraction, min(40, room))} {summary}"[:width] if room >= 10 else summary[:width])
        elif out:
            # One line only: the running step, then the job's figures.
            out = [_fit(out[0], summary, width)]
        else:
            out = [summary[:width]]
        return out

    def _draw(self) -> None:
        if self._paused or self._stopped:
            return
        lines = self.lines()
        if self.ansi:
            self.stream.write("\n".join(lines))
            self._drawn = len(lines)
        else:
            text = lines[-1]
            self.stream.write("\r" + text)
            self._drawn = len(text)

    def _clear(self) -> None:
        if not self._drawn:
            return
        if self.ansi:
            # To the start of the first live line, then erase to the end of the screen.
            up = self._drawn - 1
            self.stream.write("\r" + (f"\x1b[{up}A" if up else "") + "\x1b[J")
        else:
            self.stream.write("\r" + " " * self._drawn + "\r")
        self._drawn = 0


def _step_state(r: StepRecord, now: float) -> str:
    elapsed = format_duration(now - r.started)
    if r.total:
        return f"{format_iec(r.done)} of {format_iec(r.total)}  {elapsed}"
    if r.done:
        return f"{format_iec(r.done)}  {elapsed}"
    return elapsed


def _fit(left: str, right: str, width: int) -> str:
    """``left`` cut to leave room for ``right`` at the end of a line of ``width``."""
    if not right:
        return left[:width]
    room = width - len(right) - 2
    if room < 10:
        return (left[: width - 1])
    if len(left) > room:
        left = left[: room - 3] + "..."
    return left + " " * (width - len(left) - len(right)) + right


class PlainDisplay:
    """The log form: a line per step start and end, and every ``EVERY`` seconds during a step."""

    EVERY = 10.0

    def __init__(self, progress: Progress, write: Callable[[str], None], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.progress = progress
        self.write = write
        self.clock = clock
        self._last = clock()

    def started(self, progress: Progress, record: StepRecord) -> None:
        self._last = self.clock()
        self.write(f"{step_label(progress, record)} {_shown(record)}")

    def advanced(self, progress: Progress, record: StepRecord) -> None:
        now = self.clock()
        if now - self._last < self.EVERY:
            return
        self._last = now
        self.write(f"{step_label(progress, record)} {_step_state(record, now)}; job {job_summary(progress.snapshot())}")

    def finished(self, progress: Progress, record: StepRecord) -> None:
        if not record.ok:
            return
        snap = progress.snapshot()
        pct = f", job {100 * snap.fraction:.0f}% done" if snap.fraction is not None else ""
        latest = progress.records[-1] is record
        what = "" if latest else f": {_shown(record)}"
        self.write(f"{step_label(progress, record)} done in {record.seconds:.1f} s{pct}{what}")

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    @contextmanager
    def paused(self) -> Iterator[None]:
        yield
