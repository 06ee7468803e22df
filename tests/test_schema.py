"""What a valid layout means once parsed: defaults, accepted values at the edges of each range,
and how a layout is found. (What an invalid one is refused with: tests/layouts-fail/.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atvdisk.errors import LayoutError
from atvdisk.layout.schema import (
    TYPE_GUIDS,
    FsKind,
    Role,
    bundled_layouts,
    find_layout,
    load_layout,
    parse_layout,
)


def one(fs: str = "", *, type_: str = "linux", extra: str = "", contents: str = "", disk: str = "") -> object:
    text = (f"[disk]\n{disk}\n" if disk else "") + f'[[partition]]\nname = "A"\ntype = "{type_}"\nsize = "64MiB"\n{extra}'
    if fs:
        text += f"fs = {fs}\n"
    if contents:
        text += f"contents = [{contents}]\n"
    return parse_layout(text).partitions[0]


def test_a_role_given_as_its_type_guid_is_that_role():
    p = one('{ kind = "ext4" }', type_=TYPE_GUIDS[Role.LINUX].lower())
    assert p.role is Role.LINUX and p.type_guid == TYPE_GUIDS[Role.LINUX]
    raw = one('{ kind = "ext4" }', type_="a19d880f-05fc-4d3b-a006-743f0f84911e")
    assert raw.role is Role.RAW and raw.type_guid == "A19D880F-05FC-4D3B-A006-743F0F84911E"
    with pytest.raises(LayoutError, match="swap does not belong on a partition of type linux"):
        one('{ kind = "swap" }', type_=TYPE_GUIDS[Role.LINUX])


def test_filesystem_defaults():
    ext4 = one('{ kind = "ext4" }').fs
    assert (ext4.journal, ext4.block_size, ext4.reserved_percent) == (True, 4096, None)
    hfs = one('{ kind = "hfsplus" }', type_="hfsplus").fs
    assert (hfs.journal, hfs.block_size, hfs.journal_size) == (False, 4096, None)
    assert one('{ kind = "fat32" }', type_="efi").fs.cluster_size is None  # chosen by the resolver
    assert one().fs.kind is FsKind.NONE


@pytest.mark.parametrize("block", [1024, 2048, 4096])
def test_ext4_block_sizes(block):
    assert one(f'{{ kind = "ext4", block_size = {block} }}').fs.block_size == block


@pytest.mark.parametrize("block", [512, 65536])
def test_hfs_block_size_range(block):
    assert one(f'{{ kind = "hfsplus", block_size = {block} }}', type_="hfsplus").fs.block_size == block


@pytest.mark.parametrize("cluster", [512, 65536])
def test_fat_cluster_size_range(cluster):
    assert one(f'{{ kind = "fat32", cluster_size = {cluster} }}', type_="efi").fs.cluster_size == cluster


@pytest.mark.parametrize("percent", [0, 50])
def test_reserved_percent_range(percent):
    assert one(f'{{ kind = "ext4", reserved_percent = {percent} }}').fs.reserved_percent == percent


@pytest.mark.parametrize("size", [512, 1024, 2048, 4096])
def test_layout_sector_sizes(size):
    layout = parse_layout(f'[disk]\nsector_size = {size}\n[[partition]]\nname = "A"\ntype = "linux"\nsize = "8s"\n')
    assert layout.disk.sector_size == size and layout.partitions[0].size.to_bytes(size) == 8 * size


def test_contents_owner_and_mode():
    c = one('{ kind = "ext4" }', contents='{ kind = "dir", path = "a" }, { kind = "dir", path = "b", owner = "1000:100", mode = "755" },'
            ' { kind = "text", path = "c", text = "x", mode = "0640" }, { kind = "dir", path = "d", mode = 493 },'
            ' { kind = "dir", path = "/e/f/", mode = "0777" }, { kind = "dir", path = "g", mode = 0 }').contents
    assert [(x.path, x.owner, x.mode) for x in c] == [
        ("a", (0, 0), None), ("b", (1000, 100), 0o755), ("c", (0, 0), 0o640), ("d", (0, 0), 0o755), ("e/f", (0, 0), 0o777), ("g", (0, 0), 0),
    ]


@pytest.mark.parametrize(
    ("mode", "bits", "plain"),
    [('"4755"', "setuid", "0755"), ('"2755"', "setgid", "0755"), ('"1777"', "sticky", "0777"), ("3583", "setuid and setgid", "0777"), ('"7777"', "setuid and setgid and sticky", "0777")],
)
def test_modes_never_set_setuid_setgid_or_sticky(mode, bits, plain):
    # As for archive members (tarsafe drops those bits): a layout cannot make a file that runs as
    # another user on the ATV.
    with pytest.raises(LayoutError, match=f"sets {bits}: atvdisk never writes setuid") as info:
        one('{ kind = "ext4" }', contents=f'{{ kind = "text", path = "x", text = "", mode = {mode} }}')
    assert f'mode = "{plain}"' in (info.value.hint or "")
    assert one('{ kind = "ext4" }', contents=f'{{ kind = "text", path = "x", text = "", mode = "{plain}" }}').contents[0].mode == int(plain, 8)


def test_boot_defaults_and_kernel_names():
    base = '[[partition]]\nname = "B"\ntype = "hfsplus"\nsize = "64MiB"\nfs = { kind = "hfsplus" }\n'
    boot = parse_layout('[boot]\nboot = "B"\nstorage = "B"\n' + base).boot
    assert (boot.kernel, boot.options, boot.name_by, boot.fsck) == ("KERNEL", "quiet nosplash", "device", True)
    boot = parse_layout('[boot]\nboot = "B"\nstorage = "B"\nkernel = "MACH_KERNEL.v4"\nname_by = "uuid"\nfsck = false\n' + base).boot
    assert (boot.kernel, boot.name_by, boot.fsck) == ("MACH_KERNEL.v4", "uuid", False)


def test_finding_layouts(tmp_path, monkeypatch):
    assert set(bundled_layouts()) >= {"atv1-openelec", "atv1-factory"}
    assert find_layout("atv1-openelec").name == "atv1-openelec.toml"
    mine = tmp_path / "mine.toml"
    mine.write_text('[[partition]]\nname = "A"\ntype = "linux"\nsize = "rest"\n')
    assert load_layout(str(mine)).name == "mine"
    # A file named without .toml or a slash is still a path when it exists (in the current directory).
    plain = tmp_path / "plain"
    plain.write_text(mine.read_text())
    monkeypatch.chdir(tmp_path)
    assert find_layout("plain") == Path("plain")
    with pytest.raises(LayoutError, match="layout file not found: missing.toml"):
        find_layout("missing.toml")
    with pytest.raises(LayoutError, match="layout file not found: sub/missing"):
        find_layout("sub/missing")
    with pytest.raises(LayoutError, match="unknown layout 'atv1-openelek'") as info:
        find_layout("atv1-openelek")
    assert "atv1-openelec" in info.value.hint
    assert os.getcwd() == str(tmp_path)


@pytest.mark.parametrize(
    "fs, type_",
    [
        ('{ kind = "ext4", label = "éééééééé" }', "linux"),  # 16 bytes of UTF-8
        ('{ kind = "swap", label = "SSSSSSSSSSSSSSSS" }', "swap"),
        ('{ kind = "fat32", label = "EFI BOOT 01" }', "efi"),  # 11 characters
        ('{ kind = "hfsplus", label = "' + "V" * 255 + '" }', "hfsplus"),
    ],
)
def test_labels_at_their_limit_are_accepted(fs, type_):
    assert one(fs, type_=type_).fs.label


def test_a_tarball_or_directory_goes_to_the_root_by_default():
    c = one('{ kind = "ext4" }', contents='{ kind = "tarball", source = "{restore}" }, { kind = "directory", source = "{layout_dir}/x", path = "/" }').contents
    assert [(x.kind, x.path) for x in c] == [("tarball", ""), ("directory", "")]


def test_a_gpt_holds_128_partitions():
    text = "".join(f'[[partition]]\nname = "P{i}"\ntype = "linux"\nsize = "1MiB"\n' for i in range(128))
    assert len(parse_layout(text).partitions) == 128  # (129: tests/layouts-fail/too-many-partitions.toml)


def test_layout_file_size_limit_and_encoding(tmp_path):
    from atvdisk.layout.schema import LAYOUT_FILE_LIMIT

    body = '[[partition]]\nname = "A"\ntype = "linux"\nsize = "rest"\n'
    exact = tmp_path / "exact.toml"
    exact.write_text(body + "#" * (LAYOUT_FILE_LIMIT - len(body) - 1) + "\n")
    assert exact.stat().st_size == LAYOUT_FILE_LIMIT
    assert load_layout(str(exact)).partitions[0].name == "A"
    over = tmp_path / "over.toml"
    over.write_text(body + "#" * (LAYOUT_FILE_LIMIT - len(body)) + "\n")
    with pytest.raises(LayoutError, match=f"larger than {LAYOUT_FILE_LIMIT} bytes"):
        load_layout(str(over))
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('description = "caf\xe9"\n'.encode("latin-1") + body.encode())
    with pytest.raises(LayoutError, match="cannot read layout: 'utf-8' codec can't decode") as info:
        load_layout(str(latin1))
    assert info.value.hint == "give a readable UTF-8 .toml file"


def test_a_fat_label_of_valid_characters_is_still_at_most_11():
    # mkfs.fat: "Label can be no longer than 11 characters".
    with pytest.raises(LayoutError, match="a FAT label is at most 11 characters"):
        one('{ kind = "fat32", label = "EFI BOOT 012" }', type_="efi")


def test_tarball_members_are_paths():
    with pytest.raises(LayoutError, match=r"members\[2\].*expected a path, got 7"):
        one('{ kind = "ext4" }', contents='{ kind = "tarball", source = "{restore}", members = ["a", 7] }')


def test_a_second_boot_script_names_where_the_first_is():
    text = (
        '[boot]\nboot = "A"\nstorage = "B"\n'
        '[[partition]]\nname = "A"\ntype = "hfsplus"\nsize = "64MiB"\nfs = { kind = "hfsplus" }\n'
        'contents = [{ kind = "text", path = "x", text = "y" }, { kind = "bootscript", path = "patchstick.sh" }]\n'
        '[[partition]]\nname = "B"\ntype = "linux"\nsize = "64MiB"\nfs = { kind = "ext4" }\n'
        'contents = [{ kind = "bootscript", path = "patchstick.sh" }]\n'
    )
    with pytest.raises(LayoutError, match=r"partition\[2\]\.contents\[1\].*a second bootscript \(the first is partition\[1\]\.contents\[2\]\)"):
        parse_layout(text)


@pytest.mark.parametrize("before", ["hfsplus", "linux"])
def test_a_bootefi_boot_partition_may_be_fat32_whatever_precedes_it(before):
    fs_before = {"hfsplus": '{ kind = "hfsplus" }', "linux": '{ kind = "ext4" }'}[before]
    text = (
        '[boot]\nmethod = "bootefi"\nboot = "BOOT"\nstorage = "DATA"\nkernel = "MACH_KERNEL"\n'
        f'[[partition]]\nname = "DATA"\ntype = "{before}"\nsize = "64MiB"\nfs = {fs_before}\n'
        '[[partition]]\nname = "BOOT"\ntype = "atvrecv"\nsize = "64MiB"\nfs = { kind = "fat32" }\n'
        'contents = [{ kind = "bootplist", path = "com.apple.Boot.plist" }]\n'
    )
    layout = parse_layout(text)
    assert [p.fs.kind for p in layout.partitions] == [FsKind(fs_before.split('"')[1]), FsKind.FAT32]
