"""Progress reporting for long jobs: numbered steps with elapsed time, and for large copies bytes,
speed and ETA on a terminal. Quiet mode prints nothing; the machine-readable summary collects the
same step records.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

from atvdisk.layout.units import format_iec


@dataclass
class StepRecord:
    number: int
    description: str
    seconds: float = 0.0
    ok: bool = False


@dataclass
class Progress:
    total_steps: int = 0
    quiet: bool = False
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    records: list[StepRecord] = field(default_factory=list)
    _meter_total: int = 0
    _meter_done: int = 0
    _meter_start: float = 0.0
    _meter_last: float = 0.0
    # Steps may run at once (the build writes partitions in parallel): one meter for all of them.
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _active: int = 0

    @property
    def tty(self) -> bool:
        return not self.quiet and self.stream.isatty()

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    @contextmanager
    def step(self, description: str) -> Iterator[StepRecord]:
        with self._lock:
            record = StepRecord(len(self.records) + 1, description)
            self.records.append(record)
            self._active += 1
        width = len(str(self.total_steps or record.number))
        label = f"[{record.number:>{width}}/{self.total_steps}]" if self.total_steps else f"[{record.number}]"
        self.say(f"{label} {description}")
        start = time.monotonic()
        try:
            yield record
            record.ok = True
        finally:
            record.seconds = time.monotonic() - start
            with self._lock:
                self._active -= 1
                if not self._active:
                    self._end_meter()
            if record.ok and record.seconds >= 0.05:
                self.say(f"{' ' * len(label)}   done in {record.seconds:.1f} s" + ("" if record.number == len(self.records) else f" ({description.split(':')[0]})"))

    # -- byte meter ---------------------------------------------------------------------------

    def start_meter(self, total: int) -> None:
        """Count ``total`` more bytes (steps running at once share the meter)."""
        with self._lock:
            if not self._meter_total:
                self._meter_done = 0
                self._meter_start = self._meter_last = time.monotonic()
            self._meter_total += total

    def advance(self, n: int) -> None:
        with self._lock:
            self._advance(n)

    def _advance(self, n: int) -> None:
        self._meter_done += n
        if not self.tty or not self._meter_total:
            return
        now = time.monotonic()
        if now - self._meter_last < 0.2 and self._meter_done < self._meter_total:
            return
        self._meter_last = now
        elapsed = max(now - self._meter_start, 1e-6)
        speed = self._meter_done / elapsed
        left = (self._meter_total - self._meter_done) / speed if speed else 0
        pct = 100 * self._meter_done / self._meter_total
        self.stream.write(
            f"\r      {format_iec(self._meter_done)} of {format_iec(self._meter_total)} ({pct:3.0f}%),"
            f" {format_iec(int(speed))}/s, {left:4.0f} s left  "
        )
        self.stream.flush()

    def _end_meter(self) -> None:
        if self._meter_total and self.tty:
            self.stream.write("\n")
        self._meter_total = self._meter_done = 0

    def counting(self, f: BinaryIO) -> BinaryIO:
        """Wrap a readable binary stream so that reads advance the meter."""
        return _Counting(f, self)  # type: ignore[return-value]


class _Counting:
    def __init__(self, f: BinaryIO, progress: Progress) -> None:
        self._f = f
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._progress.advance(len(data))
        return data

    def readinto(self, buf) -> int:  # noqa: ANN001 - a writable buffer
        n = self._f.readinto(buf)  # type: ignore[attr-defined]
        self._progress.advance(n or 0)
        return n

    def __getattr__(self, name: str):  # fileno, seek, tell, ...
        return getattr(self._f, name)
