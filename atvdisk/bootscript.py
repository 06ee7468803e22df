"""The boot script atv-bootloader runs (OpenELEC 1.x-3.2, boot method ``kexec``).

atv-bootloader's ``find_run_script.sh`` mounts each partition (USB disks first) at /mnt/rootfs and
runs the first ``patchstick.sh`` (or ``boot_linux.sh``) it finds, with busybox 1.9.1 and bash
and nothing else (no findfs, no blkid, no fsck.ext4: reference atv-bootchain.md). The script:

1. finds OpenELEC's boot and storage partitions by what is *in* them: the disk it runs from is
   checked first, by each filesystem's signature and identifier (HFS+ volume id, ext4 UUID, FAT
   volume id: fixed offsets read with ``dd`` and ``hexdump``); if they are not there, every disk is
   searched and exactly one must hold both. Two atvdisk disks on one ATV are never confused: the
   stick's script boots the stick, the internal disk's boots the internal disk;
2. decides how OpenELEC's init will name them (``boot=``/``disk=``): by device, or by LABEL=/UUID=
   as the layout says, but only if no other partition carries the same label or id (the script
   reads every partition's label and id to know); otherwise it falls back to UUID=, then to the
   device name, and says so on the console;
3. checks them with their own fsck when that tool exists, mounts the boot partition read-only,
   loads its kernel with ``kexec -l``, unmounts it, syncs, remounts its own partition (which
   atv-bootloader left mounted ``rw,force``) read-only and hands over with ``kexec -e``.
   Everything it says goes to stderr: atv-bootloader's rcS swallows stdout.

Injection-proof by construction: the script is a fixed body (``BODY``, never formatted) after a
block of assignments; every value is first validated against what the ATV side accepts
(:mod:`atvdisk.layout.atv`) and then quoted by the one quoting function, :func:`sh_quote`.
"""

from __future__ import annotations

import hashlib
import re
import struct
import uuid
from dataclasses import dataclass

from atvdisk import __version__
from atvdisk.errors import BootFilesError
from atvdisk.layout import atv
from atvdisk.layout.plan import Plan, PlannedPartition
from atvdisk.layout.schema import SCRIPT_MODES, BootMethod, ContentKind, FsKind, NameBy

# The filesystem family the script recognises (and mounts and checks) for each kind.
FAMILY = {FsKind.HFSPLUS: "hfsplus", FsKind.HFSX: "hfsplus", FsKind.EXT4: "ext4", FsKind.FAT32: "vfat"}
# What atv-bootloader's 2.6.24 kernel can mount (HFSPLUS=y, VFAT=y, no EXT4): where KERNEL may live.
KEXEC_BOOT_KINDS = (FsKind.HFSPLUS, FsKind.HFSX, FsKind.FAT32)

# Apple's namespace for HFS+ volume UUIDs; libblkid derives the UUID it shows the same way.
HFS_UUID_NAMESPACE = bytes.fromhex("B3E20F39F29211D697A400306543ECAC")

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FAT_ID = re.compile(r"[0-9A-F]{4}-[0-9A-F]{4}")
_HFS_ID = re.compile(r"[0-9A-Fa-f]{16}")


def sh_quote(value: str) -> str:
    """THE quoting function: ``value`` as one POSIX shell word that expands to exactly itself.

    Single quotes: nothing inside is special to sh, dash, busybox ash or bash except ``'``, which
    becomes ``'\\''``. NUL cannot be in a shell word at all and is refused.
    """
    if not isinstance(value, str):
        raise TypeError(f"sh_quote takes text, not {type(value).__name__}")
    if "\0" in value:
        raise BootFilesError(f"a NUL character cannot be passed to the boot script: {value!r}", hint="remove it")
    return "'" + value.replace("'", "'\\''") + "'"


def hfs_blkid_uuid(volume_id_hex: str) -> str:
    """The UUID blkid shows for an HFS+ volume with this 64-bit volume ID (finderInfo[6..7]).

    util-linux and busybox since 1.21 (OpenELEC 3.x's initramfs) both derive it from the ID with
    MD5 in Apple's namespace, as macOS does.
    """
    digest = bytearray(hashlib.md5(HFS_UUID_NAMESPACE + bytes.fromhex(volume_id_hex)).digest())
    digest[6] = 0x30 | (digest[6] & 0x0F)
    digest[8] = 0x80 | (digest[8] & 0x3F)
    return str(uuid.UUID(bytes=bytes(digest)))


