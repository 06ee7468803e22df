"""The user's original shell procedure (/work/shared/reference/source-procedure.txt), as far as
it can run on a Debian 12 host, on a 4 GiB image file through loop devices.

What runs, in the procedure's order and with its commands: ``dd`` of zeros over the start of the
disk (its ``bs=4 count=1M``), ``parted -s`` mklabel/mkpart/set for the five partitions (with
atvdisk's corrected sector numbers, so the table is the same as atvdisk's), ``mkfs.msdos -F 32``,
``mkfs.ext4 -b 4096 -L Linux``, ``mkswap``, loop-mounting the Media partition to create
``.config/ssh_enable``, ``.cache`` and ``.xbmc/userdata``.

What cannot run here, and its stand-in: Debian 12 has no ``mkfs.hfsplus`` (hfsprogs is gone) and
this host kernel has no hfsplus driver, so Recovery and OSBoot are formatted ``mkfs.ext4``
(Recovery without a journal, OSBoot with one, as the procedure's ``-J``) and loop-mounted; the
procedure's ``tar -xzf``, ``chown -R``, ``cp KERNEL SYSTEM``, ``echo bootable > keyword`` and
the rename of ``patchstick.boot`` then run on them. ``fsck.hfsplus -f`` is left out (nothing to
check on a new ext4), ``partprobe`` is replaced by ``losetup --offset --sizelimit`` (the host
kernel has no GPT partition parser), ``eject`` by ``losetup -d``. Each ``umount`` writes its
filesystem back; a final ``sync`` of the image file makes it durable, as atvdisk's own fsync does.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from common import Sample, remove, run, stopwatch
from payload import AtvPayload

SCRIPT = r"""
set -eu
IMG={img}
MNT={mnt}
cleanup() {{
  for m in "$MNT"/recovery "$MNT"/linux "$MNT"/media; do mountpoint -q "$m" && umount "$m" || true; done
  # Every loop device backed by the image (loop() runs in $(...) subshells: it cannot keep a list).
  for l in $(losetup -n -O NAME -j "$IMG"); do losetup -d "$l" 2>/dev/null || true; done
}}
trap cleanup EXIT
loop() {{ losetup --find --show --offset "$1" --sizelimit "$2" "$IMG"; }}

truncate -s {disk_bytes} "$IMG"
dd if=/dev/zero of="$IMG" bs=4 count=1M conv=notrunc status=none
parted -s "$IMG" mklabel gpt
parted -s "$IMG" mkpart primary fat32 {p1s}s {p1e}s
parted -s "$IMG" set 1 boot on
parted -s "$IMG" mkpart primary HFS {p2s}s {p2e}s
parted -s "$IMG" set 2 atvrecv on
parted -s "$IMG" mkpart primary HFS {p3s}s {p3e}s
parted -s "$IMG" unit s print >/dev/null
parted -s "$IMG" mkpart primary ext4 {p4s}s {p4e}s
parted -s "$IMG" mkpart primary linux-swap {p5s}s {p5e}s

EFI=$(loop {p1o} {p1b}); RECOVERY=$(loop {p2o} {p2b}); OSBOOT=$(loop {p3o} {p3b}); MEDIA=$(loop {p4o} {p4b}); SWAP=$(loop {p5o} {p5b})
mkfs.msdos -F 32 -n EFI "$EFI" >/dev/null
mkfs.ext4 -q -O ^has_journal -L Recovery "$RECOVERY"
mkfs.ext4 -q -L OSBoot "$OSBOOT"
mkfs.ext4 -q -b 4096 -L Linux "$MEDIA"
mkswap "$SWAP" >/dev/null

mkdir -p "$MNT"/recovery "$MNT"/linux "$MNT"/media
mount "$RECOVERY" "$MNT"/recovery
tar -xzf {restore} -C "$MNT"/recovery
chown -R root:root "$MNT"/recovery

mount "$OSBOOT" "$MNT"/linux
cp {kernel} "$MNT"/linux
cp {system} "$MNT"/linux
umount "$MNT"/linux

tar -xzf {recovery} -C "$MNT"/recovery
echo bootable > "$MNT"/recovery/keyword
mv "$MNT"/recovery/patchstick.boot "$MNT"/recovery/patchstick.sh
chmod 0755 "$MNT"/recovery/patchstick.sh
chown -R root:root "$MNT"/recovery
umount "$MNT"/recovery

mount "$MEDIA" "$MNT"/media
mkdir -p "$MNT"/media/.config
touch "$MNT"/media/.config/ssh_enable
mkdir -p "$MNT"/media/.cache
mkdir -p "$MNT"/media/.xbmc/userdata
umount "$MNT"/media
sync "$IMG"
"""


def script(image: Path, mnt: Path, plan: dict, payload: AtvPayload) -> str:
    values: dict[str, object] = {
        "img": shlex.quote(str(image)),
        "mnt": shlex.quote(str(mnt)),
        "disk_bytes": plan["disk_bytes"],
        "restore": shlex.quote(str(payload.restore)),
        "recovery": shlex.quote(str(payload.recovery)),
        "kernel": shlex.quote(str(payload.openelec / "KERNEL")),
        "system": shlex.quote(str(payload.openelec / "SYSTEM")),
    }
    parts = {p["number"]: p for p in plan["partitions"]}
    assert sorted(parts) == [1, 2, 3, 4, 5], "the procedure is written for atv1-openelec's five partitions"
    for n, p in parts.items():
        values.update({f"p{n}s": p["start"], f"p{n}e": p["end"], f"p{n}o": p["offset_bytes"], f"p{n}b": p["size_bytes"]})
    return SCRIPT.format(**values)


def timed_procedure(work: Path, plan: dict, payload: AtvPayload) -> Sample:
    image, mnt, path = work / "procedure.img", work / "procedure-mnt", work / "procedure.sh"
    remove(image)
    path.write_text(script(image, mnt, plan, payload))
    with stopwatch() as s:
        run(["bash", str(path)])
    return s
