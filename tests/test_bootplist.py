"""com.apple.Boot.plist (atvdisk/bootplist.py): generated for boot.efi (4.x), fixed for
atv-bootloader (3.x). Judged with Python's plistlib and with the rule atv-bootloader's rcS uses
to read atv-boot= (written out here: the last ``atv-boot=`` word, cut at its second ``=``).
"""

from __future__ import annotations

import dataclasses
import plistlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atvdisk.bootplist import PlistExpectation, atv_boot_mode, bootefi_plist, expectation, kexec_plist
from atvdisk.bootscript import hfs_blkid_uuid
from atvdisk.errors import BootFilesError
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import BootMethod, NameBy, load_layout

ROOT = {"mach_kernel", "boot.efi", "BootLogo.png", "patchstick.sh"}


def rcs_mode(flags: str) -> str | None:
    """atv-bootloader's rcS: ``for i in $(cat /proc/cmdline); case atv-boot=*: cut -d= -f2``."""
    mode = None
    for word in flags.split():
        if word.startswith("atv-boot="):
            mode = word.split("=")[1]
    return mode


def plan4(name_by=None, **boot):
    layout = load_layout("atv1-openelec4")
    layout = dataclasses.replace(layout, disk=dataclasses.replace(layout.disk, seed="plist"))
    if boot:
        layout = dataclasses.replace(layout, boot=dataclasses.replace(layout.boot, **boot))
    return resolve(layout, 4 << 30, 512)


# ------------------------------------------------------------------------ bootefi (4.x)


def test_bootefi_plist_is_the_installers():
    plan = plan4()
    p = bootefi_plist(plan, None, {"MACH_KERNEL", "SYSTEM", "boot.efi", "BootLogo.png"})
    assert plistlib.loads(p.data) == {
        "Background Color": 0,
        "Boot Logo": "BootLogo.png",
        "Kernel": "MACH_KERNEL",
        "Kernel Flags": "boot=/dev/sda1 disk=/dev/sda2 quiet BOOT_IMAGE=MACH_KERNEL SYSTEM_IMAGE=SYSTEM",
    }
    assert p.data.startswith(b"<?xml") and not p.changed


def test_bootefi_flags_by_label_uuid_and_usb():
    plan = plan4()
    boot, storage = plan.partition("BOOT"), plan.partition("STORAGE")
    flags = {nb: plistlib.loads(bootefi_plist(plan, nb, set()).data)["Kernel Flags"] for nb in NameBy}
    tail = " quiet BOOT_IMAGE=MACH_KERNEL SYSTEM_IMAGE=SYSTEM"
    assert flags[NameBy.LABEL] == "boot=LABEL=BOOT disk=LABEL=STORAGE" + tail
    assert flags[NameBy.UUID] == f"boot=UUID={hfs_blkid_uuid(boot.fs.uuid)} disk=UUID={storage.fs.uuid}" + tail
    usb = resolve(dataclasses.replace(load_layout("atv1-openelec4"), disk=dataclasses.replace(load_layout("atv1-openelec4").disk, atv_disk="/dev/sdb", seed="x")), 4 << 30, 512)
    assert plistlib.loads(bootefi_plist(usb, None, set()).data)["Kernel Flags"].startswith("boot=/dev/sdb1 disk=/dev/sdb2 ")
    assert "Boot Logo" not in plistlib.loads(bootefi_plist(plan, None, set()).data)  # no logo file, no key


def test_bootefi_kernel_flags_over_1024_bytes_are_refused():
    with pytest.raises(BootFilesError, match="at most 1024"):
        bootefi_plist(plan4(options=" ".join(["BOOT_IMAGE=MACH_KERNEL"] * 50)), None, set())


safe_word = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.,:/+@%=-]{0,30}", fullmatch=True).filter(lambda w: w.split("=")[0] not in ("boot", "disk"))
hostile = st.text(max_size=40)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.lists(safe_word, max_size=60).map(" ".join), hostile), st.one_of(hostile, st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,70}", fullmatch=True)), st.sampled_from(list(NameBy)))
def test_bootefi_kernel_flags_are_plain_words_within_1024_bytes_or_refused(options, label, name_by):
    plan = plan4(options=options)
    plan = dataclasses.replace(plan, partitions=tuple(dataclasses.replace(p, fs=dataclasses.replace(p.fs, label=label)) if p.name == "BOOT" else p for p in plan.partitions))
    try:
        p = bootefi_plist(plan, name_by, set())
    except BootFilesError:
        return
    d = plistlib.loads(p.data)  # XML escaping is plistlib's: the parse gives the very text back
    flags = d["Kernel Flags"]
    assert flags == p.kernel_flags and len(flags.encode()) <= 1024
    words = flags.split(" ")
    assert words[0].startswith("boot=") and words[1].startswith("disk=") and words[2:] == (options.split(" ") if options else [])
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.,:/+@%=-]*", w) for w in words)
    if name_by is NameBy.LABEL:
        assert words[0] == f"boot=LABEL={label}" and len(label) <= 64


