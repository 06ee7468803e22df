"""The disks `atvdisk build` makes, judged by the Debian kernel, util-linux blkid and busybox.

Both bundled layouts are built from the sample payload (``SOURCE_DATE_EPOCH`` fixed), attached
to a qemu guest (tests/kernel/harness.py) and checked the way the Apple TV uses them:

1. blkid's view of every partition against the plan: util-linux ``blkid -p`` (type GUID,
   partition name, GUID, start and size, TYPE, LABEL, UUID: for HFS+ the MD5-derived UUID) and
   busybox's (``findfs`` of every LABEL= and UUID=, with only that disk's nodes in /dev; Debian's
   busybox has no ``blkid`` applet, findfs and mount use the same volume_id code);
2. every filesystem mounted by the kernel's own driver: EFI vfat; non-journaled HFS+ read-write
   (a file written, the volume unmounted, mounted again read-write and clean, the file read back
   and removed); journaled HFS+ read-only with the kernel's journal message; Media ext4
   read-write; swap accepted by ``swapon``; "not cleanly unmounted" nowhere;
3. every file (type, mode, owner, size, sha256; names in NFC) compared on the host with what the
   sources say, computed here without atvdisk: Python's tarfile over the sample tarballs, the
   keyword, ``atvdisk.bootscript.generate(plan).text`` as patchstick.sh (patchstick.boot gone),
   KERNEL/SYSTEM/md5 files, the Media seeds;
4. the command lines a boot script can hand OpenELEC's init, by label and by uuid, resolve with
   busybox findfs (OpenELEC's init uses busybox's volume_id) on every partition of each image
   (the script itself, run in an emulation of atv-bootloader's userland for every plist mode and
   naming, is tests/kernel/test_atv_bootchain_kernel.py);
5. the real hand-over: an image whose KERNEL is Debian's bzImage; its unmodified patchstick.sh
   runs with kexec-tools (guest_kexec_wrapper) and the second kernel reports its command line.

Two boots: ``layouts`` (openelec device mode as sda, factory as sdb, label mode as sdc) and
``handover`` (the hand-over image as sda, uuid mode as sdb).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from atvdisk.bootscript import fs_uuid, generate
from atvdisk.inputs.sample import SamplePayload, fake_bytes, write_sample
from atvdisk.layout.plan import Plan
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import NameBy, load_layout

from .harness import Disk, GuestResult

pytestmark = pytest.mark.kernel

EPOCH = "1300000000"
SEED = "kernel-tests"  # the bundled layouts carry no seed: every build here passes --seed SEED
OPENELEC_SECTORS = 8_451_072  # the original procedure's 4327MB CF card
FACTORY_BYTES = 4 * 10**9  # the smallest disk atv1-factory accepts
FACTORY_SIZE = "4GB"
TYPE = {"fat32": "vfat", "hfsplus": "hfsplus", "hfsx": "hfsplus", "ext4": "ext4", "swap": "swap"}
JOURNAL_MESSAGE = (
    "hfsplus: write access to a journaled filesystem is not supported, use the force option at your own risk,"
    " mounting read-only."
)
WRITTEN = "written by the guest kernel\n"

# The command lines the ATV's boot script must hand to OpenELEC's kernel (written out here, not
# taken from atvdisk): device names as the ATV sees the disk, or LABEL=/UUID= as blkid shows them.
DEVICE_CMDLINE = "boot=/dev/sda3 disk=/dev/sda4 quiet nosplash"
LABEL_CMDLINE = "boot=LABEL=OSBoot disk=LABEL=Linux quiet nosplash"


def atvdisk(*args: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    r = subprocess.run(
        [sys.executable, "-m", "atvdisk", *map(str, args)], check=False, capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, f"atvdisk {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def openelec_build(image: Path, sample: SamplePayload, *options: object, openelec: Path | None = None) -> list[object]:
    """``atvdisk build`` arguments of an atv1-openelec image of the CF card's size."""
    inputs = ["--openelec", openelec or sample.openelec, "--restore", sample.restore, "--recovery", sample.recovery]
    return ["build", image, "--size", f"{OPENELEC_SECTORS}s", "--seed", SEED, *inputs, *options]


