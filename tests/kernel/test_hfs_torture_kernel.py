"""The HFS+ torture volumes of tests/hfs_cases.py, written by our writer, read by Linux's hfsplus.

Every case of :data:`hfs_cases.CASES` becomes one partition of a GPT disk (partitioned by
``sgdisk``; the volumes are written at the partition offsets by our writer). One boot mounts each
partition with the Debian kernel's own driver, read-write requested, and lists every entry
(type, mode, owner, size, sha256, symlink target); the host compares the listing with the source
tree (:func:`hfs_cases.expected_listing`, names compared in NFC: HFS+ stores NFD, the kernel
composes). Non-journaled volumes must come up read-write with no kernel message, journaled ones
read-only with the kernel's journal message; "not cleanly unmounted" must never appear.

Variants (to stay inside the kernel suite's time budget):

* ``many-files``: :data:`MANY_FILES` files (the case's default is 10,000); the test asserts the
  catalog B-tree is still multi-level (depth read from the volume's B-tree header node here, with
  TN1150's offsets, not with our reader);
* ``large-sparse``: one :data:`LARGE_SIZE`-byte file (the case's default is 1 GiB + 12345) with
  data at its start, middle and end, hashed by the guest, in the volume size of the default case
  (over 1 GiB, sparse on the host), so that the writer still picks 8 KiB catalog nodes;
* ``unicode``/``hfsx-unicode``: without names outside the BMP (Linux's hfsplus converts names one
  UTF-16 unit at a time and cannot open those: a known kernel limitation, the volume is right).
"""

from __future__ import annotations

import struct
import subprocess
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

import hfs_cases as cases
import pytest

from atvdisk.fs.hfsplus.tree import HfsTree
from atvdisk.fs.hfsplus.writer import write_volume
from atvdisk.fs.region import Region

from .harness import GuestResult
from .records import Entry

pytestmark = pytest.mark.kernel

MIB = 1 << 20
SECTOR = 512
MANY_FILES = 2_000  # catalog B-tree of depth 3 (217 4-KiB nodes), like the 10,000 of the default
LARGE_SIZE = 48 * MIB + 12345
# The variants above; every other case as tests/hfs_cases.py defines it.
VARIANTS = {
    "many-files": {"count": MANY_FILES},
    "large-sparse": {"size": LARGE_SIZE},
    "unicode": {"non_bmp": False},
    "hfsx-unicode": {"non_bmp": False},
}
JOURNAL_MESSAGE = (
    "hfsplus: write access to a journaled filesystem is not supported, use the force option at your own risk,"
    " mounting read-only."
)
KIND = {"dir": "d", "file": "f", "symlink": "l"}


@dataclass(frozen=True)
class Volume:
    case: cases.HfsCase
    number: int  # partition number on the disk
    src: Path

    @property
    def name(self) -> str:
        return self.case.name

    @property
    def device(self) -> str:
        return f"/dev/sda{self.number}"


@dataclass(frozen=True)
class TortureDisk:
    path: Path
    volumes: tuple[Volume, ...]
    starts: dict[str, int]  # case name -> byte offset of its partition


def _cases() -> list[cases.HfsCase]:
    out = []
    for case in cases.CASES:
        params = VARIANTS.get(case.name)
        variant = case.with_params(**params) if params else case
        if case.name == "large-sparse":
            variant = replace(variant, region=lambda size, full=case.region_size: full)
        out.append(variant)
    return out


def btree_header(image: Path, offset: int, fork_offset: int) -> dict[str, int]:
    """The header record of a B-tree of the HFS+ volume at ``offset`` (TN1150: the volume header
    is at 1024; a special file's fork data at ``fork_offset`` in it; its first extent's first
    node is the header node: a 14-byte node descriptor, then the BTHeaderRec)."""
    with open(image, "rb") as f:
        f.seek(offset + 1024)
        header = f.read(512)
        block_size = struct.unpack_from(">I", header, 40)[0]
        start_block = struct.unpack_from(">I", header, fork_offset + 16)[0]
        f.seek(offset + start_block * block_size)
        node = f.read(14 + 32)
    depth, _root, leaf_records, _first, _last, node_size, _max_key, total, free = struct.unpack_from(
        ">HIIIIHHII", node, 14
    )
    return {
        "depth": depth,
        "leaf_records": leaf_records,
        "node_size": node_size,
        "total_nodes": total,
        "free_nodes": free,
    }