def fs_uuid(p: PlannedPartition) -> str:
    """The UUID blkid and busybox show for partition ``p``'s filesystem (checked for its form)."""
    value = p.fs.uuid
    if not value:
        raise BootFilesError(f"partition {p.number} ({p.name}) has no filesystem UUID in the plan", hint="resolve the plan with a seed")
    if p.fs.kind.is_hfs:
        if not _HFS_ID.fullmatch(value):
            raise BootFilesError(f"partition {p.number} ({p.name}): HFS+ volume id {value!r} is not 16 hex digits", hint="check the plan")
        return hfs_blkid_uuid(value)
    if p.fs.kind is FsKind.FAT32:
        if not _FAT_ID.fullmatch(value):
            raise BootFilesError(f"partition {p.number} ({p.name}): FAT volume id {value!r} is not XXXX-XXXX", hint="check the plan")
        return value
    if not _UUID.fullmatch(value):
        raise BootFilesError(f"partition {p.number} ({p.name}): UUID {value!r} is not a lower-case UUID", hint="check the plan")
    return value


def raw_id(p: PlannedPartition) -> str:
    """The filesystem identifier as the script reads it from the disk: lower-case hex of the bytes
    at 1024+0x68 (HFS+ volume id, 8 bytes; ext4 UUID, 16 bytes) or at 67 (FAT32 volume id, LE)."""
    fs_uuid(p)  # checks the form
    assert p.fs.uuid is not None
    if p.fs.kind.is_hfs:
        return p.fs.uuid.lower()
    if p.fs.kind is FsKind.FAT32:
        return struct.pack("<I", int(p.fs.uuid.replace("-", ""), 16)).hex()
    return p.fs.uuid.replace("-", "")


def label_forms(label: str) -> tuple[str, str, str]:
    """(HFS+, ext4, FAT) on-disk forms of an ATV-safe label as hex; '' where it cannot be stored.

    HFS+ keeps the volume name as UTF-16BE (decomposed: an ASCII label is its own decomposition);
    ext4 16 bytes padded with NULs; FAT 11 bytes padded with spaces.
    """
    raw = label.encode("ascii")
    hfs = label.encode("utf-16-be").hex()
    ext = raw.ljust(16, b"\0").hex() if len(raw) <= 16 else ""
    fat = raw.ljust(11, b" ").hex() if len(raw) <= 11 else ""
    return hfs, ext, fat


def spec_for(p: PlannedPartition, name_by: NameBy) -> str:
    """How OpenELEC's init names partition ``p`` (boot=/disk=): validated for the ATV."""
    if name_by is NameBy.DEVICE:
        try:
            disk = atv.atv_disk(p.atv_device.rstrip("0123456789"))
        except atv.AtvValueError as e:
            raise BootFilesError(f"partition {p.number} ({p.name}): {e.message}", hint=e.hint) from None
        return f"{disk}{p.number}"
    if name_by is NameBy.LABEL:
        try:
            return f"LABEL={atv.label(p.fs.label, p.name)}"
        except atv.AtvValueError as e:
            raise BootFilesError(e.message, hint=e.hint) from None
    return f"UUID={fs_uuid(p)}"


def command_line(boot_spec: str, storage_spec: str, options: str) -> str:
    """``boot=... disk=... options``, checked word by word and for boot.efi's 1024 bytes."""
    try:
        words = atv.kernel_options(options)
        return atv.kernel_flags(" ".join((f"boot={boot_spec}", f"disk={storage_spec}", *words)))
    except atv.AtvValueError as e:
        raise BootFilesError(e.message, hint=e.hint) from None


def script_entry(plan: Plan) -> tuple[PlannedPartition, str] | None:
    """The partition and path of the layout's bootscript entry, if it has one."""
    for p in plan.partitions:
        for c in p.contents:
            if c.kind is ContentKind.BOOTSCRIPT:
                return p, c.path
    return None


@dataclass(frozen=True)
class BootScript:
    text: str
    command_line: str  # what kexec -l passes when the disk is alone and named as planned
    boot_device: str  # how OpenELEC names the boot partition then (boot=)
    storage_device: str
    mode: str | None  # the atv-boot= mode that runs the script (patchstick, manual)
    values: tuple[tuple[str, str], ...]  # the assignments, in order (name, value before quoting)


