"""Fuzzing the tar reader with Python's tarfile as the oracle (issue 11, item 2).

Archives are assembled from hostile parts (headers with any size, type and number encoding, pax
records with any key and value, GNU long names of any length, raw garbage, truncation, gzip) and
read by both. The properties, on every input:

- atvdisk's reader terminates (an alarm fails the test) in bounded memory (tracemalloc) and
  raises nothing but TarStreamError;
- when it accepts an archive, tarfile reads the same members with the same data (so nothing is
  hidden from, smuggled past or parsed differently than the tools users know);
- when it refuses one tarfile accepts, the reason is one of its deliberate refusals (listed in
  DELIBERATE), never an accident;
- tarsafe.scan, which the build runs, gives a tree or an InputError, nothing else.

The budget is bounded for CI (max_examples); ATVDISK_FUZZ_EXAMPLES=N runs longer.
The corpus (CORPUS) holds the inputs of the issue and what the fuzzer found; each runs every time.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import signal
import tarfile
import tracemalloc
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from atvdisk.errors import InputError
from atvdisk.inputs import tarsafe, tarstream
from atvdisk.inputs.tarstream import TarStream, TarStreamError
from atvdisk.inputs.tree import FileTree
from tarcraft import BLOCK, archive, gnu_long, gz, header, member, pad, pax, pax_record

EXAMPLES = int(os.environ.get("ATVDISK_FUZZ_EXAMPLES", "150"))
MEMORY_BOUND = 24 << 20  # bytes allocated at the peak, whatever the archive says

# What the reader refuses on purpose where tarfile reads on (tarfile is lenient: it stops quietly
# at a truncated header, ignores data after the end, turns a bad pax number into 0, ...).
DELIBERATE = (
    "truncated",
    "outside",  # a number out of range (negative size, uid > 2^32-1, ...)
    "bad pax record",
    "corrupt pax header",
    "bytes of metadata",
    "GNU sparse",
    "multi-volume",
    "data after the end",
    "corrupt header",
    "unexpected data after the end of the compressed stream",
)


@contextmanager
def deadline(seconds: float):
    def expired(signum, frame):  # noqa: ANN001
        raise AssertionError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def ours(path: str) -> list[tuple] | TarStreamError:
    out = []
    try:
        with TarStream(path) as ts:
            for m in ts:
                h = hashlib.sha256()
                while chunk := ts.read(4096):
                    h.update(chunk)
                out.append((m.name, m.type, m.size, m.mtime, m.uid, m.gid, m.linkname, h.hexdigest()))
    except TarStreamError as e:
        return e
    return out


class OracleLoops(Exception):
    """tarfile went round in circles (a negative size sends it back to an earlier header)."""


def oracle(path: str) -> list[tuple] | Exception:
    out = []
    try:
        with tarfile.open(path) as tar:
            for m in tar:
                if len(out) > 200:  # the archives made here have a dozen members at most
                    raise OracleLoops(f"tarfile read {len(out)} members")
                data = tar.extractfile(m).read() if m.isreg() else b""
                if m.isreg() and len(data) != m.size:
                    raise EOFError("member data cut short")
                name = m.name.rstrip("/") if m.isdir() else m.name  # tarfile strips one slash from a long name, all from others
                out.append((name, m.type, m.size if m.isreg() else 0, int(m.mtime), m.uid, m.gid, m.linkname, hashlib.sha256(data).hexdigest()))
    except (tarfile.TarError, EOFError, OSError, ValueError, OverflowError, RecursionError, OracleLoops, zlib_error()) as e:
        return e
    return out


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


def check(tmp_path, data: bytes) -> None:
    path = str(tmp_path / "fuzz.tar")
    with open(path, "wb") as f:
        f.write(data)
    tracemalloc.start()
    try:
        with deadline(10):
            got = ours(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"peak {peak} bytes"
    want = oracle(path)
    if isinstance(got, list):
        assert not isinstance(want, Exception), f"atvdisk read {got}, tarfile refused: {want!r}"
        assert got == want
    elif isinstance(want, list):
        assert any(reason in str(got) for reason in DELIBERATE), f"refused for an unlisted reason: {got} (tarfile read {want})"
    # What the build runs on it: a tree or an InputError, nothing else.
    with deadline(10):
        try:
            tarsafe.scan(path, FileTree(default_mtime=0))
        except InputError:
            pass


# -- the parts ------------------------------------------------------------------------------

names = st.one_of(
    st.sampled_from(["a", "b/c", "./d", "e/", "", ".", "..", "/abs", "x" * 100, "y" * 101]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
)
numbers = st.one_of(
    st.integers(-(1 << 70), 1 << 70).map(str),
    st.integers(0, 5000).map(str),
    st.sampled_from(["", "inf", "-inf", "nan", "1e3", "0x10", "+5", " 5", "5 ", "1_0", "٣", "1.5", "-1.5", "1.", ".5", "00012"]),
    st.floats(allow_nan=True).map(str),
)
pax_keys = st.sampled_from(["path", "linkpath", "size", "mtime", "uid", "gid", "comment", "GNU.sparse.major", "hdrcharset", "atime", "uname", ""])


@st.composite
def pax_records(draw) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 4))):
        key = draw(pax_keys)
        value = draw(numbers) if key in ("size", "mtime", "uid", "gid", "atime") else draw(names)
        rec = pax_record(key, value.encode("utf-8", "surrogatepass"))
        if draw(st.integers(0, 9)) == 0:  # a record that lies about its length
            rec = str(draw(st.integers(0, 200))).encode() + rec[rec.index(b" ") :]
        out += rec
    return out


@st.composite
def parts(draw) -> bytes:
    kind = draw(st.sampled_from(["file", "file", "dir", "symlink", "hardlink", "pax", "global", "longname", "longlink", "raw", "weird", "zeros"]))
    if kind == "file":
        data = draw(st.binary(max_size=1500))
        return member(draw(names), data, mode=draw(st.integers(0, 0o7777)), mtime=draw(st.integers(0, 8**11 - 1)))
    if kind == "dir":
        return header(draw(names), typeflag=b"5", size=draw(st.sampled_from([0, 0, 5, -5, 1 << 40])))
    if kind in ("symlink", "hardlink"):
        return header(draw(names), typeflag=b"2" if kind == "symlink" else b"1", linkname=draw(names))
    if kind in ("pax", "global"):
        records = draw(pax_records())
        lie = draw(st.sampled_from([None, None, None, 0, -512, len(records) + 512, 1 << 30, (1 << 20) + 1]))
        return pax(records, global_=kind == "global", size=lie)
    if kind in ("longname", "longlink"):
        name = draw(names).encode("utf-8", "surrogatepass") + draw(st.sampled_from([b"", b"\0", b"\0junk"]))
        lie = draw(st.sampled_from([None, None, 0, -1, 1 << 21]))
        return gnu_long(name, link=kind == "longlink", size=lie)
    if kind == "raw":
        return draw(st.binary(min_size=1, max_size=1100))
    if kind == "weird":  # any type flag, any size encoding, data that may look like a header
        flag = draw(st.sampled_from([b"3", b"4", b"6", b"7", b"S", b"M", b"V", b"D", b"Z", b"\0", b"x"]))
        size = draw(st.sampled_from([0, 7, 512, 1024, -1, -512, 1 << 33, (1 << 63) + 1]))
        body = draw(st.sampled_from([b"", member("smuggled", b"evil"), b"\xff" * 700]))
        return header(draw(names), typeflag=flag, size=size) + pad(body)
    return b"\0" * BLOCK * draw(st.integers(1, 3))


@st.composite
def archives(draw) -> bytes:
    data = archive(*draw(st.lists(parts(), max_size=6)), end=draw(st.booleans()))
    cut = draw(st.sampled_from([None, None, None, "cut", "tail"]))
    if cut == "cut" and data:
        data = data[: draw(st.integers(0, len(data)))]
    elif cut == "tail":
        data += draw(st.binary(max_size=600))
    if draw(st.booleans()):
        data = gz(data)
        if draw(st.integers(0, 5)) == 0:
            data = data[: draw(st.integers(0, len(data)))]
    return data


# -- the corpus: the inputs and what the fuzzer found ---------------------------------

CORPUS = {
    "pax-size-minus-1536": gz(archive(pax(pax_record("size", "-1536")), member("a", b"x" * 10))),
    "pax-size-minus-512": gz(archive(pax(pax_record("size", "-512")), member("a"))),
    "pax-empty": gz(archive(pax(b""), member("a", b"hi"))),
    "pax-global-empty": gz(archive(pax(b"", global_=True), member("a", b"hi"))),
    "longname-empty": gz(archive(gnu_long(b""), member("a", b"hi"))),
    "mtime-inf": gz(archive(pax(pax_record("mtime", "inf")), member("a", b"hi"))),
    "base256-negative-size": gz(archive(header("a", size=-512), b"x" * 512)),
    "unknown-type-smuggles": archive(header("v", size=1024, typeflag=b"Z") + pad(member("smuggled", b"evil")), member("a", b"x")),
    "pax-size-zero-word": archive(pax(pax_record("size", "abc")), member("a", b"hi")),  # tarfile: size 0
    "pax-lies-short": archive(pax(pax_record("path", "p"), size=4), member("a", b"x")),
    "dir-with-size": archive(header("d", typeflag=b"5", size=1024), member("a", b"x")),
    "global-size": archive(pax(pax_record("size", "3"), global_=True), member("a", b"abc"), member("b", b"def")),
    "empty": b"",
    "only-zeros": b"\0" * 10240,
    "gzip-of-nothing": gzip.compress(b"", mtime=0),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus(tmp_path, name):
    check(tmp_path, CORPUS[name])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=archives(), chunk=st.sampled_from([tarstream.CHUNK, 1000, 512, 7]))
@example(data=CORPUS["pax-size-minus-1536"], chunk=1000)
def test_fuzz_against_tarfile(tmp_path, monkeypatch, data, chunk):
    monkeypatch.setattr(tarstream, "CHUNK", chunk)  # chunk boundaries everywhere
    check(tmp_path, data)


def test_fuzzer_reaches_the_interesting_cases():
    """The strategy is not vacuous: it makes archives both readers accept, ones both refuse, and
    ones only atvdisk refuses (deliberately)."""
    import tempfile

    seen = set()

    @settings(max_examples=300, deadline=None, database=None)
    @given(data=archives())
    def probe(data):
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            a, b = ours(f.name), oracle(f.name)
        seen.add((isinstance(a, list), isinstance(b, list)))

    probe()
    assert {(True, True), (False, False), (False, True)} <= seen, seen


def test_oracle_sees_data_in_memory():
    """Sanity of the oracle helper: it reads members and their data."""
    data = archive(member("a", b"abc"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.extractfile("a").read() == b"abc"
