#!/bin/sh
# PID 1 of the atvdisk kernel-test guest (busybox sh). Host side: tests/kernel/harness.py.
#
# Loads the modules listed in /etc/atvdisk/modules, waits for the images (/dev/sda, /dev/sdb..,
# checked by their ATA model ATVDISK0, ATVDISK1..) and the results disk, runs the job's script
# with the shell library sourced, then writes /meta and /results as a tar onto the results disk
# and powers off. Console lines starting with "ATVDISK-GUEST: " are the harness's markers.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/null >/dev/console 2>&1

. /etc/atvdisk/kernel.env
. /etc/atvdisk/job.env

say() { echo "ATVDISK-GUEST: $*"; }

uptime_s() { cut -d' ' -f1 /proc/uptime; }

finish() {
    # $1: the script's exit status, or "setup" when the harness itself failed.
    echo "$1" > /meta/status
    uptime_s > /meta/uptime
    dmesg -s 4194304 > /meta/dmesg 2>&1
    if [ -b "$ATVDISK_RESULTS_DEV" ] && tar -cf "$ATVDISK_RESULTS_DEV" -C / meta results; then
        sync
        say "results-written $(uptime_s)"
    else
        say "results-write-failed (results disk $ATVDISK_RESULTS_DEV too small or missing?)"
    fi
    sync
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

# Wait until each image is attached as a SCSI disk (its partitions are scanned by then) and
# the results disk exists.
tries=0
while :; do
    missing=""
    log=$(dmesg -s 4194304)
    for d in $ATVDISK_DISKS; do
        case $log in
            *"[$d] Attached SCSI disk"*) ;;
            *) missing="$missing $d" ;;
        esac
    done
    [ -b "$ATVDISK_RESULTS_DEV" ] || missing="$missing $ATVDISK_RESULTS_DEV"
    [ -z "$missing" ] && break
    tries=$((tries + 1))
    if [ $tries -ge 1200 ]; then
        setup_failed "disks not attached after 60 s:$missing (block devices: $(ls /sys/block | tr '\n' ' '))"
    fi
    sleep 0.05
done

# The host gave image i the ATA model ATVDISK<i>: check the guest named it as expected.
i=0
for d in $ATVDISK_DISKS; do
    model=$(cat "/sys/block/$d/device/model")
    model=$(echo $model)
    [ "$model" = "ATVDISK$i" ] || setup_failed "/dev/$d has model '$model', expected ATVDISK$i (disk order)"
    i=$((i + 1))
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
