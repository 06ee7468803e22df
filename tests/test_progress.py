"""The progress model (atvdisk.progress) and how it is drawn (atvdisk.cli.display): the job's
percentage and ETA over steps running in parallel threads, lines that fit the terminal."""

from __future__ import annotations

import io
import re
import threading

from atvdisk.cli.display import (
    LiveDisplay,
    PlainDisplay,
    bar,
    format_duration,
    job_summary,
)
from atvdisk.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_job_is_the_sum_of_its_steps_and_what_is_expected() -> None:
    clock = Clock()
    p = Progress(clock=clock)
    p.expect(300, steps=3)
    with p.step("a", total=100) as a:
        a.advance(50)
        snap = p.snapshot()
        assert (snap.done, snap.total) == (50, 300)  # 100 of the 300 expected are a's
        assert snap.fraction == 50 / 300
    snap = p.snapshot()
    assert (snap.done, snap.total) == (100, 300)  # a step that ends is all done
    p.expect(50, replace=True)  # the real figure for what is left
    with p.step("b", total=50) as b:
        b.advance(80)  # never past the step's size
    snap = p.snapshot()
    assert (snap.done, snap.total, snap.fraction) == (150, 150, 1.0)
    assert [r.description for r in p.records] == ["a", "b"] and all(r.ok for r in p.records)


def test_a_failed_step_is_not_counted_done() -> None:
    p = Progress()
    try:
        with p.step("a", total=100) as a:
            a.advance(10)
            raise RuntimeError
    except RuntimeError:
        pass
    assert not p.records[0].ok and p.snapshot().done == 10


def test_rate_and_eta_follow_the_recent_speed() -> None:
    clock = Clock()
    p = Progress(clock=clock)
    p.expect(1000)
    with p.step("copy", total=1000) as s:
        assert p.snapshot().eta is None  # nothing known yet
        for _ in range(4):
            clock.t += 1
            s.advance(100)  # 100 B/s
        snap = p.snapshot()
        assert abs(snap.rate - 100) < 1e-9
        assert abs(snap.eta - 6.0) < 1e-9
        for _ in range(20):
            clock.t += 1
            s.advance(10)  # slows down: the old speed leaves the window
        assert abs(p.snapshot().rate - 10) < 1.5


def test_parallel_steps_from_many_threads_add_up() -> None:
    p = Progress()
    p.expect(8 * 1000, steps=8)
    events: list[tuple[str, int]] = []
    lock = threading.Lock()

    class Recorder:
        def started(self, progress, record):  # noqa: ANN001, ANN202
            with lock:
                events.append(("start", record.number))

        def finished(self, progress, record):  # noqa: ANN001, ANN202
            with lock:
                events.append(("end", record.number))

        def advanced(self, progress, record):  # noqa: ANN001, ANN202
            progress.snapshot()  # a listener may look at the job

    p.listener = Recorder()

    def work(i: int) -> None:
        with p.step(f"part {i}", total=1000):
            for _ in range(100):
                p.advance(10)  # this thread's step

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = p.snapshot()
    assert (snap.done, snap.total) == (8000, 8000)
    assert sorted(r.done for r in p.records) == [1000] * 8
    starts = [n for kind, n in events if kind == "start"]
    assert starts == sorted(starts) == list(range(1, 9))  # announced in number order


def test_counting_reads_advance_the_step_also_through_readinto() -> None:
    p = Progress()
    with p.step("file", total=10_000) as s:
        f = p.counting(io.BytesIO(b"x" * 10_000))
        assert f.read(1000) == b"x" * 1000
        buf = bytearray(4000)
        assert f.readinto(buf) == 4000
        assert s.done == 5000
        f.seek(0)  # everything else is the file's
    assert p.counting(io.BytesIO(b"")) is not None  # outside a step: the file itself

    class NoReadinto:
        def read(self, n: int = -1) -> bytes:
            return b""

    with p.step("other"):
        assert not hasattr(p.counting(NoReadinto()), "readinto")  # type: ignore[arg-type]


def test_summary_bar_and_durations() -> None:
    assert format_duration(7) == "0:07" and format_duration(754) == "12:34" and format_duration(3723) == "1:02:03"
    assert bar(0.5, 12) == "[=====>    ]" and bar(1.0, 12) == "[==========]" and bar(None, 4) == "[  ]"
    p = Progress(clock=Clock())
    p.expect(4 << 20)
    with p.step("x", total=4 << 20) as s:
        s.advance(1 << 20)
        assert job_summary(p.snapshot()) == " 25%  1.0 MiB of 4.0 MiB  ETA --:--"


def test_live_lines_fit_the_terminal_and_show_every_running_step() -> None:
    clock = Clock()
    p = Progress(clock=clock)
    p.expect(2 << 30, steps=9)
    out = io.StringIO()
    d = LiveDisplay(p, out, threading.RLock(), ansi=True, clock=clock, width=lambda: 60)
    p.listener = d
    with p.step("partition 3 OSBoot: HFS+, 4 files, a very long description of it", total=1 << 30) as a, p.step("partition 2 Recovery", total=1 << 30):
        a.advance(512 << 20)
        clock.t += 2
        lines = d.lines()
        assert len(lines) == 3
        assert all(len(line) <= 59 for line in lines)
        assert re.match(r"^. \[1/9\] partition 3 OSBoot.*\.\.\. +512\.0 MiB of 1\.0 GiB  0:02$", lines[0]), lines
        assert "[2/9] partition 2 Recovery" in lines[1]
        assert lines[2].startswith("[") and " 25%" in lines[2]
        d.redraw()
        d.write("a message")
    text = out.getvalue()
    assert "a message\n" in text and "\x1b[J" in text  # written above the live lines
    assert "[1/9] partition 3 OSBoot" in text and "(2.0 s)" in text  # finished steps scroll by


def test_without_ansi_one_status_line_and_no_escape_codes() -> None:
    clock = Clock()
    p = Progress(clock=clock)
    out = io.StringIO()
    d = LiveDisplay(p, out, threading.RLock(), ansi=False, clock=clock, width=lambda: 80)
    p.listener = d
    p.expect(100, steps=1)
    with p.step("copy", total=100) as s:
        s.advance(40)
        assert len(d.lines()) == 1
        d.redraw()
        d.redraw()
    d.stop()
    text = out.getvalue()
    assert "\x1b" not in text and "\r" in text and " 40%" in text


def test_plain_lines_for_a_log() -> None:
    clock = Clock()
    p = Progress(clock=clock)
    lines: list[str] = []
    p.listener = PlainDisplay(p, lines.append, clock=clock)
    p.expect(1000, steps=2)
    with p.step("first", total=500) as a:
        a.advance(100)
        clock.t += 11  # a long step says how far it got, at most every 10 s
        a.advance(100)
        a.advance(100)
    with p.step("second", total=500):
        pass
    assert lines[0] == "[1/2] first"
    assert re.fullmatch(r"\[1/2\] 200 B of 500 B  0:11; job  20%  200 B of 1000 B  9 B/s  ETA 1:28", lines[1]), lines[1]
    assert lines[2] == "[1/2] done in 11.0 s, job 50% done"
    assert lines[3:] == ["[2/2] second", "[2/2] done in 0.0 s, job 100% done"]