# ------------------------------------------------------------------------ kexec (3.x)


def _plist(flags: str | None, **extra) -> bytes:
    d = {"Kernel": "mach_kernel", "Background Color": 0, **extra}
    if flags is not None:
        d["Kernel Flags"] = flags
    return plistlib.dumps(d)


def test_right_mode_keeps_the_plist_byte_for_byte():
    data = _plist("atv-boot=patchstick video=vesafb")
    p = kexec_plist(data, "patchstick", ROOT)
    assert p.data == data and not p.changed and p.note is None


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        ("atv-boot=none video=vesafb", "atv-boot=none"),  # OpenELEC 3.2's own atvboot plist
        ("atv-boot=manual logo.nologo", "atv-boot=manual"),  # plexinc's dual boot
        ("atv-boot=auto", "atv-boot=auto"),
        ("video=vesafb quiet", "no atv-boot="),
        ("", "no atv-boot="),
        (None, "no atv-boot="),  # no Kernel Flags key at all
        ("atv-boot=patchstick atv-boot=none", "atv-boot=none"),  # rcS takes the last
        ("atv-boot=patchstick=x video=vesafb", "atv-boot=patchstick"),  # rcS cuts at the second =
    ],
)
def test_other_modes_become_patchstick_keeping_other_flags_and_keys(flags, said):
    data = _plist(flags, **{"Boot Logo": "BootLogo.png"})
    p = kexec_plist(data, "patchstick", ROOT)
    d = plistlib.loads(p.data)
    others = [w for w in (flags or "").split() if not w.startswith("atv-boot=")]
    assert d["Kernel Flags"] == " ".join(["atv-boot=patchstick", *others])
    assert rcs_mode(d["Kernel Flags"]) == "patchstick"
    assert {k: v for k, v in d.items() if k != "Kernel Flags"} == {"Kernel": "mach_kernel", "Background Color": 0, "Boot Logo": "BootLogo.png"}
    assert p.changed and said in p.note and "--keep-boot-plist" in p.note
    with pytest.raises(BootFilesError, match="would not run patchstick.sh, and --keep-boot-plist keeps it so"):
        kexec_plist(data, "patchstick", ROOT, keep=True)


def test_no_plist_gets_one():
    p = kexec_plist(None, "patchstick", ROOT)
    assert plistlib.loads(p.data) == {
        "Background Color": 0,
        "Boot Fail Logo": "BootLogo.png",
        "Boot Logo": "BootLogo.png",
        "Kernel": "mach_kernel",
        "Kernel Flags": "atv-boot=patchstick video=vesafb",
    }
    assert p.changed and "no com.apple.Boot.plist" in p.note
    with pytest.raises(BootFilesError, match="no com.apple.Boot.plist in the recovery files"):
        kexec_plist(None, "patchstick", ROOT, keep=True)


def test_manual_mode_for_a_boot_linux_script():
    p = kexec_plist(_plist("atv-boot=patchstick"), "manual", ROOT)
    assert plistlib.loads(p.data)["Kernel Flags"] == "atv-boot=manual"


@pytest.mark.parametrize(
    ("data", "root", "message"),
    [
        (_plist("atv-boot=patchstick"), {"boot.efi"}, "names Kernel 'mach_kernel', which is not a file"),
        (_plist("atv-boot=none", Kernel="mach_kernel.old"), ROOT, "names Kernel 'mach_kernel.old'"),
        (None, {"boot.efi"}, "names Kernel 'mach_kernel'"),
        (b"<plist><dict><key>Kernel", ROOT, "cannot be read as a plist"),
        (plistlib.dumps(["a", "list"]), ROOT, "not a dictionary plist"),
        (plistlib.dumps({"Kernel Flags": 7}), ROOT, "must be strings"),
        (_plist("video=" + "x" * 1020), ROOT, "would be 1046 bytes"),
        (b" " * (1 << 21), ROOT, "not a boot plist"),
    ],
)
def test_plists_that_cannot_boot_are_refused(data, root, message):
    with pytest.raises(BootFilesError, match=re.escape(message)):
        kexec_plist(data, "patchstick", root)


