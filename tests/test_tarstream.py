"""atvdisk's streaming tar reader, judged by Python's tarfile on the same archives."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atvdisk.inputs import tarstream
from atvdisk.inputs.tarstream import TarStream, TarStreamError

FORMATS = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}
COMPRESSIONS = ["", "gz", "bz2", "xz"]

names = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\0"), min_size=1, max_size=120).filter(lambda s: s not in (".", "..")),
    min_size=1,
    max_size=3,
).map("/".join)


def build(path, entries, fmt, compression):
    with tarfile.open(path, "w:" + compression if compression else "w", format=fmt) as tar:
        for kind, name, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_234_567_890
            info.uid, info.gid = 501, 20
            if kind == "file":
                info.size = len(payload)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(payload))
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload.decode()
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload.decode()
                tar.addfile(info)


def with_tarfile(path):
    out = []
    with tarfile.open(path) as tar:
        for m in tar:
            data = tar.extractfile(m).read() if m.isreg() else b""
            out.append((m.name.rstrip("/"), m.type, m.size if m.isreg() else 0, m.mode, int(m.mtime), m.uid, m.gid, m.linkname, hashlib.sha256(data).hexdigest()))
    return out


def with_tarstream(path, readahead=False):
    out = []
    with TarStream(str(path), readahead=readahead) as ts:
        for m in ts:
            h = hashlib.sha256()
            while chunk := ts.read(7777):
                h.update(chunk)
            out.append((m.name, m.type, m.size, m.mode, m.mtime, m.uid, m.gid, m.linkname, h.hexdigest()))
    return out


entry = st.one_of(
    st.tuples(st.just("file"), names, st.binary(max_size=3000)),
    st.tuples(st.just("dir"), names, st.just(b"")),
    st.tuples(st.just("symlink"), names, names.map(str.encode)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(entry, max_size=8), fmt=st.sampled_from(["gnu", "pax"]), compression=st.sampled_from(COMPRESSIONS))
def test_same_members_as_tarfile(tmp_path, monkeypatch, entries, fmt, compression):
    monkeypatch.setattr(tarstream, "CHUNK", 1000)  # chunk boundaries everywhere, also inside headers
    path = tmp_path / f"t.tar.{compression}"
    build(path, entries, FORMATS[fmt], compression)
    expected = with_tarfile(path)
    assert with_tarstream(path) == expected
    assert with_tarstream(path, readahead=True) == expected


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_long_names_links_and_big_members(tmp_path, fmt, compression):
    long_dir = "d" * 90 + "/" + "e" * 60
    entries = [
        ("dir", long_dir, b""),
        ("file", long_dir + "/" + "f" * 99, bytes(range(256)) * 50_000),  # 12.8 MB: many chunks
        ("file", "empty", b""),
        ("hardlink", "hl", (long_dir + "/" + "f" * 99).encode()),
        ("symlink", "sl", ("../" * 40 + "target").encode()),
    ]
    if fmt == "ustar":
        entries = [e for e in entries if len(e[2]) <= 100 or e[0] == "file"][:3]
    path = tmp_path / f"t.tar.{compression}"
    build(path, entries, FORMATS[fmt], compression)
    assert with_tarstream(path) == with_tarfile(path)


def test_every_truncation_is_refused(tmp_path):
    path = tmp_path / "t.tar"
    build(path, [("file", "a", b"x" * 3000), ("file", "b", b"y" * 100)], tarfile.GNU_FORMAT, "")
    data = path.read_bytes()
    end = len(data.rstrip(b"\0"))  # where the real content ends: cuts inside the zero padding are fine
    for cut in range(0, end, 100):
        bad = tmp_path / "cut.tar"
        bad.write_bytes(data[:cut])
        with pytest.raises(TarStreamError):
            with_tarstream(bad)


def test_gzip_corruption_and_truncation(tmp_path):
    path = tmp_path / "t.tar.gz"
    build(path, [("file", "a", bytes(range(256)) * 2000)], tarfile.PAX_FORMAT, "gz")
    data = path.read_bytes()
    for bad_bytes in (data[:-4], data[: len(data) // 2], data[:-8] + b"\0" * 8, data + b"garbage"):
        bad = tmp_path / "bad.tar.gz"
        bad.write_bytes(bad_bytes)
        with pytest.raises(TarStreamError):
            with_tarstream(bad)
        with pytest.raises(TarStreamError):
            with_tarstream(bad, readahead=True)


def test_abandoned_readahead_stream_stops_its_thread(tmp_path):
    import threading

    path = tmp_path / "t.tar.gz"
    build(path, [("file", f"f{i}", bytes(range(256)) * 20_000) for i in range(8)], tarfile.PAX_FORMAT, "gz")
    with TarStream(str(path), readahead=True) as ts:
        next(iter(ts))
    assert not any(t.name == "atvdisk-tar-readahead" for t in threading.enumerate())


def test_header_checksum_is_checked(tmp_path):
    path = tmp_path / "t.tar"
    build(path, [("file", "a", b"hello")], tarfile.USTAR_FORMAT, "")
    data = bytearray(path.read_bytes())
    data[10] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(TarStreamError, match="corrupt header"):
        with_tarstream(path)


def test_gnu_sparse_is_refused(tmp_path):
    path = tmp_path / "t.tar"
    info = tarfile.TarInfo("sparse")
    info.type = tarfile.GNUTYPE_SPARSE
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(info)
    with pytest.raises(TarStreamError, match="GNU sparse"):
        with_tarstream(path)
