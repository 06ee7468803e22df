"""build.apply writes partitions in parallel threads: the first failure stops the others at their
next write (they do not run to the end) and is the error raised, not the others' 'stopped'."""

from __future__ import annotations

import threading
import time

import pytest

from atvdisk.build import _parallel
from atvdisk.errors import InputError
from atvdisk.fs.hfsplus.errors import RegionError
from atvdisk.fs.region import Region


def test_first_failure_stops_the_other_writers_and_is_raised(tmp_path):
    img = tmp_path / "img"
    img.write_bytes(b"")
    cancel = threading.Event()
    written = []

    def long_writer() -> None:  # would take 10 s if it were not stopped
        with Region.open(img, 0, 64 << 20, create=False, known_zero=False) as r:
            r._cancel = cancel
            for i in range(1000):
                r.write(i * 4096, b"x" * 4096)
                written.append(i)
                time.sleep(0.01)

    def bad_input() -> None:  # the md5 check, say: fails after a moment
        time.sleep(0.2)
        raise InputError("SYSTEM does not match SYSTEM.md5")

    start = time.monotonic()
    with pytest.raises(InputError, match="does not match"):
        _parallel([long_writer, bad_input], cancel)
    assert time.monotonic() - start < 5
    assert cancel.is_set() and 0 < len(written) < 1000


def test_a_writer_that_was_stopped_refuses_further_writes(tmp_path):
    cancel = threading.Event()
    with Region.open(tmp_path / "img", 0, 1 << 20, create=True) as r:
        r._cancel = cancel
        r.write(0, b"a")
        cancel.set()
        with pytest.raises(RegionError, match="writing stopped"):
            r.write(1, b"b")