def test_binary_plist_is_read_and_written_as_xml():
    data = plistlib.dumps({"Kernel": "mach_kernel", "Kernel Flags": "atv-boot=none"}, fmt=plistlib.FMT_BINARY)
    p = kexec_plist(data, "patchstick", ROOT)
    assert p.data.startswith(b"<?xml") and plistlib.loads(p.data)["Kernel Flags"] == "atv-boot=patchstick"


flag_text = st.lists(st.one_of(st.sampled_from(["atv-boot=none", "atv-boot=patchstick", "atv-boot=", "atv-boot=manual", "video=vesafb", "&amp;", "<key>", "]]>", "'", '"']), st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)), max_size=10).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(flag_text, st.sampled_from(["patchstick", "manual"]))
def test_any_recovery_flags_end_up_running_the_script_or_are_refused(flags, mode):
    data = _plist(flags)
    try:
        p = kexec_plist(data, mode, ROOT)
    except BootFilesError as e:
        assert "1024" in str(e), e  # the only refusal for a readable plist naming a present kernel
        return
    d = plistlib.loads(p.data)
    assert rcs_mode(d["Kernel Flags"]) == mode and d["Kernel Flags"] == p.kernel_flags
    assert len(d["Kernel Flags"].encode()) <= 1024
    kept = [w for w in flags.split() if not w.startswith("atv-boot=")]
    assert [w for w in d["Kernel Flags"].split() if not w.startswith("atv-boot=")] == kept
    assert d["Kernel"] == "mach_kernel"


@pytest.mark.parametrize("mode_given", ["patchstick", "none"])
def test_recovery_flags_of_exactly_1024_bytes_are_taken_and_1025_refused(mode_given):
    """boot.efi takes at most 1024 bytes of Kernel Flags: 1024 is the last length allowed, both
    when the plist is kept and when its atv-boot= is rewritten (none -> patchstick: 6 bytes more)."""
    pad = 1024 - len("atv-boot=patchstick ")
    given = f"atv-boot={mode_given} " + "x" * pad  # 1024 bytes once it says atv-boot=patchstick
    p = kexec_plist(_plist(given), "patchstick", ROOT)
    assert len(p.kernel_flags.encode()) == 1024 and atv_boot_mode(p.kernel_flags) == "patchstick"
    kexec = expectation(resolve(load_layout("atv1-openelec"), 4 << 30, 512))
    assert kexec.problems(p.data, ROOT) == []
    with pytest.raises(BootFilesError, match="Kernel Flags would be 1025 bytes; boot.efi takes at most 1024"):
        kexec_plist(_plist(given + "x"), "patchstick", ROOT)
    longer = plistlib.dumps({**plistlib.loads(p.data), "Kernel Flags": p.kernel_flags + "x"})
    assert kexec.problems(longer, ROOT) == ["/com.apple.Boot.plist: Kernel Flags are 1025 bytes; boot.efi takes at most 1024"]


# ------------------------------------------------------------------------ what verify checks


def test_expectations_catch_what_would_not_boot():
    kexec = expectation(resolve(load_layout("atv1-openelec"), 4 << 30, 512))
    assert kexec == PlistExpectation("com.apple.Boot.plist", BootMethod.KEXEC, mode="patchstick")
    assert kexec.problems(_plist("atv-boot=patchstick"), ROOT) == []
    assert "run atv-boot=none, not atv-boot=patchstick" in kexec.problems(_plist("atv-boot=none"), ROOT)[0]
    assert "run nothing (no atv-boot=)" in kexec.problems(_plist("quiet"), ROOT)[0]
    assert "is not a file at the partition's root" in kexec.problems(_plist("atv-boot=patchstick"), {"boot.efi"})[0]
    assert "not a readable plist" in kexec.problems(b"junk", ROOT)[0]
    plan = plan4()
    efi = expectation(plan)
    good = bootefi_plist(plan, None, {"MACH_KERNEL"}).data
    assert efi.problems(good, {"MACH_KERNEL"}) == []
    bad = plistlib.dumps({**plistlib.loads(good), "Kernel Flags": "boot=/dev/sdb1 disk=/dev/sda2 quiet"})
    assert "expected 'boot=/dev/sda1" in efi.problems(bad, {"MACH_KERNEL"})[0]
    assert any("1024" in x for x in efi.problems(plistlib.dumps({"Kernel": "MACH_KERNEL", "Kernel Flags": "x" * 1025}), {"MACH_KERNEL"}))


