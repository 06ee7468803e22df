#!/bin/busybox sh
# /init of the kexec probe initramfs (the kernel that guest_kexec_wrapper's loads boot into).
# The command line may lack console=ttyS0 and carry "quiet": write to the UART directly.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
{
    echo "ATVDISK-KEXEC-PROBE: release $(/bin/busybox uname -r)"
    echo "ATVDISK-KEXEC-PROBE: uptime $(/bin/busybox cut -d' ' -f1 /proc/uptime)"
    echo "ATVDISK-KEXEC-PROBE: cmdline $(/bin/busybox cat /proc/cmdline)"
} > /dev/ttyS0
/bin/busybox poweroff -f
