"""The reader refuses corrupt volumes with HfsCorruptError: never another exception, never a
hang. Hypothesis flips bytes in headers, node descriptors, record offsets and records."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atvdisk.fs.hfsplus.errors import HfsCorruptError
from atvdisk.fs.hfsplus.layout import VolumeLayout, VolumeOptions
from atvdisk.fs.hfsplus.reader import HfsVolume
from atvdisk.fs.hfsplus.tree import BytesSource, HfsTree
from atvdisk.fs.hfsplus.writer import write_volume
from atvdisk.fs.region import Region

MIB = 1 << 20
SIZE = 3 * MIB


def _build(path: Path) -> VolumeLayout:
    tree = HfsTree()
    for d in range(6):
        for f in range(30):
            tree.add_file(f"dir{d}/file-{f:03d}-with-some-name.txt", BytesSource(b"%d/%d\n" % (d, f)))
    tree.add_file("frag", BytesSource(bytes(range(256)) * 16 * 12))  # 12 blocks, fragmented
    tree.add_symlink("link", "dir0/file-000-with-some-name.txt")
    opts = VolumeOptions(volume_name="Fuzz", journaled=True, journal_size=512 * 1024, fragment_blocks=1,
                         create_time=1, volume_id=2, block_size=4096)  # fmt: skip
    with Region.open(path, 0, SIZE, create=True) as r:
        return write_volume(tree, opts, r)


@pytest.fixture(scope="module")
def volume(tmp_path_factory) -> tuple[bytes, VolumeLayout]:
    p = tmp_path_factory.mktemp("fuzz") / "base.img"
    layout = _build(p)
    with HfsVolume.open(p) as vol:  # the unmodified volume is fine
        figures = vol.check()
        assert figures["catalog"]["depth"] >= 2 and figures["extents"]["depth"] >= 1
    return p.read_bytes(), layout


def _exercise(path: Path) -> None:
    """Everything verify would do; must end in success or HfsCorruptError."""
    with HfsVolume.open(path) as vol:
        _ = (vol.volume_name, vol.journaled, vol.clean, vol.journal_state())
        for e in vol.walk():
            if e.kind == "file":
                vol.sha256(e)
        for e in vol.scan():
            if e.kind == "file":
                vol.sha256(e)
        vol.check()


def _targets(layout: VolumeLayout) -> list[tuple[int, int]]:
    """Byte ranges worth corrupting: headers, descriptors, offset tables, records."""
    bs = layout.block_size
    out = [(1024, 512), (layout.journal_info_block * bs, 180)]
    for fork, plan in ((layout.catalog, layout.catalog_plan), (layout.extents, layout.extents_plan)):
        ns = plan.spec.node_size
        base = fork.start * bs
        for n in range(plan.used_nodes):
            out.append((base + n * ns, 14 + 120))  # descriptor and the first record(s)
            out.append((base + (n + 1) * ns - 64, 64))  # record offsets
        out.append((base + ns, ns))  # a whole leaf node
    return out


@settings(max_examples=int(os.environ.get("HFS_FUZZ_EXAMPLES", "150")), deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupted_volumes_are_refused_cleanly(volume, tmp_path: Path, data) -> None:
    base, layout = volume
    buf = bytearray(base)
    targets = _targets(layout)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        start, length = data.draw(st.sampled_from(targets), label="region")
        off = start + data.draw(st.integers(0, length - 1), label="offset")
        value = data.draw(st.sampled_from([0x00, 0xFF, 0x01, 0x80, 0x7F]) | st.integers(0, 255), label="byte")
        buf[off] = value
    p = tmp_path / "fuzzed.img"
    p.write_bytes(buf)
    t0 = time.monotonic()
    try:
        _exercise(p)
    except HfsCorruptError as e:
        assert str(e)  # a message, not an empty error
    assert time.monotonic() - t0 < 3


def _corrupt(base: bytes, tmp_path: Path, changes: dict[int, bytes]) -> Path:
    buf = bytearray(base)
    for off, b in changes.items():
        buf[off : off + len(b)] = b
    p = tmp_path / "bad.img"
    p.write_bytes(buf)
    return p


def test_specific_corruptions(volume, tmp_path: Path) -> None:
    base, lay = volume
    bs = lay.block_size
    cat = lay.catalog.start * bs
    ns = lay.catalog_plan.spec.node_size
    first_leaf = cat + lay.catalog_plan.first_leaf * ns

    def refused(changes: dict[int, bytes], message: str) -> None:
        p = _corrupt(base, tmp_path, changes)
        with pytest.raises(HfsCorruptError, match=message):
            _exercise(p)

    refused({1024: b"XX"}, "no HFS\\+ volume header")
    refused({1026: b"\x00\x05"}, "unknown version 5")
    refused({1024 + 40: struct.pack(">I", 3000)}, "invalid block size")
    refused({1024 + 44: struct.pack(">I", 10**6)}, "volume claims")
    refused({first_leaf: struct.pack(">I", lay.catalog_plan.first_leaf)}, "leaf chain loops|reached twice|differs")
    refused({first_leaf + 8: b"\x02"}, "header/map node with height 1")
    refused({cat + 14: struct.pack(">H", 40)}, "depth 40 is implausible")
    refused({cat + 14 + 2: struct.pack(">I", 10**6)}, "rootNode .* out of range")
    refused({cat + 14 + 18: struct.pack(">H", 3000)}, "node size 3000 is invalid")
    refused({first_leaf + ns - 2: struct.pack(">H", 16)}, "first record offset")
    # a file's extent pointing past the end of the volume
    frag = next(f for f in lay.files if f.path == "frag")
    from atvdisk.fs.hfsplus.records import HFSPlusCatalogFile, HFSPlusCatalogKey

    for key, data, _room in lay.catalog_records():
        if HFSPlusCatalogKey.unpack(key).nodeName.unicode == "frag".encode("utf-16-be"):
            rec = HFSPlusCatalogFile.unpack(data)
            assert rec.fileID == frag.cnid
            break
    raw = bytes(base)
    pos = raw.find(key + data)
    assert pos > 0
    ext0 = pos + len(key) + 88 + 16  # dataFork.extents[0].startBlock
    refused({ext0: struct.pack(">I", lay.total_blocks)}, "outside the .*-block volume")


def test_truncated_image(volume, tmp_path: Path) -> None:
    base, _lay = volume
    p = tmp_path / "short.img"
    p.write_bytes(base[: 2 * MIB])
    with pytest.raises(HfsCorruptError, match="volume claims"):
        HfsVolume.open(p)
    p.write_bytes(base[:1000])
    with pytest.raises(HfsCorruptError, match="too small"):
        HfsVolume.open(p)


def test_not_hfs(tmp_path: Path) -> None:
    p = tmp_path / "zero.img"
    p.write_bytes(bytes(MIB))
    with pytest.raises(HfsCorruptError, match="no HFS\\+ volume header"):
        HfsVolume.open(p)
    with pytest.raises(HfsCorruptError, match="cannot open"):
        HfsVolume.open(tmp_path / "missing.img")
