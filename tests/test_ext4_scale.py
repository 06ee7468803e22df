"""ext4 Media partitions of large disks: the inode count is capped (mke2fs's default one per
16 KiB would give a 2 TiB disk 134 million inodes, which e2fsck -fn walks one by one at every
verification); smaller disks keep mke2fs's default. Judged by dumpe2fs and e2fsck."""

from __future__ import annotations

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
