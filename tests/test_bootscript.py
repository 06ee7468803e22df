"""The boot script (atvdisk/bootscript.py), run as atv-bootloader runs it.

Judges: dash, bash and busybox sh (``-n``, and running the script), util-linux ``blkid`` (the
UUIDs OpenELEC's init must be given), and an emulated ATV (tests/atv_sandbox.py): the script
reads real atvdisk-built filesystems through /dev, sees /proc/partitions and /proc/mounts as
atv-bootloader's kernel shows them, and has only the 2008 userland's commands on PATH (no
findfs, no blkid, no fsck.ext4), with recorders for mount, umount, kexec and fsck.hfsplus.
The same runs happen for real under qemu in tests/kernel/test_atv_bootchain_kernel.py.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from atv_sandbox import build_image, extract_partitions, run_script

from atvdisk.bootscript import (
    BODY,
    HEADER,
    VARIABLES,
    generate,
    hfs_blkid_uuid,
    label_forms,
    raw_id,
    sh_quote,
)
from atvdisk.errors import BootFilesError, LayoutError
from atvdisk.fs.hfs_adapter import read_small_file
from atvdisk.inputs.sample import write_sample
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import FsKind, NameBy, load_layout, parse_layout

CF_BYTES = 8_451_072 * 512  # the original procedure's 4327MB CF card
IMAGE_BYTES = 2 * 10**9  # atv1-openelec's smallest disk
FACTORY_BYTES = 4 * 10**9


def plan_for(layout_name="atv1-openelec", atv_disk=None, seed="bootscript-tests"):
    layout = load_layout(layout_name)
    if atv_disk:
        layout = dataclasses.replace(layout, disk=dataclasses.replace(layout.disk, atv_disk=atv_disk))
    return resolve(layout, CF_BYTES, 512, seed=seed)


def blkid(image: Path, offset: int) -> dict[str, str]:
    """util-linux blkid's view of the filesystem at ``offset`` of ``image``."""
    out = subprocess.run(["blkid", "-p", "-O", str(offset), "-o", "export", str(image)], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


# ------------------------------------------------------------------------ the text itself


def test_script_is_the_constant_body_after_quoted_assignments():
    plan = plan_for()
    script = generate(plan)
    assert [name for name, _ in script.values] == list(VARIABLES)
    assignments = "".join(f"{name}={sh_quote(value)}\n" for name, value in script.values)
    assert script.text == HEADER + assignments + BODY
    values = dict(script.values)
    osboot, media = plan.partition("OSBoot"), plan.partition("Media")
    assert values["DISK"] == "sda" and values["NAME_BY"] == "device" and values["KERNEL"] == "KERNEL"
    assert (values["BOOT_NUM"], values["BOOT_FS"], values["STORAGE_NUM"], values["STORAGE_FS"]) == ("3", "hfsplus", "4", "ext4")
    assert values["BOOT_ID"] == osboot.fs.uuid.lower() and values["STORAGE_ID"] == media.fs.uuid.replace("-", "")
    assert values["BOOT_LABEL"] == "" and values["BOOT_LABEL_HFS"] == ""  # labels only in label mode
    assert script.command_line == "boot=/dev/sda3 disk=/dev/sda4 quiet nosplash" and script.mode == "patchstick"


def test_nominal_command_lines():
    plan = plan_for()
    assert generate(plan_for(atv_disk="/dev/sdb")).command_line == "boot=/dev/sdb3 disk=/dev/sdb4 quiet nosplash"
    assert generate(plan, NameBy.LABEL).command_line == "boot=LABEL=OSBoot disk=LABEL=Linux quiet nosplash"
    osboot, media = plan.partition("OSBoot"), plan.partition("Media")
    # HFS+: the UUID blkid and busybox >= 1.21 (OpenELEC 3.x's init) derive from the volume id.
    uuid_line = generate(plan, NameBy.UUID).command_line
    assert uuid_line == f"boot=UUID={hfs_blkid_uuid(osboot.fs.uuid)} disk=UUID={media.fs.uuid} quiet nosplash"
    values = dict(generate(plan, NameBy.LABEL).values)
    assert (values["BOOT_LABEL"], values["STORAGE_LABEL"]) == ("OSBoot", "Linux")


def test_hfs_uuid_derivation_matches_a_known_volume():
    # A volume id and the UUID util-linux's blkid printed for it (and again below, on real volumes).
    assert hfs_blkid_uuid("7B8031DCF3FA5B8D") == "615848dd-d058-31fd-99e4-46b0a4fd6c0f"


def _volume_ids_covering_the_uuid_bits() -> list[int]:
    """Volume ids whose MD5 digests put every pattern in the bytes the UUID's version (byte 6,
    high nibble) and variant (byte 8, two high bits) overwrite: the nibble to keep all 0s and all
    1s, the nibble to replace not already 3, the variant bits 00, 01, 10 and 11, and the six bits
    to keep all 0s and all 1s. A single vector can hide a wrong mask; these cannot."""
    import hashlib

    from atvdisk.bootscript import HFS_UUID_NAMESPACE

    wanted = {
        "b6 low 0": lambda d: d[6] & 0x0F == 0x0 and d[6] >> 4 != 3,
        "b6 low F": lambda d: d[6] & 0x0F == 0xF and d[6] >> 4 != 3,
        "b6 high F": lambda d: d[6] >> 4 == 0xF,
        "b8 00 + 3F": lambda d: d[8] >> 6 == 0 and d[8] & 0x3F == 0x3F,
        "b8 11 + 00": lambda d: d[8] >> 6 == 3 and d[8] & 0x3F == 0,
        "b8 01": lambda d: d[8] >> 6 == 1,
    }
    found: dict[str, int] = {}
    vid = 1
    while len(found) < len(wanted):
        d = hashlib.md5(HFS_UUID_NAMESPACE + vid.to_bytes(8, "big")).digest()
        for what, test in wanted.items():
            if what not in found and test(d):
                found[what] = vid
        vid += 1
    return sorted(set(found.values()))


def test_hfs_uuid_as_blkid_derives_it(tmp_path):
    """blkid (util-linux) is the judge: for volume ids chosen so that no bit of the version and
    variant fields can be wrong unnoticed, the UUID blkid reads from a real HFS+ volume is the
    one the boot script is given."""
    from atvdisk.fs.hfsplus.layout import VolumeOptions
    from atvdisk.fs.hfsplus.tree import HfsTree
    from atvdisk.fs.hfsplus.writer import write_volume
    from atvdisk.fs.region import Region

    for vid in _volume_ids_covering_the_uuid_bits() + [2**64 - 1]:
        image = tmp_path / f"{vid}.hfs"
        with Region.open(image, 0, 1 << 20, create=True) as region:
            write_volume(HfsTree(), VolumeOptions(volume_id=vid, create_time=1), region)
        blkid = subprocess.run(["blkid", "-p", "-o", "value", "-s", "UUID", str(image)], capture_output=True, text=True, check=True)
        assert hfs_blkid_uuid(f"{vid:016X}") == blkid.stdout.strip(), vid


def test_label_forms_are_the_on_disk_bytes():
    assert label_forms("OSBoot") == ("OSBoot".encode("utf-16-be").hex(), (b"OSBoot" + b"\0" * 10).hex(), b"OSBoot     ".hex())
    assert label_forms("A-very-long-label-x")[1:] == ("", "")  # no ext4 or FAT label can be 19 bytes


@pytest.mark.parametrize("length", [1, 5, 10, 11, 12, 15, 16, 17])
def test_label_forms_are_what_mke2fs_and_mkfs_fat_write(tmp_path, length):
    """The script compares the label bytes it reads with these: judged by the real tools at every
    length around the fields' sizes (ext4 16 bytes NUL-padded at 1024+0x78, FAT32 11 bytes
    space-padded at 71); a label a field cannot hold has no form ('': never matched there)."""
    label = "ABCDEFGHIJKLMNOPQ"[:length]
    _, ext, fat = label_forms(label)
    img = tmp_path / "e.img"
    r = subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", label, str(img), "4M"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(img, "rb") as f:
        f.seek(1024 + 0x78)
        on_disk = f.read(16)
    if length <= 16:
        assert ext == on_disk.hex()
    else:
        assert ext == "" and on_disk == label.encode()[:16]  # mke2fs truncates: the label is not there
    img = tmp_path / "f.img"
    r = subprocess.run(["mkfs.fat", "-F", "32", "-n", label, "-C", str(img), str(40 * 1024)], capture_output=True, text=True)
    if length <= 11:
        assert r.returncode == 0, r.stderr
        with open(img, "rb") as f:
            f.seek(71)
            assert fat == f.read(11).hex()
    else:
        assert r.returncode != 0 and fat == ""  # mkfs.fat refuses it too


def test_sh_quote_takes_only_text():
    for value in (5, b"OSBoot", None):
        with pytest.raises(TypeError, match="sh_quote takes text"):
            sh_quote(value)


def test_raw_ids_are_what_is_on_the_disk(tmp_path):
    """The script compares these with bytes it reads: they must be the very bytes (read here
    with Python at the offsets the script uses, and named as blkid names them)."""
    sample = write_sample(tmp_path / "s")
    img = tmp_path / "a.img"
    plan = build_image(img, "atv1-openelec", IMAGE_BYTES, sample, seed="ids")
    with open(img, "rb") as f:
        for p in plan.partitions:
            if p.fs.kind.value in ("hfsplus", "ext4"):
                f.seek(p.offset + 1128)
                assert f.read(16 if p.fs.kind.value == "ext4" else 8).hex() == raw_id(p)
            if p.fs.kind.value == "fat32":
                f.seek(p.offset + 67)
                assert f.read(4).hex() == raw_id(p)
                assert blkid(img, p.offset)["UUID"] == p.fs.uuid
            if p.fs.kind.value == "hfsplus":
                assert blkid(img, p.offset)["UUID"] == hfs_blkid_uuid(p.fs.uuid)


@pytest.mark.parametrize("shell", [["dash", "-n"], ["bash", "-n"], ["busybox", "sh", "-n"]])
@pytest.mark.parametrize("name_by", list(NameBy))
def test_script_parses_in_every_shell(tmp_path, shell, name_by):
    path = tmp_path / "patchstick.sh"
    path.write_text(generate(plan_for(), name_by).text)
    r = subprocess.run([*shell, str(path)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr


# ------------------------------------------------------------------------ refusals


def _with_boot(plan, **changes):
    return dataclasses.replace(plan, boot=dataclasses.replace(plan.boot, **changes))


def _with_part(plan, name, **fs_changes):
    parts = tuple(
        dataclasses.replace(p, fs=dataclasses.replace(p.fs, **fs_changes)) if p.name == name else p for p in plan.partitions
    )
    return dataclasses.replace(plan, partitions=parts)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: dataclasses.replace(p, atv_disk="/dev/sda;touch /tmp/x;#"), "not a disk name the ATV has"),
        (lambda p: dataclasses.replace(p, atv_disk="/dev/sdi"), "not a disk name the ATV has"),
        (lambda p: _with_boot(p, kernel="KERNEL;reboot"), "plain file name"),
        (lambda p: _with_boot(p, kernel="-KERNEL"), "plain file name"),
        (lambda p: _with_boot(p, options='quiet "x'), "not a plain kernel parameter"),
        (lambda p: _with_boot(p, options="quiet `reboot`"), "not a plain kernel parameter"),
        (lambda p: _with_boot(p, options="quiet  nosplash"), "single spaces"),
        (lambda p: _with_boot(p, options="disk=/dev/sdb4"), "set by [boot] itself"),
        (lambda p: _with_boot(p, options="x" * 1000), "boot.efi passes at most 1024"),
        (lambda p: _with_part(p, "OSBoot", uuid="7B8031DC'$(reboot)"), "is not 16 hex digits"),
        (lambda p: _with_part(p, "Media", uuid="$(reboot)"), "is not a lower-case UUID"),
    ],
)
def test_values_the_atv_would_not_take_are_refused(change, message):
    with pytest.raises(BootFilesError, match=message.replace("[", r"\[").replace("(", r"\(")):
        generate(change(plan_for()))


