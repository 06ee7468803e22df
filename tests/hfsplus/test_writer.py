"""The writer: reproducibility, external (streamed) data, targets that are not zero, sparse
images, and host files that change under it."""

from __future__ import annotations

import hashlib
import io
import os
import random
import tarfile
from pathlib import Path

import pytest
from hfs_cases import CASES_BY_NAME, build_case_image, expected_listing

from atvdisk.fs.hfsplus.errors import HfsWriteError
from atvdisk.fs.hfsplus.layout import VolumeOptions, plan_volume
from atvdisk.fs.hfsplus.reader import HfsVolume
from atvdisk.fs.hfsplus.tree import BytesSource, ExternalSource, HfsTree, PathSource
from atvdisk.fs.hfsplus.writer import VolumeWriter, write_volume
from atvdisk.fs.region import Region

from .judges import diff, listing_pyfshfs, listing_pytsk3

MIB = 1 << 20


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["tree", "journaled-hfsx", "fragmented", "unicode"])
def test_reproducible(name: str, tmp_path: Path) -> None:
    case = CASES_BY_NAME[name]
    src = tmp_path / "src"
    case.populate(src)
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    build_case_image(case, src, a)
    build_case_image(case, src, b)
    assert _sha(a) == _sha(b)
    # another volume ID changes the header (both copies) and nothing else
    tree = HfsTree.from_host_dir(src)
    c = tmp_path / "c.img"
    from dataclasses import replace

    with Region.open(c, 0, case.region_size, create=True) as r:
        write_volume(tree, replace(case.options, volume_id=42), r)
    da, dc = a.read_bytes(), c.read_bytes()
    changed = [i for i in range(0, len(da), 512) if da[i : i + 512] != dc[i : i + 512]]
    assert changed == [1024, len(da) - 1024]


def test_external_sources_any_order_like_tar_members(tmp_path: Path) -> None:
    rng = random.Random(5)
    members = {f"dir/{i:02d}.bin": rng.randbytes(rng.choice([0, 1, 4095, 4096, 4097, 300_000])) for i in range(20)}
    tar_path = tmp_path / "payload.tar"
    with tarfile.open(tar_path, "w") as tf:
        for name, data in sorted(members.items(), reverse=True):  # archive order != tree order
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o640
            info.mtime = 1_600_000_000
            tf.addfile(info, io.BytesIO(data))
    tree = HfsTree()
    with tarfile.open(tar_path) as tf:
        for m in tf.getmembers():
            tree.add_file(m.name, ExternalSource(m.size), mode=m.mode, mtime=m.mtime)
    tree.add_file("inline", BytesSource(b"bytes source"))
    image = tmp_path / "v.img"
    layout = plan_volume(tree, VolumeOptions(create_time=1, volume_id=2), 16 * MIB)
    with Region.open(image, 0, 16 * MIB, create=True) as region:
        w = VolumeWriter(layout, region)
        w.write()
        assert len(w.pending_externals()) == 20
        with tarfile.open(tar_path) as tf:
            for m in tf:  # archive order
                w.write_external(m.name, tf.extractfile(m))
        w.finish()
    got, _ = listing_pyfshfs(image)
    for name, data in members.items():
        assert got[name].sha256 == hashlib.sha256(data).hexdigest()
        assert got[name].mode == 0o640
    assert got["inline"].size == 12
    with HfsVolume.open(image) as vol:
        vol.check()


