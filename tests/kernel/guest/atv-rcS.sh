#!/bin/sh
# Emulation of the part of atv-bootloader's /etc/init.d/rcS that boots (written from the reference,
# ../../../shared/reference/atv-bootchain.md, not copied): the atv-boot= word of the kernel command
# line (the last one, cut at its second '=') chooses what runs; the script's stdout is swallowed
# (rcS runs find_run_script.sh in backquotes); whatever happens, rcS then goes on to its telnet
# rescue: here that is the file /rec/rescue (a real kexec -e never returns to rcS).
PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mode=
for word in $(cat /proc/cmdline); do
    case $word in atv-boot=*) mode=$(echo "$word" | cut -d= -f2) ;; esac
done
echo "$mode" > /rec/mode
case $mode in
    patchstick) swallowed=$(/usr/sbin/find_run_script.sh patchstick.sh) ;;
    manual) swallowed=$(/usr/sbin/find_run_script.sh boot_linux.sh) ;;
    auto) swallowed="auto: the initrd's boot_linux.sh finds no grub, syslinux or kboot file here" ;;
    *) swallowed="atv-boot=$mode: nothing to run" ;;
esac
printf '%s\n' "$swallowed" > /rec/swallowed
[ -e /rec/handed-over ] || echo rescue > /rec/rescue