CATALOG_FORK = 272  # catalogFile in HFSPlusVolumeHeader
EXTENTS_FORK = 192  # extentsFile


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> TortureDisk:
    tmp = tmp_path_factory.mktemp("torture")
    chosen = _cases()
    starts: dict[str, int] = {}
    cursor = MIB
    for case in chosen:
        starts[case.name] = cursor
        cursor += -(-case.region_size // MIB) * MIB
    image = tmp / "torture.img"
    with open(image, "wb") as f:
        f.truncate(cursor + MIB)
    argv = ["sgdisk", "-o"]
    for number, case in enumerate(chosen, start=1):
        first = starts[case.name] // SECTOR
        last = first + case.region_size // SECTOR - 1
        assert case.region_size % SECTOR == 0, case.name
        argv += ["-n", f"{number}:{first}:{last}", "-t", f"{number}:AF00", "-c", f"{number}:{case.name}"]
    subprocess.run([*argv, str(image)], check=True, capture_output=True)
    volumes = []
    for number, case in enumerate(chosen, start=1):
        src = tmp / case.name
        case.populate(src)
        with Region.open(image, starts[case.name], case.region_size) as region:
            write_volume(HfsTree.from_host_dir(src), case.options, region)
        volumes.append(Volume(case, number, src))
    return TortureDisk(image, tuple(volumes), starts)


def _script(volumes: tuple[Volume, ...]) -> str:
    lines = ["set -u"]
    for v in volumes:
        # Read-write requested: a clean non-journaled volume comes up rw, a journaled one ro.
        lines.append(f"guest_mount {v.name} {v.device} hfsplus rw && guest_list {v.name}; guest_umount {v.name}")
    lines.append("echo torture listing done")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def run(module_run_guest, disk: TortureDisk) -> GuestResult:  # type: ignore[no-untyped-def]
    return module_run_guest([disk.path], _script(disk.volumes), timeout=240)


def _volume(disk: TortureDisk, name: str) -> Volume:
    return next(v for v in disk.volumes if v.name == name)


def _expected(v: Volume) -> dict[str, tuple[object, ...]]:
    out = {}
    for path, e in cases.expected_listing(v.src).items():
        size = None if e.kind == "dir" else e.size
        out[path] = (KIND[e.kind], e.mode, size, e.uid, e.gid, e.sha256, e.target)
    return out


def _seen(listing: dict[str, Entry], skip: set[str]) -> dict[str, tuple[object, ...]]:
    out = {}
    for path, e in listing.items():
        if path == "." or path in skip:
            continue
        key = e.key()
        out[unicodedata.normalize("NFC", path)] = key[1:]
    return out


def test_guest_ran_every_case(run: GuestResult, disk: TortureDisk) -> None:
    assert run.status == 0 and "torture listing done" in run.output
    assert [v.name for v in disk.volumes] == [c.name for c in cases.CASES]


@pytest.mark.parametrize("name", [c.name for c in cases.CASES])
def test_kernel_mounts_and_lists_like_the_source(run: GuestResult, disk: TortureDisk, name: str) -> None:
    v = _volume(disk, name)
    mount = run.mount(name)
    assert mount.rc == 0, (mount.stderr, mount.dmesg_text())
    assert mount.fstype == "hfsplus"
    if v.case.options.journaled:
        assert mount.read_only, mount.options
        assert JOURNAL_MESSAGE in mount.dmesg, mount.dmesg_text()
    else:
        assert not mount.read_only, (mount.options, mount.dmesg_text())
        assert not [line for line in mount.dmesg if "hfsplus" in line], mount.dmesg_text()
    listing = run.listing(name)
    assert listing["."].type == "d"
    extra = cases.journal_entries(v.case)
    for special in extra:
        assert listing[special].type == "f", special
    seen = _seen(listing, extra)
    expected = _expected(v)
    missing = sorted(set(expected) - set(seen))
    unexpected = sorted(set(seen) - set(expected))
    differ = {p: (expected[p], seen[p]) for p in sorted(set(expected) & set(seen)) if expected[p] != seen[p]}
    assert (missing, unexpected, differ) == ([], [], {})
    assert run.umount(name).rc == 0


def test_no_volume_was_left_unclean(run: GuestResult) -> None:
    assert "not cleanly unmounted" not in run.dmesg


def test_many_files_variant_still_has_a_multi_level_catalog(run: GuestResult, disk: TortureDisk) -> None:
    v = _volume(disk, "many-files")
    catalog = btree_header(disk.path, disk.starts["many-files"], CATALOG_FORK)
    assert catalog["depth"] >= 3 and catalog["node_size"] == 4096, catalog  # index over index over leaves
    files = [e for e in run.listing("many-files").values() if e.type == "f"]
    assert len(files) == MANY_FILES == v.case.params["count"]


def test_fragmented_file_needs_the_extents_overflow_tree(run: GuestResult, disk: TortureDisk) -> None:
    extents = btree_header(disk.path, disk.starts["fragmented"], EXTENTS_FORK)
    assert extents["leaf_records"] > 0 and extents["depth"] >= 2, extents
    listing = run.listing("fragmented")
    assert listing["fragmented.bin"].size == 2000 * 4096 - 123


def test_large_file_in_a_volume_with_8k_catalog_nodes(run: GuestResult, disk: TortureDisk) -> None:
    v = _volume(disk, "large-sparse")
    assert v.case.region_size > cases.GIB
    assert btree_header(disk.path, disk.starts["large-sparse"], CATALOG_FORK)["node_size"] == 8192
    entry = run.listing("large-sparse")["large.bin"]
    assert entry.size == LARGE_SIZE and entry.sha256 == cases.expected_listing(v.src)["large.bin"].sha256