def build_all(builds: dict[str, list[object]]) -> dict[str, dict]:
    """Run the builds two at a time (2 cores); their ``--json`` summaries by name."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        running = {name: pool.submit(atvdisk, *args, "--json") for name, args in builds.items()}
        return {name: json.loads(job.result().stdout) for name, job in running.items()}


def openelec_plan(atv_disk: str | None = None) -> Plan:
    layout = load_layout("atv1-openelec")
    if atv_disk:
        layout = dataclasses.replace(layout, disk=dataclasses.replace(layout.disk, atv_disk=atv_disk))
    return resolve(layout, OPENELEC_SECTORS * 512, 512, seed=SEED)


def factory_plan() -> Plan:
    return resolve(load_layout("atv1-factory"), FACTORY_BYTES, 512, seed=SEED)


# ------------------------------------------------------------------------ expected contents
# {path: (type, mode, size or None for directories, uid, gid, sha256 or None, symlink target)}

Expected = dict[str, tuple[object, ...]]


def _file(data: bytes, mode: int = 0o644) -> tuple[object, ...]:
    return ("f", mode, len(data), 0, 0, hashlib.sha256(data).hexdigest(), None)


def _dir(mode: int = 0o755) -> tuple[object, ...]:
    return ("d", mode, None, 0, 0, None, None)


def tar_expected(*tarballs: Path) -> Expected:
    """What extracting the tarballs in order gives: root-owned, modes without setuid/setgid/sticky."""
    out: Expected = {}
    for path in tarballs:
        with tarfile.open(path) as tar:
            for m in tar:
                name = m.name.removeprefix("./").rstrip("/")
                if not name:
                    continue
                parts = name.split("/")
                for i in range(1, len(parts)):
                    out.setdefault("/".join(parts[:i]), _dir())
                if m.isdir():
                    out[name] = _dir(m.mode & 0o777)
                elif m.isfile():
                    out[name] = _file(tar.extractfile(m).read(), m.mode & 0o777)  # type: ignore[union-attr]
                else:
                    raise AssertionError(f"the sample tarball {path} has a {m.type!r} member {name}: extend the test")
    return out


def recovery_expected(sample: SamplePayload, script: str) -> Expected:
    out = tar_expected(sample.restore, sample.recovery)
    del out["patchstick.boot"]
    out["keyword"] = _file(b"bootable\n")
    out["patchstick.sh"] = _file(script.encode(), 0o755)
    return out


def osboot_expected(openelec: Path) -> Expected:
    return {name: _file((openelec / name).read_bytes()) for name in ("KERNEL", "SYSTEM", "KERNEL.md5", "SYSTEM.md5")}


MEDIA_EXPECTED: Expected = {
    "lost+found": _dir(0o700),  # made by mke2fs
    ".config": _dir(),
    ".config/ssh_enable": _file(b""),
    ".cache": _dir(),
    ".cache/services": _dir(),
    ".cache/services/ssh.conf": _file(b"SSHD_START=true\n"),
    ".xbmc": _dir(),
    ".xbmc/userdata": _dir(),
}


def seen(result: GuestResult, name: str, *, skip: tuple[str, ...] = ()) -> Expected:
    """The guest's listing NAME as {NFC path: key}, without the root and ``skip``."""
    out: Expected = {}
    for path, entry in result.listing(name).items():
        if path == "." or path in skip:
            continue
        out[unicodedata.normalize("NFC", path)] = entry.key()[1:]
    return out


def differences(expected: Expected, got: Expected) -> dict[str, object]:
    return {
        "missing": sorted(set(expected) - set(got)),
        "unexpected": sorted(set(got) - set(expected)),
        "different": {
            p: {"expected": expected[p], "kernel": got[p]}
            for p in sorted(set(expected) & set(got))
            if expected[p] != got[p]
        },
    }


NO_DIFFERENCES = {"missing": [], "unexpected": [], "different": {}}

# ------------------------------------------------------------------------ guest side