@pytest.mark.parametrize("label", ["OS Boot", "$(reboot)", "OS'Boot", "OS*", "Ü", "a" * 65, "\x07bell", "cr\r"])
def test_labels_the_atv_cannot_match_are_refused_in_label_mode(label):
    plan = _with_part(plan_for(), "OSBoot", label=label)
    with pytest.raises(BootFilesError, match="cannot be named with LABEL="):
        generate(plan, NameBy.LABEL)
    generate(plan, NameBy.UUID)  # labels are not in the script unless it names by label


def test_no_script_for_a_bootefi_plan_or_a_kernel_atv_bootloader_cannot_read():
    with pytest.raises(BootFilesError, match="the layout boots by bootefi: it has no boot script"):
        generate(resolve(load_layout("atv1-openelec4"), CF_BYTES, 512, seed="x"))
    plan = plan_for()
    ext4 = _with_part(plan, "OSBoot", kind=FsKind.EXT4)  # past the layout parser, which refuses it
    with pytest.raises(BootFilesError, match=r"cannot read KERNEL from the ext4 partition OSBoot"):
        generate(ext4)


def test_a_plan_without_boot_or_with_a_storage_the_script_cannot_recognise_is_refused():
    plan = plan_for()
    with pytest.raises(BootFilesError, match=r"the layout has no \[boot\] table"):
        generate(dataclasses.replace(plan, boot=None))
    for kind in (FsKind.SWAP, FsKind.NONE):
        with pytest.raises(BootFilesError, match=f"the storage partition Media has no filesystem the script can recognise \\({kind}\\)"):
            generate(_with_part(plan, "Media", kind=kind))


