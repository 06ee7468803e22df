#!/bin/sh
# PID 1 of the atvdisk kernel-test guest (busybox sh). Host side: tests/kernel/harness.py.
#
# Loads the modules listed in /etc/atvdisk/modules, waits for the images (/dev/sda, /dev/sdb..,
# checked by their ATA model ATVDISK0, ATVDISK1..) and the results disk, runs the job's script
# with the shell library sourced, then writes /meta and /results as a tar onto the results disk
# (guest_write_results) and powers off. Console lines starting with "ATVDISK-GUEST: " are the harness's markers.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/null >/dev/console 2>&1

. /etc/atvdisk/kernel.env
. /etc/atvdisk/job.env
export KVER ATVDISK_REAL_KEXEC ATVDISK_KEXEC_PROBE ATVDISK_RESULTS_DEV
. /lib/atvdisk/guest.sh

say() { echo "ATVDISK-GUEST: $*"; }

uptime_s() { cut -d' ' -f1 /proc/uptime; }

finish() {
    # $1: the script's exit status, or "setup" when the harness itself failed.
    guest_write_results "$1"
    poweroff -f
    sleep 60
}

setup_failed() {
    say "setup-failed: $*"
    echo "$*" > /meta/setup-error
    finish setup
}

say "init $(uptime_s)"

while read -r kind path; do
    name=${path##*/}
    name=${name%.ko}
    if [ "$name" = sd_mod ]; then
        # Disks are bound to sd one by one below, in image order.
        echo 0 > /sys/bus/scsi/drivers_autoprobe || setup_failed "cannot switch off SCSI autoprobe"
    fi
    if ! insmod "/lib/modules/$KVER/$path" 2>/tmp/insmod.err; then
        # Already there (auto-loaded through an alias) is fine.
        if grep -q "^$(echo "$name" | tr - _) " /proc/modules; then
            continue
        fi
        if [ "$kind" = req ]; then
            setup_failed "insmod $path: $(cat /tmp/insmod.err)"
        fi
        say "optional module $name not loaded: $(cat /tmp/insmod.err)"
    fi
done < /etc/atvdisk/modules

# Name the images deterministically: sd_mod probes asynchronously, so two AHCI disks could
# come up as sdb, sda. The SCSI bus's autoprobe was switched off when scsi_mod loaded; wait for
# every image's SCSI device (found by its ATA model ATVDISK<i>), then bind sd to them one at a
# time, in order (a probe through drivers_probe is synchronous): image i becomes sd<a+i>.
tries=0
while :; do
    missing=""
    i=0
    for d in $ATVDISK_DISKS; do
        grep -qx "ATVDISK$i *" /sys/bus/scsi/devices/*/model 2>/dev/null || missing="$missing ATVDISK$i"
        i=$((i + 1))
    done
    [ -b "$ATVDISK_RESULTS_DEV" ] || missing="$missing $ATVDISK_RESULTS_DEV"
    [ -z "$missing" ] && break
    tries=$((tries + 1))
    if [ $tries -ge 1200 ]; then
        setup_failed "disks not found after 60 s:$missing (scsi: $(ls /sys/bus/scsi/devices | tr '\n' ' '))"
    fi
    sleep 0.05
done

i=0
for d in $ATVDISK_DISKS; do
    dev=""
    for m in /sys/bus/scsi/devices/*/model; do
        model=$(cat "$m")
        model=$(echo $model)
        [ "$model" = "ATVDISK$i" ] && dev=${m%/model}
    done
    echo "${dev##*/}" > /sys/bus/scsi/drivers_probe 2>/dev/null
    got=$(ls "$dev/block" 2>/dev/null)
    [ "$got" = "$d" ] || setup_failed "image $i (SCSI ${dev##*/}) became '$got', expected $d"
    [ -b "/dev/$d" ] || setup_failed "no /dev/$d after probing image $i"
    i=$((i + 1))
done

for d in $ATVDISK_RO_DISKS; do
    blockdev --setro "/dev/$d" || setup_failed "blockdev --setro /dev/$d failed"
done

say "ready $(uptime_s)"
cd /
{
    RESULTS=/results JOB=/job sh -c '. /lib/atvdisk/guest.sh && . /etc/atvdisk/script.sh' </dev/null 2>&1
    echo $? > /tmp/script-status
} | tee /meta/output
status=$(cat /tmp/script-status)
say "script-exit $status $(uptime_s)"
finish "$status"
