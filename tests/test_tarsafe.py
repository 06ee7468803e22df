"""Tarball safety: malicious or broken archives are refused, naming the member, before anything
is written; good archives become trees, and their data streams member by member."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import pytest

from atvdisk.errors import InputError
from atvdisk.inputs import tarsafe
from atvdisk.inputs.tree import ArchiveMember, FileTree, NodeKind


def make_tar(path, members, *, compress=True):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m["name"])
            info.type = m.get("type", tarfile.REGTYPE)
            info.mode = m.get("mode", 0o644)
            info.uid, info.gid = m.get("uid", 501), m.get("gid", 20)
            info.mtime = 1_200_000_000
            info.linkname = m.get("linkname", "")
            data = m.get("data", b"")
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    blob = raw.getvalue()
    path.write_bytes(gzip.compress(blob, mtime=0) if compress else blob)
    return path


def scan(path):
    tree = FileTree(default_mtime=0)
    return tarsafe.scan(str(path), tree), tree


@pytest.mark.parametrize(
    "member, message",
    [
        ({"name": "/etc/passwd", "data": b"x"}, "member '/etc/passwd' has an absolute path"),
        ({"name": "a/../../etc/passwd", "data": b"x"}, "member 'a/../../etc/passwd' contains '..'"),
        ({"name": "dev/sda", "type": tarfile.BLKTYPE}, "member 'dev/sda' is a device node"),
        ({"name": "dev/tty", "type": tarfile.CHRTYPE}, "member 'dev/tty' is a device node"),
        ({"name": "fifo", "type": tarfile.FIFOTYPE}, "member 'fifo' is a FIFO"),
        ({"name": "evil", "type": tarfile.SYMTYPE, "linkname": "/etc/shadow"}, "symlink /evil points to the absolute path '/etc/shadow'"),
        ({"name": "a/evil", "type": tarfile.SYMTYPE, "linkname": "../../outside"}, "symlink /a/evil -> ../../outside points outside this partition"),
        ({"name": "hard", "type": tarfile.LNKTYPE, "linkname": "/etc/passwd"}, "member 'hard' is a hard link to '/etc/passwd'"),
        ({"name": "hard", "type": tarfile.LNKTYPE, "linkname": "not-in-archive"}, "is not an earlier file of this archive"),
    ],
)
def test_malicious_members_are_refused_by_name(tmp_path, member, message):
    path = make_tar(tmp_path / "bad.tar.gz", [{"name": "ok.txt", "data": b"fine"}, member])
    with pytest.raises(InputError) as info:
        scan(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.hint


def test_truncated_archive_is_refused(tmp_path):
    good = make_tar(tmp_path / "good.tar.gz", [{"name": f"f{i}", "data": bytes(range(256)) * 400} for i in range(5)])
    data = good.read_bytes()
    bad = tmp_path / "truncated.tar.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        scan(bad)


def test_corrupt_gzip_is_refused(tmp_path):
    good = make_tar(tmp_path / "good.tar.gz", [{"name": "f", "data": b"hello world" * 1000}])
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "corrupt.tar.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match="truncated or corrupt|not a readable tar"):
        scan(bad)


def test_not_a_tarball(tmp_path):
    bad = tmp_path / "x.tar.gz"
    bad.write_bytes(b"this is not an archive" * 100)
    with pytest.raises(InputError, match="not a readable tar archive"):
        scan(bad)


def test_good_archive_becomes_a_root_owned_tree(tmp_path):
    path = make_tar(
        tmp_path / "good.tar.gz",
        [
            {"name": "./", "type": tarfile.DIRTYPE, "mode": 0o755},
            {"name": "./boot.efi", "data": b"E" * 100, "mode": 0o644},
            {"name": "./sub/script.sh", "data": b"#!/bin/sh\n", "mode": 0o4755},
            {"name": "./sub/link", "type": tarfile.SYMTYPE, "linkname": "script.sh"},
            {"name": "./sub/copy", "type": tarfile.LNKTYPE, "linkname": "./sub/script.sh"},
        ],
    )
    result, tree = scan(path)
    assert result.files == 3 and result.data_bytes == 100 + 10 + 10
    assert tree.nodes["boot.efi"].uid == 0 and tree.nodes["boot.efi"].gid == 0  # the archive said 501:20
    assert tree.nodes["sub/script.sh"].mode == 0o755  # setuid dropped
    assert tree.nodes["sub/link"].kind is NodeKind.SYMLINK and tree.nodes["sub/link"].target == "script.sh"
    # A hard link becomes a copy fed from the same member.
    assert tree.nodes["sub/copy"].source == tree.nodes["sub/script.sh"].source


def test_streaming_delivers_each_wanted_member_once(tmp_path):
    blobs = {f"d/f{i}": hashlib.sha256(str(i).encode()).digest() * (i + 1) for i in range(6)}
    path = make_tar(tmp_path / "s.tar.gz", [{"name": n, "data": d} for n, d in blobs.items()] + [{"name": "d/hl", "type": tarfile.LNKTYPE, "linkname": "d/f3"}])
    _, tree = scan(path)
    wanted = tree.sources_from(str(path))
    got = {}

    def sink(paths, f, size):
        data = f.read(size)
        for p in paths:
            got[p] = data

    tarsafe.stream(str(path), wanted, sink)
    assert got == {**blobs, "d/hl": blobs["d/f3"]}


def test_later_archive_overlays_earlier(tmp_path):
    a = make_tar(tmp_path / "a.tar.gz", [{"name": "x", "data": b"old"}, {"name": "keep", "data": b"k"}])
    b = make_tar(tmp_path / "b.tar", [{"name": "x", "data": b"newer"}], compress=False)
    tree = FileTree(default_mtime=0)
    tarsafe.scan(str(a), tree)
    tarsafe.scan(str(b), tree)
    assert tree.nodes["x"].size == 5 and isinstance(tree.nodes["x"].source, ArchiveMember)
    assert tree.nodes["x"].source.archive == str(b)
    assert tree.nodes["keep"].source.archive == str(a)


def test_non_utf8_member_name_is_refused(tmp_path):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tar:
        info = tarfile.TarInfo("caf\xe9")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    path = tmp_path / "latin1.tar"
    path.write_bytes(raw.getvalue())
    with pytest.raises(InputError, match="not valid UTF-8"):
        scan(path)