def test_one_layout_written_twice_gets_every_external_file_each_time(tmp_path: Path) -> None:
    """A layout can be written by several writers (two disks): each writer waits for every
    external file's data itself, whatever another writer of the same layout received."""
    tree = HfsTree()
    tree.add_file("a", ExternalSource(5))
    tree.add_file("d/b", ExternalSource(7000))
    layout = plan_volume(tree, VolumeOptions(create_time=1, volume_id=2), 8 * MIB)
    images = []
    for n in range(2):
        image = tmp_path / f"{n}.img"
        with Region.open(image, 0, 8 * MIB, create=True) as region:
            w = VolumeWriter(layout, region)
            w.write()
            assert w.pending_externals() == ["a", "d/b"]
            w.write_external("d/b", io.BytesIO(bytes(range(256)) * 27 + bytes(88)))
            with pytest.raises(HfsWriteError, match="1 file\\(s\\) never received their data: a"):
                w.finish()
            w.write_external("a", io.BytesIO(b"12345"))
            w.finish()
        images.append(_sha(image))
    assert images[0] == images[1]


def test_external_size_is_checked(tmp_path: Path) -> None:
    tree = HfsTree()
    tree.add_file("a", ExternalSource(10))
    tree.add_file("b", ExternalSource(10))
    tree.add_file("c", ExternalSource(10))
    layout = plan_volume(tree, VolumeOptions(create_time=1, volume_id=2), 8 * MIB)
    with Region.open(tmp_path / "img", 0, 8 * MIB, create=True) as region:
        w = VolumeWriter(layout, region)
        with pytest.raises(HfsWriteError, match="before write_external"):
            w.write_external("a", io.BytesIO(bytes(10)))
        w.write()
        with pytest.raises(HfsWriteError, match="shorter than the declared 10 bytes"):
            w.write_external("a", io.BytesIO(b"123"))
        with pytest.raises(HfsWriteError, match="longer than the declared 10 bytes"):
            w.write_external("b", io.BytesIO(b"x" * 11))
        with pytest.raises(HfsWriteError, match="not a file with external data"):
            w.write_external("zz", io.BytesIO(b""))
        w.write_external("/c", io.BytesIO(b"0123456789"))
        with pytest.raises(HfsWriteError, match="written twice"):
            w.write_external("c", io.BytesIO(b"0123456789"))
        with pytest.raises(HfsWriteError, match=r"never received their data: a, b"):
            w.finish()


def test_write_volume_refuses_external_sources(tmp_path: Path) -> None:
    tree = HfsTree()
    tree.add_file("a", ExternalSource(1))
    with Region.open(tmp_path / "img", 0, 8 * MIB, create=True) as region:
        with pytest.raises(HfsWriteError, match="external sources"):
            write_volume(tree, VolumeOptions(), region)


def test_host_file_changed_size(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"12345")
    tree = HfsTree()
    tree.add_file("f", PathSource.of(f))
    layout = plan_volume(tree, VolumeOptions(), 8 * MIB)
    f.write_bytes(b"123456")
    with Region.open(tmp_path / "img", 0, 8 * MIB, create=True) as region:
        with pytest.raises(HfsWriteError, match="changed size since the layout"):
            VolumeWriter(layout, region).write()