def test_a_fat32_kernel_partition_is_named_by_its_volume_id():
    """atv-bootloader's kernel reads FAT too: the FAT volume id is what blkid and OpenELEC's
    init show (XXXX-XXXX), and it is checked for that form like the others."""
    fat = _with_part(plan_for(), "OSBoot", kind=FsKind.FAT32, uuid="1A2B-3C4D", label="OSBOOT")
    assert generate(fat, NameBy.UUID).command_line.startswith("boot=UUID=1A2B-3C4D disk=UUID=")
    assert raw_id(fat.partition("OSBoot")) == "4d3c2b1a"  # little-endian at byte 67
    for bad in ("1a2b-3c4d", "1A2B3C4D", "1A2B-3C4D'"):
        with pytest.raises(BootFilesError, match="FAT volume id .* is not XXXX-XXXX"):
            generate(_with_part(plan_for(), "OSBoot", kind=FsKind.FAT32, uuid=bad), NameBy.UUID)


def test_every_fallback_command_line_fits_1024_bytes():
    """By label, the script may hand over UUID= instead (41 bytes each): that must fit as well."""
    plan = plan_for()
    room = 1024 - len("boot=LABEL=OSBoot disk=LABEL=Linux ")
    labelled = _with_boot(plan, options="x" * room)
    with pytest.raises(BootFilesError, match="at most 1024"):
        generate(labelled, NameBy.LABEL)
    uuid_room = 1024 - len(generate(plan, NameBy.UUID).command_line.replace(" quiet nosplash", "")) - 1
    assert len(generate(_with_boot(plan, options="x" * uuid_room), NameBy.LABEL).command_line) < 1024
    with pytest.raises(BootFilesError, match="at most 1024"):
        generate(_with_boot(plan, options="x" * (uuid_room + 1)), NameBy.LABEL)


