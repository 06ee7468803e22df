"""The ATV's boot chain, emulated in the qemu guest against disks atvdisk built (issue 10).

One boot. The images travel on one ext4 "carrier" disk (sparse files; more disks than the six
AHCI ports) and are attached, a few per case, as loop devices with their partitions.

OpenELEC 1.x-3.2 (atv1-openelec, kexec): an **emulated atv-bootloader userland** in a chroot
holding only the commands the reference lists for its 2008 initrd (busybox applets as symlinks,
bash; no findfs, no blkid, no fsck.ext4), ``kexec`` and ``fsck.hfsplus`` as recorders, the case's
disks as ``/dev/sda``, ``/dev/sdb`` (nodes of the loop devices, and a /proc/partitions that lists
them as the ATV's kernel would). For each case:

1. "boot.efi": the Kernel Flags of the Recovery plist the firmware boots are the command line
   (/proc/cmdline in the chroot);
2. an emulation of rcS's dispatch on atv-boot= and of find_run_script.sh (USB disks first, each
   partition mounted ``-o rw,force,noatime`` at /mnt/rootfs, the script run with cwd /): the
   disk's own patchstick.sh runs, unmodified, with the kernel's real mount and hfsplus driver;
3. its ``kexec -l`` must name /boot/KERNEL and the right command line, then ``kexec -e``;
4. OpenELEC's side: busybox (as OpenELEC's init) resolves the command line's boot= and disk= to
   the booting disk's partitions 3 and 4 (never the other disk's), and mounts them;
5. the Recovery partition the script ran from is clean afterwards (it remounted it read-only).

Cases: every recovery plist mode (patchstick, manual, auto, none, no plist at all: atvdisk makes
each one run the script) x every --name-by (device, label, uuid), each with the disk alone as
sda, and as a USB stick (sdb) beside another atvdisk disk as sda; the patchstick images also
beside Apple's stock disk on USB (whose OSBoot label clashes); and a negative control (the plist
set back to atv-boot=none on the disk: nothing may run).

OpenELEC 4.x (atv1-openelec4, boot.efi direct), for each --name-by: util-linux blkid resolves
the plist's boot= and disk= to BOOT and STORAGE; BOOT (HFSX) mounts read-only and is remounted
read-write as OpenELEC's updates do; MACH_KERNEL, SYSTEM, boot.efi, System/ are there with the
sources' sha256; STORAGE mounts read-write; the swap partition is found by TYPE and accepted.
"""

from __future__ import annotations

import hashlib
import json
import os
import plistlib
import shutil
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from atv_userland import COMMANDS, busybox_applets

from atvdisk.inputs.sample import (
    fake_bytes,
    recovery_members,
    restore_members,
    write_sample,
    write_tar_gz,
)

from .harness import GuestResult
from .records import calls as parse_calls

pytestmark = pytest.mark.kernel

EPOCH = "1300000000"
SIZE = "2GB"
GUEST = Path(__file__).parent / "guest"
MODES = ("patchstick", "manual", "auto", "none", "noplist")
NAME_BY = ("device", "label", "uuid")
PLIST_FLAGS = {"patchstick": "atv-boot=patchstick video=vesafb", "manual": "atv-boot=manual video=vesafb",
               "auto": "atv-boot=auto video=vesafb", "none": "atv-boot=none video=vesafb", "noplist": None}  # fmt: skip


