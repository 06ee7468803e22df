"""The tar reader at its edges, judged by Python's tarfile and GNU tar (issue 15: what mutation
testing of inputs/tarstream.py and inputs/tarsafe.py showed nothing was checking).

- numbers exactly at their bounds: pax times of +-2^53 seconds are read as tarfile and GNU tar
  read them, one second further is refused (tarfile would round it to another time); pax
  records of 0 for size/uid/gid are plain numbers, not refusals;
- a pax header padded with NULs after its last record (GNU tar and tarfile accept it);
- GNU tar's multi-volume archives: a continuation volume is refused by name, the first volume
  as truncated;
- large members of plain archives are seeked over, not read (counted in /proc/self/io), with and
  without the read-ahead thread, and a plain archive cut inside such a member is still truncated;
- read() at the end of a member and of the archive gives b"", as a file does.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from tarcraft import archive, gz, header, member, pad, pax, pax_record

from atvdisk.errors import InputError
from atvdisk.inputs import tarsafe
from atvdisk.inputs.tarstream import MAX_TIME, TarStream, TarStreamError
from atvdisk.inputs.tree import FileTree

GNU_TAR = shutil.which("tar")


def ours(path: Path, *, readahead: bool = False, read_data: bool = True) -> list[tuple]:
    out = []
    with TarStream(str(path), readahead=readahead) as ts:
        for m in ts:
            h = hashlib.sha256()
            if read_data:
                while chunk := ts.read(1 << 16):
                    h.update(chunk)
            out.append(
                (
                    m.name,
                    m.type,
                    m.size,
                    m.mtime,
                    m.uid,
                    m.gid,
                    m.linkname,
                    h.hexdigest() if read_data else None,
                )
            )
    return out


def theirs(path: Path, *, read_data: bool = True) -> list[tuple]:
    out = []
    with tarfile.open(path) as tar:
        for m in tar:
            digest = None
            if read_data:
                digest = hashlib.sha256(
                    tar.extractfile(m).read() if m.isreg() else b""
                ).hexdigest()
            out.append(
                (
                    m.name,
                    m.type,
                    m.size if m.isreg() else 0,
                    int(m.mtime),
                    m.uid,
                    m.gid,
                    m.linkname,
                    digest,
                )
            )
    return out


def gnu_tar_list(path: Path) -> list[str]:
    """GNU tar's verbose listing (numeric owners, full times), one line per member."""
    r = subprocess.run(
        [GNU_TAR, "-tvf", str(path), "--numeric-owner", "--full-time"],
        capture_output=True,
        text=True,
        check=True,
    )
    return r.stdout.splitlines()


def write(tmp_path: Path, data: bytes, name: str = "t.tar") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- numbers at their bounds -------------------------------------------------------------------


def test_max_time_is_where_a_float_stops_being_exact():
    # tarfile keeps a pax mtime as a float: 2^53 is the last second it holds exactly.
    assert float(MAX_TIME) == MAX_TIME and float(MAX_TIME + 1) != MAX_TIME + 1


@pytest.mark.parametrize("seconds", [MAX_TIME, -MAX_TIME, MAX_TIME - 1, 0])
def test_pax_times_up_to_two_to_the_53_read_as_tarfile_reads_them(
    tmp_path, seconds
):
    path = write(
        tmp_path,
        archive(
            pax(pax_record("mtime", str(seconds))), member("a", b"x"), member("b", b"y")
        ),
    )
    got = ours(path)
    assert got == theirs(path)
    assert got[0][3] == seconds


@pytest.mark.parametrize(
    "seconds", [MAX_TIME + 1, -MAX_TIME - 1, MAX_TIME + 2, 1 << 54]
)
def test_pax_times_beyond_two_to_the_53_are_refused(tmp_path, seconds):
    path = write(
        tmp_path, archive(pax(pax_record("mtime", str(seconds))), member("a", b"x"))
    )
    with pytest.raises(
        TarStreamError, match=f"mtime {seconds}, outside {-MAX_TIME}..{MAX_TIME}"
    ):
        ours(path)


