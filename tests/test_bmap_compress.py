"""`build --bmap` judged by Debian's bmaptool (it must accept the file, check every range's
sha256 while copying, and the copy must verify), and `build --compress` judged by gunzip/unxz.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from test_write import SMALL_LAYOUT, atvdisk, same_bytes, snapshot, structures

root = pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root")



@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("layout") / "small.toml"
    p.write_text(SMALL_LAYOUT)
    return p


@pytest.fixture(scope="module")
def with_bmap(tmp_path_factory, layout):
    tmp = tmp_path_factory.mktemp("bmap")
    img = tmp / "small.img"
    r = atvdisk("build", img, "--layout", layout, "--size", "160M", "--seed", "bmap", "--bmap")
    assert "small.img.bmap" in r.stderr
    return img, tmp / "small.img.bmap"


def test_bmaptool_accepts_the_bmap_and_the_copy_verifies(with_bmap, tmp_path):
    img, bmap = with_bmap
    text = bmap.read_text()
    assert '<bmap version="2.0">' in text and "<ChecksumType> sha256 </ChecksumType>" in text
    out = tmp_path / "copy.img"
    r = subprocess.run(["bmaptool", "copy", "--bmap", bmap, img, out], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert atvdisk("verify", out).returncode == 0
    assert same_bytes(img, out)
    # The bmap maps more than the image's data: what the filesystems need as zeros too.
    mapped = int(re.search(r"<MappedBlocksCount> (\d+) </MappedBlocksCount>", text).group(1)) * 4096
    allocated = os.stat(img).st_blocks * 512
    assert mapped > allocated


def test_bmaptool_refuses_a_bmap_whose_checksums_lie(with_bmap, tmp_path):
    img, bmap = with_bmap
    text = bmap.read_text()
    m = re.search(r'chksum="([0-9a-f]{64})"', text)
    bad = tmp_path / "bad.bmap"
    bad.write_text(text.replace(m.group(1), m.group(1)[::-1], 1))
    r = subprocess.run(["bmaptool", "copy", "--bmap", bad, img, tmp_path / "x.img"], capture_output=True, text=True)
    assert r.returncode != 0  # the file's own checksum no longer matches


@pytest.mark.root
@root
def test_bmaptool_copy_onto_a_used_disk(with_bmap, tmp_path):
    """bmaptool writes only mapped blocks: on a card full of stale bytes, what the filesystems
    rely on must still read as in the image, because the bmap maps it."""
    img, bmap = with_bmap
    backing = tmp_path / "card.img"
    size = os.path.getsize(img)
    with open(backing, "wb") as f:
        pattern = bytes([0x5A]) * (1 << 20)
        for _ in range(size >> 20):
            f.write(pattern)
    dev = subprocess.run(["losetup", "--find", "--show", backing], capture_output=True, text=True, check=True).stdout.strip()
    try:
        r = subprocess.run(["bmaptool", "copy", "--bmap", bmap, img, dev], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        snapshot(dev)  # flushed
        with open(img, "rb") as a, open(dev, "rb") as b:
            for pos, n in structures(img):
                assert os.pread(a.fileno(), n, pos) == os.pread(b.fileno(), n, pos), f"bytes {pos}+{n}"
        assert atvdisk("verify", dev).returncode == 0
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


@pytest.mark.parametrize("kind,tool", [("gz", ["gzip", "-dc"]), ("xz", ["xz", "-dc"])])
def test_compressed_build_decompresses_to_the_raw_build(layout, tmp_path, kind, tool):
    raw = tmp_path / "raw.img"
    atvdisk("build", raw, "--layout", layout, "--size", "160M", "--seed", "c")
    packed = tmp_path / f"small.img.{kind}"
    atvdisk("build", tmp_path / "small.img", "--layout", layout, "--size", "160M", "--seed", "c", "--compress", kind)
    assert packed.exists() and not (tmp_path / "small.img").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["raw.img", packed.name])  # no leftovers
    out = tmp_path / "unpacked.img"
    with open(out, "wb") as f:
        subprocess.run([*tool, packed], stdout=f, check=True)
    assert same_bytes(raw, out)
    assert packed.stat().st_size < raw.stat().st_blocks * 512  # compressed, holes and all
