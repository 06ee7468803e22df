"""The tar reader on hostile input (issue 11, item 2): it terminates, stays bounded in memory, and
either gives the members Python's tarfile gives or a clean TarStreamError -- never a hang, a step
backwards, a member parsed twice or an internal error.

Every archive here is made by hand (tests/tarcraft.py). The fuzzer is in test_tar_fuzz.py.
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import tarfile
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import pytest

from atvdisk.errors import InputError
from atvdisk.inputs import tarsafe
from atvdisk.inputs.payload import OpenElecRelease
from atvdisk.inputs.tarstream import METADATA_LIMIT, TarStream, TarStreamError
from atvdisk.inputs.tree import FileTree
from tarcraft import archive, gnu_long, gz, gz_stream, header, member, pad, pax, pax_record

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging the suite) when the block runs longer than ``seconds``."""

    def expired(signum, frame):  # noqa: ANN001
        raise AssertionError(f"still running after {seconds} s: the reader does not terminate")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def read_all(path: Path) -> list[tuple]:
    out = []
    with deadline(20), TarStream(str(path)) as ts:
        for m in ts:
            data = b""
            while chunk := ts.read(1 << 16):
                data += chunk
            out.append((m.name, m.type, m.size, m.mtime, m.uid, m.gid, data))
    return out


def with_tarfile(path: Path) -> list[tuple]:
    out = []
    with tarfile.open(path) as tar:
        for m in tar:
            data = tar.extractfile(m).read() if m.isreg() else b""
            out.append((m.name, m.type, m.size if m.isreg() else 0, int(m.mtime), m.uid, m.gid, data))
    return out


def write(tmp_path: Path, data: bytes, name: str = "t.tar.gz") -> Path:
    path = tmp_path / name
    path.write_bytes(gz(data))
    return path


# -- numbers: negative, non-decimal, overflowing ---------------------------------------------


@pytest.mark.parametrize(
    "records, message",
    [
        (pax_record("size", "-1536"), "size='-1536' (expected decimal digits)"),  # stepped back: looped forever
        (pax_record("size", "-512"), "size='-512'"),  # parsed the next member twice
        (pax_record("size", "0x10"), "size='0x10'"),
        (pax_record("size", "+5"), "size='+5'"),
        (pax_record("size", " 5"), "size=' 5'"),
        (pax_record("size", "1_0"), "size='1_0'"),
        (pax_record("size", ""), "size=''"),
        (pax_record("size", str(1 << 63)), "size 9223372036854775808, outside"),
        (pax_record("size", "9" * 400), "size='999"),
        (pax_record("uid", "-1"), "uid='-1'"),
        (pax_record("gid", str(1 << 32)), "gid 4294967296, outside"),
        (pax_record("mtime", "inf"), "mtime='inf'"),  # OverflowError: internal error
        (pax_record("mtime", "nan"), "mtime='nan'"),
        (pax_record("mtime", "1e400"), "mtime='1e400'"),
        (pax_record("mtime", str(1 << 60)), "outside"),
    ],
)
def test_bad_pax_numbers_are_refused(tmp_path, records, message):
    path = write(tmp_path, archive(pax(records), member("a", b"x" * 10), member("b", b"y")))
    with pytest.raises(TarStreamError) as info:
        read_all(path)
    assert message in str(info.value)


@pytest.mark.parametrize("size", [-512, -1536, -1])
def test_negative_base256_header_size_is_refused(tmp_path, size):
    path = write(tmp_path, archive(header("a", size=size), member("b", b"y")))
    with pytest.raises(TarStreamError, match=f"size {size}, outside"):
        read_all(path)


def test_pax_times_are_truncated_like_tarfile(tmp_path):
    path = write(
        tmp_path,
        archive(
            pax(pax_record("mtime", "1234567890.987654321")),
            member("a", b"x"),
            pax(pax_record("mtime", "-1.5")),
            member("b", b"y"),
            pax(pax_record("mtime", "-86400")),
            member("c", b"z"),
        ),
    )
    ours = read_all(path)
    assert [m[3] for m in ours] == [1234567890, -1, -86400]
    assert ours == with_tarfile(path)


def test_the_read_position_never_moves_back(tmp_path):
    ts = TarStream(str(write(tmp_path, archive(member("a", b"x")))))
    with ts, pytest.raises(TarStreamError, match="negative length"):
        ts._skip(-512, "test")
    ts = TarStream(str(write(tmp_path, archive(member("a", b"x")))))
    with ts, pytest.raises(TarStreamError, match="negative length"):
        ts._take(-1, "test")


# -- empty metadata records: accepted as GNU tar and tarfile accept them ----------------------


@pytest.mark.parametrize(
    "first",
    [pax(b""), pax(b"", global_=True), pax(pax_record("comment", "x"), global_=True) + pax(b"", global_=True)],
    ids=["empty-pax", "empty-global", "global-then-empty-global"],
)
def test_empty_pax_headers_are_accepted(tmp_path, first):
    path = write(tmp_path, archive(first, member("a", b"hello"), member("b", b"")))
    assert read_all(path) == with_tarfile(path) == [
        ("a", b"0", 5, 1_300_000_000, 0, 0, b"hello"),
        ("b", b"0", 0, 1_300_000_000, 0, 0, b""),
    ]


