"""The tree description (overlay semantics) and the layout step: refusals before any write,
names, CNIDs, counts and the allocation map."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from hfs_cases import FAIL_CASES, FailCase, fill_case_variants, message_matches

from atvdisk.fs.hfsplus.errors import (
    HfsDuplicateNameError,
    HfsNameError,
    HfsSpaceError,
    HfsTreeError,
    HfsUnsupportedError,
)
from atvdisk.fs.hfsplus.layout import VolumeOptions, plan_volume
from atvdisk.fs.hfsplus.records import (
    HFSPlusCatalogFile,
    HFSPlusCatalogFolder,
    HFSPlusCatalogKey,
)
from atvdisk.fs.hfsplus.sizing import (
    btree_clump_size,
    default_catalog_node_size,
    default_journal_size,
)
from atvdisk.fs.hfsplus.tree import (
    BytesSource,
    ExternalSource,
    HfsTree,
    Kind,
    PathSource,
)

MIB = 1 << 20
GIB = 1 << 30
OPTS = VolumeOptions(create_time=1_700_000_000, volume_id=1)


def _paths(tree: HfsTree) -> dict[str, Kind]:
    return {e.path: e.kind for e in tree.entries() if e.path}


def test_overlay_semantics() -> None:
    t = HfsTree()
    t.add_file("a/b/c.txt", BytesSource(b"1"))
    assert _paths(t) == {"a": Kind.DIR, "a/b": Kind.DIR, "a/b/c.txt": Kind.FILE}
    assert t.lookup("a").meta.mode == 0o755  # implicit parent
    t.add_dir("a", mode=0o700, uid=5, gid=6, mtime=123)  # update: children kept
    assert t.lookup("a").meta == t.lookup("a").meta.__class__(0o700, 5, 6, 123)
    assert "a/b/c.txt" in _paths(t)
    t.add_file("a/b/c.txt", BytesSource(b"22"), mode=0o600)  # file over file: replaced
    assert t.lookup("a/b/c.txt").size == 2 and t.lookup("a/b/c.txt").meta.mode == 0o600
    t.add_symlink("a/b", "elsewhere")  # symlink over dir: the whole subtree goes
    assert _paths(t) == {"a": Kind.DIR, "a/b": Kind.SYMLINK}
    t.add_dir("a/b")  # dir over symlink: an empty directory
    assert _paths(t) == {"a": Kind.DIR, "a/b": Kind.DIR}
    t.add_file("/./a//b/./d", BytesSource(b""))  # redundant separators are fine
    assert "a/b/d" in _paths(t)
    with pytest.raises(HfsTreeError, match="'a/b/d' is a file, not a directory"):
        t.add_file("a/b/d/e", BytesSource(b""))
    with pytest.raises(HfsTreeError, match=r"'\.\.'"):
        t.add_dir("a/../etc")
    t.remove("a/b")
    assert _paths(t) == {"a": Kind.DIR}
    with pytest.raises(HfsTreeError, match="no such entry"):
        t.remove("a/zz")
    t.remove("a/zz", missing_ok=True)
    with pytest.raises(HfsTreeError):
        t.remove("/")


def test_same_stored_name_replaces() -> None:
    """NFC and NFD spellings are one HFS+ name: the later one wins (and its spelling)."""
    t = HfsTree()
    nfd = unicodedata.normalize("NFD", "café")
    t.add_file("café", BytesSource(b"nfc"))
    t.add_file(nfd, BytesSource(b"nfd!"))
    entries = [e for e in t.entries() if e.path]
    assert len(entries) == 1 and entries[0].path == nfd and entries[0].size == 4


def test_tree_refuses_bad_input() -> None:
    t = HfsTree()
    with pytest.raises(HfsNameError, match="UTF-8"):
        t.add_file("bad\udcff", BytesSource(b""))
    with pytest.raises(HfsNameError, match="too long.*256"):
        t.add_dir("x" * 256)
    with pytest.raises(HfsNameError, match="not valid UTF-8"):
        t.add_symlink("l", "bad\udcff")
    with pytest.raises(HfsNameError, match="NUL"):
        t.add_symlink("l", "a\0b")
    with pytest.raises(HfsTreeError, match="uid"):
        t.add_dir("d", uid=-1)
    with pytest.raises(HfsTreeError, match="mode"):
        t.add_dir("d", mode="755")  # type: ignore[arg-type]
    with pytest.raises(HfsTreeError, match="root must be a directory"):
        t.add_file("/", BytesSource(b""))
    t.add_file("ok", BytesSource(b""))
    assert _paths(t) == {"ok": Kind.FILE}


def test_host_dir_walk(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"abc")
    (tmp_path / "hard").write_bytes(b"same")
    (tmp_path / "hard2").hardlink_to(tmp_path / "hard")  # independent copies
    (tmp_path / "s").symlink_to("d/f")
    t = HfsTree.from_host_dir(tmp_path, owner=(7, 8))
    entries = {e.path: e for e in t.entries()}
    assert entries["d/f"].source == PathSource(str(tmp_path / "d" / "f"), 3)
    assert entries["hard"].kind is entries["hard2"].kind is Kind.FILE
    assert entries["s"].target == "d/f"
    assert all((e.meta.uid, e.meta.gid) == (7, 8) for e in entries.values())


@pytest.mark.parametrize("case", FAIL_CASES, ids=lambda c: c.name)
def test_must_fail(case: FailCase, tmp_path: Path) -> None:
    src = tmp_path / "src"
    case.populate(src)
    with pytest.raises(case.error) as info:
        tree = HfsTree.from_host_dir(src)
        assert not case.at_tree, "the tree should have refused this source"
        plan_volume(tree, case.options, case.region_size)
    assert message_matches(case, str(info.value)), str(info.value)


def test_too_small_says_by_how_much(tmp_path: Path) -> None:
    t = HfsTree()
    t.add_file("big", ExternalSource(10 * MIB))
    with pytest.raises(HfsSpaceError) as info:
        plan_volume(t, OPTS, 8 * MIB)
    short = info.value.shortfall
    assert short > 2 * MIB
    # the size it asks for is enough, and a block less is not
    need = 8 * MIB + short
    plan_volume(t, OPTS, need)
    with pytest.raises(HfsSpaceError):
        plan_volume(t, OPTS, need - 4096)


def test_duplicate_names_name_both() -> None:
    t = HfsTree()
    t.add_file("dir/Makefile", BytesSource(b""))
    t.add_file("dir/makefile", BytesSource(b""))
    with pytest.raises(HfsDuplicateNameError) as info:
        plan_volume(t, OPTS, 8 * MIB)
    assert {info.value.first, info.value.second} == {"Makefile", "makefile"}
    assert "dir" in str(info.value) and "--case-sensitive" in (info.value.hint or "")
    plan_volume(t, VolumeOptions(case_sensitive=True, create_time=1, volume_id=1), 8 * MIB)


def test_case_variants_hfsx_only(tmp_path: Path) -> None:
    fill_case_variants(tmp_path)
    tree = HfsTree.from_host_dir(tmp_path)
    with pytest.raises(HfsDuplicateNameError):
        plan_volume(tree, OPTS, 16 * MIB)
    plan_volume(tree, VolumeOptions(case_sensitive=True, create_time=1, volume_id=1), 16 * MIB)


def test_ignorable_only_name() -> None:
    t = HfsTree()
    t.add_file("\u200d", BytesSource(b"x"))
    with pytest.raises(HfsNameError, match="only of characters HFS\\+ ignores"):
        plan_volume(t, OPTS, 8 * MIB)
    plan_volume(t, VolumeOptions(case_sensitive=True, create_time=1, volume_id=1), 8 * MIB)


def test_journal_names_are_reserved() -> None:
    t = HfsTree()
    t.add_file(".journal", BytesSource(b""))
    plan_volume(t, OPTS, 8 * MIB)  # fine without a journal
    with pytest.raises(HfsNameError, match="reserved for the journal"):
        plan_volume(t, VolumeOptions(journaled=True, create_time=1, volume_id=1), 8 * MIB)


@pytest.mark.parametrize(
    "kw, size, message",
    [
        (dict(block_size=3000), 8 * MIB, "invalid block size"),
        (dict(block_size=256), 8 * MIB, "invalid block size"),
        (dict(), 8 * MIB + 100, "not a multiple of 512"),
        (dict(catalog_node_size=2048), 8 * MIB, "catalog B-tree node size"),
        (dict(journaled=True, journal_size=4096), 8 * MIB, "below the 512 KiB"),
        (dict(block_size=512), 4 << 40, "more than 2\\^32 blocks"),
    ],
)
def test_bad_options(kw: dict, size: int, message: str) -> None:
    with pytest.raises(HfsUnsupportedError, match=message):
        plan_volume(HfsTree(), VolumeOptions(**kw), size)


def test_layout_facts() -> None:
    t = HfsTree()
    t.add_dir("d", uid=3, gid=4, mtime=1_000_000_000)
    t.add_file("d/f", BytesSource(b"x" * 5000), mode=0o640, mtime=1_100_000_000)
    t.add_symlink("l", "d/f")
    lay = plan_volume(t, OPTS, 32 * MIB)
    vh = lay.header
    assert (vh.fileCount, vh.folderCount, vh.nextCatalogID) == (2, 1, 19)
    assert vh.totalBlocks == 8192 and vh.blockSize == 4096
    assert vh.freeBlocks == vh.totalBlocks - sum(n for _, n in lay.used_extents)
    assert lay.used_extents[0][0] == 0 and lay.used_extents[-1] == (8191, 1) or (
        lay.used_extents[-1][0] + lay.used_extents[-1][1] == 8192
    )
    assert vh.encodingsBitmap == 1
    # file record exactly as the dataclass packs it, with the expected fields
    recs = {HFSPlusCatalogKey.unpack(k).nodeName.unicode.decode("utf-16-be"): d for k, d, _r in lay.catalog_records()}
    f = HFSPlusCatalogFile.unpack(recs["f"])
    assert f.pack() == recs["f"]
    assert f.permissions.fileMode == 0o100640 and (f.permissions.ownerID, f.permissions.groupID) == (0, 0)
    assert f.dataFork.logicalSize == 5000 and f.dataFork.totalBlocks == 2
    assert f.contentModDate == 1_100_000_000 + 2082844800
    link = HFSPlusCatalogFile.unpack(recs["l"])
    assert link.userInfo.fileType == int.from_bytes(b"slnk", "big")
    d = HFSPlusCatalogFolder.unpack(recs["d"])
    assert (d.valence, d.permissions.ownerID, d.permissions.groupID) == (1, 3, 4)
    # CNIDs in tree order from 16
    assert sorted(p.cnid for p in lay.files) == [17, 18]


def test_newfs_defaults() -> None:
    assert default_catalog_node_size(4096, 512 * MIB) == 4096
    assert default_catalog_node_size(4096, 2 * GIB) == 8192
    assert default_catalog_node_size(2048, 2 * GIB) == 4096
    assert default_journal_size(64 * MIB, 4096) == 512 * 1024
    assert default_journal_size(40 * GIB, 4096) == 8 * MIB
    assert default_journal_size(250 * GIB, 4096) == 24 * MIB
    assert btree_clump_size(4096, 4096, 64 * MIB, 4) == 512 * 1024  # 0.8 %
    assert btree_clump_size(4096, 8192, 40 * GIB, 4) == 49 * MIB  # the 32 GB row
    assert btree_clump_size(4096, 4096, 40 * GIB, 3) == 6 * MIB


def test_layout_is_pure(tmp_path: Path) -> None:
    """plan_volume reads nothing: a PathSource whose file vanished still lays out."""
    p = tmp_path / "gone"
    p.write_bytes(b"12345")
    t = HfsTree()
    t.add_file("f", PathSource.of(p))
    p.unlink()
    lay = plan_volume(t, OPTS, 8 * MIB)
    assert lay.files[0].size == 5
