#!/bin/bash
# Emulation of atv-bootloader's find_run_script.sh (bash; written from the reference, not copied):
# the partitions sd[b-h][1-9] of /proc/partitions first (USB), then sda[1-9]; each mounted without
# a type, -o rw,force,noatime, at /mnt/rootfs; the first whose root holds SCRIPT gets chmod +x and
# is run with cwd /; then it is unmounted.
script=$1
root=/mnt/rootfs
mkdir -p "$root"
candidates="$(awk '$4 ~ /^sd[b-h][1-9]$/ { print $4 }' /proc/partitions) $(awk '$4 ~ /^sda[1-9]$/ { print $4 }' /proc/partitions)"
for x in $candidates; do
    if mount -o rw,force,noatime "/dev/$x" "$root" > /dev/null 2>&1; then
        if [ -f "$root/$script" ]; then
            echo "$x/$script found"
            echo "$x" > /rec/ran-from
            chmod +x "$root/$script"
            (cd / && "$root/$script")
            umount "$root"
            exit 0
        fi
        umount "$root"
    fi
done
exit 1
