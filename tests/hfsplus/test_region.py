"""The bounded region writer: bounds, overlaps, the three copy paths, streams, sparseness."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from atvdisk.fs.hfsplus.errors import RegionError
from atvdisk.fs.region import Region, region_reads_as_zero

MIB = 1 << 20


def _read(p: Path, off: int, n: int) -> bytes:
    with open(p, "rb") as f:
        f.seek(off)
        return f.read(n)


def test_bounds_and_overlaps(tmp_path: Path) -> None:
    img = tmp_path / "img"
    with Region.open(img, 100, 1000, create=True) as r:
        assert os.path.getsize(img) == 1100 and r.known_zero
        r.write(0, b"a" * 10)
        r.write(990, b"z" * 10)
        with pytest.raises(RegionError, match="outside the region"):
            r.write(995, b"x" * 10)
        with pytest.raises(RegionError, match="outside the region"):
            r.write(-1, b"x")
        with pytest.raises(RegionError, match=r"overlaps an earlier write \[0, 10\)"):
            r.write(5, b"x" * 10)
        with pytest.raises(RegionError, match="overlaps"):
            r.write(985, b"x" * 6)
        r.write(10, b"b" * 10)  # adjacent: fine, merged
        r.claim_zero(20, 30)
        with pytest.raises(RegionError, match="overlaps"):
            r.write(49, b"x")
        assert r.written() == [(0, 50), (990, 1000)]
        with pytest.raises(RegionError, match="overlaps"):
            r.write_zeros(0, 1)
    assert _read(img, 100, 20) == b"a" * 10 + b"b" * 10
    assert _read(img, 1090, 10) == b"z" * 10
    assert _read(img, 0, 100) == bytes(100)


def test_interval_merging_keeps_order(tmp_path: Path) -> None:
    with Region.open(tmp_path / "img", 0, 10_000, create=True) as r:
        for start in (500, 100, 300, 200, 400):
            r.write(start, b"x" * 100)
        assert r.written() == [(100, 600)]
        r.write(700, b"y")
        r.write(650, b"y")
        assert r.written() == [(100, 600), (650, 651), (700, 701)]
        with pytest.raises(RegionError):
            r.write(599, b"yy")


def test_claim_zero_needs_a_known_zero_region(tmp_path: Path) -> None:
    img = tmp_path / "img"
    img.write_bytes(b"\xaa" * 4096)
    with Region.open(img, 0, 4096) as r:
        assert not r.known_zero  # it holds data
        with pytest.raises(RegionError, match="not known to be zero"):
            r.claim_zero(0, 10)
        r.zero_or_claim(0, 10)
    assert _read(img, 0, 12) == bytes(10) + b"\xaa\xaa"


def test_known_zero_detection(tmp_path: Path) -> None:
    img = tmp_path / "img"
    with open(img, "wb") as f:
        f.truncate(8 * MIB)
        f.seek(4 * MIB)
        f.write(b"data")
    fd = os.open(img, os.O_RDONLY)
    try:
        assert region_reads_as_zero(fd, 0, 4 * MIB)
        assert not region_reads_as_zero(fd, 0, 4 * MIB + 1)
        assert region_reads_as_zero(fd, 5 * MIB, 3 * MIB)
        assert region_reads_as_zero(fd, 9 * MIB, MIB)  # past EOF
    finally:
        os.close(fd)
    with Region.open(img, 5 * MIB, MIB) as r:
        assert r.known_zero
    with Region.open(img, 3 * MIB, 2 * MIB) as r:
        assert not r.known_zero


def test_existing_file_is_extended_and_never_truncated(tmp_path: Path) -> None:
    img = tmp_path / "img"
    img.write_bytes(b"keep" * 256)
    with Region.open(img, 2048, MIB) as r:
        r.write(0, b"new")
    assert os.path.getsize(img) == 2048 + MIB
    assert _read(img, 0, 4) == b"keep"
    with pytest.raises(RegionError, match="cannot create"):
        Region.open(img, 0, 10, create=True)


@pytest.mark.parametrize("path", ["copy_file_range", "sendfile", "pread"])
def test_copy_paths(tmp_path: Path, path: str) -> None:
    src = tmp_path / "src"
    data = os.urandom(3 * MIB + 123)
    src.write_bytes(data)
    img = tmp_path / "img"
    with Region.open(img, 512, 8 * MIB, create=True) as r:
        if path != "copy_file_range":
            r._cfr_ok = False
        if path == "pread":
            r._sendfile_ok = False
        fd = os.open(src, os.O_RDONLY)
        try:
            r.copy_from(4096, fd, 100, len(data) - 100)
            with pytest.raises(RegionError, match="source ended early"):
                r.copy_from(5 * MIB, fd, len(data) - 10, 20)
        finally:
            os.close(fd)
    assert _read(img, 512 + 4096, len(data) - 100) == data[100:]


def test_write_stream_exact(tmp_path: Path) -> None:
    img = tmp_path / "img"
    with Region.open(img, 0, 20 * MIB, create=True) as r:
        payload = os.urandom(9 * MIB + 7)
        r.write_stream(0, io.BytesIO(payload), len(payload))
        with pytest.raises(RegionError, match="ended after 5 of 10 bytes"):
            r.write_stream(10 * MIB, io.BytesIO(b"12345"), 10)
        with pytest.raises(RegionError, match="more than the declared 3 bytes"):
            r.write_stream(11 * MIB, io.BytesIO(b"12345"), 3)

        class ReadOnly:  # no readinto: the read() path
            def __init__(self, b: bytes) -> None:
                self.f = io.BytesIO(b)

            def read(self, n: int = -1) -> bytes:
                return self.f.read(n)

        r.write_stream(12 * MIB, ReadOnly(b"abc"), 3)
    assert _read(img, 0, len(payload)) == payload
    assert _read(img, 12 * MIB, 3) == b"abc"


def test_zero_chunks_stay_sparse(tmp_path: Path) -> None:
    img = tmp_path / "img"
    size = 64 * MIB
    with Region.open(img, 0, size, create=True) as r:
        stream = io.BytesIO(bytes(32 * MIB) + b"tail")
        r.write_stream(0, stream, 32 * MIB + 4, skip_zero_chunks=True)
    st = os.stat(img)
    assert st.st_blocks * 512 < 2 * MIB
    assert _read(img, 32 * MIB, 4) == b"tail"


@pytest.mark.parametrize(
    "data, zero",
    [
        (b"", True),
        (bytes(1), True),
        (bytes(3 * MIB + 5), True),
        (b"\1" + bytes(10), False),
        (bytes(10) + b"\1", False),
        (bytes(MIB) + b"\1" + bytes(MIB), False),  # in the middle, past the first 1 MiB slice
        (bytes(2 * MIB - 1) + b"\x80" + bytes(7), False),  # the last byte of a slice
        (bytes(5) + b"\1" + bytes(5), False),
    ],
)
def test_all_zero_finds_any_nonzero_byte(data: bytes, zero: bool) -> None:
    from atvdisk.fs.region import _all_zero

    assert _all_zero(memoryview(data)) is zero
    assert _all_zero(memoryview(bytearray(data))) is zero


def test_zero_chunk_detection_keeps_nonzero_data(tmp_path: Path) -> None:
    """A chunk with one non-zero byte deep inside is written, not skipped as a hole."""
    img = tmp_path / "img"
    payload = bytes(8 * MIB) + bytes(5 * MIB) + b"\7" + bytes(3 * MIB)
    with Region.open(img, 0, 32 * MIB, create=True) as r:
        r.write_stream(0, io.BytesIO(payload), len(payload), skip_zero_chunks=True)
    assert _read(img, 0, len(payload)) == payload
    assert os.stat(img).st_blocks * 512 <= 9 * MIB  # the first, all-zero 8 MiB chunk stayed a hole


def test_written_data_is_handed_to_writeback_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every byte written (streamed, copied or written) is passed to sync_file_range in pieces of
    about WRITEBACK_BYTES, before the region is closed: the final fsync then has little left."""
    from atvdisk.fs import region as region_mod

    if region_mod._sync_file_range is None:
        pytest.skip("no sync_file_range on this system")  # Linux always has it (CI is Linux)
    calls: list[tuple[int, int]] = []
    real = region_mod._sync_file_range

    def record(fd: int, off: int, n: int, flags: int) -> int:
        assert flags == region_mod._SYNC_FILE_RANGE_WRITE  # start write-back, never wait
        calls.append((off, n))
        return real(fd, off, n, flags)

    monkeypatch.setattr(region_mod, "_sync_file_range", record)
    src = tmp_path / "src"
    src.write_bytes(os.urandom(40 * MIB))
    img = tmp_path / "img"
    base = 4096
    with Region.open(img, base, 128 * MIB, create=True) as r:
        r.write_stream(0, io.BytesIO(os.urandom(20 * MIB)), 20 * MIB)
        fd = os.open(src, os.O_RDONLY)
        try:
            r.copy_from(24 * MIB, fd, 0, 40 * MIB)
        finally:
            os.close(fd)
        r.write(70 * MIB, os.urandom(9 * MIB))
        r.start_writeback()  # the rest, as a caller does before its fsync
        assert calls and all(n <= 4 * region_mod.WRITEBACK_BYTES + 9 * MIB for _, n in calls)
        covered = sorted(calls)
        for lo, hi in ((0, 20 * MIB), (24 * MIB, 64 * MIB), (70 * MIB, 79 * MIB)):
            a, b = base + lo, base + hi
            assert any(off <= a and b <= off + n for off, n in covered) or sum(
                min(b, off + n) - max(a, off) for off, n in covered if off < b and off + n > a
            ) >= b - a, f"[{lo}, {hi}) was not handed to write-back: {covered}"
        assert len(calls) >= 4  # in pieces as the data comes, not one call at the end