GUEST_HELPERS = r"""
set -u
guest_recorders /tmp/rec kexec fsck.hfsplus fsck.ext4 fsck.vfat
export PATH=/tmp/rec:$PATH

# Move every /dev/sd* node that is not disk $1's out of /dev (busybox findfs scans /dev).
hide_others() {
    mkdir -p /tmp/hidden
    for n in /dev/sd*; do
        case ${n#/dev/} in "$1" | "$1"[0-9]*) ;; *) mv "$n" /tmp/hidden/ || return 1 ;; esac
    done
    ls /dev | grep '^sd' > "$RESULTS/visible-$1"
}
unhide() { mv /tmp/hidden/* /dev/; }

# findfs_each NAME SPEC...: "SPEC<TAB>device<TAB>status" per SPEC (busybox findfs)
findfs_each() {
    local out=$RESULTS/findfs/$1 spec dev rc
    shift
    mkdir -p "$RESULTS/findfs"
    : > "$out"
    for spec; do
        dev=$(busybox findfs "$spec" 2>/dev/null)
        rc=$?
        printf '%s\t%s\t%s\n' "$spec" "$dev" "$rc" >> "$out"
    done
}

# write_test NAME: write a file on NAME's mount and sync
write_test() {
    local dir out=$RESULTS/write/$1
    dir=$(cat "$RESULTS/mount/$1/dir")
    mkdir -p "$out"
    { printf '%s' "$WRITTEN" > "$dir/.atvdisk-write-test" && sync; } 2> "$out/stderr"
    echo $? > "$out/rc"
}

# readback_test NAME: read the file write_test left and remove it
readback_test() {
    local dir out=$RESULTS/readback/$1
    dir=$(cat "$RESULTS/mount/$1/dir")
    mkdir -p "$out"
    { cat "$dir/.atvdisk-write-test" > "$out/content" && rm "$dir/.atvdisk-write-test" && sync; } 2> "$out/stderr"
    echo $? > "$out/rc"
    ls -a "$dir" > "$out/after"
}

# rw_cycle NAME DEV FSTYPE: mount rw, list, write, unmount, mount rw again, read back, remove, unmount
rw_cycle() {
    guest_mount "$1" "$2" "$3" rw && guest_list "$1" && write_test "$1"
    guest_umount "$1"
    guest_mount "$1-again" "$2" "$3" rw && readback_test "$1-again"
    guest_umount "$1-again"
}
"""


def findfs_specs(plan: Plan) -> list[str]:
    specs = []
    for p in plan.partitions:
        specs += [f"LABEL={p.fs.label}", f"UUID={fs_uuid(p)}"]
    return specs


def _q(values: list[str]) -> str:
    return " ".join(shlex.quote(v) for v in values)


# ------------------------------------------------------------------------ boot 1: the layouts


@dataclass(frozen=True)
class Layouts:
    sample: SamplePayload
    plan: Plan  # atv1-openelec, sda and sdc
    factory: Plan  # sdb
    summaries: dict[str, dict]  # atvdisk build --json per image
    result: GuestResult
    tmp: Path  # the images


LAYOUTS_SCRIPT = """
guest_blkid

hide_others sda
findfs_each device-image {openelec_specs}
unhide

hide_others sdc
findfs_each label-image {openelec_specs}
unhide

hide_others sdb
findfs_each factory {factory_specs}
unhide

guest_mount efi /dev/sda1 vfat rw && guest_list efi; guest_umount efi
rw_cycle recovery /dev/sda2 hfsplus
rw_cycle osboot /dev/sda3 hfsplus
rw_cycle media /dev/sda4 ext4
guest_swapon swap /dev/sda5

guest_mount f-efi /dev/sdb1 vfat rw && guest_list f-efi; guest_umount f-efi
rw_cycle f-recovery /dev/sdb2 hfsplus
for n in 3 4; do
    guest_mount f-$n /dev/sdb$n hfsplus rw && guest_list f-$n && write_test f-$n
    guest_umount f-$n
done
echo layouts script done
"""


@pytest.fixture(scope="module")
def layouts(module_run_guest, tmp_path_factory: pytest.TempPathFactory) -> Layouts:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("atv-layouts")
    sample = write_sample(tmp / "sample")
    factory_args = ["build", tmp / "factory.img", "--layout", "atv1-factory", "--size", FACTORY_SIZE, "--seed", SEED]
    summaries = build_all(
        {
            "device": openelec_build(tmp / "device.img", sample),
            "factory": [*factory_args, "--restore", sample.restore],
            "label": openelec_build(tmp / "label.img", sample, "--name-by", "label"),
        }
    )
    plan, factory = openelec_plan(), factory_plan()
    script = GUEST_HELPERS + LAYOUTS_SCRIPT.format(
        openelec_specs=_q(findfs_specs(plan)), factory_specs=_q(findfs_specs(factory))
    )
    disks = [tmp / "device.img", tmp / "factory.img", tmp / "label.img"]
    result = module_run_guest(disks, script, env={"WRITTEN": WRITTEN}, timeout=300)
    return Layouts(sample, plan, factory, summaries, result, tmp)