# The variables of the assignment block, in order. Names are constants; values are quoted.
VARIABLES = (
    "ATVDISK_VERSION", "LAYOUT", "DISK", "NAME_BY", "KERNEL", "OPTIONS", "FSCK",
    "BOOT_NUM", "BOOT_FS", "BOOT_ID", "BOOT_UUID", "BOOT_LABEL", "BOOT_LABEL_HFS", "BOOT_LABEL_EXT", "BOOT_LABEL_FAT",
    "STORAGE_NUM", "STORAGE_FS", "STORAGE_ID", "STORAGE_UUID", "STORAGE_LABEL", "STORAGE_LABEL_HFS", "STORAGE_LABEL_EXT", "STORAGE_LABEL_FAT",
)  # fmt: skip

HEADER = """#!/bin/sh
# atvdisk boot script. atv-bootloader's find_run_script.sh runs it from the partition it lives
# on: it finds OpenELEC's partitions by their filesystem ids, checks them, loads OpenELEC's
# kernel with kexec and hands over. Generated: the values are the assignments below; the body
# after them is the same for every disk.
"""

# The body: constant text, never formatted. POSIX sh that busybox 1.9.1 ash, dash and bash run
# alike, using only commands of atv-bootloader's 2008 userland (dd, hexdump, mount, umount,
# mkdir, sync, kexec, fsck.*). No eval, no unquoted expansion of a value.
BODY = r"""
exec 1>&2  # atv-bootloader's rcS swallows stdout: everything goes to the console

say() { echo "atvdisk boot: $*"; }
fail() {
    say "$*"
    say "OpenELEC not started; atv-bootloader goes on to its telnet rescue shell"
    exit 1
}

# rd DEV OFFSET COUNT: COUNT bytes at byte OFFSET of DEV as lower-case hex ('' if unreadable)
rd() { dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null | hexdump -v -e '1/1 "%02x"'; }
# num DEV OFFSET COUNT: a big-endian number ('' if unreadable)
num() {
    local h
    h=$(rd "$1" "$2" "$3")
    [ ${#h} -eq $(($3 * 2)) ] && echo $((0x$h))
}

# kind_of DEV: hfsplus (HFS+ or HFSX), ext4 (any ext), vfat (FAT32) or none
kind_of() {
    case $(rd "$1" 1024 2) in 482b | 4858) echo hfsplus; return ;; esac
    [ "$(rd "$1" 1080 2)" = 53ef ] && { echo ext4; return; }
    [ "$(rd "$1" 82 8)" = 4641543332202020 ] && { echo vfat; return; }
    echo none
}
# id_of DEV KIND: HFS+ volume id, ext4 UUID, FAT volume id, as hex
id_of() {
    case $2 in
        hfsplus) rd "$1" 1128 8 ;;
        ext4) rd "$1" 1128 16 ;;
        vfat) rd "$1" 67 4 ;;
    esac
}
# hfs_label DEV: the volume name (UTF-16BE hex): the key of the first record of the catalog's
# first leaf node is the root folder's (parent id 1, the volume name)
hfs_label() {
    local bs start blocks cat nsize first leaf rec len
    bs=$(num "$1" 1064 4)
    start=$(num "$1" 1312 4)
    blocks=$(num "$1" 1316 4)
    [ -n "$bs" ] && [ -n "$start" ] && [ -n "$blocks" ] && [ "$bs" -gt 0 ] || return 0
    cat=$((start * bs))
    nsize=$(num "$1" $((cat + 32)) 2)
    first=$(num "$1" $((cat + 24)) 4)
    [ -n "$nsize" ] && [ -n "$first" ] && [ "$nsize" -ge 512 ] || return 0
    [ $(((first + 1) * nsize)) -le $((blocks * bs)) ] || return 0
    leaf=$((cat + first * nsize))
    rec=$(num "$1" $((leaf + nsize - 2)) 2)
    [ -n "$rec" ] && [ "$rec" -ge 14 ] && [ "$rec" -lt $((nsize - 8)) ] || return 0
    rec=$((leaf + rec))
    [ "$(rd "$1" $((rec + 2)) 4)" = 00000001 ] || return 0
    len=$(num "$1" $((rec + 6)) 2)
    [ -n "$len" ] && [ "$len" -le 255 ] || return 0
    rd "$1" $((rec + 8)) $((len * 2))
}
# label_of DEV KIND: the label as the filesystem stores it, as hex
label_of() {
    case $2 in
        hfsplus) hfs_label "$1" ;;
        ext4) rd "$1" 1144 16 ;;
        vfat) rd "$1" 71 11 ;;
    esac
}

# The disks (sda..sdh, as atv-bootloader searches them) and their partitions
DISKS=
PARTS=
while read -r major minor blocks name; do
    case $name in
        sd[a-h]) DISKS="$DISKS /dev/$name" ;;
        sd[a-h][0-9]*) PARTS="$PARTS /dev/$name" ;;
    esac
done < /proc/partitions

# clash_id DEV KIND ID: another partition with this filesystem id (a copy of this disk?)
clash_id() {
    local p
    for p in $PARTS; do
        [ "$p" = "$1" ] && continue
        [ "$(kind_of "$p")" = "$2" ] && [ "$(id_of "$p" "$2")" = "$3" ] && { echo "$p"; return 0; }
    done
    return 0
}
# clash_label DEV HFS EXT FAT: another partition whose label is the same text
clash_label() {
    local p k l
    for p in $PARTS; do
        [ "$p" = "$1" ] && continue
        k=$(kind_of "$p")
        case $k in hfsplus) l=$2 ;; ext4) l=$3 ;; vfat) l=$4 ;; *) continue ;; esac
        [ -n "$l" ] && [ "$(label_of "$p" "$k")" = "$l" ] && { echo "$p"; return 0; }
    done
    return 0
}

# ours DISK: does DISK hold our boot and storage filesystems, at their partition numbers?
ours() {
    [ "$(kind_of "$1$BOOT_NUM")" = "$BOOT_FS" ] && [ "$(id_of "$1$BOOT_NUM" "$BOOT_FS")" = "$BOOT_ID" ] || return 1
    [ "$(kind_of "$1$STORAGE_NUM")" = "$STORAGE_FS" ] && [ "$(id_of "$1$STORAGE_NUM" "$STORAGE_FS")" = "$STORAGE_ID" ]
}

# The partition this script runs from, mounted by find_run_script.sh (rw,force at /mnt/rootfs)
HERE=${0%/*}
SELF=
while read -r dev mnt rest; do
    [ "$mnt" = "$HERE" ] && SELF=$dev
done < /proc/mounts
SELF_DISK=
case $SELF in /dev/sd[a-h][0-9]*) SELF_DISK=${SELF%%[0-9]*} ;; esac

ON=
if [ -n "$SELF_DISK" ] && ours "$SELF_DISK"; then
    ON=$SELF_DISK
else
    found=
    for d in $DISKS; do
        ours "$d" && found="$found $d"
    done
    set -- $found
    [ $# -eq 0 ] && fail "OpenELEC's partitions (partition $BOOT_NUM: $BOOT_FS id $BOOT_ID, partition $STORAGE_NUM: $STORAGE_FS id $STORAGE_ID) are on none of the disks:$DISKS"
    [ $# -gt 1 ] && fail "OpenELEC's partitions are on several disks:$found (copies of one disk?); attach only one"
    ON=$1
    say "running from ${SELF:-an unknown partition}; OpenELEC's partitions are on $ON"
fi
[ "$ON" = "/dev/$DISK" ] || say "this disk is $ON here (it was built as /dev/$DISK): using $ON"
BOOT_DEV=$ON$BOOT_NUM
STORAGE_DEV=$ON$STORAGE_NUM

# choose DEV KIND ID LABEL HFS EXT FAT UUID: how OpenELEC's init is to name DEV (sets SPEC)
choose() {
    local other
    if [ "$NAME_BY" = label ]; then
        other=$(clash_label "$1" "$5" "$6" "$7")
        [ -z "$other" ] && { SPEC="LABEL=$4"; return 0; }
        say "LABEL=$4 is also on $other: OpenELEC could mount that one; trying UUID=$8 for $1"
    fi
    if [ "$NAME_BY" != device ]; then
        other=$(clash_id "$1" "$2" "$3")
        [ -z "$other" ] && { SPEC="UUID=$8"; return 0; }
        say "UUID=$8 is also on $other (a copy of this disk?): naming $1 by its device"
    fi
    SPEC=$1
}
choose "$BOOT_DEV" "$BOOT_FS" "$BOOT_ID" "$BOOT_LABEL" "$BOOT_LABEL_HFS" "$BOOT_LABEL_EXT" "$BOOT_LABEL_FAT" "$BOOT_UUID"
BOOT_SPEC=$SPEC
choose "$STORAGE_DEV" "$STORAGE_FS" "$STORAGE_ID" "$STORAGE_LABEL" "$STORAGE_LABEL_HFS" "$STORAGE_LABEL_EXT" "$STORAGE_LABEL_FAT" "$STORAGE_UUID"
STORAGE_SPEC=$SPEC
CMDLINE="boot=$BOOT_SPEC disk=$STORAGE_SPEC"
[ -n "$OPTIONS" ] && CMDLINE="$CMDLINE $OPTIONS"

# check DEV KIND: the filesystem's own fsck, if this system has it (no fsck.ext4 in 2008's)
check() {
    local tool rc
    [ "$FSCK" = 1 ] || return 0
    case $2 in hfsplus) tool=fsck.hfsplus ;; ext4) tool=fsck.ext4 ;; vfat) tool=fsck.vfat ;; *) return 0 ;; esac
    "$tool" -p "$1" >/dev/null 2>&1
    rc=$?
    case $rc in
        0 | 1) ;;
        126 | 127) say "no $tool here: $1 not checked (OpenELEC checks it when it starts)" ;;
        *) say "$tool -p $1 exit status $rc: starting OpenELEC anyway" ;;
    esac
    return 0
}
check "$BOOT_DEV" "$BOOT_FS"
check "$STORAGE_DEV" "$STORAGE_FS"

mkdir -p /boot
mount -t "$BOOT_FS" -o ro "$BOOT_DEV" /boot || fail "cannot mount $BOOT_DEV ($BOOT_FS) at /boot"
if [ ! -f "/boot/$KERNEL" ]; then
    umount /boot
    fail "no $KERNEL on $BOOT_DEV"
fi
if ! kexec -l "/boot/$KERNEL" --command-line="$CMDLINE"; then
    umount /boot
    fail "kexec -l /boot/$KERNEL failed"
fi
umount /boot || say "cannot unmount /boot"
sync
if [ -n "$SELF" ]; then
    mount -o remount,ro "$HERE" || say "cannot remount $HERE ($SELF) read-only"
fi
sync
say "starting OpenELEC: $BOOT_DEV:/$KERNEL $CMDLINE"
kexec -e
fail "kexec -e returned"
"""