def test_kexec_from_ext4_is_refused_at_load():
    layout = """
        [boot]
        boot = "Boot"
        storage = "Data"
        [[partition]]
        name = "Boot"
        type = "linux"
        size = "100MiB"
        fs = { kind = "ext4" }
        [[partition]]
        name = "Data"
        type = "hfsplus"
        size = "rest"
        fs = { kind = "hfsx" }
    """
    with pytest.raises(LayoutError, match="no ext4"):
        parse_layout(layout)


# ------------------------------------------------------------------------ the emulated ATV


@pytest.fixture(scope="module")
def disks(tmp_path_factory):
    """Partitions of three atvdisk disks: A and B (atv1-openelec, different identifiers) and F
    (Apple's stock layout, whose HFS+ partition 3 is labelled OSBoot, as atv1-openelec's)."""
    tmp = tmp_path_factory.mktemp("boot-disks")
    sample = write_sample(tmp / "sample")
    out = {}
    for name, layout, size in (("A", "atv1-openelec", IMAGE_BYTES), ("B", "atv1-openelec", IMAGE_BYTES), ("F", "atv1-factory", FACTORY_BYTES)):
        img = tmp / f"{name}.img"
        plan = build_image(img, layout, size, sample, seed=f"disk-{name}")
        out[name] = (img, plan, extract_partitions(img, plan, tmp / name))
    return out