def test_layouts_script_completed(layouts: Layouts) -> None:
    assert "layouts script done" in layouts.result.output
    assert layouts.result.status == 0


def _check_blkid(seen_blkid: dict[str, dict[str, str]], disk: str, plan: Plan) -> None:
    whole = seen_blkid[f"/dev/{disk}"]
    assert whole["PTTYPE"] == "gpt"
    assert whole["PTUUID"] == plan.disk_guid.lower()
    for p in plan.partitions:
        dev = f"/dev/{disk}{p.number}"
        got = seen_blkid[dev]
        want = {
            "PART_ENTRY_SCHEME": "gpt",
            "PART_ENTRY_NUMBER": str(p.number),
            "PART_ENTRY_TYPE": p.type_guid.lower(),
            "PART_ENTRY_UUID": p.guid.lower(),
            "PART_ENTRY_NAME": p.name,
            "PART_ENTRY_OFFSET": str(p.start),
            "PART_ENTRY_SIZE": str(p.sectors),
            "TYPE": TYPE[p.fs.kind.value],
            "LABEL": p.fs.label,
            "UUID": fs_uuid(p),  # exactly: what a UUID= in the boot script must say
        }
        assert {k: got.get(k) for k in want} == want, dev
    assert f"/dev/{disk}{len(plan.partitions) + 1}" not in seen_blkid


def test_util_linux_blkid_matches_the_plan(layouts: Layouts) -> None:
    seen_blkid = layouts.result.blkid()
    _check_blkid(seen_blkid, "sda", layouts.plan)
    _check_blkid(seen_blkid, "sdb", layouts.factory)
    _check_blkid(seen_blkid, "sdc", layouts.plan)
    # The HFS+ UUID the boot script's UUID= form uses is the one blkid derives from the volume id.
    osboot = layouts.plan.partition("OSBoot")
    assert seen_blkid["/dev/sda3"]["UUID"] == fs_uuid(osboot) != osboot.fs.uuid
    assert seen_blkid["/dev/sda3"]["TYPE"] == "hfsplus" and seen_blkid["/dev/sdb3"]["TYPE"] == "hfsplus"


def _findfs(result: GuestResult, name: str) -> dict[str, tuple[str, int]]:
    out = {}
    for line in result.text(f"findfs/{name}").splitlines():
        spec, dev, rc = line.split("\t")
        out[spec] = (dev, int(rc))
    return out


@pytest.mark.parametrize(
    ("name", "disk", "which"),
    [("device-image", "sda", "plan"), ("factory", "sdb", "factory"), ("label-image", "sdc", "plan")],
)
def test_busybox_findfs_finds_every_label_and_uuid(layouts: Layouts, name: str, disk: str, which: str) -> None:
    plan = getattr(layouts, which)
    visible = layouts.result.text(f"visible-{disk}").split()
    assert sorted(visible) == sorted([disk] + [f"{disk}{p.number}" for p in plan.partitions])
    want = {}
    for p in plan.partitions:
        want[f"LABEL={p.fs.label}"] = (f"/dev/{disk}{p.number}", 0)
        want[f"UUID={fs_uuid(p)}"] = (f"/dev/{disk}{p.number}", 0)
    assert _findfs(layouts.result, name) == want


def test_label_image_names_partitions_by_label(layouts: Layouts) -> None:
    # What the label image's script hands OpenELEC when the disk is alone; findfs above resolves it.
    assert layouts.summaries["label"]["kernel_command_line"] == LABEL_CMDLINE
    assert layouts.summaries["device"]["kernel_command_line"] == DEVICE_CMDLINE


def test_efi_mounts_as_vfat(layouts: Layouts) -> None:
    for name in ("efi", "f-efi"):
        mount = layouts.result.mount(name)
        assert mount.rc == 0 and mount.fstype == "vfat" and not mount.read_only, (mount.stderr, mount.dmesg_text())
        assert not [line for line in mount.dmesg if "FAT-fs" in line], mount.dmesg_text()
        # The layouts put nothing on EFI but atvdisk's manifest (the boot chain never reads EFI).
        listing = layouts.result.listing(name)
        assert set(listing) == {".", "atvdisk-manifest.json"}
        image = layouts.tmp / ("device.img" if name == "efi" else "factory.img")
        data = subprocess.run(["mtype", "-i", f"{image}@@{40 * 512}", "::/atvdisk-manifest.json"], check=True, capture_output=True).stdout
        assert listing["atvdisk-manifest.json"].sha256 == hashlib.sha256(data).hexdigest()
        assert json.loads(data)["seed"] == SEED
        assert layouts.result.umount(name).rc == 0


