"""The partition table: our GPT/MBR records, and what libparted writes for a plan, judged by
sfdisk, sgdisk and parted."""

from __future__ import annotations

import json
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atvdisk.fs.gpt import GptEntry, GptError, GptHeader, Mbr, MbrEntry, read_table
from atvdisk.fs.partition import write_partition_table
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import load_layout, parse_layout
from atvdisk.layout.units import format_parted

SEED_SECTORS = 8_451_072

guids = st.uuids().map(lambda u: str(u).upper())


@given(guids, guids, st.integers(0, 2**63), st.integers(0, 2**63), st.integers(0, 2**64 - 1), st.text(max_size=36).filter(lambda s: "\0" not in s and len(s.encode("utf-16-le")) <= 72))
def test_gpt_entry_round_trip(t, u, first, last, attrs, name):
    e = GptEntry(t, u, first, last, attrs, name)
    packed = e.pack()
    assert len(packed) == 128
    assert GptEntry.unpack(packed) == e


@given(st.integers(1, 2**40), st.integers(1, 2**40), guids, st.integers(0, 2**32 - 1))
def test_gpt_header_round_trip(my, alt, disk_guid, crc):
    h = GptHeader(my, alt, 34, 1000, disk_guid, 2, 128, 128, crc).with_crc()
    again = GptHeader.unpack(h.pack().ljust(512, b"\0"), "test")
    assert again == h


def test_gpt_header_crc_is_checked():
    h = GptHeader(1, 99, 34, 60, "01234567-89AB-CDEF-0123-456789ABCDEF", 2, 128, 128, 0).with_crc()
    raw = bytearray(h.pack())
    raw[40] ^= 1
    with pytest.raises(GptError, match="CRC mismatch"):
        GptHeader.unpack(bytes(raw), "test")


def test_mbr_round_trip():
    mbr = Mbr((MbrEntry(0, 0xEE, 1, 69671), MbrEntry(0x80, 0xAF, 69672, 819200), MbrEntry(0, 0x83, 2732072, 5456823), MbrEntry(0, 0, 0, 0)), 0x12345678)
    assert Mbr.unpack(mbr.pack()) == mbr


def _image(tmp_path, sectors):
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(sectors * 512)
    return img


def test_seed_plan_written_by_libparted_reads_back_everywhere(tmp_path):
    plan = resolve(load_layout("atv1-openelec"), SEED_SECTORS * 512, 512, seed="gpt-tests")
    img = _image(tmp_path, SEED_SECTORS)
    write_partition_table(str(img), plan)

    # Our reader (both copies, CRCs) agrees...
    with open(img, "rb") as f:
        table = read_table(f, 512, SEED_SECTORS)
    assert table.primary.disk_guid == plan.disk_guid
    assert [(n, e.first_lba, e.last_lba, e.type_guid, e.unique_guid, e.name) for n, e in table.partitions] == [
        (p.number, p.start, p.end, p.type_guid, p.guid, p.name) for p in plan.partitions
    ]

    # ...and so do tools we did not write.
    sf = json.loads(subprocess.run(["sfdisk", "--json", str(img)], check=True, capture_output=True, text=True).stdout)["partitiontable"]
    assert sf["label"] == "gpt" and sf["id"] == plan.disk_guid
    assert sf["firstlba"] == plan.first_usable and sf["lastlba"] == plan.last_usable
    assert [(x["start"], x["size"], x["type"], x["uuid"], x["name"]) for x in sf["partitions"]] == [
        (p.start, p.sectors, p.type_guid, p.guid, p.name) for p in plan.partitions
    ]
    verify = subprocess.run(["sgdisk", "-v", str(img)], capture_output=True, text=True)
    assert "No problems found" in verify.stdout, verify.stdout
    # parted prints the sizes the plan prints (and the original procedure's table showed).
    out = subprocess.run(["parted", "-s", "-m", str(img), "unit", "compact", "print"], check=True, capture_output=True, text=True).stdout
    rows = [line.rstrip(";").split(":") for line in out.splitlines()[2:]]
    assert [r[3] for r in rows] == [format_parted(p.size_bytes) for p in plan.partitions] == ["35.7MB", "419MB", "944MB", "2794MB", "134MB"]
    assert "atvrecv" in rows[1][6]
    assert rows[0][6].split(", ")[0] in ("boot", "boot, esp", "esp")


def test_hybrid_mbr_as_gptsync_makes_it(tmp_path):
    layout = parse_layout(
        """
        [disk]
        hybrid_mbr = true
        seed = "h"
        [[partition]]
        name = "EFI"
        type = "efi"
        start = "40s"
        size = "69632s"
        [[partition]]
        name = "Recovery"
        type = "atvrecv"
        size = "819200s"
        [[partition]]
        name = "OSBoot"
        type = "hfsplus"
        size = "1843200s"
        [[partition]]
        name = "Media"
        type = "linux"
        size = "rest"
        [[partition]]
        name = "Swap"
        type = "swap"
        size = "262144s"
        """
    )
    plan = resolve(layout, SEED_SECTORS * 512, 512)
    img = _image(tmp_path, SEED_SECTORS)
    write_partition_table(str(img), plan)
    out = subprocess.run(["sgdisk", "--print-mbr", str(img)], check=True, capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [(r[1], r[2], r[-1]) for r in rows] == [
        ("1", "69671", "0xEE"),  # protective, over the GPT and the EFI partition
        ("69672", "888871", "0xAF"),  # Recovery (HFS+)
        ("888872", "2732071", "0xAF"),  # OSBoot (HFS+)
        ("2732072", "8188894", "0x83"),  # Media; swap does not fit in four records
    ]
    assert "No problems found" in subprocess.run(["sgdisk", "-v", str(img)], capture_output=True, text=True).stdout


def test_raw_type_guid_is_set_although_libparted_cannot(tmp_path):
    layout = parse_layout(
        """
        [disk]
        seed = "raw"
        [[partition]]
        name = "Data"
        type = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
        start = "1MiB"
        size = "rest"
        """
    )
    plan = resolve(layout, 64 * 2**20, 512)
    img = _image(tmp_path, 64 * 2048)
    write_partition_table(str(img), plan)
    sf = json.loads(subprocess.run(["sfdisk", "--json", str(img)], check=True, capture_output=True, text=True).stdout)
    assert sf["partitiontable"]["partitions"][0]["type"] == "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"


def test_damaged_backup_gpt_is_reported(tmp_path):
    plan = resolve(load_layout("atv1-openelec"), SEED_SECTORS * 512, 512, seed="gpt-tests")
    img = _image(tmp_path, SEED_SECTORS)
    write_partition_table(str(img), plan)
    with open(img, "r+b") as f:
        f.seek((SEED_SECTORS - 1) * 512 + 60)  # inside the 92 bytes the CRC covers
        f.write(b"\xff")
        f.seek(0)
        with pytest.raises(GptError, match="backup GPT header"):
            read_table(f, 512, SEED_SECTORS)
