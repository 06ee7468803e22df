"""The partition table: our GPT/MBR records, and what libparted writes for a plan, judged by
sfdisk, sgdisk and parted."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atvdisk.fs.gpt import (
    GptEntry,
    GptError,
    GptHeader,
    Mbr,
    MbrEntry,
    hybrid_mbr,
    protective_mbr,
    read_primary,
    read_table,
    rewrite_table,
    write_relocated,
)
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


# -- damage: what read_table (and so `atvdisk verify`) refuses, with sgdisk as the second judge --

DAMAGE_SECTORS = 4_000_000


@pytest.fixture(scope="module")
def table_bytes(tmp_path_factory):
    """A written table (atv1-openelec, 2 GB): its first 34 and last 33 sectors."""
    plan = resolve(load_layout("atv1-openelec"), DAMAGE_SECTORS * 512, 512, seed="damage")
    img = tmp_path_factory.mktemp("gpt") / "disk.img"
    with open(img, "wb") as f:
        f.truncate(DAMAGE_SECTORS * 512)
    write_partition_table(str(img), plan)
    with open(img, "rb") as f:
        head = f.read(34 * 512)
        f.seek((DAMAGE_SECTORS - 33) * 512)
        tail = f.read(33 * 512)
    return head, tail


def damaged_image(tmp_path, table_bytes, damage):
    """A fresh image with the table, after ``damage(f)`` patched it; returns its path."""
    head, tail = table_bytes
    img = tmp_path / "damaged.img"
    with open(img, "wb") as f:
        f.truncate(DAMAGE_SECTORS * 512)
        f.write(head)
        f.seek((DAMAGE_SECTORS - 33) * 512)
        f.write(tail)
    with open(img, "r+b") as f:
        damage(f)
    return img


def patch_header(lba, **fields):
    """Change header fields and give the header a correct CRC again (a consistent lie)."""

    def damage(f):
        f.seek(lba * 512)
        header = GptHeader.unpack(f.read(512), "test")
        f.seek(lba * 512)
        f.write(dataclasses.replace(header, **fields).pack())

    return damage


def patch_bytes(offset, data):
    def damage(f):
        f.seek(offset)
        f.write(data)

    return damage


BACKUP = DAMAGE_SECTORS - 1
BACKUP_ENTRIES = DAMAGE_SECTORS - 33


def rewrite_backup_array(f):
    """Backup entry array changed (a partition's end moved by one), with its CRC and the backup
    header's CRC recomputed: each copy is valid alone, but they disagree."""
    f.seek(BACKUP_ENTRIES * 512)
    array = bytearray(f.read(32 * 512))
    entry = GptEntry.unpack(bytes(array[128:256]))
    array[128:256] = dataclasses.replace(entry, last_lba=entry.last_lba - 1).pack()
    f.seek(BACKUP_ENTRIES * 512)
    f.write(array)
    patch_header(BACKUP, entries_crc32=zlib.crc32(bytes(array)))(f)


DAMAGES = {
    "no MBR signature": (patch_bytes(510, b"\0\0"), "no MBR signature"),
    "no GPT signature": (patch_bytes(512, b"EFI JUNK"), "primary GPT header (sector 1): no GPT header signature"),
    "primary header CRC": (patch_bytes(512 + 40, b"\xff"), "primary GPT header (sector 1): header CRC mismatch"),
    "header size too small": (patch_header(1, header_size=91), "primary GPT header (sector 1): header size 91 is invalid"),
    "header size beyond its sector": (patch_header(1, header_size=513), "header size 513 is invalid"),
    "revision": (patch_header(1, revision=0x00020000), "primary GPT header (sector 1): GPT revision 2.0, not 1.0"),
    "primary not at sector 1": (patch_header(1, my_lba=2), "primary GPT header says it is at sector 2"),
    "backup not at the end": (patch_header(1, alternate_lba=BACKUP - 1), f"should be at the last sector {BACKUP}, the primary says {BACKUP - 1}"),
    "backup header CRC": (patch_bytes(BACKUP * 512 + 60, b"\xff"), f"backup GPT header (sector {BACKUP}): header CRC mismatch"),
    "backup points elsewhere": (patch_header(BACKUP, alternate_lba=2), "the backup GPT header does not point back at the primary"),
    "backup says it is elsewhere": (patch_header(BACKUP, my_lba=BACKUP - 1), "the backup GPT header does not point back at the primary"),
    "entry size": (patch_header(1, entry_size=256), "unusual GPT entry array: 128 x 256 bytes"),
    "too many entries": (patch_header(1, num_entries=1025), "unusual GPT entry array: 1025 x 128 bytes"),
    "primary array CRC": (patch_bytes(2 * 512 + 200, b"\x01"), "primary GPT entry array CRC mismatch"),
    "backup array CRC": (patch_bytes(BACKUP_ENTRIES * 512 + 200, b"\x01"), "backup GPT entry array CRC mismatch"),
    "arrays differ": (rewrite_backup_array, "the primary and backup GPT entry arrays differ"),
    "headers differ in first usable": (patch_header(BACKUP, first_usable=35), "primary and backup GPT headers differ in first_usable"),
    "headers differ in disk GUID": (patch_header(BACKUP, disk_guid="01234567-89AB-CDEF-0123-456789ABCDEF"), "differ in disk_guid"),
}


@pytest.mark.parametrize("case", DAMAGES, ids=list(DAMAGES))
def test_damaged_table_is_refused_and_sgdisk_agrees(tmp_path, table_bytes, case):
    damage, message = DAMAGES[case]
    img = damaged_image(tmp_path, table_bytes, damage)
    with open(img, "rb") as f, pytest.raises(GptError) as info:
        read_table(f, 512, DAMAGE_SECTORS)
    assert message in str(info.value)
    assert info.value.hint
    assert sgdisk_objects(img), f"sgdisk -v finds nothing wrong with {case}"


def sgdisk_objects(img) -> bool:
    """Whether sgdisk -v objects to the table (it recovers from one bad copy and may then add "No
    problems found", but it first says it found a problem, a corrupt GPT or MBR)."""
    out = subprocess.run(["sgdisk", "-v", str(img)], capture_output=True, text=True)
    return bool(re.search(r"Problem|Caution|Warning|corrupt", out.stdout + out.stderr))


def test_the_undamaged_table_reads_back(tmp_path, table_bytes):
    img = damaged_image(tmp_path, table_bytes, lambda f: None)
    with open(img, "rb") as f:
        table = read_table(f, 512, DAMAGE_SECTORS)
    assert len(table.partitions) == 5 and table.primary.revision == 0x00010000
    assert not sgdisk_objects(img)


def test_a_truncated_image_is_a_short_read(tmp_path, table_bytes):
    img = damaged_image(tmp_path, table_bytes, lambda f: None)
    with open(img, "r+b") as f:
        f.truncate((DAMAGE_SECTORS - 10) * 512)
    with open(img, "rb") as f, pytest.raises(GptError, match=f"short read at sector {BACKUP}"):
        read_table(f, 512, DAMAGE_SECTORS)


def test_a_grown_disk_is_told_apart_from_a_damaged_one(tmp_path, table_bytes):
    # The same table on a disk now 1 MiB larger (an image grown with truncate): the backup is no
    # longer at the end, and the message says the size changed.
    img = damaged_image(tmp_path, table_bytes, lambda f: None)
    with open(img, "r+b") as f:
        f.truncate((DAMAGE_SECTORS + 2048) * 512)
    with open(img, "rb") as f, pytest.raises(GptError) as info:
        read_table(f, 512, DAMAGE_SECTORS + 2048)
    assert "the disk size changed" in info.value.hint


def test_mbr_records_pack_as_the_spec_lays_them_out():
    mbr = Mbr((MbrEntry(0, 0xEE, 1, 69671), MbrEntry(0x80, 0xAF, 69672, 819200), MbrEntry(0, 0, 0, 0), MbrEntry(0, 0, 0, 0)), 0x12345678)
    boot = bytes(range(256)) + bytes(range(184))
    raw = mbr.pack(boot_code=boot)
    assert len(raw) == 512 and raw[:440] == boot and raw[510:] == b"\x55\xaa"
    assert raw[440:446] == b"\x78\x56\x34\x12\0\0"  # disk signature, then two zero bytes
    assert raw[446 + 16] == 0x80 and raw[446 + 16 + 4] == 0xAF  # status, type
    assert raw[446 + 32 :] == b"\0" * 32 + b"\x55\xaa"  # unused records are all zero
    assert mbr.pack()[:440] == b"\0" * 440
    with pytest.raises(GptError, match="no MBR signature"):
        Mbr.unpack(raw[:510] + b"\0\0")


def test_hybrid_mbr_without_efi_first_and_with_a_type_mbr_cannot_name(tmp_path):
    """No EFI partition first: the 0xEE record covers only the GPT up to the first partition.
    A partition whose type has no MBR code (Linux RAID here) is left out, not guessed."""
    layout = parse_layout(
        """
        [disk]
        hybrid_mbr = true
        [[partition]]
        name = "Linux"
        type = "linux"
        start = "2048s"
        size = "20000s"
        [[partition]]
        name = "Raid"
        type = "A19D880F-05FC-4D3B-A006-743F0F84911E"
        size = "20000s"
        [[partition]]
        name = "Mac"
        type = "hfsplus"
        size = "20000s"
        [[partition]]
        name = "Swap"
        type = "swap"
        size = "20000s"
        [[partition]]
        name = "More"
        type = "linux"
        size = "rest"
        """
    )
    plan = resolve(layout, 64 * 2**20, 512)
    img = _image(tmp_path, 64 * 2048)
    write_partition_table(str(img), plan)
    mbr = json.loads(subprocess.run(["sfdisk", "--label-nested", "dos", "--json", str(img)], check=True, capture_output=True, text=True).stdout)
    assert [(p["start"], p["size"], p["type"]) for p in mbr["partitiontable"]["partitions"]] == [
        (1, 2047, "ee"),
        (2048, 20000, "83"),
        (42048, 20000, "af"),
        (62048, 20000, "82"),
    ]


# -- other tools' tables, and the primary GPT alone ----------------------------------------------


@pytest.mark.parametrize("entries", [128, 1024, 4])
def test_tables_sgdisk_writes_are_read(tmp_path, entries):
    """A GPT written by sgdisk, with the usual 128 entries, the most we accept (1024) or fewer
    than usual: both readers agree with sgdisk on every partition."""
    img = _image(tmp_path, 200_000)
    subprocess.run(["sgdisk", "-o", "-S", str(entries), "-n", "1:2048:+10M", "-t", "1:8300", "-c", "1:Data",
                    "-n", "2:0:+20M", "-t", "2:AF00", "-c", "2:Mac", str(img)], check=True, capture_output=True)
    with open(img, "rb") as f:
        table = read_table(f, 512, 200_000)
        primary = read_primary(f, 512)
    assert table.primary.num_entries == primary.header.num_entries == entries
    sf = json.loads(subprocess.run(["sfdisk", "--json", str(img)], check=True, capture_output=True, text=True).stdout)["partitiontable"]
    expected = [(p["start"], p["start"] + p["size"] - 1, p["name"]) for p in sf["partitions"]]
    assert [(e.first_lba, e.last_lba, e.name) for _, e in table.partitions] == expected
    assert [(e.first_lba, e.last_lba, e.name) for _, e in primary.partitions] == expected


def test_more_than_1024_entries_is_refused(tmp_path):
    img = _image(tmp_path, 200_000)
    subprocess.run(["sgdisk", "-o", "-S", "1028", "-n", "1:4096:+1M", str(img)], check=True, capture_output=True)
    with open(img, "rb") as f:
        with pytest.raises(GptError, match="unusual GPT entry array: 1028 x 128 bytes"):
            read_table(f, 512, 200_000)
        with pytest.raises(GptError, match="unusual GPT entry array: 1028 x 128 bytes at sector 2"):
            read_primary(f, 512)


PRIMARY_DAMAGES = {
    "array CRC": (patch_bytes(2 * 512 + 200, b"\x01"), "primary GPT entry array CRC mismatch"),
    "array beyond the end": (patch_header(1, entries_lba=DAMAGE_SECTORS - 1), "primary GPT entry array CRC mismatch"),
    "array over the header": (patch_header(1, entries_lba=1), "unusual GPT entry array: 128 x 128 bytes at sector 1"),
    "header not at sector 1": (patch_header(1, my_lba=7), "primary GPT header says it is at sector 7"),
    "no signature": (patch_bytes(512, b"EFI JUNK"), "no GPT header signature"),
    "partition outside the usable sectors": (patch_header(1, last_usable=1000), "GPT partition 1 (sectors 40-69671) lies outside the usable sectors 34-1000"),
    "partition before the usable sectors": (patch_header(1, first_usable=41), "GPT partition 1 (sectors 40-69671) lies outside the usable sectors 41-"),
}


@pytest.mark.parametrize("case", PRIMARY_DAMAGES, ids=list(PRIMARY_DAMAGES))
def test_primary_gpt_alone_refuses_damage(tmp_path, table_bytes, case):
    damage, message = PRIMARY_DAMAGES[case]
    img = damaged_image(tmp_path, table_bytes, damage)
    with open(img, "rb") as f, pytest.raises(GptError) as info:
        read_primary(f, 512)
    assert message in str(info.value) and info.value.hint


def test_primary_gpt_alone_reads_a_disk_grown_under_it(tmp_path, table_bytes):
    """The image written to a larger disk: the backup GPT is no longer at the end, the primary
    still says where every partition is (what the manifest and extract read)."""
    img = damaged_image(tmp_path, table_bytes, lambda f: None)
    with open(img, "r+b") as f:
        f.truncate(2 * DAMAGE_SECTORS * 512)
    with open(img, "rb") as f:
        primary = read_primary(f, 512)
        with pytest.raises(GptError):
            read_table(f, 512, 2 * DAMAGE_SECTORS)
    assert [n for n, _ in primary.partitions] == [1, 2, 3, 4, 5]
    assert primary.partitions[0][1].first_lba == 40 and primary.header.alternate_lba == DAMAGE_SECTORS - 1


def test_truncated_primary_gpt(tmp_path, table_bytes):
    img = damaged_image(tmp_path, table_bytes, lambda f: None)
    with open(img, "r+b") as f:
        f.truncate(600)
    with open(img, "rb") as f, pytest.raises(GptError, match="short read at sector 1"):
        read_primary(f, 512)


def test_rewriting_the_table_keeps_the_boot_code(tmp_path, table_bytes):
    img = damaged_image(tmp_path, table_bytes, lambda f: None)
    boot = bytes((i * 7 + 1) % 256 for i in range(440))
    with open(img, "r+b") as f:
        f.write(boot)
        table = read_table(f, 512, DAMAGE_SECTORS)
        mbr = hybrid_mbr(table.partitions, DAMAGE_SECTORS, {e.type_guid: 0x83 for _, e in table.partitions})
        rewrite_table(f, 512, table, table.entries, "01234567-89AB-CDEF-0123-456789ABCDEF", mbr)
        f.seek(0)
        assert f.read(440) == boot
        again = read_table(f, 512, DAMAGE_SECTORS)
    assert again.primary.disk_guid == again.backup.disk_guid == "01234567-89AB-CDEF-0123-456789ABCDEF"
    assert again.mbr.entries == mbr.entries and not sgdisk_objects(img)


# -- a table moved to a larger disk (what `atvdisk write` does, like sgdisk -e) -----------------


@pytest.mark.parametrize("grow", [0, 1, 2048, 3 * DAMAGE_SECTORS])
def test_a_relocated_table_is_complete_on_the_larger_disk(tmp_path, table_bytes, grow):
    img = damaged_image(tmp_path, table_bytes, lambda f: None)
    total = DAMAGE_SECTORS + grow
    with open(img, "r+b") as f:
        f.truncate(total * 512)
        primary = read_primary(f, 512)
    fd = os.open(img, os.O_RDWR)
    try:
        write_relocated(fd, primary, 512, total)
    finally:
        os.close(fd)
    assert not sgdisk_objects(img)
    sf = json.loads(subprocess.run(["sfdisk", "--json", str(img)], check=True, capture_output=True, text=True).stdout)["partitiontable"]
    assert (sf["firstlba"], sf["lastlba"]) == (34, total - 34)
    with open(img, "rb") as f:
        table = read_table(f, 512, total)
    assert table.entries == primary.entries and table.primary.disk_guid == primary.header.disk_guid
    assert table.backup.my_lba == total - 1 and table.backup.entries_lba == total - 33
    assert table.mbr.entries == protective_mbr(total).entries
    assert [(p["start"], p["size"]) for p in sf["partitions"]] == [(e.first_lba, e.last_lba - e.first_lba + 1) for _, e in primary.partitions]


def test_a_relocated_table_keeps_a_given_mbr_and_refuses_a_smaller_disk(tmp_path, table_bytes):
    img = damaged_image(tmp_path, table_bytes, lambda f: None)
    with open(img, "rb") as f:
        primary = read_primary(f, 512)
        table = read_table(f, 512, DAMAGE_SECTORS)
    hybrid = hybrid_mbr(table.partitions, DAMAGE_SECTORS + 4096, {e.type_guid: 0x83 for _, e in table.partitions}).pack(b"\xeb" * 440)
    fd = os.open(img, os.O_RDWR)
    try:
        os.ftruncate(fd, (DAMAGE_SECTORS + 4096) * 512)
        write_relocated(fd, primary, 512, DAMAGE_SECTORS + 4096, mbr_sector=hybrid + b"ignored beyond 512 bytes")
        os.ftruncate(fd, (DAMAGE_SECTORS - 40) * 512)
        last = max(e.last_lba for _, e in primary.partitions)
        with pytest.raises(GptError, match=f"partitions end at sector {last}, beyond the disk's last usable sector {DAMAGE_SECTORS - 40 - 34}"):
            write_relocated(fd, primary, 512, DAMAGE_SECTORS - 40)
    finally:
        os.close(fd)
    with open(img, "rb") as f:
        assert f.read(512) == hybrid
