"""Disks at the sizes users have, as sparse images: Apple's stock 40 GB disk, a 160 GB one and a
3 TB one (beyond the MBR's 2 TiB), with the protective and with the hybrid MBR.

Judged by tools we did not write: sfdisk (GPT, and with --label-nested the MBR records), sgdisk -v,
gdisk (which MBR kind it sees), fdisk in DOS-compatible mode (whether each record's CHS address
agrees with its LBA address) and file(1) (the CHS bytes as libmagic decodes them). Every image is
sparse: a table costs a few sectors, a whole build a few dozen MB.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from atvdisk.fs.partition import write_partition_table
from atvdisk.layout.plan import PlannedFs
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import FsKind, load_layout
from atvdisk.verify import verify

STOCK_40GB = 78_140_160  # Apple's stock disk (parted prints 40.0GB)
DISK_160GB = 312_581_808  # a common 160 GB laptop disk
DISK_1500GB = 2_930_277_168  # 1.36 TiB: partitions end between 2^31 and 2^32 sectors, still in an MBR's reach
DISK_3TB = 5_860_533_168  # 2.73 TiB: beyond what an MBR can address (2^32 sectors)
MBR_LIMIT = 2**32
MAX_CHS = (1023, 254, 63)  # what a CHS field holds for a sector beyond cylinder 1023

SIZES = {"40GB": STOCK_40GB, "160GB": DISK_160GB, "1.5TB": DISK_1500GB, "3TB": DISK_3TB}


def run(*args: object, check: bool = True, stdin: str | None = None) -> str:
    r = subprocess.run(list(map(str, args)), capture_output=True, text=True, input=stdin, check=False)
    if check and r.returncode:
        raise AssertionError(f"{args} failed ({r.returncode}): {r.stdout}{r.stderr}")
    return r.stdout


def layout_with(name: str, hybrid: bool):
    layout = load_layout(name)
    return dataclasses.replace(layout, disk=dataclasses.replace(layout.disk, hybrid_mbr=hybrid))


def table_image(tmp_path: Path, layout_name: str, sectors: int, hybrid: bool):
    plan = resolve(layout_with(layout_name, hybrid), sectors * 512, 512)
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(sectors * 512)
    write_partition_table(str(img), plan)
    return img, plan


def mbr_records(img: Path) -> list[tuple[int, int, str, bool]]:
    """The MBR's records as sfdisk reads them: (start, end, type, bootable)."""
    data = json.loads(run("sfdisk", "--label-nested", "dos", "--json", img))["partitiontable"]
    assert data["label"] == "dos"
    return [(p["start"], p["start"] + p["size"] - 1, p["type"], bool(p.get("bootable"))) for p in data["partitions"]]


def file_chs(img: Path) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """(start CHS, end CHS) of each MBR record as file(1) decodes the bytes."""
    out = run("file", "-b", img)
    found = re.findall(r"start-CHS \((0x[0-9a-f]+),(\d+),(\d+)\), end-CHS \((0x[0-9a-f]+),(\d+),(\d+)\)", out)
    return [((int(a, 16), int(b), int(c)), (int(d, 16), int(e), int(f))) for a, b, c, d, e, f in found]


def chs(lba: int) -> tuple[int, int, int]:
    """The CHS address of ``lba`` in the 255-head, 63-sector translation every BIOS-era tool uses."""
    cylinder, rest = divmod(lba, 255 * 63)
    return MAX_CHS if cylinder > 1023 else (cylinder, rest // 63, rest % 63 + 1)


def fdisk_chs_complaints(img: Path) -> list[str]:
    """fdisk's verification in DOS-compatible mode, less the cylinder-boundary remarks (a GPT's
    partitions are aligned to sectors, not to cylinders: every modern tool's are)."""
    out = run("fdisk", "-c=dos", "-t", "dos", img, stdin="v\nq\n")
    lines = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("Partition ")]
    return [ln for ln in lines if "does not end on cylinder boundary" not in ln]


