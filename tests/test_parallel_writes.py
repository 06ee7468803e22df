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


def test_an_image_builds_md5_check_starts_in_prepare_and_apply_waits_for_it(tmp_path, monkeypatch):
    """prepare(defer_md5=True) starts the release's md5 check at once, on the other core (the
    tarball scans use one), and returns without waiting for it; apply() waits for it and raises
    its mismatch. Without defer_md5 (disks, --loop) prepare waits for it before returning."""
    from atvdisk.build import BuildSettings, apply, prepare
    from atvdisk.inputs.payload import Inputs, OpenElecRelease
    from atvdisk.layout.schema import load_layout
    from atvdisk.progress import Progress
    from atvdisk.target.access import ImageAccess

    started, release_it = threading.Event(), threading.Event()

    def slow_check(self) -> None:
        started.set()
        assert release_it.wait(30)
        raise InputError("SYSTEM does not match SYSTEM.md5 (test)")

    from atvdisk.inputs.sample import write_sample

    sample = write_sample(tmp_path / "sample")
    settings = BuildSettings(load_layout("atv1-openelec"), Inputs(OpenElecRelease.open(str(sample.openelec), check=False), str(sample.restore), str(sample.recovery)), epoch=1)
    monkeypatch.setattr(OpenElecRelease, "check_md5", slow_check)
    prepared = prepare(settings, 4 * 2**30, 512, defer_md5=True)  # returns although the check has not ended
    assert started.wait(10), "the md5 check did not start in prepare()"
    img = tmp_path / "k.img"
    with open(img, "wb") as f:
        f.truncate(4 * 2**30)
    threading.Timer(0.5, release_it.set).start()
    with pytest.raises(InputError, match="does not match"):
        apply(prepared, ImageAccess(str(img), known_zero=True), Progress(quiet=True), workdir=str(tmp_path))
    # A disk's prepare waits for the check: its failure comes out of prepare itself.
    with pytest.raises(InputError, match="does not match"):
        prepare(settings, 4 * 2**30, 512)


def test_an_image_builds_tool_filesystems_at_once(tmp_path, monkeypatch):
    """On an image file mkfs.fat and mke2fs -d write their own regions at the same time (each
    waits here until the other has started: one after the other, this fails)."""
    import atvdisk.build as build
    from atvdisk.build import BuildSettings, apply, prepare
    from atvdisk.inputs.payload import Inputs, OpenElecRelease
    from atvdisk.inputs.sample import write_sample
    from atvdisk.layout.schema import load_layout
    from atvdisk.progress import Progress
    from atvdisk.target.access import ImageAccess

    both = threading.Barrier(2, timeout=20)

    def together(real):  # noqa: ANN001, ANN202
        def tool(*a, **k):  # noqa: ANN002, ANN003, ANN202
            both.wait()
            return real(*a, **k)

        return tool

    monkeypatch.setattr(build, "make_fat32", together(build.make_fat32))
    monkeypatch.setattr(build, "make_ext4", together(build.make_ext4))
    sample = write_sample(tmp_path / "sample")
    settings = BuildSettings(load_layout("atv1-openelec"), Inputs(OpenElecRelease.open(str(sample.openelec)), str(sample.restore), str(sample.recovery)), epoch=1)
    prepared = prepare(settings, 4 * 2**30, 512)
    img = tmp_path / "t.img"
    with open(img, "wb") as f:
        f.truncate(4 * 2**30)
    apply(prepared, ImageAccess(str(img), known_zero=True), Progress(quiet=True), workdir=str(tmp_path))