def _uuid(disks, name: str, number: int) -> str:
    img, plan, _ = disks[name]
    return blkid(img, plan.partitions[number - 1].offset)["UUID"]


def _expected_calls(disk: str, cmdline: str, here: str) -> list[tuple[str, ...]]:
    return [
        ("fsck.hfsplus", "-p", f"/dev/{disk}3"),  # no fsck.ext4 in 2008's userland: not called
        ("mount", "-t", "hfsplus", "-o", "ro", f"/dev/{disk}3", "/boot"),
        ("kexec", "-l", "/boot/KERNEL", f"--command-line={cmdline}"),
        ("umount", "/boot"),
        ("umount", here),  # the partition it was found on, left mounted rw,force: unmounted, clean
        ("kexec", "-e"),
    ]


# (scenario, attached disks {ATV name: disk}, the disk whose script runs, the partition it runs from)
SCENARIOS = {
    "alone-as-sda": ({"sda": "A"}, "A", "sda2"),
    "alone-as-usb-sdb": ({"sdb": "A"}, "A", "sdb2"),
    "usb-stick-first": ({"sda": "A", "sdb": "B"}, "B", "sdb2"),  # what atv-bootloader runs: USB first
    "internal-with-stick": ({"sda": "A", "sdb": "B"}, "A", "sda2"),
    "clone-on-usb": ({"sda": "A", "sdb": "A"}, "A", "sdb2"),  # the same image written twice
    "stick-with-apple-disk": ({"sda": "F", "sdb": "A"}, "A", "sdb2"),  # Apple's OSBoot is also "OSBoot"
}


def expected_command_line(disks, scenario: str, name_by: NameBy) -> tuple[str, str]:
    """(ATV disk the script must boot, OpenELEC's command line), written out per scenario."""
    attached, owner, runs_from = SCENARIOS[scenario]
    disk = runs_from[:3]
    dev = (f"/dev/{disk}3", f"/dev/{disk}4")
    uuid = (f"UUID={_uuid(disks, owner, 3)}", f"UUID={_uuid(disks, owner, 4)}")
    label = ("LABEL=OSBoot", "LABEL=Linux")
    others = [d for a, d in attached.items() if a != disk]
    if name_by is NameBy.DEVICE:
        spec = dev
    elif scenario == "clone-on-usb":  # same labels and same ids on the other disk: devices
        spec = dev
    elif name_by is NameBy.UUID:
        spec = uuid
    elif not others:
        spec = label
    elif scenario == "stick-with-apple-disk":  # OSBoot clashes with Apple's; Linux does not
        spec = (uuid[0], label[1])
    else:  # another atvdisk disk carries both labels
        spec = uuid
    return disk, f"boot={spec[0]} disk={spec[1]} quiet nosplash"


@pytest.mark.parametrize("name_by", list(NameBy))
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_script_boots_its_own_disk_in_the_emulated_atv(disks, tmp_path, scenario, name_by):
    attached, owner, runs_from = SCENARIOS[scenario]
    plan = disks[owner][1]
    run = run_script(generate(plan, name_by).text, {a: disks[d][2] for a, d in attached.items()}, tmp_path / "atv", runs_from=runs_from)
    disk, cmdline = expected_command_line(disks, scenario, name_by)
    assert run.calls == _expected_calls(disk, cmdline, "/mnt/rootfs"), run.stderr
    assert run.handed_over and run.rc == -9, run.stderr  # killed by the kexec -e recorder: no return
    assert run.stdout == ""  # everything goes to stderr (rcS swallows stdout)
    assert "not found" not in run.stderr  # only the 2008 userland's commands are used
    assert f"atvdisk boot: starting OpenELEC: /dev/{disk}3:/KERNEL {cmdline}" in run.stderr
    if disk != "sda":
        assert f"this disk is /dev/{disk} here (it was built as /dev/sda)" in run.stderr
    if scenario == "clone-on-usb" and name_by is not NameBy.DEVICE:  # said, for each partition
        for n in (3, 4):
            assert f"UUID={_uuid(disks, 'A', n)} is also on /dev/sda{n} (a copy of this disk?): naming /dev/sdb{n} by its device" in run.stderr