def _fail(message: str, hint: str) -> BootFilesError:
    return BootFilesError(message, hint=hint)


def generate(plan: Plan, name_by: NameBy | None = None) -> BootScript:
    """The boot script for ``plan`` (a kexec layout), naming partitions by ``name_by``."""
    boot = plan.boot
    if boot is None:
        raise _fail("the layout has no [boot] table", "add [boot]")
    if boot.method is not BootMethod.KEXEC:
        raise _fail(f"the layout boots by {boot.method}: it has no boot script", "remove the bootscript entry")
    name_by = name_by or boot.name_by
    bp, sp = plan.partition(boot.boot), plan.partition(boot.storage)
    if bp.fs.kind not in KEXEC_BOOT_KINDS:
        raise _fail(
            f"atv-bootloader's kernel (2.6.24: HFS+ and FAT, no ext4) cannot read {boot.kernel} from the {bp.fs.kind} partition {bp.name}",
            "put the kernel on an HFS+ partition",
        )
    if sp.fs.kind not in FAMILY:
        raise _fail(f"the storage partition {sp.name} has no filesystem the script can recognise ({sp.fs.kind})", "use ext4 for OpenELEC's storage")
    try:
        disk = atv.atv_disk(plan.atv_disk)
        kernel = atv.file_name(boot.kernel)
        options = " ".join(atv.kernel_options(boot.options))
    except atv.AtvValueError as e:
        raise _fail(e.message, e.hint) from None
    bdev, sdev = spec_for(bp, name_by), spec_for(sp, name_by)
    nominal = command_line(bdev, sdev, options)
    # The script may fall back from LABEL= to UUID= to the device name: each must fit too.
    for fallback in (NameBy.UUID, NameBy.DEVICE):
        command_line(spec_for(bp, fallback), spec_for(sp, fallback), options)
    command_line("/dev/sdh" + "9" * 3, "/dev/sdh" + "9" * 3, options)  # another disk, any number

    def part(p: PlannedPartition) -> list[str]:
        # Labels only in label mode (validated by spec_for above); ids and UUIDs always.
        lab = spec_for(p, NameBy.LABEL).removeprefix("LABEL=") if name_by is NameBy.LABEL else ""
        forms = label_forms(lab) if lab else ("", "", "")
        return [str(p.number), FAMILY[p.fs.kind], raw_id(p), fs_uuid(p), lab, *forms]

    entry = script_entry(plan)
    mode = SCRIPT_MODES.get(entry[1]) if entry else None
    values = [__version__, plan.layout_name, disk.removeprefix("/dev/"), name_by.value, kernel, options, "1" if boot.fsck else "0"]
    values += part(bp) + part(sp)
    assignments = tuple(zip(VARIABLES, values, strict=True))
    text = HEADER + "".join(f"{name}={sh_quote(value)}\n" for name, value in assignments) + BODY
    return BootScript(text, nominal, bdev, sdev, mode, assignments)
