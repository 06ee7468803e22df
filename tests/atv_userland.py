"""atv-bootloader's 2008 userland, emulated for the boot-script tests (host and qemu guest).

The command set is the one the reference lists for the initrd OpenELEC 1.0-3.2 ship
(``../shared/reference/atv-bootchain.md``: busybox 1.9.1, bash, kexec-tools, diskdev_cmds'
fsck.hfsplus, e2fsprogs 1.40's fsck.ext2/fsck.ext3). An emulated userland holds only those of
them that this machine's busybox-static provides, as symlinks to it, so a script that calls
anything else (findfs, blkid, fsck.ext4, ...) fails with "not found" exactly as it would on the
ATV. Commands busybox does not provide (kexec, fsck.hfsplus, ...) are supplied by the tests as
recorders, or are absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# The reference's list, per directory, verbatim.
ATV_BOOTLOADER_COMMANDS = {
    "bin": """addgroup adduser ash bash busybox cat catv chattr chgrp chmod chown cp cpio date dd
        delgroup deluser df dmesg dumpkmap echo ed egrep false fdflush fgrep getopt grep gunzip gzip
        hostname ip ipaddr ipcalc iplink iproute iprule iptunnel kill linux32 linux64 ln login ls
        lsattr mkdir mknod mktemp more mount mountpoint mt mv nano netstat nice pico pidof ping ping6
        pipe_progress printenv ps pwd rm rmdir rpm run-parts sed setarch sh sleep stat stty su sync
        tar touch true umount uname uncompress usleep vi watch zcat""",
    "sbin": """adjtimex arp fdisk freeramdisk fsck fsck.ext2 fsck.ext3 fsck.hfs fsck.hfsplus getty
        halt hdparm hwclock ifconfig ifdown ifup init insmod kexec klogd ldconfig loadkmap logread
        losetup lsmod makedevs mdev mkfs.ext3 mkfs.hfsplus mkfs.msdos mkswap modprobe nameif
        pivot_root poweroff raidautorun reboot rmmod route runlevel setconsole slattach
        start-stop-daemon sulogin swapoff swapon switch_root sysctl syslogd udhcpc vconfig watchdog zcip""",
    "usr/bin": """[ [[ ar arping awk basename bunzip2 bzcat bzip2 cal chpst chrt chvt cksum clear cmp
        comm crontab cryptpw cut dc deallocvt diff dirname dos2unix dpkg du eject env envdir
        envuidgid expand expr fdformat find fold free ftpget ftpput gptsync head hexdump hostid
        id install ipcrm ipcs kbd_mode killall killall5 last ldd length less loadfont logger logname
        lzmacat md5sum mesg microcom mkfifo nc nmeter nohup nslookup od openvt passwd patch pgrep
        pkill printf pscan readahead readlink realpath renice reset resize rpm2cpio runsv runsvdir rx
        seq setkeycodes setsid setuidgid sha1sum softlimit sort split strings sum sv svlogd tail
        tcpsvd tee telnet test tftp time top tr traceroute tty ttysize udpsvd unexpand uniq unix2dos
        unlzma unzip uptime uudecode uuencode vlock wc wget which who whoami xargs yes""",
    "usr/sbin": """boot_linux.sh boot_parser chpasswd chroot crond dnsd fakeidentd fbset
        find_run_script.sh httpd inetd parted partprobe rdate readprofile setlogcons telnetd""",
}
COMMANDS = {d: tuple(names.split()) for d, names in ATV_BOOTLOADER_COMMANDS.items()}
ALL_COMMANDS = frozenset(n for names in COMMANDS.values() for n in names)
# Not in that userland: what a script must never rely on.
ABSENT = ("findfs", "blkid", "fsck.ext4", "e2label", "tune2fs", "lsblk", "udevadm")
# rcS's PATH
ATV_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"


def busybox_path() -> Path:
    found = shutil.which("busybox")
    if not found:
        raise FileNotFoundError("busybox not found: apt-get install busybox-static")
    return Path(found)


def busybox_applets(busybox: Path | None = None) -> frozenset[str]:
    out = subprocess.run([str(busybox or busybox_path()), "--list"], check=True, capture_output=True, text=True).stdout
    return frozenset(out.split())


def populate(root: Path, *, busybox_target: str, skip: tuple[str, ...] = (), applets: frozenset[str] | None = None) -> dict[str, str]:
    """Symlink every listed command that busybox provides into ``root``/{bin,sbin,usr/bin,usr/sbin}
    (pointing at ``busybox_target``), except ``skip``. Returns {command: directory}."""
    applets = applets if applets is not None else busybox_applets()
    placed = {}
    for directory, names in COMMANDS.items():
        d = root / directory
        d.mkdir(parents=True, exist_ok=True)
        for name in names:
            if name in skip or name not in applets or name == "busybox":
                continue
            link = d / name
            if not link.exists():
                os.symlink(busybox_target, link)
            placed[name] = directory
    for name in ABSENT:
        assert name not in placed, f"{name} must not be in the emulated userland"
    return placed