def gdisk_sees(img: Path) -> str:
    out = run("gdisk", "-l", img)
    return re.search(r"^\s*MBR: (\S+)", out, re.M).group(1)


def expected_hybrid(plan) -> list[tuple[int, int, str, bool]]:
    """Apple's (and gptsync's) hybrid MBR: 0xEE over the GPT and the EFI partition, then the next
    partitions an MBR can address, with their MBR types; nothing marked bootable."""
    mbr_type = {"atvrecv": "af", "hfsplus": "af", "linux": "83", "swap": "82"}
    efi = plan.partitions[0]
    assert efi.role == "efi"
    records = [(1, efi.end, "ee", False)]
    for p in plan.partitions[1:]:
        if len(records) < 4 and p.end < MBR_LIMIT:
            records.append((p.start, p.end, mbr_type[p.role], False))
    return records


CASES = [
    ("atv1-openelec", "40GB"), ("atv1-openelec", "160GB"), ("atv1-openelec", "1.5TB"), ("atv1-openelec", "3TB"),
    ("atv1-factory", "40GB"), ("atv1-factory", "3TB"),
]


@pytest.mark.parametrize("hybrid", [False, True], ids=["protective", "hybrid"])
@pytest.mark.parametrize("layout_name, size", CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_real_size_partition_table(tmp_path, layout_name, size, hybrid):
    sectors = SIZES[size]
    img, plan = table_image(tmp_path, layout_name, sectors, hybrid)
    assert os.stat(img).st_blocks * 512 < 2**20  # sparse: the table only

    # The GPT: both copies valid, the backup at the very end, every partition as planned.
    assert "No problems found" in run("sgdisk", "-v", img)
    gpt = json.loads(run("sfdisk", "--json", img))["partitiontable"]
    assert (gpt["label"], gpt["firstlba"], gpt["lastlba"]) == ("gpt", 34, sectors - 34)
    assert [(p["start"], p["start"] + p["size"] - 1, p["type"], p["name"]) for p in gpt["partitions"]] == [
        (p.start, p.end, p.type_guid, p.name) for p in plan.partitions
    ]
    assert plan.partitions[-1].end == sectors - 34  # the last partition reaches the backup GPT

    # The MBR, as sfdisk, gdisk, fdisk and file(1) read it.
    records = mbr_records(img)
    if hybrid:
        assert gdisk_sees(img) == "hybrid"
        assert records == expected_hybrid(plan)
        if sectors > MBR_LIMIT:  # Media (and Swap) end beyond 2^32 sectors: left out, not truncated
            assert all(end < MBR_LIMIT for _, end, _, _ in records) and len(records) == 3
        else:
            assert len(records) == 4 and records[3][1] > 1023 * 255 * 63  # ends past cylinder 1023
    else:
        assert gdisk_sees(img) == "protective"
        # UEFI: one 0xEE record from sector 1 over the whole disk, capped at 2^32 - 1 sectors.
        assert records == [(1, min(sectors - 1, MBR_LIMIT - 1), "ee", False)]
    if hybrid:
        assert file_chs(img) == [(chs(start), chs(end)) for start, end, _, _ in records]
    else:  # UEFI: starting CHS 0x000200, ending CHS 0xFFFFFF when the last sector is beyond CHS
        assert file_chs(img) == [((0, 0, 2), (1023, 255, 63))]
    assert fdisk_chs_complaints(img) == []

    # atvdisk's own verification reads the same tables, and tells the two MBR kinds apart.
    table_only = dataclasses.replace(plan, partitions=tuple(dataclasses.replace(p, fs=PlannedFs(FsKind.NONE, None, None)) for p in plan.partitions))
    report = verify(str(img), table_only)
    assert report.mismatches == [] and report.checked == [f"GPT (both copies) and {'hybrid' if hybrid else 'protective'} MBR"]
    wrong = verify(str(img), dataclasses.replace(table_only, hybrid_mbr=not hybrid)).mismatches
    assert len(wrong) == 1 and wrong[0].startswith("MBR records")


def test_chs_addresses_at_the_1023_cylinder_boundary(tmp_path):
    """Partitions that start and end on both sides of the last addressable cylinder: fdisk checks
    each CHS address against its LBA; beyond cylinder 1023 the address is the maximum."""
    from atvdisk.layout.schema import parse_layout

    cyl = 255 * 63
    layout = parse_layout(
        f"""
        [disk]
        hybrid_mbr = true
        [[partition]]
        name = "EFI"
        type = "efi"
        start = "40s"
        size = "{1023 * cyl - 40}s"
        [[partition]]
        name = "Last"
        type = "linux"
        size = "{cyl}s"
        [[partition]]
        name = "Beyond"
        type = "hfsplus"
        size = "{cyl}s"
        [[partition]]
        name = "Rest"
        type = "swap"
        size = "rest"
        """
    )
    sectors = 1100 * cyl
    plan = resolve(layout, sectors * 512, 512)
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(sectors * 512)
    write_partition_table(str(img), plan)
    records = mbr_records(img)
    assert records == expected_hybrid(plan)
    # Last is exactly cylinder 1023; Beyond is cylinder 1024, Rest from 1025 on.
    assert file_chs(img) == [
        ((0, 0, 2), (1022, 254, 63)),
        ((1023, 0, 1), (1023, 254, 63)),
        (MAX_CHS, MAX_CHS),
        (MAX_CHS, MAX_CHS),
    ]
    assert fdisk_chs_complaints(img) == []


def atvdisk(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1300000000"}
    return subprocess.run([sys.executable, "-m", "atvdisk", *map(str, args)], capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_stock_40gb_disk_builds_and_verifies(tmp_path):
    """The whole build at Apple's stock size, judged by sfdisk, blkid and an independent verify."""
    img = tmp_path / "atv.img"
    r = atvdisk("build", img, "--size", f"{STOCK_40GB}s", "--example", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert os.path.getsize(img) == STOCK_40GB * 512
    assert os.stat(img).st_blocks * 512 < 200 * 2**20  # sparse
    plan = resolve(load_layout("atv1-openelec"), STOCK_40GB * 512, 512)
    gpt = json.loads(run("sfdisk", "--json", img))["partitiontable"]
    assert [(p["start"], p["size"]) for p in gpt["partitions"]] == [(p.start, p.sectors) for p in plan.partitions]
    media = plan.partition("Media")
    assert media.end == STOCK_40GB - 34 - 262144 and media.size_bytes > 38 * 10**9
    assert summary["plan"]["partitions"][3]["end"] == media.end
    # The ext4 Media partition spans the rest of the disk: blkid finds it at its real offset.
    out = run("blkid", "-p", "-O", media.offset, "-o", "export", img)
    assert "TYPE=ext4" in out and "LABEL=Linux" in out
    check = atvdisk("verify", img, "--example")
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
def test_3tb_disk_with_hybrid_mbr_builds_and_verifies(tmp_path):
    """Beyond 2 TiB, with the hybrid MBR: the build, its own verification, and the tables as
    sfdisk and gdisk read them."""
    text = (Path(load_layout("atv1-openelec").source)).read_text()
    assert "\nhybrid_mbr = false" in text
    layout_file = tmp_path / "hybrid.toml"
    layout_file.write_text(text.replace("\nhybrid_mbr = false", "\nhybrid_mbr = true"))
    img = tmp_path / "atv.img"
    r = atvdisk("build", img, "--layout", layout_file, "--size", f"{DISK_3TB}s", "--example", "--json")
    assert r.returncode == 0, r.stderr
    assert "larger than this layout expects" in r.stderr  # 3 TB > warn_above = 2TB
    assert os.stat(img).st_blocks * 512 < 400 * 2**20
    plan = resolve(layout_with("atv1-openelec", True), DISK_3TB * 512, 512)
    assert "No problems found" in run("sgdisk", "-v", img)
    assert gdisk_sees(img) == "hybrid"
    assert mbr_records(img) == expected_hybrid(plan)
    assert fdisk_chs_complaints(img) == []
