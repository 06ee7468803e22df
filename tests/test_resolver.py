from __future__ import annotations

import builtins
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atvdisk.errors import PlanError
from atvdisk.layout.plan import Plan
from atvdisk.layout.resolver import fat32_cluster_count, resolve
from atvdisk.layout.schema import TYPE_GUIDS, FsKind, Role, load_layout, parse_layout
from atvdisk.layout.units import format_parted

SEED_SECTORS = 8_451_072  # the original procedure's CF card: parted prints 4327MB
STOCK_SECTORS = 78_140_160  # Apple's 40 GB disk


@pytest.fixture(scope="module")
def openelec():
    return load_layout("atv1-openelec")


@pytest.fixture(scope="module")
def factory():
    return load_layout("atv1-factory")


def test_seed_disk_matches_the_original_table_without_its_mistakes(openelec):
    plan = resolve(openelec, SEED_SECTORS * 512, 512)
    assert format_parted(plan.disk_bytes) == "4327MB"
    rows = [(p.number, p.name, p.start, p.end, p.sectors) for p in plan.partitions]
    assert rows[:3] == [
        (1, "EFI", 40, 69671, 69632),
        (2, "Recovery", 69672, 888871, 819200),
        (3, "OSBoot", 888872, 2732071, 1843200),
    ]
    media, swap = plan.partitions[3], plan.partitions[4]
    assert media.start == 2732072
    # Swap is exactly 262144 sectors and ends at the last usable sector, before the backup GPT
    # (33 sectors: 32 of entries and the header), and Media ends right before it: no overlap.
    assert swap.sectors == 262144
    assert swap.end == plan.last_usable == SEED_SECTORS - 34
    assert media.end == swap.start - 1
    # Sizes print like the original procedure's parted table.
    assert [format_parted(p.size_bytes) for p in plan.partitions] == ["35.7MB", "419MB", "944MB", "2794MB", "134MB"]
    assert [p.role for p in plan.partitions] == [Role.EFI, Role.ATVRECV, Role.HFSPLUS, Role.LINUX, Role.SWAP]
    assert plan.partitions[1].type_guid == "5265636F-7665-11AA-AA11-00306543ECAC"
    assert [p.atv_device for p in plan.partitions] == [f"/dev/sda{i}" for i in range(1, 6)]
    assert media.fs.kind is FsKind.EXT4 and media.fs.label == "Linux" and media.fs.block_size == 4096
    assert not plan.partitions[2].fs.journal  # OSBoot not journaled: OpenELEC updates must write it
    assert plan.partitions[0].fs.cluster_size == 512
    assert fat32_cluster_count(plan.partitions[0].size_bytes, 512) >= 65525


def test_stock_40gb_disk(factory):
    plan = resolve(factory, STOCK_SECTORS * 512, 512)
    starts = [p.start for p in plan.partitions]
    sizes = [p.sectors for p in plan.partitions]
    assert starts == [40, 69672, 888872, 2732072]
    assert sizes[:3] == [69632, 819200, 1843200]
    media = plan.partitions[3]
    assert media.end == plan.last_usable == STOCK_SECTORS - 34
    assert media.fs.kind is FsKind.HFSPLUS and media.fs.journal
    assert plan.partitions[1].fs.journal is False and plan.partitions[2].fs.journal is True