def test_plists_up_to_1_mib_are_read():
    base = _plist("atv-boot=patchstick")
    head, tail = base.split(b"<dict>", 1)
    pad = (1 << 20) - len(base) - len(b"<!--  -->")
    exact = head + b"<!-- " + b"x" * pad + b" --><dict>" + tail
    assert len(exact) == 1 << 20 and plistlib.loads(exact)["Kernel Flags"] == "atv-boot=patchstick"
    assert kexec_plist(exact, "patchstick", ROOT).data == exact
    with pytest.raises(BootFilesError, match="1048577 bytes: not a boot plist"):
        kexec_plist(exact + b" ", "patchstick", ROOT)


def test_a_plist_that_cannot_be_written_back_as_xml_is_refused():
    data = plistlib.dumps({"Kernel": "mach_kernel", "Kernel Flags": "atv-boot=none", "Note": "a\x01b"}, fmt=plistlib.FMT_BINARY)
    with pytest.raises(BootFilesError, match="cannot be written as XML"):
        kexec_plist(data, "patchstick", ROOT)


def test_bootefi_plist_needs_a_bootefi_layout_and_a_plain_kernel():
    with pytest.raises(BootFilesError, match="does not boot by bootefi"):
        bootefi_plist(resolve(load_layout("atv1-openelec"), 4 << 30, 512, seed="x"), None, set())
    with pytest.raises(BootFilesError, match="must be a plain file name"):
        bootefi_plist(plan4(kernel="MACH KERNEL"), None, set())


def test_verify_expectation_of_a_plist_that_is_not_a_dictionary_or_has_odd_values():
    efi = expectation(plan4())
    assert efi.problems(plistlib.dumps([1, 2]), {"MACH_KERNEL"}) == ["/com.apple.Boot.plist is not a dictionary plist"]
    odd = plistlib.dumps({"Kernel": "MACH_KERNEL", "Kernel Flags": 7})
    assert efi.problems(odd, {"MACH_KERNEL"}) == ["/com.apple.Boot.plist: Kernel and Kernel Flags must be strings"]
    odd = plistlib.dumps({"Kernel": 7, "Kernel Flags": "boot=/dev/sda1 disk=/dev/sda2"})
    assert efi.problems(odd, {"MACH_KERNEL"}) == ["/com.apple.Boot.plist: Kernel and Kernel Flags must be strings"]


def test_verify_without_the_identifiers_checks_the_shape_of_uuid_flags():
    """verify of an unseeded 4.x disk by uuid: the UUIDs are unknown, the shape is still checked."""
    layout = load_layout("atv1-openelec4")
    unseeded = resolve(layout, 4 << 30, 512)
    assert unseeded.seed is None
    exp = expectation(unseeded, NameBy.UUID)
    assert exp.kernel_flags is None and exp.kernel == "MACH_KERNEL"
    good = plistlib.dumps({"Kernel": "MACH_KERNEL", "Kernel Flags": "boot=UUID=a disk=UUID=b quiet"})
    assert exp.problems(good, {"MACH_KERNEL"}) == []
    assert exp.problems(plistlib.dumps({"Kernel": "MACH_KERNEL", "Kernel Flags": "boot=UUID=a disk=UUID=b"}), {"MACH_KERNEL"}) == []
    for flags in ("disk=UUID=b boot=UUID=a", "boot=UUID=a", "quiet", ""):
        bad = plistlib.dumps({"Kernel": "MACH_KERNEL", "Kernel Flags": flags})
        assert exp.problems(bad, {"MACH_KERNEL"}) == [f"/com.apple.Boot.plist: Kernel Flags {flags!r} do not start with boot=... disk=..."]
    # Seeded, or by device/label, the flags are known exactly.
    assert expectation(resolve(layout, 4 << 30, 512, seed="s"), NameBy.UUID).kernel_flags.startswith("boot=UUID=")
    assert expectation(unseeded, NameBy.DEVICE).kernel_flags == "boot=/dev/sda1 disk=/dev/sda2 quiet BOOT_IMAGE=MACH_KERNEL SYSTEM_IMAGE=SYSTEM"
    assert expectation(unseeded).kernel_flags is not None  # the layout names by device
    assert expectation(resolve(load_layout("atv1-factory"), 4 << 30, 512)) is None  # no [boot]