def test_gnu_tar_tells_the_second_after_two_to_the_53_apart_and_tarfile_does_not(
    tmp_path,
):
    listings, times = [], []
    for seconds in (MAX_TIME, MAX_TIME + 1):
        path = write(
            tmp_path,
            archive(pax(pax_record("mtime", str(seconds))), member("a", b"x")),
            f"{seconds}.tar",
        )
        listings.append(gnu_tar_list(path))
        times.append(theirs(path)[0][3])
    assert listings[0] != listings[1]
    assert times[0] == times[1] == MAX_TIME


@pytest.mark.parametrize(
    "seconds, accepted",
    [
        (MAX_TIME, True),
        (-MAX_TIME, True),
        (MAX_TIME + 1, False),
        (-MAX_TIME - 1, False),
    ],
)
def test_base256_header_times_at_the_bound(tmp_path, seconds, accepted):
    raw = (seconds % (1 << 96)).to_bytes(12, "big")
    field = bytes([raw[0] | 0x80]) + raw[1:]  # GNU base-256
    path = write(
        tmp_path,
        archive(header("a", size=1, mtime=field) + pad(b"x"), member("b", b"y")),
    )
    if accepted:
        got = ours(path)
        assert got == theirs(path)
        assert got[0][3] == seconds
    else:
        with pytest.raises(TarStreamError, match="outside"):
            ours(path)


def test_pax_zeros_are_numbers(tmp_path):
    # size=0, uid=0, gid=0 are read as numbers and override the header's uid 7 and gid 8
    # (GNU tar agrees).
    path = write(
        tmp_path,
        archive(
            pax(
                pax_record("size", "0")
                + pax_record("uid", "0")
                + pax_record("gid", "0")
            ),
            header("a", size=0, uid=7, gid=8),
            member("b", b"data", uid=7, gid=8),
        ),
    )
    got = ours(path)
    assert got == theirs(path)
    assert [(m[0], m[2], m[4], m[5]) for m in got] == [("a", 0, 0, 0), ("b", 4, 7, 8)]
    assert [line.split()[1] for line in gnu_tar_list(path)] == ["0/0", "7/8"]


# -- pax headers as other tools write them -----------------------------------------------------


def test_pax_header_padded_with_nuls_after_its_records(tmp_path):
    records = pax_record("path", "a/long/name") + pax_record("uid", "3")
    path = write(
        tmp_path,
        archive(pax(records + b"\0" * 40), member("short", b"x"), member("b", b"yy")),
    )
    got = ours(path)
    assert got == theirs(path)
    assert [(m[0], m[4]) for m in got] == [("a/long/name", 3), ("b", 0)]
    assert [line.split()[-1] for line in gnu_tar_list(path)] == ["a/long/name", "b"]


# -- GNU tar's multi-volume archives -------------------------------------------------------------


@pytest.fixture
def volumes(tmp_path) -> list[Path]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(30_000))
    vols = [tmp_path / f"v{i}.tar" for i in (1, 2, 3)]
    args = [GNU_TAR, "--format=gnu", "-c", "-M", "-L", "20", "-C", str(src)]
    for v in vols:
        args += ["-f", str(v)]
    subprocess.run([*args, "big"], check=True, capture_output=True)
    return [v for v in vols if v.exists()]


def test_a_continuation_volume_is_refused_as_multi_volume(volumes):
    second = volumes[1]
    assert gnu_tar_list(second)[0].startswith("M")  # GNU tar: a continued file
    with pytest.raises(TarStreamError, match="multi-volume archives are not supported"):
        ours(second)
    with pytest.raises(InputError, match="multi-volume archives are not supported"):
        tarsafe.scan(str(second), FileTree(default_mtime=0))


def test_the_first_volume_is_truncated(volumes):
    with pytest.raises(TarStreamError, match="truncated"):
        ours(volumes[0])


# -- large members of plain archives are seeked over ---------------------------------------------