def atvdisk(*args: object) -> dict:
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    r = subprocess.run([sys.executable, "-m", "atvdisk", *map(str, args), "--json"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, f"atvdisk {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


def blkid(image: Path, offset: int) -> dict[str, str]:
    out = subprocess.run(["blkid", "-p", "-O", str(offset), "-o", "export", str(image)], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def tiny_release(d: Path, kernel: str) -> Path:
    """An OpenELEC release of small fake files (the guest never runs them)."""
    d.mkdir(parents=True)
    for name, size in ((kernel, 64 * 1024), ("SYSTEM", 256 * 1024)):
        data = fake_bytes(f"{name} ({d.name})", size)
        (d / name).write_bytes(data)
        (d / f"{name}.md5").write_text(f"{hashlib.md5(data).hexdigest()}  target/{name}\n")
    return d


def recovery_with(tmp: Path, mode: str) -> tuple[Path, Path]:
    """(restore, recovery) tarballs whose plist says PLIST_FLAGS[mode] (noplist: neither has one)."""
    flags = PLIST_FLAGS[mode]
    members = []
    for name, data, perm in recovery_members():
        if name == "com.apple.Boot.plist":
            if flags is None:
                continue
            data = plistlib.dumps({**plistlib.loads(data), "Kernel Flags": flags})
        members.append((name, data, perm))
    recovery = tmp / f"recovery-{mode}.tar.gz"
    write_tar_gz(recovery, members)
    restore = tmp / f"restore-{mode}.tar.gz"
    write_tar_gz(restore, [m for m in restore_members() if flags is not None or m[0] != "com.apple.Boot.plist"])
    return restore, recovery


@dataclass(frozen=True)
class Image:
    name: str  # file name on the carrier
    summary: dict  # atvdisk build --json
    uuids: dict[int, str]  # partition -> UUID as util-linux blkid shows it

    def part(self, number: int) -> dict:
        return self.summary["plan"]["partitions"][number - 1]


@dataclass(frozen=True)
class Case:
    name: str
    disks: dict[str, str]  # ATV name -> image name
    firmware: str  # the ATV disk whose Recovery plist boot.efi reads
    boots: str | None  # the image whose partitions must be booted (None: nothing may boot)
    on: str  # its ATV name
    name_by: str
    clash: tuple[str, ...] = ()  # "boot"/"storage": labels that are also on another disk


def cases() -> list[Case]:
    out = []
    for mode in MODES:
        for nb in NAME_BY:
            img = f"kx-{mode}-{nb}.img"
            out.append(Case(f"{mode}-{nb}-alone", {"sda": img}, "sda", img, "sda", nb))
            # A USB stick beside an internal atvdisk disk: atv-bootloader runs the stick's script.
            out.append(Case(f"{mode}-{nb}-usb", {"sda": "internal.img", "sdb": img}, "sdb", img, "sdb", nb, ("boot", "storage")))
    for nb in NAME_BY:
        img = f"kx-patchstick-{nb}.img"
        # Apple's stock disk on USB: no patchstick.sh there, its OSBoot label is OSBoot too.
        out.append(Case(f"apple-usb-{nb}", {"sda": img, "sdb": "factory.img"}, "sda", img, "sda", nb, ("boot",)))
    out.append(Case("control-none", {"sda": "control.img"}, "sda", None, "sda", "device"))
    return out


CASES = cases()


@dataclass(frozen=True)
class Bootchain:
    images: dict[str, Image]
    sample_restore: Path
    release4: Path
    result: GuestResult


GUEST_SCRIPT = r"""
set -u
mkdir -p /carrier /tmp/fw /flash /storage
mount -t ext4 /dev/sda /carrier || { echo "no carrier"; exit 1; }
C=/atv
mkdir -p $C/bin $C/sbin $C/usr/bin $C/usr/sbin $C/etc $C/dev $C/proc $C/tmp $C/mnt/rootfs $C/rec
cp /bin/busybox $C/bin/busybox
while read -r dir name; do ln -s /bin/busybox "$C/$dir/$name"; done < $JOB/applets
cp -a $JOB/chroot/. $C/
mknod $C/dev/null c 1 3
echo "$(ls $C/bin $C/sbin $C/usr/bin $C/usr/sbin | tr '\n' ' ')" > $RESULTS/chroot-commands

# attach IMAGE: a loop device with partitions; prints it
attach() {
    local loop n=0
    loop=$(losetup -f) || return 1
    losetup -P "$loop" "/carrier/$1" || return 1
    while [ ! -b "${loop}p4" ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
    echo "$loop"
}
node() {  # node DEV PATH: a block node for DEV's device number at PATH
    set -- $(stat -L -c '%t %T' "$1") "$2"
    mknod "$3" b $((0x$1)) $((0x$2))
}
flags_of() {  # the Kernel Flags of a plist (as plistlib writes them)
    sed -n '/<key>Kernel Flags<\/key>/{n;s/.*<string>\(.*\)<\/string>.*/\1/p;}' "$1"
}
resolve() {  # resolve SPEC MAPFILE: the real device OpenELEC's init would use for SPEC
    case $1 in
        LABEL=* | UUID=*) busybox findfs "$1" 2>/dev/null ;;
        /dev/sd*) awk -v d="${1#/dev/}" '{ n = length($1); if (substr(d, 1, n) == $1) print $3 "p" substr(d, n + 1) }' "$2" ;;
    esac
}

# run_case NAME FIRMWARE ATVNAME=IMAGE...
run_case() {
    local name=$1 fw=$2 out loop atv img line bootspec= diskspec= w dev
    shift 2
    out=$RESULTS/case/$name
    mkdir -p "$out"
    : > "$out/map"
    printf 'major minor  #blocks  name\n\n' > $C/tmp/partitions
    for m; do
        atv=${m%%=*}
        img=${m#*=}
        loop=$(attach "$img") || { echo "attach $img failed" > "$out/error"; return 1; }
        echo "$atv $img $loop" >> "$out/map"
        node "$loop" "$C/dev/$atv"
        echo "   8 0 0 $atv" >> $C/tmp/partitions
        for p in "$loop"p*; do
            node "$p" "$C/dev/$atv${p##*p}"
            echo "   8 0 0 $atv${p##*p}" >> $C/tmp/partitions
        done
    done
    # boot.efi: the Kernel Flags of the firmware disk's Recovery plist become the command line
    loop=$(awk -v a="$fw" '$1 == a { print $3 }' "$out/map")
    mount -t hfsplus -o ro "${loop}p2" /tmp/fw && cp /tmp/fw/com.apple.Boot.plist "$out/plist"
    umount /tmp/fw
    flags_of "$out/plist" > $C/tmp/cmdline
    mount -t proc proc $C/proc
    mount --bind $C/tmp/partitions $C/proc/partitions
    mount --bind $C/tmp/cmdline $C/proc/cmdline
    rm -rf $C/rec/* $C/boot
    chroot $C /usr/bin/env -i /bin/sh /etc/rcS > "$out/stdout" 2> "$out/stderr"
    echo $? > "$out/rc"
    cp $C/rec/* "$out/" 2>/dev/null
    umount $C/proc/cmdline $C/proc/partitions $C/proc
    awk -v c="$C" 'index($2, c) == 1 { print $2 }' /proc/mounts > "$out/left-mounted"
    # OpenELEC's init: resolve boot= and disk= (busybox, as its initramfs), then mount them
    if [ -f "$out/calls" ]; then
        for w in $(tr '\0' '\n' < "$out/calls" | sed -n 's/^--command-line=//p'); do
            case $w in boot=*) bootspec=${w#boot=} ;; disk=*) diskspec=${w#disk=} ;; esac
        done
        dev=$(resolve "$bootspec" "$out/map"); echo "$dev" > "$out/boot-device"
        mount -o ro "$dev" /flash 2> "$out/flash.err"; echo $? > "$out/flash.rc"; umount /flash 2>/dev/null
        dev=$(resolve "$diskspec" "$out/map"); echo "$dev" > "$out/storage-device"
        mount -o rw "$dev" /storage 2> "$out/storage.err"; echo $? > "$out/storage.rc"; umount /storage 2>/dev/null
    fi
    # The Recovery the script ran from must be clean: mounted read-write again, no complaint
    while read -r atv img loop; do
        guest_mount "rec-$name-$atv" "${loop}p2" hfsplus rw && guest_umount "rec-$name-$atv"
    done < "$out/map"
    rm -f $C/dev/sd*
    while read -r atv img loop; do losetup -d "$loop"; done < "$out/map"
}

# The negative control: the plist on the disk set back to atv-boot=none
loop=$(attach control.img)
mount -t hfsplus -o rw "${loop}p2" /tmp/fw && sed -i 's/atv-boot=patchstick/atv-boot=none/' /tmp/fw/com.apple.Boot.plist
umount /tmp/fw
losetup -d "$loop"

{cases}

# OpenELEC 4.x: boot.efi starts MACH_KERNEL with the plist's Kernel Flags
check_4x() {
    local name=$1 img=$2 out=$RESULTS/four/$1 loop kernel flags w bootspec= diskspec= dev
    mkdir -p "$out"
    loop=$(attach "$img")
    echo "sda $img $loop" > "$out/map"
    mount -t hfsplus -o ro "${loop}p1" /tmp/fw && cp /tmp/fw/com.apple.Boot.plist "$out/plist"
    umount /tmp/fw
    for w in $(flags_of "$out/plist"); do
        case $w in boot=*) bootspec=${w#boot=} ;; disk=*) diskspec=${w#disk=} ;; esac
    done
    for s in boot:$bootspec storage:$diskspec; do
        case ${s#*:} in
            LABEL=* | UUID=*) dev=$(blkid -t "${s#*:}" -o device) ;;
            *) dev=$(resolve "${s#*:}" "$out/map") ;;
        esac
        echo "$dev" > "$out/${s%%:*}-device"
    done
    dev=$(cat "$out/boot-device")
    guest_mount "4x-$name-flash" "$dev" hfsplus ro /flash
    mount -o remount,rw /flash 2> "$out/remount.err"; echo $? > "$out/remount.rc"
    awk '$2 == "/flash"' /proc/mounts > "$out/remount-mounts"
    { echo update > /flash/.atvdisk-update-test && sync && rm /flash/.atvdisk-update-test; } 2> "$out/write.err"; echo $? > "$out/write.rc"
    guest_list "4x-$name-flash"
    guest_umount "4x-$name-flash"
    guest_mount "4x-$name-storage" "$(cat "$out/storage-device")" ext4 rw /storage && guest_list "4x-$name-storage"
    guest_umount "4x-$name-storage"
    blkid -t TYPE=swap -o device > "$out/swap-devices"
    guest_swapon "4x-$name-swap" "$(head -n 1 "$out/swap-devices")"
    losetup -d "$loop"
}
check_4x device bf-device.img
check_4x label bf-label.img
check_4x uuid bf-uuid.img
echo bootchain script done
"""


def _chroot_files() -> dict[str, bytes]:
    """bash and its libraries, the emulations of rcS and find_run_script.sh, the recorders."""
    files: dict[str, bytes] = {}
    bash = Path(shutil.which("bash") or "/bin/bash").resolve()
    files["chroot/bin/bash"] = bash.read_bytes()
    out = subprocess.run(["ldd", str(bash)], check=True, capture_output=True, text=True).stdout
    for line in out.split("\n"):
        for word in line.split():
            if word.startswith("/") and Path(word).exists():
                files[f"chroot{word}"] = Path(word).resolve().read_bytes()
    files["chroot/etc/rcS"] = (GUEST / "atv-rcS.sh").read_bytes()
    files["chroot/usr/sbin/find_run_script.sh"] = (GUEST / "atv-find-run-script.sh").read_bytes()
    for name in ("kexec", "fsck.hfsplus"):  # /sbin in the 2008 initrd; not busybox applets
        files[f"chroot/sbin/{name}"] = (GUEST / "atv-recorder.sh").read_bytes()
    applets = busybox_applets()
    lines = [f"{d} {n}" for d, names in COMMANDS.items() for n in names if n in applets and n != "busybox" and n not in ("kexec", "fsck.hfsplus")]
    files["applets"] = ("\n".join(lines) + "\n").encode()
    return files


@pytest.fixture(scope="module")
def bootchain(module_run_guest, tmp_path_factory: pytest.TempPathFactory) -> Bootchain:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("atv-bootchain")
    sample = write_sample(tmp / "sample")
    release3 = tiny_release(tmp / "release3", "KERNEL")
    release4 = tiny_release(tmp / "release4", "MACH_KERNEL")
    carrier = tmp / "carrier"
    carrier.mkdir()
    builds: dict[str, list[object]] = {}
    for mode in MODES:
        restore, recovery = recovery_with(tmp, mode)
        for nb in NAME_BY:
            builds[f"kx-{mode}-{nb}.img"] = ["--openelec", release3, "--restore", restore, "--recovery", recovery, "--name-by", nb]
    builds["internal.img"] = ["--openelec", release3, "--restore", sample.restore, "--recovery", sample.recovery]
    builds["control.img"] = ["--openelec", release3, "--restore", sample.restore, "--recovery", sample.recovery]
    builds["factory.img"] = ["--layout", "atv1-factory", "--restore", sample.restore]
    for nb in NAME_BY:
        builds[f"bf-{nb}.img"] = ["--layout", "atv1-openelec4", "--openelec", release4, "--restore", sample.restore, "--name-by", nb]

    def build(name: str) -> Image:
        size = "4GB" if name == "factory.img" else SIZE
        summary = atvdisk("build", carrier / name, "--size", size, "--seed", f"bootchain-{name}", "--no-verify", *builds[name])
        uuids = {}
        for p in summary["plan"]["partitions"]:
            probe = blkid(carrier / name, p["offset_bytes"])
            if "UUID" in probe:
                uuids[p["number"]] = probe["UUID"]
        return Image(name, summary, uuids)

    with ThreadPoolExecutor(max_workers=2) as pool:
        images = {img.name: img for img in pool.map(build, builds)}
    used = sum(os.stat(carrier / n).st_blocks * 512 for n in images)
    carrier_img = tmp / "carrier.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-L", "carrier", "-d", str(carrier), str(carrier_img), str(used // 1024 * 2 + 128 * 1024)], check=True)
    for n in images:
        (carrier / n).unlink()  # the carrier holds them now
    calls = "\n".join(f"run_case {c.name} {c.firmware} " + " ".join(f"{a}={i}" for a, i in c.disks.items()) for c in CASES)
    result = module_run_guest([carrier_img], GUEST_SCRIPT.replace("{cases}", calls), files=_chroot_files(), timeout=900, memory_mb=768)
    return Bootchain(images, sample.restore, release4, result)


def test_bootchain_script_completed(bootchain: Bootchain) -> None:
    assert "bootchain script done" in bootchain.result.output, bootchain.result.output[-3000:]
    assert bootchain.result.status == 0


def test_the_emulated_userland_has_no_findfs_blkid_or_fsck_ext4(bootchain: Bootchain) -> None:
    commands = set(bootchain.result.text("chroot-commands").split())
    assert {"sh", "ash", "bash", "dd", "hexdump", "mount", "umount", "kexec", "fsck.hfsplus", "awk", "sed", "chmod"} <= commands
    assert not commands & {"findfs", "blkid", "fsck.ext4", "fsck.ext2", "e2fsck", "lsblk"}


def _text(result: GuestResult, path: str) -> str:
    return result.files[path].decode("utf-8", "replace") if path in result.files else ""


def expected_command_line(b: Bootchain, case: Case) -> str:
    img = b.images[case.boots]
    uuid = (f"UUID={img.uuids[3]}", f"UUID={img.uuids[4]}")
    if case.name_by == "device":
        spec = (f"/dev/{case.on}3", f"/dev/{case.on}4")
    elif case.name_by == "uuid":
        spec = uuid
    else:  # label: LABEL= unless that label is also on another disk, then UUID=
        spec = (uuid[0] if "boot" in case.clash else "LABEL=OSBoot", uuid[1] if "storage" in case.clash else "LABEL=Linux")
    return f"boot={spec[0]} disk={spec[1]} quiet nosplash"


@pytest.mark.parametrize("case", [c for c in CASES if c.boots], ids=lambda c: c.name)
def test_each_disk_boots_its_own_openelec(bootchain: Bootchain, case: Case) -> None:
    r = bootchain.result
    base = f"case/{case.name}"
    stderr = _text(r, f"{base}/stderr")
    mode = case.name.split("-")[0] if not case.name.startswith("apple") else "patchstick"
    # atvdisk fixed the plist, whatever the recovery said: boot.efi passes atv-boot=patchstick
    assert _text(r, f"{base}/mode").strip() == "patchstick", (mode, _text(r, f"{base}/plist"))
    assert _text(r, f"{base}/ran-from").strip() == f"{case.on}2", stderr
    calls = parse_calls({"calls": r.files[f"{base}/calls"]})
    cmdline = expected_command_line(bootchain, case)
    assert calls == [
        ("fsck.hfsplus", "-p", f"/dev/{case.on}3"),
        ("kexec", "-l", "/boot/KERNEL", f"--command-line={cmdline}"),
        ("kexec", "-e"),
    ], stderr
    assert f"{base}/handed-over" in r.files and f"{base}/rescue" not in r.files
    assert f"atvdisk boot: starting OpenELEC: /dev/{case.on}3:/KERNEL {cmdline}" in stderr
    assert "no fsck.ext4 here" in stderr and "not found" not in stderr
    # The script's stdout reached nothing (rcS swallows it): everything it says is on stderr.
    assert "atvdisk boot" not in _text(r, f"{base}/swallowed")


@pytest.mark.parametrize("case", [c for c in CASES if c.boots], ids=lambda c: c.name)
def test_openelec_finds_the_booting_disk_and_nothing_is_left_dirty(bootchain: Bootchain, case: Case) -> None:
    r = bootchain.result
    base = f"case/{case.name}"
    loops = {line.split()[0]: line.split()[2] for line in _text(r, f"{base}/map").splitlines()}
    loop = loops[case.on]
    assert (_text(r, f"{base}/boot-device").strip(), _text(r, f"{base}/storage-device").strip()) == (f"{loop}p3", f"{loop}p4")
    for what in ("flash", "storage"):
        assert _text(r, f"{base}/{what}.rc").strip() == "0", _text(r, f"{base}/{what}.err")
    assert _text(r, f"{base}/left-mounted").strip() == ""  # /mnt/rootfs and /boot unmounted
    for atv in loops:
        mount = r.mount(f"rec-{case.name}-{atv}")
        assert mount.rc == 0 and not mount.read_only and not [line for line in mount.dmesg if "hfsplus" in line], mount.dmesg_text()


def test_a_plist_that_says_none_boots_nothing(bootchain: Bootchain) -> None:
    """The negative control: the emulation does dispatch on the plist's atv-boot=."""
    r = bootchain.result
    assert _text(r, "case/control-none/mode").strip() == "none"
    assert "case/control-none/calls" not in r.files and "case/control-none/rescue" in r.files


def test_the_plists_on_the_disks_run_the_script(bootchain: Bootchain) -> None:
    for case in CASES:
        if not case.boots:
            continue
        flags = plistlib.loads(bootchain.result.files[f"case/{case.name}/plist"])["Kernel Flags"]
        assert flags == "atv-boot=patchstick video=vesafb", case.name
    for mode in MODES:
        summary = bootchain.images[f"kx-{mode}-device.img"].summary
        assert summary["boot_plist"]["changed"] is (mode != "patchstick")
        assert summary["boot_plist"]["original_kernel_flags"] == PLIST_FLAGS[mode]


# ------------------------------------------------------------------------ 4.x


@pytest.mark.parametrize("name_by", NAME_BY)
def test_4x_plist_names_boot_and_storage_for_blkid(bootchain: Bootchain, name_by: str) -> None:
    r = bootchain.result
    img = bootchain.images[f"bf-{name_by}.img"]
    plist = plistlib.loads(r.files[f"four/{name_by}/plist"])
    spec = {"device": ("/dev/sda1", "/dev/sda2"), "label": ("LABEL=BOOT", "LABEL=STORAGE"), "uuid": (f"UUID={img.uuids[1]}", f"UUID={img.uuids[2]}")}[name_by]
    assert plist["Kernel"] == "MACH_KERNEL"
    assert plist["Kernel Flags"] == f"boot={spec[0]} disk={spec[1]} quiet BOOT_IMAGE=MACH_KERNEL SYSTEM_IMAGE=SYSTEM"
    loop = _text(r, f"four/{name_by}/map").split()[2]
    assert _text(r, f"four/{name_by}/boot-device").strip() == f"{loop}p1"
    assert _text(r, f"four/{name_by}/storage-device").strip() == f"{loop}p2"


@pytest.mark.parametrize("name_by", NAME_BY)
def test_4x_boot_mounts_ro_then_rw_for_updates_with_the_sources(bootchain: Bootchain, name_by: str) -> None:
    r = bootchain.result
    flash = r.mount(f"4x-{name_by}-flash")
    assert flash.rc == 0 and flash.fstype == "hfsplus" and flash.read_only, (flash.stderr, flash.dmesg_text())
    assert _text(r, f"four/{name_by}/remount.rc").strip() == "0", _text(r, f"four/{name_by}/remount.err")
    assert _text(r, f"four/{name_by}/remount-mounts").split()[3].split(",")[0] == "rw"
    assert _text(r, f"four/{name_by}/write.rc").strip() == "0", _text(r, f"four/{name_by}/write.err")
    listing = r.listing(f"4x-{name_by}-flash")
    want = {name: hashlib.sha256((bootchain.release4 / name).read_bytes()).hexdigest() for name in ("MACH_KERNEL", "SYSTEM")}
    with tarfile.open(bootchain.sample_restore) as tar:
        for m in tar:
            if m.isfile() and m.name.split("/")[0] in ("boot.efi", "BootLogo.png", "System"):
                want[m.name] = hashlib.sha256(tar.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
    got = {p: e.sha256 for p, e in listing.items() if e.type == "f"}
    plist = got.pop("com.apple.Boot.plist")
    assert got == want
    assert plist == hashlib.sha256(r.files[f"four/{name_by}/plist"]).hexdigest()
    assert not [line for line in flash.dmesg if "hfsplus" in line], flash.dmesg_text()  # clean, not journaled


@pytest.mark.parametrize("name_by", NAME_BY)
def test_4x_storage_and_swap(bootchain: Bootchain, name_by: str) -> None:
    r = bootchain.result
    storage = r.mount(f"4x-{name_by}-storage")
    assert storage.rc == 0 and storage.fstype == "ext4" and not storage.read_only, (storage.stderr, storage.dmesg_text())
    listing = r.listing(f"4x-{name_by}-storage")
    ssh = hashlib.sha256(b"SSHD_START=true\n").hexdigest()
    assert listing[".cache/services/ssh.conf"].sha256 == ssh and listing[".update"].type == "d"
    loop = _text(r, f"four/{name_by}/map").split()[2]
    assert _text(r, f"four/{name_by}/swap-devices").split() == [f"{loop}p3"]
    swap = r.swap(f"4x-{name_by}-swap")
    assert swap.rc == 0 and swap.active_entry is not None and swap.swapoff_rc == 0, swap.stderr