@pytest.mark.parametrize("shell", ["bash"])
@pytest.mark.parametrize("name_by", list(NameBy))
def test_script_runs_alike_under_bash(disks, tmp_path, shell, name_by):
    _, plan, parts = disks["B"]
    run = run_script(generate(plan, name_by).text, {"sda": disks["A"][2], "sdb": parts}, tmp_path / "atv", runs_from="sdb2", shell=shell)
    _, cmdline = expected_command_line(disks, "usb-stick-first", name_by)
    assert run.kexec_load() == ("kexec", "-l", "/boot/KERNEL", f"--command-line={cmdline}") and run.handed_over, run.stderr


def test_the_image_holds_the_generated_script(disks):
    img, plan, _ = disks["A"]
    rec = plan.partition("Recovery")
    assert read_small_file(str(img), rec.offset, rec.size_bytes, "patchstick.sh") == generate(plan).text.encode()


def test_script_found_elsewhere_uses_the_one_disk_that_holds_its_partitions(disks, tmp_path):
    _, plan, parts = disks["B"]
    run = run_script(generate(plan).text, {"sda": disks["A"][2], "sdb": parts}, tmp_path / "atv", runs_from=None)
    assert run.kexec_load()[-1] == "--command-line=boot=/dev/sdb3 disk=/dev/sdb4 quiet nosplash" and run.handed_over
    assert "running from an unknown partition; OpenELEC's partitions are on /dev/sdb" in run.stderr
    assert ("umount", "/mnt/rootfs") not in run.calls  # not found on a mounted partition: nothing of ours to unmount


def test_no_disk_holds_its_partitions_fails_loudly_before_kexec(disks, tmp_path):
    _, plan, _ = disks["B"]
    run = run_script(generate(plan).text, {"sda": disks["A"][2], "sdb": disks["F"][2]}, tmp_path / "atv", runs_from="sda2")
    assert run.rc == 1 and not [c for c in run.calls if c[0] == "kexec"]
    assert "OpenELEC's partitions (partition 3: hfsplus id" in run.stderr and "are on none of the disks: /dev/sda /dev/sdb" in run.stderr
    assert "telnet rescue shell" in run.stderr and run.stdout == ""


def test_copies_without_the_running_one_are_refused(disks, tmp_path):
    _, plan, parts = disks["A"]
    run = run_script(generate(plan).text, {"sda": parts, "sdb": parts, "sdc": disks["F"][2]}, tmp_path / "atv", runs_from="sdc2")
    assert run.rc == 1 and "on several disks: /dev/sda /dev/sdb" in run.stderr and not run.calls


@pytest.mark.parametrize("swapped", [3, 4])
def test_a_disk_whose_boot_or_storage_filesystem_is_another_is_not_booted(disks, tmp_path, swapped):
    """Its own disk, with partition 3 (OSBoot) or 4 (Media) holding another disk's filesystem (a
    partition restored or reformatted since the build): both ids must match, or OpenELEC would be
    handed a boot=/disk= that names another filesystem."""
    _, plan, parts = disks["A"]
    mixed = {**parts, swapped: disks["B"][2][swapped]}
    run = run_script(generate(plan).text, {"sda": mixed}, tmp_path / "atv", runs_from="sda2")
    assert run.rc == 1 and not [c for c in run.calls if c[0] == "kexec"], run.stderr
    assert "are on none of the disks: /dev/sda" in run.stderr


def test_labels_on_a_users_fat_and_ext4_stick_are_seen(disks, tmp_path):
    """A stick the user formatted (mkfs.fat, mke2fs) whose labels are OSBoot and Linux: OpenELEC's
    init could mount those, so by label the script names this disk's partitions by UUID."""
    _, plan, parts = disks["A"]
    fat, ext = tmp_path / "fat.img", tmp_path / "ext.img"
    subprocess.run(["mkfs.fat", "-F", "32", "-n", "OSBoot", "-C", str(fat), str(40 * 1024)], check=True, capture_output=True)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "Linux", str(ext), "4M"], check=True, capture_output=True)
    assert blkid(fat, 0)["LABEL"] == "OSBoot" and blkid(ext, 0)["LABEL"] == "Linux"  # as OpenELEC's init would see them
    run = run_script(generate(plan, NameBy.LABEL).text, {"sda": parts, "sdb": {1: fat, 2: ext}}, tmp_path / "atv", runs_from="sda2")
    cmdline = f"boot=UUID={_uuid(disks, 'A', 3)} disk=UUID={_uuid(disks, 'A', 4)} quiet nosplash"
    assert run.kexec_load() == ("kexec", "-l", "/boot/KERNEL", f"--command-line={cmdline}") and run.handed_over, run.stderr
    assert "LABEL=OSBoot is also on /dev/sdb1" in run.stderr and "LABEL=Linux is also on /dev/sdb2" in run.stderr