@pytest.mark.parametrize("sectors", [SEED_SECTORS, STOCK_SECTORS, 2**32, 2**40 // 512])
def test_no_overlap_and_inside_usable_area(openelec, sectors):
    plan = resolve(openelec, sectors * 512, 512)
    _assert_sane(plan)


def test_huge_disk_warns(openelec):
    plan = resolve(openelec, 4 * 10**12, 512)
    assert any("larger than this layout expects" in w for w in plan.warnings)
    assert plan.partitions[-1].end == plan.last_usable
    assert not resolve(openelec, SEED_SECTORS * 512, 512).warnings


def test_tiny_disk_is_refused_with_the_shortfall(openelec):
    with pytest.raises(PlanError, match=r"disk too small: atv1-openelec needs at least 2000000000 bytes .* short by 1000000000 bytes"):
        resolve(openelec, 1_000_000_000, 512)
    with pytest.raises(PlanError, match="disk too small"):
        resolve(openelec, 16 * 512, 512)  # not even room for the two GPTs


def test_smallest_disk_that_fits(openelec):
    # min_size is 2 GB; at exactly 2 GB the rest partition still gets its 256 MiB minimum.
    plan = resolve(openelec, 2_000_000_000 - 2_000_000_000 % 512 + 512, 512)
    _assert_sane(plan)
    with pytest.raises(PlanError, match="disk.min_size"):
        resolve(openelec, 2_000_000_000 - 512, 512)


def test_4096_byte_sectors(openelec):
    # Sector 40 of 512 bytes is sector 5 of 4096 bytes: inside the primary GPT's entry array,
    # which takes sectors 2-5 on such a disk. The layout cannot be used there, and says why.
    with pytest.raises(PlanError, match=r"primary GPT entries \(sectors 2-5\) overlaps partition 1 \(EFI\)"):
        resolve(openelec, SEED_SECTORS * 512, 4096)
    # A variant that starts at 1 MiB works, in 4096-byte sectors.
    layout = parse_layout(
        """
        [[partition]]
        name = "EFI"
        type = "efi"
        start = "1MiB"
        size = "69632s"
        fs = { kind = "fat32" }
        [[partition]]
        name = "Media"
        type = "linux"
        size = "rest"
        fs = { kind = "ext4" }
        [[partition]]
        name = "Swap"
        type = "swap"
        size = "128MiB"
        fs = { kind = "swap" }
        """
    )
    plan = resolve(layout, 4 * 2**30, 4096)
    _assert_sane(plan)
    assert plan.first_usable == 6
    assert plan.last_usable == 4 * 2**30 // 4096 - 6
    assert plan.partitions[0].start == 256 and plan.partitions[0].sectors == 8704
    assert plan.partitions[2].sectors == 32768 and plan.partitions[2].end == plan.last_usable


def test_alignment_of_implicit_starts():
    layout = parse_layout(
        """
        [disk]
        align = "1MiB"
        [[partition]]
        name = "A"
        type = "linux"
        size = "100s"
        [[partition]]
        name = "B"
        type = "linux"
        size = "rest"
        [[partition]]
        name = "C"
        type = "swap"
        size = "10MiB"
        """
    )
    plan = resolve(layout, 2**30, 512)
    _assert_sane(plan)
    assert [p.start % 2048 for p in plan.partitions] == [0, 0, 0]
    assert plan.partitions[2].end <= plan.last_usable


def test_seed_makes_identifiers_deterministic(openelec):
    a = resolve(openelec, SEED_SECTORS * 512, 512, seed="s")
    b = resolve(openelec, SEED_SECTORS * 512, 512, seed="s")
    assert a == b
    guids = [a.disk_guid] + [p.guid for p in a.partitions]
    assert len(set(guids)) == len(guids) and all(guids)
    assert a.partitions[0].fs.uuid and len(a.partitions[0].fs.uuid) == 9  # FAT volume id XXXX-XXXX
    assert len(a.partitions[1].fs.uuid) == 16  # HFS+ 64-bit volume id
    assert resolve(openelec, SEED_SECTORS * 512, 512, seed="t").disk_guid != a.disk_guid


def test_bundled_layouts_carry_no_seed(openelec, factory):
    """A seed in a bundled layout would give every disk built from it the same identifiers."""
    for layout in (openelec, factory):
        assert layout.disk.seed is None
        plan = resolve(layout, SEED_SECTORS * 512, 512)
        assert plan.disk_guid is None and all(p.guid is None for p in plan.partitions)


def test_a_given_seed_overrides_the_layouts():
    layout = parse_layout('[disk]\nseed = "L"\n[[partition]]\nname = "A"\ntype = "linux"\nsize = "rest"\nfs = { kind = "ext4" }\n')
    assert resolve(layout, 2**30, 512).seed == "L"
    assert resolve(layout, 2**30, 512, seed="cli").seed == "cli"
    assert resolve(layout, 2**30, 512, seed="cli").disk_guid != resolve(layout, 2**30, 512).disk_guid


def test_no_seed_leaves_identifiers_to_the_build():
    layout = parse_layout('[[partition]]\nname = "A"\ntype = "linux"\nsize = "rest"\nfs = { kind = "ext4" }\n')
    plan = resolve(layout, 2**30, 512)
    assert plan.disk_guid is None and plan.partitions[0].guid is None and plan.partitions[0].fs.uuid is None
    seeded = resolve(layout, 2**30, 512, seed="x")
    assert seeded.disk_guid and seeded.partitions[0].fs.uuid


def test_json_round_trip(openelec, factory):
    for layout in (openelec, factory):
        plan = resolve(layout, STOCK_SECTORS * 512, 512)
        text = plan.to_json()
        data = json.loads(text)
        assert data["format"] == "atvdisk-plan/1"
        assert Plan.from_json(text) == plan
        p1 = data["partitions"][0]
        assert p1["start"] == 40 and p1["end"] == 69671 and p1["size_bytes"] == 69632 * 512
        assert p1["type_guid"] == TYPE_GUIDS[Role.EFI] and p1["role"] == "efi"
        assert p1["fs"]["kind"] == "fat32" and p1["size_human"] == "35.7MB"


def test_resolver_does_no_io(openelec, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the resolver must not do I/O")

    monkeypatch.setattr(builtins, "open", forbidden)
    monkeypatch.setattr(os, "open", forbidden)
    monkeypatch.setattr(os, "stat", forbidden)
    resolve(openelec, SEED_SECTORS * 512, 512)


def test_disk_size_must_be_whole_sectors(openelec):
    with pytest.raises(PlanError, match="not a positive multiple"):
        resolve(openelec, SEED_SECTORS * 512 + 100, 512)


@settings(max_examples=200, deadline=None)
@given(sectors=st.integers(min_value=3_906_250, max_value=2**36))
def test_any_large_enough_disk_resolves_sanely(openelec, sectors):
    _assert_sane(resolve(openelec, sectors * 512, 512))


def _assert_sane(plan: Plan) -> None:
    regions = [(r.start, r.end) for r in plan.reserved] + [(p.start, p.end) for p in plan.partitions]
    regions.sort()
    for (a0, a1), (b0, b1) in zip(regions, regions[1:], strict=False):
        assert a1 < b0, f"{(a0, a1)} overlaps {(b0, b1)}"
    for p in plan.partitions:
        assert plan.first_usable <= p.start <= p.end <= plan.last_usable
    assert plan.last_usable == plan.total_sectors - 34 * 512 // plan.sector_size if plan.sector_size == 512 else True