@pytest.mark.parametrize("name", ["recovery", "osboot", "f-recovery"])
def test_non_journaled_hfs_is_read_write_and_stays_clean(layouts: Layouts, name: str) -> None:
    result = layouts.result
    for record in (name, f"{name}-again"):
        mount = result.mount(record)
        assert mount.rc == 0 and mount.fstype == "hfsplus", (mount.stderr, mount.dmesg_text())
        assert not mount.read_only, (mount.options, mount.dmesg_text())
        assert not [line for line in mount.dmesg if "hfsplus" in line], mount.dmesg_text()
        assert result.umount(record).rc == 0
    assert result.text(f"write/{name}/rc").strip() == "0", result.text(f"write/{name}/stderr")
    assert result.text(f"readback/{name}-again/rc").strip() == "0", result.text(f"readback/{name}-again/stderr")
    assert result.text(f"readback/{name}-again/content") == WRITTEN
    assert ".atvdisk-write-test" not in result.text(f"readback/{name}-again/after").split()


@pytest.mark.parametrize("number", [3, 4])
def test_journaled_factory_hfs_is_read_only_with_the_journal_message(layouts: Layouts, number: int) -> None:
    result = layouts.result
    mount = result.mount(f"f-{number}")
    assert mount.rc == 0 and mount.fstype == "hfsplus", (mount.stderr, mount.dmesg_text())
    assert mount.read_only, mount.options
    assert JOURNAL_MESSAGE in mount.dmesg, mount.dmesg_text()
    assert result.text(f"write/f-{number}/rc").strip() != "0"
    assert "Read-only file system" in result.text(f"write/f-{number}/stderr")


def test_media_ext4_is_read_write(layouts: Layouts) -> None:
    result = layouts.result
    for record in ("media", "media-again"):
        mount = result.mount(record)
        assert mount.rc == 0 and mount.fstype == "ext4" and not mount.read_only, (mount.stderr, mount.dmesg_text())
        assert any(line.startswith("EXT4-fs (sda4): mounted filesystem") for line in mount.dmesg), mount.dmesg_text()
        assert not [line for line in mount.dmesg if re.search(r"error|warning|recover|orphan", line, re.IGNORECASE)], (
            mount.dmesg_text()
        )
    assert result.text("readback/media-again/content") == WRITTEN


def test_swap_accepted(layouts: Layouts) -> None:
    swap = layouts.result.swap("swap")
    assert swap.rc == 0, swap.stderr
    entry = swap.active_entry
    assert entry is not None and entry["Type"] == "partition"
    swap_bytes = layouts.plan.partition("Swap").size_bytes
    assert f"Adding {swap_bytes // 1024 - 4}k swap on /dev/sda5." in " ".join(swap.dmesg), swap.dmesg
    assert swap.swapoff_rc == 0


def test_no_volume_is_ever_unclean(layouts: Layouts) -> None:
    assert "not cleanly unmounted" not in layouts.result.dmesg
    assert "not properly unmounted" not in layouts.result.dmesg


def test_openelec_recovery_files(layouts: Layouts) -> None:
    script = generate(layouts.plan).text
    assert layouts.summaries["device"]["boot_script"] == script
    expected = recovery_expected(layouts.sample, script)
    assert differences(expected, seen(layouts.result, "recovery")) == NO_DIFFERENCES
    assert layouts.result.listing("recovery")["."].mode == 0o755


def test_openelec_osboot_files(layouts: Layouts) -> None:
    expected = osboot_expected(layouts.sample.openelec)
    assert differences(expected, seen(layouts.result, "osboot")) == NO_DIFFERENCES


def test_openelec_media_files(layouts: Layouts) -> None:
    assert differences(MEDIA_EXPECTED, seen(layouts.result, "media")) == NO_DIFFERENCES