def read_bytes_of_this_process() -> int:
    """Bytes this process has passed through read() calls (page cache included)."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


BIG = 256 << 20


def sparse_archive(path: Path, *, cut: int | None = None) -> Path:
    """A plain archive: a 256 MiB member (a hole on disk), then two small ones."""
    with open(path, "wb") as f:
        f.write(member("first", b"1") + header("big", size=BIG))
        f.truncate(f.tell() + BIG)
        f.seek(0, 2)
        f.write(archive(member("after", b"after the big one"), member("last", b"z")))
        if cut is not None:
            f.truncate(cut)
    return path


def test_members_not_read_are_seeked_over_in_a_plain_archive(tmp_path):
    path = sparse_archive(tmp_path / "big.tar")
    before = read_bytes_of_this_process()
    names = [m[0] for m in ours(path, read_data=False)]
    read = read_bytes_of_this_process() - before
    assert names == ["first", "big", "after", "last"]
    assert read < 16 << 20, f"read {read} bytes of a {path.stat().st_size}-byte archive"
    assert ours(path, read_data=False) == theirs(path, read_data=False)


def test_readahead_reads_every_member_in_order_after_a_big_unread_one(tmp_path):
    path = sparse_archive(tmp_path / "big.tar")
    with TarStream(str(path), readahead=True) as ts:
        got = []
        for m in ts:
            got.append((m.name, ts.read() if m.name != "big" else None))
    assert got == [
        ("first", b"1"),
        ("big", None),
        ("after", b"after the big one"),
        ("last", b"z"),
    ]


def test_a_plain_archive_cut_inside_an_unread_member_is_truncated(tmp_path):
    path = sparse_archive(tmp_path / "cut.tar", cut=1024 + BIG // 2)
    for readahead in (False, True):
        with pytest.raises(TarStreamError, match="truncated"):
            ours(path, readahead=readahead, read_data=False)
    with pytest.raises(InputError, match="truncated"):
        tarsafe.scan(str(path), FileTree(default_mtime=0))


# -- read() as a file reads --------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
def test_read_gives_empty_bytes_at_every_end(tmp_path, compressed):
    data = archive(member("a", b"abc"), header("d", typeflag=b"5"), member("e", b""))
    path = write(tmp_path, gz(data) if compressed else data)
    seen = []
    with TarStream(str(path)) as ts:
        assert ts.read() == b""  # before the first member
        for m in ts:
            body = ts.read()
            assert ts.read() == b"" and ts.read(10) == b""
            seen.append((m.name, body))
        assert ts.read() == b"" and ts.read(1) == b""  # after the last one
    assert seen == [("a", b"abc"), ("d", b""), ("e", b"")]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getnames() == ["a", "d", "e"]


def test_skip_never_moves_back_by_one(tmp_path):
    path = write(tmp_path, archive(member("a", b"x")))
    with (
        TarStream(str(path)) as ts,
        pytest.raises(TarStreamError, match=r"negative length \(-1\)"),
    ):
        ts._skip(-1, "test")


# -- tarsafe: what scan says, and about what ----------------------------------------------------


def tar_of(
    members: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]],
    fmt: int = tarfile.PAX_FORMAT,
) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        for m in members:
            info, data = m if isinstance(m, tuple) else (m, b"")
            if data:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return raw.getvalue()


def info(
    name: str, kind: bytes = tarfile.REGTYPE, *, mode: int = 0o644, linkname: str = ""
) -> tarfile.TarInfo:
    i = tarfile.TarInfo(name)
    i.type, i.mode, i.linkname, i.mtime = kind, mode, linkname, 1_200_000_000
    return i


def scan(path: Path) -> tuple[tarsafe.ScanResult, FileTree]:
    tree = FileTree(default_mtime=0)
    return tarsafe.scan(str(path), tree), tree


def test_scan_counts_what_tarfile_lists(tmp_path):
    data = tar_of(
        [
            info("./", tarfile.DIRTYPE),
            (info("a"), b"abc"),
            info("d", tarfile.DIRTYPE),
            info("d/l", tarfile.SYMTYPE, linkname="../a"),
            info("h", tarfile.LNKTYPE, linkname="a"),
            (info("d/b"), b"12345"),
        ]
    )
    path = write(tmp_path, data)
    result, _ = scan(path)
    with tarfile.open(path) as tar:
        listed = tar.getmembers()
    assert result.members == len(listed) == 6
    assert result.files == sum(m.isreg() or m.islnk() for m in listed) == 3
    assert result.data_bytes == 3 + 3 + 5  # the hard link is a copy of a's data


def test_a_path_that_cannot_be_read_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read: Is a directory"):
        scan(tmp_path)
    with pytest.raises(InputError, match="missing.tar: no such file"):
        scan(tmp_path / "missing.tar")


def test_an_overlong_name_is_quoted_by_its_first_60_characters(tmp_path):
    name = "".join(f"{i:02d}" for i in range(50)) + "/" + "x" * 4000
    path = write(tmp_path, archive(pax(pax_record("path", name)), member("p", b"1")))
    with pytest.raises(InputError) as e:
        scan(path)
    assert f"member {name[:60]!r}... has a {len(name)}-byte name" in str(e.value)


@pytest.mark.parametrize(
    "part, kind",
    [
        (member("f/", b"data"), "file"),
        (header("s/", typeflag=b"2", linkname="a"), "symlink"),
        (header("h/", typeflag=b"1", linkname="a"), "hard link"),
        (header("c/", typeflag=b"3"), "member of type b'3'"),
    ],
)
def test_a_name_ending_in_a_slash_is_refused_unless_a_directory(tmp_path, part, kind):
    path = write(tmp_path, archive(member("a", b"x"), part))
    name = part[:100].rstrip(b"\0").decode()
    with tarfile.open(path) as tar:
        assert tar.getnames()[1] == name  # tarfile keeps the slash too
    with pytest.raises(
        InputError,
        match=re.escape(f"member '{name}' is a {kind} whose name ends in '/'"),
    ):
        scan(path)


@pytest.mark.parametrize(
    "mode, expected",
    [(0o755, 0o755), (0o500, 0o700), (0o000, 0o700), (0o050, 0o750), (0o1777, 0o777)],
)
def test_directories_stay_writable_by_their_owner(tmp_path, mode, expected):
    path = write(
        tmp_path, tar_of([info("d", tarfile.DIRTYPE, mode=mode), (info("d/f"), b"x")])
    )
    _, tree = scan(path)
    assert tree.nodes["d"].mode == expected


def test_a_nul_in_a_symlink_target_is_refused(tmp_path):
    path = write(
        tmp_path,
        archive(pax(pax_record("linkpath", "a\0b")), header("l", typeflag=b"2")),
    )
    with tarfile.open(path) as tar:
        assert tar.getmembers()[0].linkname == "a\0b"
    with pytest.raises(
        InputError, match="member 'l' is a symlink with a NUL in its target"
    ):
        scan(path)


@pytest.mark.parametrize("link", ["/a", "/./a", "d/../a", "../a"])
def test_a_hard_link_out_of_the_partition_is_refused_even_to_a_member(tmp_path, link):
    # "/a" names, once its slash is stripped (GNU tar strips it), the earlier member a.
    path = write(
        tmp_path,
        archive(
            member("a", b"x"),
            header("d", typeflag=b"5"),
            header("h", typeflag=b"1", linkname=link),
        ),
    )
    with pytest.raises(
        InputError,
        match=f"member 'h' is a hard link to '{link}', outside the partition",
    ):
        scan(path)


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda p: p.write_bytes(
                tar_of([(info("a"), b"x" * 5000), (info("b"), b"y")])[:3000]
            ),
            "the archive is truncated or corrupt",
        ),
        (
            lambda p: p.write_bytes(
                tar_of([(info("a"), b"x" * 5000)], tarfile.USTAR_FORMAT)[:3000]
            ),
            "the archive is truncated or corrupt",
        ),
        (
            lambda p: p.write_bytes(gz(tar_of([(info("a"), os.urandom(5000))]))[:3000]),
            "the archive is truncated or corrupt",
        ),
        (
            lambda p: p.write_bytes(
                bz2_of(tar_of([(info("a"), os.urandom(5000))]))[:3000]
            ),
            "the archive is truncated or corrupt",
        ),
        (
            lambda p: p.write_bytes(
                xz_of(tar_of([(info("a"), os.urandom(5000))]))[:3000]
            ),
            "the archive is truncated or corrupt",
        ),
        (
            lambda p: p.write_bytes(v7_header("a", 5000) + b"x" * 1000),
            "the archive is truncated or corrupt",
        ),
        (
            lambda p: p.write_bytes(b"<html>not found</html>\n" * 40),
            "not a readable tar archive",
        ),
        (lambda p: p.write_bytes(b"x" * 511), "not a readable tar archive"),
        (
            lambda p: p.write_bytes(b"\0" * 257 + b"ustar" + b"\0" * 100),
            "not a readable tar archive",
        ),
        (
            lambda p: p.write_bytes(tar_of([(info("a"), b"x" * 5000)])[:600]),
            "the archive is truncated or corrupt",
        ),
    ],
    ids=[
        "plain-pax",
        "plain-ustar",
        "gz",
        "bz2",
        "xz",
        "v7",
        "html",
        "511-bytes",
        "ustar-but-short",
        "plain-600-bytes",
    ],
)
def test_an_unreadable_archive_is_told_truncated_or_not_a_tarball(
    tmp_path, make, message
):
    path = tmp_path / "in.tar"
    make(path)
    # GNU tar cannot read any of them either.
    assert (
        subprocess.run(
            [GNU_TAR, "-tf", str(path)], capture_output=True, check=False
        ).returncode
        != 0
    )
    with pytest.raises(InputError, match=message):
        scan(path)


def bz2_of(data: bytes) -> bytes:
    import bz2

    return bz2.compress(data)


def xz_of(data: bytes) -> bytes:
    import lzma

    return lzma.compress(data)


def v7_header(name: str, size: int) -> bytes:
    """A pre-POSIX (v7) header: no magic, zeros where ustar has it."""
    return header(name, size=size, magic=b"\0" * 8)


# -- tarsafe.stream: the archive read again must be the one scanned -------------------------------


def test_stream_refuses_a_member_that_is_no_longer_a_file(tmp_path):
    path = write(tmp_path, tar_of([(info("a"), b"first"), (info("b"), b"second")]))
    _, tree = scan(path)
    wanted = tree.sources_from(str(path))
    path.write_bytes(tar_of([(info("a"), b"first"), info("b", tarfile.DIRTYPE)]))
    got = {}
    with pytest.raises(InputError, match="member 'b' changed since it was checked"):
        tarsafe.stream(
            str(path),
            wanted,
            lambda paths, f, size: got.update({p: f.read(size) for p in paths}),
        )


def test_stream_refuses_an_archive_that_lost_members(tmp_path):
    path = write(tmp_path, tar_of([(info("a"), b"first"), (info("b"), b"second")]))
    _, tree = scan(path)
    wanted = tree.sources_from(str(path))
    path.write_bytes(tar_of([(info("a"), b"first")]))
    got = {}
    with pytest.raises(InputError, match="the archive changed since it was checked"):
        tarsafe.stream(
            str(path),
            wanted,
            lambda paths, f, size: got.update({p: f.read(size) for p in paths}),
        )
    assert got == {"a": b"first"}


@pytest.mark.parametrize("extra, accepted", [(-1, True), (0, False)])
def test_a_name_is_at_most_what_linux_takes_as_a_path(tmp_path, extra, accepted):
    # PATH_MAX counts the terminating NUL: a path of PATH_MAX - 1 bytes is the longest there is.
    length = os.pathconf("/", "PC_PATH_MAX") + extra
    name = "/".join(["d" * 200] * 30)[: length - 2] + "/f"
    assert len(name.encode()) == length
    path = write(tmp_path, archive(pax(pax_record("path", name)), member("p", b"1")))
    if accepted:
        _, tree = scan(path)
        assert tree.nodes[name].size == 1
    else:
        with pytest.raises(InputError, match=f"has a {length}-byte name; paths are at most {length - 1} bytes"):
            scan(path)
