"""Shared pieces of the benchmark harness: running and timing commands, medians, result rows.

Timing: wall-clock seconds (``time.perf_counter``) around the measured work, plus the CPU
seconds (user + system) it cost, from ``getrusage`` deltas of this process and its children.
Between runs, untimed: the previous outputs are deleted and ``sync`` flushes dirty pages, so
one run's write-back does not land in the next run's time. Inputs stay in the page cache
(every side reads warm inputs); outputs go through the page cache, and whatever each side
fsyncs is part of its time (see each section for what is flushed).
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

MB = 1000 * 1000
MiB = 1 << 20
GiB = 1 << 30
EPOCH = "1300000000"  # SOURCE_DATE_EPOCH for every atvdisk build: reproducible images


class BenchError(Exception):
    """A measured command failed: the section reports it instead of a number."""


@dataclass
class Sample:
    wall: float
    cpu: float  # user + system seconds of this process and its children during the sample


@contextmanager
def stopwatch() -> Iterator[Sample]:
    s = Sample(0.0, 0.0)
    self0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        yield s
    finally:
        s.wall = time.perf_counter() - t0
        self1, kids1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        s.cpu = (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime) + (kids1.ru_utime - kids0.ru_utime) + (kids1.ru_stime - kids0.ru_stime)


def run(cmd: list[str | os.PathLike[str]], *, env: dict[str, str] | None = None, cwd: Path | None = None, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    """Run a command (output captured); raise BenchError with its stderr if it fails."""
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    argv = [os.fspath(c) for c in cmd]
    try:
        r = subprocess.run(argv, check=False, capture_output=True, text=True, env=full_env, cwd=cwd, errors="replace")
    except OSError as e:
        raise BenchError(f"{argv[0]}: {e.strerror}") from None
    if r.returncode not in ok:
        tail = (r.stderr.strip() or r.stdout.strip())[-800:]
        raise BenchError(f"`{' '.join(argv)}` exited {r.returncode}: {tail}")
    return r


def settle() -> None:
    """Untimed, between runs: write back dirty pages so they do not land in the next sample."""
    os.sync()


def remove(*paths: Path) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def allocated(path: Path) -> int:
    """Bytes a (sparse) file really occupies: st_blocks * 512."""
    return path.stat().st_blocks * 512


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> str:
    """min-max of the samples, for the notes (noise on shared cores)."""
    return f"{min(xs):.2f}-{max(xs):.2f}" if xs else "-"


def warm(paths: list[Path]) -> None:
    """Read inputs once so that every side starts with them in the page cache."""
    for p in paths:
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        for f in files:
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass


def fsync_files(paths: list[Path]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def tree_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@dataclass
class Row:
    """One line of the results table."""

    key: str
    what: str
    atvdisk: str  # the measured figure (median)
    baseline: str  # what it is compared with (median), or "-"
    ratio: str  # atvdisk / baseline, or "-"
    target: str
    result: str  # PASS, MISS, info, or why there is no figure


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)  # raw samples, for --json


def verdict(ok: bool | None, smoke: bool) -> str:
    """PASS/MISS against a target; "(smoke)" in smoke mode, where the sizes make targets meaningless."""
    if smoke:
        return "(smoke)"
    if ok is None:
        return "info"
    return "PASS" if ok else "MISS"


def secs(x: float) -> str:
    return f"{x:.2f} s"


def size_mb(n: float) -> str:
    return f"{n / MB:,.1f} MB"
