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
   loads its kernel with ``kexec -l``, unmounts it, syncs, unmounts its own partition (which
   atv-bootloader left mounted ``rw,force``: it runs from a copy in /tmp for that, since Linux
   marks an HFS+ volume clean only on a read-write unmount) and hands over with ``kexec -e``.
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

# Run from a copy in /tmp, so that the partition this was found on can be unmounted before the
# hand-over: Linux marks an HFS+ volume clean only when it unmounts it read-write (remounting it
# read-only leaves it marked in use, and the next read-write mount is refused).
HERE=${0%/*}
if [ "${ATVDISK_BOOT_COPY:-}" != 1 ] && cp "$0" "/tmp/atvdisk-boot.$$" 2>/dev/null; then
    export ATVDISK_BOOT_COPY=1 ATVDISK_BOOT_HERE="$HERE"
    exec /bin/sh "/tmp/atvdisk-boot.$$" "$@"
fi
[ "${ATVDISK_BOOT_COPY:-}" = 1 ] && HERE=$ATVDISK_BOOT_HERE

say() { echo "atvdisk boot: $*"; }
fail() {
    say "$*"
    say "OpenELEC not started; atv-bootloader goes on to its telnet rescue shell"
    exit 1
}

# dump DEV SECTOR COUNT: COUNT 512-byte sectors of DEV from SECTOR, as "xx xx ..." ('' if unreadable)
dump() { dd if="$1" bs=512 skip="$2" count="$3" 2>/dev/null | hexdump -v -e '1/1 "%02x "'; }
# take DUMP OFFSET COUNT: sets T to COUNT bytes at OFFSET of DUMP, joined ('' if out of range)
take() {
    local off=$2 n=$3
    T=
    set -- $1
    [ $# -ge $((off + n)) ] || return 0
    shift $off
    while [ $n -gt 0 ]; do
        T=$T$1
        shift
        n=$((n - 1))
    done
}
# num DUMP OFFSET COUNT: sets N to the big-endian number there (0 if out of range)
num() {
    take "$1" "$2" "$3"
    N=$((0x${T:-0}))
}

# hfs_label DEV HEADER: sets P_LABEL to the HFS+ volume name (UTF-16BE hex): the key of the
# first record of the catalog's first leaf node is the root folder's (parent id 1, the name)
hfs_label() {
    local bs start blocks cat node nsize first rec len
    num "$2" 1064 4; bs=$N
    num "$2" 1312 4; start=$N
    num "$2" 1316 4; blocks=$N
    [ "$bs" -ge 512 ] && [ $((bs % 512)) -eq 0 ] || return 0
    cat=$((start * (bs / 512)))
    node=$(dump "$1" "$cat" 1)
    num "$node" 32 2; nsize=$N
    num "$node" 24 4; first=$N
    [ "$nsize" -ge 512 ] && [ $((nsize % 512)) -eq 0 ] && [ $(((first + 1) * nsize)) -le $((blocks * bs)) ] || return 0
    node=$(dump "$1" $((cat + first * (nsize / 512))) $((nsize / 512)))
    num "$node" $((nsize - 2)) 2; rec=$N
    [ "$rec" -ge 14 ] && [ "$rec" -lt $((nsize - 8)) ] || return 0
    take "$node" $((rec + 2)) 4
    [ "$T" = 00000001 ] || return 0
    num "$node" $((rec + 6)) 2; len=$N
    [ "$len" -le 255 ] && [ $((rec + 8 + len * 2)) -le "$nsize" ] || return 0
    take "$node" $((rec + 8)) $((len * 2))
    P_LABEL=$T
}

# probe DEV: P_KIND (hfsplus: HFS+ or HFSX; ext4: any ext; vfat: FAT32; none), P_ID (HFS+ volume
# id, ext4 UUID, FAT volume id, as hex) and, when naming by label, P_LABEL (as the fs stores it)
probe() {
    local h
    P_KIND=none
    P_ID=
    P_LABEL=
    h=$(dump "$1" 0 4)
    take "$h" 1024 2
    case $T in
        482b | 4858)
            P_KIND=hfsplus
            take "$h" 1128 8; P_ID=$T
            [ "$NAME_BY" = label ] && hfs_label "$1" "$h"
            return 0
            ;;
    esac
    take "$h" 1080 2
    if [ "$T" = 53ef ]; then
        P_KIND=ext4
        take "$h" 1128 16; P_ID=$T
        take "$h" 1144 16; P_LABEL=$T
        return 0
    fi
    take "$h" 82 8
    if [ "$T" = 4641543332202020 ]; then
        P_KIND=vfat
        take "$h" 67 4; P_ID=$T
        take "$h" 71 11; P_LABEL=$T
    fi
    return 0
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

# TABLE: "device kind id label" of every partition, read once (build_table)
TABLE=
TABLE_DONE=
build_table() {
    local p
    [ -n "$TABLE_DONE" ] && return 0
    for p in $PARTS; do
        probe "$p"
        TABLE="$TABLE$p $P_KIND ${P_ID:--} ${P_LABEL:--}
"
    done
    TABLE_DONE=1
}
# clash_id DEV KIND ID: another partition with this filesystem id (a copy of this disk?)
clash_id() {
    echo "$TABLE" | while read -r dev kind id label; do
        [ -n "$dev" ] && [ "$dev" != "$1" ] && [ "$kind" = "$2" ] && [ "$id" = "$3" ] && { echo "$dev"; break; }
    done
}
# clash_label DEV HFS EXT FAT: another partition whose label is the same text
clash_label() {
    local l
    echo "$TABLE" | while read -r dev kind id label; do
        [ -n "$dev" ] && [ "$dev" != "$1" ] || continue
        case $kind in hfsplus) l=$2 ;; ext4) l=$3 ;; vfat) l=$4 ;; *) continue ;; esac
        [ -n "$l" ] && [ "$label" = "$l" ] && { echo "$dev"; break; }
    done
}

# ours DISK: does DISK hold our boot and storage filesystems, at their partition numbers?
ours() {
    probe "$1$BOOT_NUM"
    [ "$P_KIND" = "$BOOT_FS" ] && [ "$P_ID" = "$BOOT_ID" ] || return 1
    probe "$1$STORAGE_NUM"
    [ "$P_KIND" = "$STORAGE_FS" ] && [ "$P_ID" = "$STORAGE_ID" ]
}

# The partition this script was found on, mounted by find_run_script.sh (rw,force at /mnt/rootfs)
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
    [ "$NAME_BY" = device ] || build_table
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
if [ -n "$SELF" ] && ! umount "$HERE" 2>/dev/null; then
    mount -o remount,ro "$HERE" || say "cannot unmount $HERE ($SELF), nor remount it read-only"
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
    # The script may fall back from LABEL= to UUID= to the device name (on whichever disk sda..sdh
    # it finds them: the same length): each must fit too.
    for fallback in (NameBy.UUID, NameBy.DEVICE):
        command_line(spec_for(bp, fallback), spec_for(sp, fallback), options)

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
