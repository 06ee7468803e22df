"""What the ATV's boot chain accepts (atvdisk/layout/atv.py), at the edges of each rule."""

from __future__ import annotations

import pytest

from atvdisk.layout import atv


@pytest.mark.parametrize(("value", "disk"), [("sda", "/dev/sda"), ("/dev/sdh", "/dev/sdh"), ("sdb", "/dev/sdb")])
def test_atv_disks(value, disk):
    assert atv.atv_disk(value) == disk


@pytest.mark.parametrize("value", ["sdi", "/dev/sda1", "hda", "/dev/vda", "sda ", "/dev//sda", "dev/sda", "", "sda;reboot", None])
def test_not_atv_disks(value):
    with pytest.raises(atv.AtvValueError, match="not a disk name the ATV has"):
        atv.atv_disk(value)


def test_file_names_up_to_255():
    assert atv.file_name("K" * 255) == "K" * 255
    assert atv.file_name("MACH_KERNEL.v4-2+x") == "MACH_KERNEL.v4-2+x"
    for bad in ("K" * 256, "", ".KERNEL", "-K", "+K", "a/b", "KER NEL", "KÉRNEL", None):
        with pytest.raises(atv.AtvValueError, match="must be a plain file name"):
            atv.file_name(bad)


def test_labels_up_to_64_bytes():
    assert atv.label("L" * 64, "p") == "L" * 64
    with pytest.raises(atv.AtvValueError, match="cannot be named with LABEL="):
        atv.label("L" * 65, "p")
    for missing in (None, ""):
        with pytest.raises(atv.AtvValueError, match="partition p has no label to name it by"):
            atv.label(missing, "p")


def test_kernel_options():
    assert atv.kernel_options("") == ()
    assert atv.kernel_options("quiet video=vesafb:ywrap,mtrr console=ttyS0,115200n8") == ("quiet", "video=vesafb:ywrap,mtrr", "console=ttyS0,115200n8")
    with pytest.raises(atv.AtvValueError, match="options must be text"):
        atv.kernel_options(None)
    with pytest.raises(atv.AtvValueError, match="set by \\[boot\\] itself"):
        atv.kernel_options("quiet disk=LABEL=x")
    assert atv.kernel_options("diskless bootx=1") == ("diskless", "bootx=1")  # only boot= and disk= are reserved


def test_kernel_flags_words_and_length():
    assert atv.kernel_flags("boot=/dev/sda3 disk=/dev/sda4 quiet") == "boot=/dev/sda3 disk=/dev/sda4 quiet"
    with pytest.raises(atv.AtvValueError, match="word \"x'y\" is not a plain kernel parameter"):
        atv.kernel_flags("boot=/dev/sda3 x'y")
    ok = "a" * atv.KERNEL_FLAGS_MAX
    assert atv.kernel_flags(ok) == ok
    with pytest.raises(atv.AtvValueError, match="1025 bytes; boot.efi passes at most 1024"):
        atv.kernel_flags(ok + "a")


def test_options_are_single_spaced_words():
    for bad in ("quiet  nosplash", " quiet", "quiet "):
        with pytest.raises(atv.AtvValueError, match="options must be words separated by single spaces"):
            atv.kernel_options(bad)