def test_non_zero_target(tmp_path: Path) -> None:
    """A used device: everything that must read as zero is written as zero."""
    case = CASES_BY_NAME["journaled"]
    src = tmp_path / "src"
    case.populate(src)
    image = tmp_path / "dev.img"
    size = case.region_size
    junk = random.Random(1).randbytes(MIB)
    with open(image, "wb") as f:
        for _ in range(size // MIB):
            f.write(junk)
    tree = HfsTree.from_host_dir(src)
    with Region.open(image, 0, size) as region:
        assert not region.known_zero
        layout = write_volume(tree, case.options, region)
    expected = expected_listing(src)
    extra = {".journal", ".journal_info_block"}
    for who, got in (("pyfshfs", listing_pyfshfs(image)[0]), ("pytsk3", listing_pytsk3(image))):
        assert not diff(expected, {k: v for k, v in got.items() if k not in extra}, who)
    data = image.read_bytes()
    bs = layout.block_size
    assert data[:1024] == bytes(1024)  # boot blocks
    assert data[1536:bs] == bytes(bs - 1536)
    assert data[-512:] == bytes(512)
    for fork, plan in ((layout.catalog, layout.catalog_plan), (layout.extents, layout.extents_plan)):
        used = (plan.used_nodes + plan.map_nodes) * plan.spec.node_size
        start = fork.start * bs
        assert data[start + used : start + fork.blocks * bs] == bytes(fork.blocks * bs - used)  # free nodes
    j = layout.journal
    assert data[j.start * bs + 512 : (j.start + j.blocks) * bs] == bytes(j.blocks * bs - 512)
    # unused bits past totalBlocks in the allocation file are zero
    alloc = data[layout.allocation.start * bs : (layout.allocation.start + layout.allocation.blocks) * bs]
    assert alloc[(layout.total_blocks + 7) // 8 :] == bytes(len(alloc) - (layout.total_blocks + 7) // 8)
    # free blocks in the last MiB were wiped; free blocks elsewhere keep the junk
    last_free = layout.total_blocks - layout.tail_blocks - 1
    assert data[last_free * bs : (last_free + 1) * bs] == bytes(bs)
    mid = (layout.header.nextAllocation + (layout.total_blocks - 256)) // 2
    assert data[mid * bs : (mid + 1) * bs] != bytes(bs)
    # each file's slack after its last byte is zero
    for pf in layout.files:
        if pf.extents:
            s, c = pf.extents[-1]
            slack = pf.blocks * bs - pf.size
            assert data[(s + c) * bs - slack : (s + c) * bs] == bytes(slack)
    with HfsVolume.open(image) as vol:
        vol.check()


def test_sparse_image_stays_sparse(tmp_path: Path) -> None:
    tree = HfsTree()
    tree.add_file("small", BytesSource(b"x" * 100))
    image = tmp_path / "img"
    with Region.open(image, 0, 2 << 30, create=True) as region:  # a 2 GiB volume
        write_volume(tree, VolumeOptions(journaled=True), region)
    st = os.stat(image)
    # the catalog (4 MiB), attributes, extents files and the 8 MiB journal are mostly zero
    assert st.st_blocks * 512 < 256 * 1024
    with HfsVolume.open(image) as vol:
        assert vol.check()["files"] == 3


def test_bitmap_marks_exactly_the_used_blocks(tmp_path: Path) -> None:
    case = CASES_BY_NAME["fragmented"]
    src = tmp_path / "src"
    case.populate(src)
    image = tmp_path / "img"
    layout = build_case_image(case, src, image)
    data = image.read_bytes()
    bs = layout.block_size
    bm = data[layout.allocation.start * bs :][: (layout.total_blocks + 7) // 8]
    marked = {b for b in range(layout.total_blocks) if bm[b >> 3] & (0x80 >> (b & 7))}
    expected = {b for s, n in layout.used_extents for b in range(s, s + n)}
    assert marked == expected
    assert 0 in marked and layout.total_blocks - 1 in marked
    assert layout.header.freeBlocks == layout.total_blocks - len(marked)
    # the gaps between fragments are free
    pf = next(f for f in layout.files if f.path == "fragmented.bin")
    (s0, c0), (s1, _c1) = pf.extents[:2]
    assert s0 + c0 not in marked and s1 == s0 + c0 + 1


@pytest.mark.parametrize("size", [1 * MIB, 1536 * 1024, 3 * MIB])
def test_small_used_targets(size: int, tmp_path: Path) -> None:
    """The first and last MiB overlap on small volumes: the wipe must not write twice."""
    image = tmp_path / "dev.img"
    image.write_bytes(b"\x5a" * size)
    tree = HfsTree()
    tree.add_file("f", BytesSource(b"data"))
    with Region.open(image, 0, size) as region:
        write_volume(tree, VolumeOptions(attributes_file=False), region)
    with HfsVolume.open(image) as vol:
        vol.check()
        assert [e.path for e in vol.walk()] == ["f"]
