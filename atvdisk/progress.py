"""Progress of a long job, as data: steps (several at once, from several threads), each with a
size in bytes, and the whole job's percentage and ETA. No I/O here: the command line draws it
(:mod:`atvdisk.cli.display`), the machine-readable summaries keep the step records.

Library code only does this::

    with progress.step("partition 3 OSBoot: HFS+", total=n_bytes) as task:
        task.advance(len(chunk))          # or progress.advance(n): the step this thread opened
        f = progress.counting(f)          # reads through f advance the step

and a command announces, before a phase starts, how many bytes it will account for
(:meth:`Progress.expect`), so that the percentage covers the whole job from the first second.
A step's bytes are taken out of what was expected when it starts; a step without a size counts
as done or not (its time shows, nothing else).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol


@dataclass
class StepRecord:
    """One step: what it does, its size and how far it got. ``--json`` lists these."""

    number: int
    description: str
    total: int = 0  # bytes this step accounts for in the job (0: not measured in bytes)
    done: int = 0
    started: float = 0.0
    seconds: float = 0.0
    ok: bool = False
    finished: bool = False
    _progress: Progress | None = field(default=None, repr=False, compare=False)

    def advance(self, n: int) -> None:
        """``n`` more bytes of this step are done (any thread)."""
        if self._progress is not None and n:
            self._progress._advance(self, n)

    def add_total(self, n: int) -> None:
        """The step turned out to be ``n`` bytes larger (or smaller, if negative)."""
        if self._progress is not None and n:
            self._progress._grow(self, n)


# A task is what a step hands to the code doing the work.
Task = StepRecord


class Listener(Protocol):
    """What draws the progress (atvdisk.cli.display). Called in the thread that made the change,
    outside the progress lock (so it may call :meth:`Progress.snapshot`)."""

    def started(self, progress: Progress, record: StepRecord) -> None: ...

    def finished(self, progress: Progress, record: StepRecord) -> None: ...

    def advanced(self, progress: Progress, record: StepRecord) -> None: ...


@dataclass(frozen=True)
class Snapshot:
    """The whole job at one moment (for drawing)."""

    done: int
    total: int
    elapsed: float
    rate: float | None  # bytes per second lately, None until it is known
    running: tuple[StepRecord, ...]
    steps_started: int
    total_steps: int

    @property
    def fraction(self) -> float | None:
        return None if self.total <= 0 else min(1.0, self.done / self.total)

    @property
    def eta(self) -> float | None:
        """Seconds left, from the recent rate; None while it is not known."""
        if self.rate is None or self.rate <= 0 or self.total <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.rate)


class Progress:
    """Thread-safe: steps may start, advance and end in any thread (the build writes partitions
    in parallel). ``quiet`` is accepted for compatibility: a Progress never prints."""

    WINDOW = 8.0  # seconds of history the rate is taken over

    def __init__(self, listener: Listener | None = None, *, quiet: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.listener = listener
        self.records: list[StepRecord] = []
        self.total_steps = 0  # how many steps the command expects (0: unknown)
        self._clock = clock
        self._lock = threading.RLock()  # the figures
        self._notify = threading.Lock()  # taken before _lock: listeners hear of steps in order
        self._local = threading.local()
        self._expected = 0  # bytes announced for steps not started yet
        self._total = 0  # bytes of the steps started so far
        self._done = 0
        self._start: float | None = None
        self._history: deque[tuple[float, int]] = deque()

    # -- announcing the job -----------------------------------------------------------------

    def expect(self, nbytes: int, *, steps: int = 0, replace: bool = False) -> None:
        """Steps to come will account for about ``nbytes`` more bytes (and ``steps`` more
        steps); with ``replace``, ``nbytes`` is the new figure for all the steps to come."""
        with self._lock:
            self._expected = max(0, nbytes) + (0 if replace else self._expected)
            self.total_steps += steps
            self._begin()

    # -- steps ------------------------------------------------------------------------------

    @contextmanager
    def step(self, description: str, *, total: int = 0) -> Iterator[StepRecord]:
        """A step of ``total`` bytes; the record is this thread's current step meanwhile."""
        record = self._open(description, total)
        outer = getattr(self._local, "current", None)
        self._local.current = record
        try:
            yield record
            record.ok = True
        finally:
            self._local.current = outer
            self._close(record)

    def _open(self, description: str, total: int) -> StepRecord:
        with self._notify:  # listeners hear of steps in the order they start and end ...
            with self._lock:
                self._begin()
                record = StepRecord(len(self.records) + 1, description, total=max(0, total), started=self._clock(), _progress=self)
                self.records.append(record)
                if self.total_steps and record.number > self.total_steps:
                    self.total_steps = record.number
                self._expected = max(0, self._expected - record.total)
                self._total += record.total
            if self.listener is not None:  # ... outside the figures' lock (a listener may draw)
                self.listener.started(self, record)
        return record

    def _close(self, record: StepRecord) -> None:
        with self._notify:
            self._close_locked(record)

    def _close_locked(self, record: StepRecord) -> None:
        with self._lock:
            record.seconds = self._clock() - record.started
            record.finished = True
            if record.ok and record.done < record.total:
                # Whatever was not reported along the way is done now (a tool ran, a file was
                # skipped over): the job's bytes stay consistent.
                self._done += record.total - record.done
                record.done = record.total
                self._sample()
        if self.listener is not None:
            self.listener.finished(self, record)

    @property
    def current(self) -> StepRecord | None:
        """The step this thread is in, if any."""
        return getattr(self._local, "current", None)

    def advance(self, n: int) -> None:
        """``n`` more bytes of this thread's current step are done (nothing outside a step)."""
        record = self.current
        if record is not None:
            record.advance(n)

    def start_meter(self, total: int) -> None:
        """The current step turns out to be ``total`` bytes (if it was opened without a size)."""
        record = self.current
        if record is not None and total > record.total:
            record.add_total(total - record.total)

    def counting(self, f: BinaryIO, record: StepRecord | None = None) -> BinaryIO:
        """Wrap a readable binary stream so that what is read advances ``record`` (default: this
        thread's current step)."""
        record = record or self.current
        if record is None:
            return f
        return _Counting(f, record)  # type: ignore[return-value]

    def _advance(self, record: StepRecord, n: int) -> None:
        with self._lock:
            if record.finished:
                return
            # Never past the step's size: the job's total stays an upper bound.
            if record.total:
                n = min(n, record.total - record.done)
                if n <= 0:
                    return
            else:
                self._total += n
            record.done += n
            self._done += n
            self._sample()
        if self.listener is not None:
            self.listener.advanced(self, record)

    def _grow(self, record: StepRecord, n: int) -> None:
        with self._lock:
            if record.finished:
                return
            n = max(n, record.done - record.total)
            record.total += n
            self._total += n
            self._expected = max(0, self._expected - max(0, n))

    # -- the whole job ----------------------------------------------------------------------

    def _begin(self) -> None:
        if self._start is None:
            self._start = self._clock()
            self._history.append((self._start, 0))

    def _sample(self) -> None:
        now = self._clock()
        h = self._history
        if h and now - h[-1][0] < 0.05:
            h[-1] = (h[-1][0], self._done)
        else:
            h.append((now, self._done))
        while len(h) > 2 and now - h[1][0] > self.WINDOW:
            h.popleft()

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = self._clock()
            elapsed = now - self._start if self._start is not None else 0.0
            rate = None
            if len(self._history) >= 2:
                t0, d0 = self._history[0]
                span = now - t0
                if span >= 1.0 and self._done > d0:
                    rate = (self._done - d0) / span
            running = tuple(r for r in self.records if not r.finished)
            return Snapshot(self._done, self._total + self._expected, elapsed, rate, running, len(self.records), self.total_steps)


class _Counting:
    """A reader that advances a step by what passes through it (``readinto`` only where the
    wrapped file has one, so callers that test for it behave as with the file itself)."""

    def __init__(self, f: BinaryIO, record: StepRecord) -> None:
        self._f = f
        self._record = record

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._record.advance(len(data))
        return data

    def __getattr__(self, name: str):  # noqa: ANN204 - fileno, seek, tell, readinto ...
        if name == "readinto" and hasattr(self._f, "readinto"):
            return self._readinto
        return getattr(self._f, name)

    def _readinto(self, buf) -> int:  # noqa: ANN001 - a writable buffer
        n = self._f.readinto(buf) or 0  # type: ignore[attr-defined]
        self._record.advance(n)
        return n
