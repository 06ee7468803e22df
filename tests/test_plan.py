"""The plan as users see it: `atvdisk plan`'s table, gaps and steps, and its JSON document."""

from __future__ import annotations

import json
import re

import pytest

from atvdisk.layout.plan import PLAN_FORMAT, Plan
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import load_layout, parse_layout

LAYOUT = '''description = "gaps"
[disk]
seed = "render"
[boot]
boot = "Boot"
storage = "Data"
[[partition]]
name = "EFI"
type = "efi"
start = "40s"
size = "69632s"
fs = { kind = "fat32", label = "EFI", cluster_size = 512 }
[[partition]]
name = "Boot"
type = "hfsplus"
start = "71680s"
size = "64MiB"
fs = { kind = "hfsplus", label = "Boot", journal = true }
contents = [{ kind = "bootscript", path = "patchstick.sh" }, { kind = "tarball", source = "{restore}", path = "r" }, { kind = "file", source = "{openelec}/KERNEL", path = "KERNEL" }, { kind = "remove", path = "r/x" }, { kind = "text", path = "t", text = "x" }]
[[partition]]
name = "Data"
type = "linux"
start = "300000s"
size = "100MiB"
fs = { kind = "ext4", journal = false }
[[partition]]
name = "Swap"
type = "swap"
size = "10MiB"
fs = { kind = "swap" }
[[partition]]
name = "Raw"
type = "linux"
size = "1MiB"
'''

RENDERED = """\
Layout:  gaps (<string>)
Disk:    2097152s x 512 B = 1073741824 B (1074MB, 1.0 GiB)
GPT:     usable sectors 34-2097118; backup GPT from 2097119s
         disk GUID 79B1ADCC-D1B0-5B4B-9217-E5482B87B4F5
On the ATV this disk is /dev/sda (partition N is /dev/sdaN)

#  Name  Start    End      Size    Type     Filesystem          Label
1  EFI   40s      69671s   35.7MB  efi      FAT32 512B          EFI
2  Boot  71680s   202751s  67.1MB  hfsplus  HFS+ 4K journal     Boot
3  Data  300000s  504799s  105MB   linux    ext4 4K no journal  -
4  Swap  504800s  525279s  10.5MB  swap     swap                -
5  Raw   525280s  527327s  1049kB  linux    none                -
Types:   efi      C12A7328-F81F-11D2-BA4B-00A0C93EC93B
         hfsplus  48465300-0000-11AA-AA11-00306543ECAC
         linux    0FC63DAF-8483-4772-8E79-3D69D8477DE4
         swap     0657FD6D-A4AB-43C4-84E5-0933C84B4F4F
(sectors 34-39 are usable but left unpartitioned: 6 sectors)
(sectors 69672-71679 are usable but left unpartitioned: 2008 sectors)
(sectors 202752-299999 are usable but left unpartitioned: 97248 sectors)
(sectors 527328-2097118 are usable but left unpartitioned: 1569791 sectors)

Boot:    atv-bootloader's boot script kexecs the kernel: boot=Boot storage=Data
         kernel=KERNEL options='quiet nosplash' names by device

Steps a build takes:
   1. check the target: a whole disk or image of 1073741824 bytes, not the
      system disk, nothing mounted; confirm
   2. wipe the protective MBR and primary GPT (sectors 0-33) and the backup GPT
      (sectors 2097119-2097151), and old signatures at the start and end of
      every partition (on a disk; a new image file starts out empty)
   3. partition 1 EFI: FAT32 labelled 'EFI', 512-byte clusters, with mkfs.fat at
      byte 20480 (69632 sectors)
   4. partition 2 Boot: hfsplus volume labelled 'Boot', journaled, 4096-byte
      blocks, written by atvdisk at byte 36700160 (131072 sectors), holding the
      boot script /patchstick.sh, tarball {restore} at /r, {openelec}/KERNEL as
      /KERNEL, minus /r/x, text /t
   5. partition 3 Data: ext4, 4096-byte blocks, no journal, with mke2fs at byte
      153600000 (204800 sectors)
   6. partition 4 Swap: swap signature with mkswap at byte 258457600 (20480
      sectors)
   7. write the GPT with libparted: 5 partitions, names and type GUIDs as above,
      disk and partition GUIDs from the seed
   8. verify: read the GPT, every filesystem and every payload file back and
      compare with the plan and the sources"""


@pytest.fixture(scope="module")
def plan() -> Plan:
    return resolve(parse_layout(LAYOUT, name="gaps"), 2**30, 512)


def test_rendered_plan(plan):
    """What `atvdisk plan` prints: every partition, every gap, the boot settings, every step."""
    assert plan.render() == RENDERED


def test_rendered_plan_without_boot_seed_or_gaps():
    layout = parse_layout('[disk]\nhybrid_mbr = true\n[[partition]]\nname = "EFI"\ntype = "efi"\nstart = "34s"\nsize = "rest"\n', name="bare")
    text = resolve(layout, 2**30, 512).render()
    assert "disk GUID random at build" in text
    assert "MBR:     hybrid, synced to the GPT" in text and "On the ATV this disk is /dev/sda (partition N is /dev/sdaN)" in text
    assert "unpartitioned" not in text and "Boot:" not in text
    assert "   4. sync a hybrid MBR to the GPT (as gptsync does)" in text
    assert "disk and partition GUIDs from the seed" not in text


