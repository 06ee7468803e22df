"""ext4 Media partitions of large disks: the inode count is capped (mke2fs's default one per
16 KiB would give a 2 TiB disk 134 million inodes, which e2fsck -fn walks one by one at every
verification); smaller disks keep mke2fs's default. Judged by dumpe2fs and e2fsck."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from atvdisk.fs.ext4 import MAX_INODES, make_ext4
from atvdisk.inputs.tree import FileTree, Inline
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import load_layout

GiB = 1 << 30


def _inode_count(spec: str) -> int:
    out = subprocess.run(["dumpe2fs", "-h", spec], check=True, capture_output=True, text=True).stdout
    return int(next(line.split(":")[1] for line in out.splitlines() if line.startswith("Inode count:")))


@pytest.mark.parametrize("disk_gib, capped", [(32, False), (256, True)])
def test_media_inode_count(tmp_path, disk_gib, capped):
    plan = resolve(load_layout("atv1-openelec"), disk_gib * GiB, 512, seed="ext4-scale")
    media = next(p for p in plan.partitions if p.fs.kind.value == "ext4")
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(plan.disk_bytes)
    tree = FileTree(default_mtime=1300000000)
    tree.add_file(".config/ssh_enable", Inline(b""), 0)
    make_ext4(str(img), media, tree, workdir=str(tmp_path), epoch=1300000000, prezeroed=True)
    spec = f"{img}?offset={media.offset}"
    count = _inode_count(spec)
    if capped:
        assert MAX_INODES <= count < MAX_INODES * 1.01, count
    else:
        assert count >= media.size_bytes // 16384 * 0.99, count  # mke2fs's default ratio
    subprocess.run(["e2fsck", "-fn", spec], check=True, capture_output=True)


def test_large_host_files_are_linked_not_copied_and_left_as_they_were(tmp_path):
    """mke2fs -d reads large host files through hard links in its staging directory (no second
    copy); the user's files keep their mode, times and link count, the filesystem gets the tree's
    (setuid dropped), the user's own hard links stay independent copies, and every file's sha256
    is recorded. Judged by debugfs and e2fsck."""
    from atvdisk.inputs.contents import add_host_directory
    from atvdisk.inputs.staging import materialise

    src = tmp_path / "media"
    src.mkdir()
    big = src / "video.mkv"
    big.write_bytes(os.urandom(3 << 20))
    big.chmod(0o4751)
    os.utime(big, (1_200_000_000, 1_200_000_000))
    pair = src / "album.flac"
    pair.write_bytes(os.urandom(2 << 20))
    os.link(pair, src / "album-again.flac")  # the user's own hard link: two independent files on ext4
    (src / "small.txt").write_bytes(b"hello\n")
    before = {p.name: os.stat(p) for p in src.iterdir()}
    tree = FileTree(default_mtime=1300000000)
    add_host_directory(tree, str(src), "", owner=(0, 0), origin="test")

    linked: list[str] = []
    staged = materialise(tree, tmp_path, link_min=1 << 20, linked=linked)
    assert linked == ["video.mkv"]  # large, alone, no xattrs: linked; the user's pair: copied
    assert os.stat(staged / "video.mkv").st_ino == before["video.mkv"].st_ino
    assert os.stat(staged / "album.flac").st_ino != before["album.flac"].st_ino
    shutil.rmtree(staged)

    plan = resolve(load_layout("atv1-openelec"), 4 * GiB, 512, seed="ext4-links")
    media = next(p for p in plan.partitions if p.fs.kind.value == "ext4")
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(plan.disk_bytes)
    hashes: dict[str, str] = {}
    make_ext4(str(img), media, tree, workdir=str(tmp_path), epoch=1300000000, prezeroed=True, hashes=hashes)
    spec = f"{img}?offset={media.offset}"
    subprocess.run(["e2fsck", "-fn", spec], check=True, capture_output=True)
    after = {p.name: os.stat(p) for p in src.iterdir()}
    for name, st in before.items():
        assert (after[name].st_mode, after[name].st_mtime, after[name].st_nlink) == (st.st_mode, st.st_mtime, st.st_nlink), name
    assert hashes["video.mkv"] == hashlib.sha256(big.read_bytes()).hexdigest()
    assert hashes["album.flac"] == hashes["album-again.flac"] == hashlib.sha256(pair.read_bytes()).hexdigest()
    assert hashes["small.txt"] == hashlib.sha256(b"hello\n").hexdigest()
    for name, mode, mtime in (("video.mkv", "0751", "0x47868c00"), ("album.flac", None, None), ("album-again.flac", None, None)):
        out = subprocess.run(["debugfs", "-R", f"stat /{name}", spec], check=True, capture_output=True, text=True).stdout
        assert "Links: 1" in out, out  # its own inode
        if mode:
            assert f"Mode:  {mode}" in out and f"mtime: {mtime}" in out, out  # the tree's mode (no setuid) and time
        dumped = tmp_path / f"dump-{name}"
        subprocess.run(["debugfs", "-R", f"dump /{name} {dumped}", spec], check=True, capture_output=True)
        assert dumped.read_bytes() == (src / name).read_bytes()