def test_writeback_pump_kicks_the_tools_range_until_it_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a tool writes (here: another process), the pump asks for write-back of the tool's
    byte range, repeatedly, and stops when the block ends."""
    import subprocess
    import sys
    import time

    from atvdisk.fs import region as region_mod

    if region_mod._sync_file_range is None:
        pytest.skip("no sync_file_range on this system")
    calls: list[tuple[int, int]] = []
    real = region_mod._sync_file_range

    def record(fd: int, off: int, n: int, flags: int) -> int:
        assert flags == region_mod._SYNC_FILE_RANGE_WRITE
        calls.append((off, n))
        return real(fd, off, n, flags)

    monkeypatch.setattr(region_mod, "_sync_file_range", record)
    img = tmp_path / "img"
    img.write_bytes(b"")
    os.truncate(img, 64 * MIB)
    writer = f"import os\nfd = os.open({str(img)!r}, os.O_WRONLY)\nfor i in range(8):\n    os.pwrite(fd, os.urandom({MIB}), {4 * MIB} + i * {MIB})\n"
    with region_mod.WritebackPump(img, 4 * MIB, 16 * MIB, interval=0.01):
        subprocess.run([sys.executable, "-c", writer], check=True)
        time.sleep(0.1)
    n = len(calls)
    assert n >= 3 and set(calls) == {(4 * MIB, 16 * MIB)}
    time.sleep(0.05)
    assert len(calls) == n  # stopped with the block
    assert _read(img, 4 * MIB, 1) != b"" and os.stat(img).st_size == 64 * MIB