@pytest.mark.parametrize("layout", ["atv1-openelec", "atv1-openelec4", "atv1-factory"])
@pytest.mark.parametrize("size", [4 * 10**9, 40 * 10**9, 3 * 10**12, 16 * 10**12])
def test_the_plan_fits_80_columns(layout, size):
    """A terminal's least width, for the bundled layouts from a CF card to a 16 TB disk: the
    table in one row per partition, the long steps wrapped under their text."""
    text = resolve(load_layout(layout), size, 512, seed="w").render()
    assert max(len(line) for line in text.splitlines()) <= 80, text
    table = text[text.index("#  Name"):text.index("Types:")].splitlines()
    assert len(table) == 1 + len(load_layout(layout).partitions)
    if layout == "atv1-openelec4":
        assert re.match(r"^1  BOOT +40s +409600s +210MB +atvrecv +HFSX 4K +BOOT$", table[1])
    else:
        assert re.match(r"^3  OSBoot +888872s +2732071s +944MB +hfsplus +HFS\+ 4K", table[3])


def test_a_table_too_wide_for_80_columns_becomes_lines_per_partition():
    name = "N" * 36  # the longest GPT name
    layout = parse_layout(f'[[partition]]\nname = "{name}"\ntype = "linux"\nsize = "rest"\nfs = {{ kind = "ext4", label = "L" }}\n', name="wide")
    text = resolve(layout, 2**40, 512).render()
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert f"\n1  {name}\n   sectors 34s-2147483614s (1100GB), type linux, ext4 4K, label L\n" in text
    assert "#  Name" in resolve(layout, 2**40, 512).render(width=200)  # wide enough: the table


def test_gaps_are_the_usable_sectors_no_partition_covers(plan):
    assert plan.gaps() == [(34, 39), (69672, 71679), (202752, 299999), (527328, 2097118)]
    full = resolve(parse_layout('[[partition]]\nname = "A"\ntype = "linux"\nstart = "34s"\nsize = "rest"\n'), 2**30, 512)
    assert full.gaps() == []


def test_partitions_by_name(plan):
    assert plan.partition("Swap").number == 4
    with pytest.raises(KeyError):
        plan.partition("swap")


def test_json_document(plan):
    data = json.loads(plan.to_json())
    assert data["format"] == PLAN_FORMAT == "atvdisk-plan/1"
    swap = data["partitions"][3]
    assert (swap["start"], swap["end"], swap["size_bytes"], swap["offset_bytes"], swap["size_human"]) == (504800, 525279, 10 * 2**20, 504800 * 512, "10.5MB")
    assert data["reserved"][0] == {"name": "protective MBR", "kind": "reserved", "start": 0, "end": 0}
    assert data["boot"]["name_by"] == "device" and data["partitions"][4]["fs"]["kind"] == "none"
    assert [s["kind"] for s in data["steps"]] == ["check", "wipe", "mkfs", "mkfs", "mkfs", "mkfs", "partition", "verify"]
    assert "é" in Plan.from_json(json.dumps({**data, "description": "é"})).description  # not escaped
    assert "é" in resolve(parse_layout('description = "é"\n[[partition]]\nname = "A"\ntype = "linux"\nsize = "rest"\n'), 2**30, 512).to_json()


@pytest.mark.parametrize("layout", ["atv1-openelec", "atv1-factory", "gaps", "bare"])
def test_json_round_trip(layout, plan):
    if layout == "gaps":
        p = plan
    elif layout == "bare":
        p = resolve(parse_layout('[[partition]]\nname = "A"\ntype = "linux"\nsize = "rest"\n'), 2**30, 4096)
    else:
        p = resolve(load_layout(layout), 78_140_160 * 512, 512, seed="json")
    again = Plan.from_json(p.to_json())
    assert again == p
    assert again.render() == p.render()


def test_json_of_another_format_is_refused(plan):
    data = json.loads(plan.to_json())
    for wrong in ("atvdisk-plan/2", None):
        with pytest.raises(ValueError, match="not an atvdisk-plan/1 document"):
            Plan.from_dict({**data, "format": wrong})


@pytest.mark.parametrize(
    "ptype, fs, shown",
    [
        ("linux", '{ kind = "ext4", block_size = 1024 }', "ext4 1K"),
        ("linux", '{ kind = "ext4", block_size = 2048, journal = false }', "ext4 2K no journal"),
        ("hfsplus", '{ kind = "hfsplus", block_size = 512 }', "HFS+ 512B"),
        ("hfsplus", '{ kind = "hfsplus", block_size = 1024, journal = true }', "HFS+ 1K journal"),
        ("hfsplus", '{ kind = "hfsx", block_size = 65536 }', "HFSX 64K"),
        ("efi", '{ kind = "fat32", cluster_size = 1024 }', "FAT32 1K"),
        ("efi", '{ kind = "fat32", cluster_size = 512 }', "FAT32 512B"),
    ],
)
def test_block_and_cluster_sizes_are_shown_in_k_from_1k(ptype, fs, shown):
    layout = parse_layout(f'[[partition]]\nname = "P"\ntype = "{ptype}"\nsize = "rest"\nfs = {fs}\n', name="sizes")
    text = resolve(layout, 2**30, 512).render()
    row = text[text.index("#  Name") :].splitlines()[1]
    assert re.match(rf"^1  P +34s +\d+s +\S+ +{ptype} +{re.escape(shown)}( +-)?$", row), row


def test_the_table_is_used_exactly_when_it_fits():
    # The table's width: its widest row, with two spaces between the columns.
    layout = load_layout("atv1-openelec")
    plan = resolve(layout, 40 * 10**9, 512, seed="w")
    wide = plan.render(width=500)
    table = wide[wide.index("#  Name") : wide.index("Types:")].splitlines()
    fits = max(len(line) for line in table)
    assert "#  Name" in plan.render(width=fits)
    narrow = plan.render(width=fits - 1)
    assert "#  Name" not in narrow
    assert max(len(line) for line in narrow.splitlines()) <= fits - 1
    assert f"\n1  {layout.partitions[0].name}\n   sectors " in narrow