def test_factory_files(layouts: Layouts) -> None:
    result = layouts.result
    assert differences(tar_expected(layouts.sample.restore), seen(result, "f-recovery")) == NO_DIFFERENCES
    for number in (3, 4):
        p = layouts.factory.partitions[number - 1]
        listing = result.listing(f"f-{number}")
        assert set(listing) == {".", ".journal", ".journal_info_block"}, sorted(listing)
        assert listing[".journal"].type == "f" and listing[".journal"].size == p.fs.journal_size
        assert listing[".journal_info_block"].type == "f" and listing[".journal_info_block"].size == p.fs.block_size


# ------------------------------------------------------------------------ rehearsals


# ------------------------------------------------------------------------ boot 2: hand-over


@dataclass(frozen=True)
class Handover:
    sample: SamplePayload
    kernel: bytes  # the KERNEL of the hand-over image (Debian's bzImage)
    release: str
    summaries: dict[str, dict]
    result: GuestResult


HANDOVER_SCRIPT = """
guest_blkid
hide_others sdb
findfs_each uuid-image {openelec_specs}
unhide

# The real hand-over: kexec-tools instead of the kexec recorder (fsck.* stay recorders).
guest_kexec_wrapper /tmp/real
export PATH=/tmp/real:$PATH
guest_mount rec-real /dev/sda2 hfsplus rw,force
rm -f "$RESULTS/calls"
/mnt/rec-real/patchstick.sh
echo "patchstick.sh returned $?: the hand-over failed"
exit 1
"""


@pytest.fixture(scope="module")
def handover(module_run_guest, guest_assets, tmp_path_factory: pytest.TempPathFactory) -> Handover:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("atv-handover")
    sample = write_sample(tmp / "sample")
    release = tmp / "openelec-debian-kernel"
    release.mkdir()
    kernel = guest_assets.kernel.vmlinuz.read_bytes()
    for name, data in (("KERNEL", kernel), ("SYSTEM", fake_bytes("SYSTEM", 1 << 20))):
        (release / name).write_bytes(data)
        (release / f"{name}.md5").write_text(f"{hashlib.md5(data).hexdigest()}  target/{name}\n")
    summaries = build_all(
        {
            "handover": openelec_build(tmp / "handover.img", sample, openelec=release),
            "uuid": openelec_build(tmp / "uuid.img", sample, "--name-by", "uuid"),
        }
    )
    script = GUEST_HELPERS + HANDOVER_SCRIPT.format(openelec_specs=_q(findfs_specs(openelec_plan())))
    disks = [Disk(tmp / "handover.img"), Disk(tmp / "uuid.img")]
    result = module_run_guest(disks, script, timeout=300)
    return Handover(sample, kernel, guest_assets.kernel.release, summaries, result)


def test_busybox_findfs_resolves_the_uuid_images_specs(handover: Handover) -> None:
    result = handover.result
    plan = openelec_plan()
    assert handover.summaries["uuid"]["kernel_command_line"] == generate(plan, NameBy.UUID).command_line
    want = {}
    for p in plan.partitions:
        want[f"LABEL={p.fs.label}"] = want[f"UUID={fs_uuid(p)}"] = (f"/dev/sdb{p.number}", 0)
    assert _findfs(result, "uuid-image") == want
    # The UUIDs the uuid image's command line carries are those util-linux blkid shows.
    seen_blkid = result.blkid()
    assert generate(plan, NameBy.UUID).command_line == f"boot=UUID={seen_blkid['/dev/sdb3']['UUID']} disk=UUID={seen_blkid['/dev/sdb4']['UUID']} quiet nosplash"


def test_real_hand_over_to_the_kernel_on_osboot(handover: Handover) -> None:
    result = handover.result
    assert result.ended == "kexec" and result.status is None, result.console[-3000:]
    assert result.calls() == [
        ("fsck.hfsplus", "-p", "/dev/sda3"),
        ("fsck.ext4", "-p", "/dev/sda4"),
        ("kexec", "-l", "/boot/KERNEL", f"--command-line={DEVICE_CMDLINE}"),
        ("kexec", "-e"),
    ]
    probe = result.kexec_probe
    assert probe is not None, result.console[-3000:]
    assert probe["cmdline"] == DEVICE_CMDLINE
    assert probe["release"] == handover.release
    assert "the hand-over failed" not in result.console
    assert handover.summaries["handover"]["boot_script"] == generate(openelec_plan()).text