@pytest.mark.parametrize("name_by", list(NameBy))
def test_tiny_or_unreadable_partitions_elsewhere_do_not_stop_the_boot(disks, tmp_path, name_by):
    """A 1 KiB partition (an MBR's extended partition entry) and an empty one on another disk:
    probing them reads nothing where a superblock would be, and the script goes on."""
    _, plan, parts = disks["A"]
    tiny, empty = tmp_path / "tiny", tmp_path / "empty"
    tiny.write_bytes(b"\x55" * 1024)
    empty.write_bytes(b"")
    run = run_script(generate(plan, name_by).text, {"sda": parts, "sdb": {1: tiny, 2: empty}}, tmp_path / "atv", runs_from="sda2")
    _, cmdline = expected_command_line(disks, "alone-as-sda", name_by)
    assert run.kexec_load() == ("kexec", "-l", "/boot/KERNEL", f"--command-line={cmdline}") and run.handed_over, run.stderr


def test_a_busy_recovery_partition_is_remounted_read_only_before_the_hand_over(disks, tmp_path):
    _, plan, parts = disks["A"]
    run = run_script(generate(plan).text, {"sda": parts}, tmp_path / "atv", umount_fails="/mnt/rootfs")
    assert run.calls[-3:] == [("umount", "/mnt/rootfs"), ("mount", "-o", "remount,ro", "/mnt/rootfs"), ("kexec", "-e")], run.stderr


def test_missing_kernel_fails_before_kexec_and_unmounts(disks, tmp_path):
    _, plan, parts = disks["A"]
    run = run_script(generate(plan).text, {"sda": parts}, tmp_path / "atv", kernel=None)
    assert run.rc == 1 and "no KERNEL on /dev/sda3" in run.stderr
    assert run.calls[-1] == ("umount", "/boot") and not [c for c in run.calls if c[0] == "kexec"]


@pytest.mark.parametrize(("fsck_rc", "said"), [(1, None), (4, "fsck.hfsplus -p /dev/sda3 exit status 4: starting OpenELEC anyway")])
def test_fsck_results_never_stop_the_boot(disks, tmp_path, fsck_rc, said):
    _, plan, parts = disks["A"]
    run = run_script(generate(plan).text, {"sda": parts}, tmp_path / "atv", fsck_rc=fsck_rc)
    assert run.handed_over
    assert (said in run.stderr) if said else ("exit status" not in run.stderr)


def test_absent_fsck_tools_are_skipped_with_a_note(disks, tmp_path):
    _, plan, parts = disks["A"]
    run = run_script(generate(plan).text, {"sda": parts}, tmp_path / "atv", recorded=("mount", "umount", "kexec"))
    assert run.handed_over and run.calls[0][0] == "mount"
    assert "no fsck.hfsplus here: /dev/sda3 not checked" in run.stderr and "no fsck.ext4 here: /dev/sda4 not checked" in run.stderr


def test_without_fsck_in_the_layout_nothing_is_checked(disks, tmp_path):
    _, plan, parts = disks["A"]
    run = run_script(generate(_with_boot(plan, fsck=False)).text, {"sda": parts}, tmp_path / "atv")
    assert run.handed_over and not [c for c in run.calls if c[0].startswith("fsck")] and "fsck" not in run.stderr


def test_sandbox_has_no_findfs_blkid_or_fsck_ext4(tmp_path):
    """The emulation is only as good as its PATH: a script calling findfs must fail in it."""
    script = "#!/bin/sh\nfor t in findfs blkid fsck.ext4 hexdump dd; do command -v $t >/dev/null && echo $t-present >&2 || echo $t-missing >&2; done\n"
    run = run_script(script, {}, tmp_path / "atv", runs_from=None)
    for tool in ("findfs", "blkid", "fsck.ext4"):
        assert f"{tool}-missing" in run.stderr
    for tool in ("hexdump", "dd"):
        assert f"{tool}-present" in run.stderr