def test_empty_long_name_gives_an_empty_name_which_tarsafe_refuses(tmp_path):
    path = write(tmp_path, archive(gnu_long(b""), member("a", b"hi")))
    assert read_all(path) == with_tarfile(path)  # the name is "", as tarfile says
    with pytest.raises(InputError, match="member '' is a file with an empty name"):
        tarsafe.scan(str(path), FileTree(default_mtime=0))


# -- metadata bounded before it is read -------------------------------------------------------


@pytest.mark.parametrize(
    "parts, message",
    [
        # 300 MB of pax header: reached 662 MB RSS.
        ((header("././@PaxHeader", size=300 << 20, typeflag=b"x"), (b"9" * 4096, (300 << 20) // 4096)), "a pax header of 314572800 bytes"),
        # 300 MB GNU long name: reached 3.1 GB.
        ((header("././@LongLink", size=300 << 20, typeflag=b"L"), (b"n" * 4096, (300 << 20) // 4096)), "a GNU long name of 314572800 bytes"),
        ((header("././@LongLink", size=METADATA_LIMIT + 1, typeflag=b"K"), (b"n" * 4096, 257)), "a GNU long name of 1048577 bytes"),
        ((header("././@PaxHeader", size=METADATA_LIMIT + 1, typeflag=b"g"), (b"9" * 4096, 257)), "a pax header of 1048577 bytes"),
    ],
    ids=["pax-300MB", "longname-300MB", "longlink-1MiB+1", "global-1MiB+1"],
)
def test_metadata_records_are_capped_before_they_are_read(tmp_path, parts, message):
    path = tmp_path / "big.tar.gz"
    path.write_bytes(gz_stream(*parts))
    assert path.stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        with pytest.raises(TarStreamError, match=message):
            read_all(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak {peak} bytes"


def test_metadata_up_to_the_limit_is_read(tmp_path):
    name = ("d" * 200 + "/") * 20 + "f"  # 4021 bytes: a real (if silly) long name
    records = pax_record("path", name) + pax_record("comment", "c" * (METADATA_LIMIT - 5000))
    path = write(tmp_path, archive(pax(records), member("short", b"data")))
    assert len(records) <= METADATA_LIMIT
    assert read_all(path) == with_tarfile(path)
    assert read_all(path)[0][0] == name


def test_many_pax_headers_keep_only_the_keys_used(tmp_path):
    # 2,000 extended headers in a row (tarfile recurses once per header and gives up) with
    # distinct unused keys: nothing accumulates.
    headers = [pax(pax_record(f"SCHILY.xattr.k{i}", "v" * 200)) for i in range(2000)]
    path = write(tmp_path, archive(*headers, member("a", b"x")))
    tracemalloc.start()
    try:
        assert [m[0] for m in read_all(path)] == ["a"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


@pytest.mark.parametrize(
    "records, message",
    [
        (b"5 a=b\n", "claims 5 bytes"),  # record shorter than its own text
        (b"99 a=b\n", "claims 99 bytes"),  # longer than the header
        (b"x a=b\n", "does not start with its length"),
        (b"7 ab=c", "claims 7 bytes"),  # no newline at its end
        (b"6 abc\n", "has no key=value"),
        (b"5 =b\n", "has no key=value"),
        (b"0 \n", "claims 0 bytes"),
        (b"00000000000000000000000000006 a=b\n", "does not start with its length"),
    ],
)
def test_malformed_pax_records_are_refused(tmp_path, records, message):
    path = write(tmp_path, archive(pax(records), member("a", b"x")))
    with pytest.raises(TarStreamError, match=message):
        read_all(path)


# -- member kinds -----------------------------------------------------------------------------


def test_unknown_member_types_have_their_data_skipped_like_tarfile(tmp_path):
    # A vendor type 'Z' with 1,000 bytes of data that look like a header: never parsed as one.
    smuggled = member("smuggled", b"evil")
    path = write(tmp_path, archive(header("vendor", size=len(smuggled), typeflag=b"Z") + pad(smuggled), member("a", b"x")))
    ours = read_all(path)
    assert [m[0] for m in ours] == ["vendor", "a"]
    assert ours == with_tarfile(path)
    with pytest.raises(InputError, match="member 'vendor' has an unsupported type"):
        tarsafe.scan(str(path), FileTree(default_mtime=0))


@pytest.mark.parametrize(
    "data, message",
    [
        (archive(pax(pax_record("path", "a\0b")), member("x", b"1")), "has a NUL in its name"),
        (archive(pax(pax_record("path", "a/" * 2048 + "b")), member("x", b"1")), "paths are at most 4095 bytes"),
        (archive(member("./", b"", typeflag=b"0")), "with an empty name"),
        (archive(header(".", typeflag=b"2", linkname="a")), "symlink with an empty name"),
    ],
    ids=["nul", "path-4097", "file-as-root", "symlink-as-root"],
)
def test_tarsafe_refuses_names_no_filesystem_can_hold(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(InputError, match=message):
        tarsafe.scan(str(path), FileTree(default_mtime=0))


# -- the OpenELEC release tarball goes through the same reader --------------------------------


def release(*extra: bytes) -> bytes:
    return archive(
        member("OpenELEC-ATV.i386-3.2.4/target/KERNEL", b"k" * 100),
        *extra,
        member("OpenELEC-ATV.i386-3.2.4/target/SYSTEM", b"s" * 100),
    )


@pytest.mark.parametrize(
    "extra, message",
    [
        (pax(pax_record("size", "-1536")), "size='-1536'"),  # tarfile looped here too
        (header("x", size=-1024), "size -1024, outside"),
        (header("././@PaxHeader", size=300 << 20, typeflag=b"x"), "a pax header of 314572800 bytes"),
    ],
)
def test_release_tarball_is_read_with_the_bounded_reader(tmp_path, extra, message):
    path = tmp_path / "OpenELEC-ATV.i386-3.2.4.tar"
    path.write_bytes(release(extra))
    with deadline(20), pytest.raises(InputError, match=message):
        OpenElecRelease.open(str(path))


@pytest.mark.parametrize("where", ["dir", "tar"])
def test_md5_file_is_capped_before_it_is_read(tmp_path, where):
    # A 1.5 GB sparse KERNEL.md5 reached 4.6 GB.
    big = 1536 << 20
    if where == "dir":
        d = tmp_path / "rel"
        d.mkdir()
        (d / "KERNEL").write_bytes(b"k")
        (d / "SYSTEM").write_bytes(b"s")
        with open(d / "KERNEL.md5", "wb") as f:
            f.truncate(big)
        path = d
    else:
        path = tmp_path / "rel.tar"
        with open(path, "wb") as f:
            f.write(member("r/target/KERNEL", b"k") + header("r/target/KERNEL.md5", size=big))
            f.truncate(f.tell() + big)
            f.seek(0, 2)
            f.write(member("r/target/SYSTEM", b"s") + b"\0" * 1024)
    tracemalloc.start()
    try:
        with deadline(30), pytest.raises(InputError, match=f"KERNEL.md5 is {big} bytes; an md5 file is a line of text"):
            OpenElecRelease.open(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_release_tarball_duplicates_take_the_last_like_extraction(tmp_path):
    path = tmp_path / "rel.tar"
    path.write_bytes(release(member("OpenELEC-ATV.i386-3.2.4/target/KERNEL", b"K2")))
    rel = OpenElecRelease.open(str(path))
    assert rel.read("KERNEL") == b"K2"


# -- the command line: clean errors, exit 2, no hang ------------------------------------------


def atvdisk(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "atvdisk", *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize(
    "data, message",
    [
        (archive(pax(pax_record("size", "-1536")), member("a", b"x" * 10)), "size='-1536'"),
        (archive(pax(pax_record("mtime", "inf")), member("a", b"x")), "mtime='inf'"),
        (archive(gnu_long(b""), member("a", b"hi")), "empty name"),
    ],
    ids=["negative-size", "mtime-inf", "empty-long-name"],
)
@pytest.mark.parametrize("command", ["build", "dry-run", "verify"])
def test_cli_refuses_hostile_tarballs_cleanly(tmp_path, data, message, command):
    bad = tmp_path / "recovery.tar.gz"
    bad.write_bytes(gz(data))
    img = tmp_path / "a.img"
    if command == "verify":
        img.write_bytes(b"")
        with open(img, "wb") as f:
            f.truncate(4 << 30)
        r = atvdisk("verify", img, "--example", "--recovery", bad)
    else:
        r = atvdisk("build", img, "--size", "4G", "--example", "--recovery", bad, *(["--dry-run"] if command == "dry-run" else []))
        assert not img.exists()
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr


def test_deeply_nested_layout_is_a_layout_error(tmp_path):
    layout = tmp_path / "deep.toml"
    layout.write_text("description = " + "[" * 5000 + "]" * 5000 + "\n")
    r = atvdisk("plan", "--layout", layout, "--size", "4G")
    assert r.returncode == 2, r.stderr
    assert "nested too deeply" in r.stderr and "Traceback" not in r.stderr


def test_huge_layout_file_is_refused_before_reading(tmp_path):
    layout = tmp_path / "huge.toml"
    with open(layout, "wb") as f:
        f.write(b"# x\n")
        f.truncate(3 << 30)
    r = atvdisk("plan", "--layout", layout, "--size", "4G")
    assert r.returncode == 2 and "larger than 1048576 bytes" in r.stderr, r.stderr


def test_in_memory_archives_agree(tmp_path):
    """The crafting helpers themselves make archives tarfile reads as intended."""
    data = archive(pax(pax_record("path", "long/" * 30 + "x")), member("short", b"abc"), gnu_long(b"g" * 300), member("s2", b""))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getnames() == ["long/" * 30 + "x", "g" * 300]
