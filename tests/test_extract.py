"""`atvdisk extract`: HFS+ volumes to deterministic tarballs, judged by Python's tarfile against
the source trees (tests/hfs_cases.py), by the build that takes the tarball back, and by a full
round trip. Kernel-written volumes: tests/kernel/test_extract_kernel.py.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import tarfile
import unicodedata
from pathlib import Path

import hfs_cases as cases
import pytest

from atvdisk.fs.hfsplus.tree import HfsTree
from atvdisk.fs.hfsplus.writer import write_volume
from atvdisk.fs.region import Region
from atvdisk.imaging.extract import tar_name
from atvdisk.inputs.sample import write_sample

EPOCH = "1300000000"
MIB = 1 << 20


def atvdisk(*args, check=True):
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    r = subprocess.run([sys.executable, "-m", "atvdisk", *map(str, args)], capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"atvdisk {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def sha256_file(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def members(tgz: Path) -> dict[str, tuple]:
    """name -> (kind, mode, size, uid, gid, sha256, target, mtime), read with Python's tarfile."""
    out = {}
    with tarfile.open(tgz) as tar:
        for m in tar:
            data = tar.extractfile(m).read() if m.isreg() else None
            kind = "dir" if m.isdir() else "file" if m.isreg() else "symlink" if m.issym() else m.type
            out[m.name] = (kind, m.mode, m.size if m.isreg() else 0, m.uid, m.gid, hashlib.sha256(data).hexdigest() if data is not None else None, m.linkname or None, m.mtime)
    return out


def gpt_image(tmp: Path, volumes: list[tuple[str, str, int]]) -> tuple[Path, list[int]]:
    """A GPT disk image with partitions (name, sgdisk type code, bytes) at 1 MiB boundaries."""
    offsets, cursor = [], MIB
    for _, _, size in volumes:
        offsets.append(cursor)
        cursor += -(-size // MIB) * MIB
    img = tmp / "disk.img"
    with open(img, "wb") as f:
        f.truncate(cursor + MIB)
    argv = ["sgdisk", "-o"]
    for n, ((name, code, size), off) in enumerate(zip(volumes, offsets, strict=True), 1):
        argv += ["-n", f"{n}:{off // 512}:{off // 512 + size // 512 - 1}", "-t", f"{n}:{code}", "-c", f"{n}:{name}"]
    subprocess.run([*argv, str(img)], check=True, capture_output=True)
    return img, offsets


CASES = [c for c in cases.CASES if c.name in ("unicode", "hfsx-unicode", "tree", "journaled", "fragmented", "small-files", "block-512")]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_extracted_tarball_holds_the_source_tree(case, tmp_path):
    """Every torture volume: the tarball's members (read with tarfile) are the source tree's
    entries (names, kinds, modes, sizes, sha256, link targets, times), owners 0:0, in order."""
    src = tmp_path / "src"
    case.populate(src)
    img, (offset,) = gpt_image(tmp_path, [("Recovery", "5265636F-7665-11AA-AA11-00306543ECAC", case.region_size)])
    with Region.open(img, offset, case.region_size) as region:
        write_volume(HfsTree.from_host_dir(src), case.options, region)
    before = sha256_file(img)
    out = tmp_path / "out.tar.gz"
    r = atvdisk("extract", img, "-o", out)
    assert sha256_file(img) == before  # read-only
    absolute = [p for p, e in cases.expected_listing(src).items() if e.kind == "symlink" and e.target.startswith("/")]
    # A faithful copy: what `build --restore` would refuse is kept, and said.
    assert ("`atvdisk build` would refuse this tarball" in r.stderr) == bool(absolute)
    got = members(out)
    want = {}
    for path, e in cases.expected_listing(src).items():
        name = tar_name(unicodedata.normalize("NFD", path))  # NFD: close to what HFS+ stores
        mtime = int(os.lstat(src / path).st_mtime) if (src / path).exists() else None
        mode = 0o777 if e.kind == "symlink" else e.mode
        want[name] = (e.kind, mode, e.size if e.kind == "file" else 0, 0, 0, e.sha256, e.target, mtime)
    got_cmp = {unicodedata.normalize("NFC", k): v[:7] + ((v[7],) if want.get(k, (None,) * 8)[7] is not None else (None,)) for k, v in got.items()}
    want_cmp = {unicodedata.normalize("NFC", k): v for k, v in want.items()}
    assert got_cmp.keys() == want_cmp.keys()
    diffs = {k: (want_cmp[k], got_cmp[k]) for k in want_cmp if want_cmp[k][:7] != got_cmp[k][:7]}
    assert diffs == {}
    names = list(got)
    assert names == sorted(names, key=lambda n: n.split("/")), "members are in path order"


def test_names_recompose_only_where_hfs_round_trips():
    assert tar_name("cafe\u0301") == "caf\u00e9"  # what Linux's hfsplus shows
    assert tar_name("\uf900") == "\uf900"  # HFS+ does not decompose it: NFC would rename it
    assert tar_name("A\u030a/x") == "\u00c5/x"


def test_round_trip_is_byte_for_byte_stable(tmp_path):
    """atv1-factory from the sample restore files -> extract -> build with --restore from that
    tarball -> extract again: the same bytes; and the first tarball holds the sample's files."""
    sample = write_sample(tmp_path / "sample")
    one, two = tmp_path / "one.img", tmp_path / "two.img"
    r1, r2 = tmp_path / "r1.tar.gz", tmp_path / "r2.tar.gz"
    atvdisk("build", one, "--layout", "atv1-factory", "--size", "4GB", "--restore", sample.restore)
    r = atvdisk("extract", one, "-o", r1)
    assert "boot.efi: 298800 bytes (Apple's ATV boot.efi)" in r.stderr
    assert "Kernel Flags: 'atv-boot=none video=vesafb'" in r.stderr or "Kernel Flags:" in r.stderr
    atvdisk("build", two, "--layout", "atv1-factory", "--size", "4GB", "--restore", r1)
    atvdisk("extract", two, "-o", r2)
    assert r1.read_bytes() == r2.read_bytes()
    with tarfile.open(sample.restore) as tar:
        original = {m.name.strip("./").rstrip("/"): (m.isdir(), m.mode & 0o777, tar.extractfile(m).read() if m.isreg() else None, m.mtime) for m in tar if m.name.strip("./")}
    with tarfile.open(r1) as tar:
        rescued = {m.name: (m.isdir(), m.mode & 0o777, tar.extractfile(m).read() if m.isreg() else None, m.mtime) for m in tar}
        assert {(m.uid, m.gid, m.uname, m.gname) for m in tar} == {(0, 0, "", "")}
    assert rescued == original
    # gzip header: no name, no time
    raw = r1.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0" and not raw[3] & 0x08
    assert gzip.decompress(raw)  # a valid stream


def test_all_and_partition_and_refusals(tmp_path):
    img = tmp_path / "a.img"
    atvdisk("build", img, "--size", "4G", "--example", "--seed", "x")
    out = tmp_path / "out"
    r = atvdisk("extract", img, "--all", "--out-dir", out)
    assert sorted(p.name for p in out.iterdir()) == ["OSBoot.tar.gz", "atv_restore.tar.gz"]
    assert "already set up as a patchstick" in r.stderr  # patchstick.sh and keyword are there
    with tarfile.open(out / "OSBoot.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["KERNEL", "KERNEL.md5", "SYSTEM", "SYSTEM.md5"]
    r = atvdisk("extract", img, "--all", "--out-dir", out, check=False)
    assert r.returncode == 3 and "already exists" in r.stderr
    r = atvdisk("extract", img, "--partition", 4, "-o", tmp_path / "x.tgz", check=False)
    assert r.returncode == 2 and "partition 4 holds no HFS+ volume" in r.stderr and "2 (Recovery, atvrecv)" in r.stderr
    plain = tmp_path / "plain.img"
    plain.write_bytes(b"\0" * 65536)
    r = atvdisk("extract", plain, check=False)
    assert r.returncode == 2 and "no readable GPT" in r.stderr
    assert not (tmp_path / "x.tgz").exists() and not list(tmp_path.glob(".*partial"))


def test_a_damaged_volume_is_refused_and_nothing_is_left(tmp_path):
    case = next(c for c in cases.CASES if c.name == "tree")
    src = tmp_path / "src"
    case.populate(src)
    img, (offset,) = gpt_image(tmp_path, [("Recovery", "5265636F-7665-11AA-AA11-00306543ECAC", case.region_size)])
    with Region.open(img, offset, case.region_size) as region:
        write_volume(HfsTree.from_host_dir(src), case.options, region)
    from atvdisk.fs.hfsplus.reader import HfsVolume

    with HfsVolume.open(img, offset, case.region_size) as vol:
        catalog = vol.header.catalogFile.extents[0].startBlock * vol.block_size
    with open(img, "r+b") as f:  # the catalog B-tree's header node kind: no longer a header
        f.seek(offset + catalog + 8)
        f.write(b"\x7f")
    before = sha256_file(img)
    r = atvdisk("extract", img, "-o", tmp_path / "r.tgz", check=False)
    assert r.returncode == 2 and "catalog B-tree node 0 is not a header node" in r.stderr
    assert not (tmp_path / "r.tgz").exists() and not list(tmp_path.glob(".r.tgz.*"))
    assert sha256_file(img) == before


def test_a_journal_with_transactions_is_read_with_a_warning(tmp_path):
    """atv1-factory's Media is journaled: with the journal header saying it holds transactions
    (start != end, as after a crash), the volume is still read, as it lies, with a warning."""
    img = tmp_path / "j.img"
    atvdisk("build", img, "--layout", "atv1-factory", "--size", "4GB", "--seed", "j")
    import struct

    from atvdisk.fs.hfsplus.reader import HfsVolume

    media = next(p for p in gpt_partitions(img) if p[0] == 4)
    with HfsVolume.open(img, media[1], media[2]) as vol:
        bs = vol.block_size
        jib = vol.header.journalInfoBlock * bs
    with open(img, "r+b") as f:
        f.seek(media[1] + jib + 36)
        j_offset = struct.unpack(">Q", f.read(8))[0]
        f.seek(media[1] + j_offset + 16)  # journal_header.end (= start when empty): one sector on
        start = struct.unpack(">Q", f.read(8))[0]
        f.seek(media[1] + j_offset + 16)
        f.write(struct.pack(">Q", start + 512))
    r = atvdisk("extract", img, "--partition", 4, "-o", tmp_path / "media.tgz")
    assert "the journal holds transactions that were never replayed" in r.stderr
    assert tarfile.open(tmp_path / "media.tgz").getnames() == []  # an empty Media, journal files left out


def gpt_partitions(img: Path) -> list[tuple[int, int, int]]:
    import json as _json

    table = _json.loads(subprocess.run(["sfdisk", "--json", img], capture_output=True, text=True, check=True).stdout)["partitiontable"]
    return [(int(p["node"].rsplit("img", 1)[1]), p["start"] * 512, p["size"] * 512) for p in table["partitions"]]
