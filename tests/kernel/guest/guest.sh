# Shell library sourced (busybox sh) before every test script in the atvdisk kernel-test guest.
# Each function writes records under $RESULTS that tests/kernel/records.py parses on the host;
# each returns the status of the command it wraps, so `guest_mount ... && guest_list ...` works.
#
#   guest_blkid [DEV...]                      blkid -p -o export of DEVs (default: every sd*)
#   guest_mount NAME DEV FSTYPE [OPTS] [DIR]  mount (DIR defaults to /mnt/NAME), with its dmesg
#                                             (not MS_SILENT, unlike a plain busybox mount)
#   guest_umount NAME                         unmount what guest_mount NAME mounted, with dmesg
#   guest_list NAME [DIR]                     every entry under DIR (default: NAME's mount)
#   guest_swapon NAME DEV                     swapon DEV, /proc/swaps, dmesg, then swapoff
#   guest_save NAME CMD [ARG...]              CMD's stdout -> NAME, stderr -> NAME.err, status
#   guest_recorders DIR CMD...                put recorders named CMD in DIR: each call appends
#                                             its argv to $RESULTS/calls and exits 0
#   guest_kexec_wrapper DIR                   put a "kexec" in DIR that records the call like a
#                                             recorder, runs the real kexec-tools, adds the probe
#                                             initramfs to loads without an initrd, and saves the
#                                             results before -e (see harness.py)
#   guest_write_results STATUS                write /meta and $RESULTS to the results disk now
#
# Environment: RESULTS (results directory), JOB (the job's files), ATVDISK_REAL_KEXEC (path of
# kexec-tools' kexec, deliberately not on PATH), ATVDISK_KEXEC_PROBE (an initramfs whose init
# prints "ATVDISK-KEXEC-PROBE: cmdline ..." on ttyS0 and powers off), KVER (kernel release).

RESULTS=${RESULTS:-/results}
_guest_seq=0

# Write a unique marker into the kernel log; print it.
_guest_mark() {
    _guest_seq=$((_guest_seq + 1))
    _guest_m="atvdisk-mark-$$-$_guest_seq-$1"
    echo "<7>$_guest_m" > /dev/kmsg
    echo "$_guest_m"
}

# Kernel log lines after marker $1.
_guest_dmesg_since() {
    dmesg -s 4194304 | awk -v m="$1" 'f { print } index($0, m) { f = 1 }'
}

guest_save() {
    local name=$1
    shift
    mkdir -p "$(dirname "$RESULTS/$name")"
    "$@" > "$RESULTS/$name" 2> "$RESULTS/$name.err"
    local rc=$?
    echo $rc > "$RESULTS/$name.rc"
    return $rc
}

guest_blkid() {
    local dir=$RESULTS/blkid devs="$*" dev name rc=0
    mkdir -p "$dir"
    if [ -z "$devs" ]; then
        for name in $(ls /sys/class/block); do
            case $name in sd*) devs="$devs /dev/$name" ;; esac
        done
    fi
    for dev in $devs; do
        name=${dev##*/}
        blkid -p -o export "$dev" > "$dir/$name" 2> "$dir/$name.err"
        echo $? > "$dir/$name.rc"
    done
    return 0
}

guest_mount() {
    local name=$1 dev=$2 fstype=$3 opts=${4:-defaults} dir=${5:-/mnt/$1}
    local out=$RESULTS/mount/$1 mark rc
    mkdir -p "$out" "$dir"
    echo "$dir" > "$out/dir"
    echo "$dev" > "$out/dev"
    mark=$(_guest_mark "mount-$name")
    # "loud": busybox mount passes MS_SILENT by default, which hides the kernel's reasons for
    # refusing a volume ("unable to find HFS+ superblock", ...).
    mount -t "$fstype" -o "loud,$opts" "$dev" "$dir" 2> "$out/stderr"
    rc=$?
    echo $rc > "$out/rc"
    _guest_dmesg_since "$mark" > "$out/dmesg"
    awk -v d="$dir" '$2 == d' /proc/mounts > "$out/mounts"
    return $rc
}

guest_umount() {
    local name=$1 out=$RESULTS/umount/$1 dir mark rc
    dir=$(cat "$RESULTS/mount/$name/dir") || return 2
    mkdir -p "$out"
    mark=$(_guest_mark "umount-$name")
    umount "$dir" 2> "$out/stderr"
    rc=$?
    echo $rc > "$out/rc"
    _guest_dmesg_since "$mark" > "$out/dmesg"
    return $rc
}

# Records, all in the order of names0 (NUL-separated "./path" names, from find -xdev), files0
# (regular files) and links0 (symlinks):
#   stat     one "%f %s %u %g %h %i %Y %n" line per name (the name last, verbatim)
#   sha256   sha256sum lines for the regular files in files0, in that order
#   links    for the symlinks in links0: readlink's output then a NUL, per link
guest_list() {
    local name=$1 dir=${2:-} out=$RESULTS/list/$1 rc
    [ -n "$dir" ] || dir=$(cat "$RESULTS/mount/$name/dir" 2>/dev/null)
    mkdir -p "$out"
    echo "$dir" > "$out/dir"
    if [ ! -d "$dir" ]; then
        echo "guest_list: no directory '$dir' for $name" > "$out/stderr"
        echo 2 > "$out/rc"
        return 2
    fi
    (
        cd "$dir" || exit 2
        find . -xdev -print0 > "$out/names0" || exit 3
        find . -xdev -type f -print0 > "$out/files0" || exit 3
        find . -xdev -type l -print0 > "$out/links0" || exit 3
        # Not xargs: busybox xargs running an applet in-process mangles arguments at its buffer
        # boundaries. A second traversal of the unchanged tree yields the same order; the
        # host's parser checks every record's name against the NUL-separated lists.
        find . -xdev -exec stat -c '%f %s %u %g %h %i %Y %n' {} + > "$out/stat" || exit 4
        find . -xdev -type f -exec sha256sum {} + > "$out/sha256" || exit 5
        find . -xdev -type l -exec sh -c 'for f; do readlink "$f"; printf "\0"; done' sh {} + > "$out/links" || exit 6
    ) 2> "$out/stderr"
    rc=$?
    echo $rc > "$out/rc"
    return $rc
}

guest_swapon() {
    local name=$1 dev=$2 out=$RESULTS/swap/$1 mark rc
    mkdir -p "$out"
    echo "$dev" > "$out/dev"
    mark=$(_guest_mark "swapon-$name")
    swapon "$dev" 2> "$out/stderr"
    rc=$?
    echo $rc > "$out/rc"
    cat /proc/swaps > "$out/swaps"
    if [ $rc = 0 ]; then
        swapoff "$dev" 2>> "$out/stderr"
        echo $? > "$out/swapoff_rc"
    fi
    _guest_dmesg_since "$mark" > "$out/dmesg"
    return $rc
}

guest_write_results() {
    echo "$1" > /meta/status
    cut -d' ' -f1 /proc/uptime > /meta/uptime
    dmesg -s 4194304 > /meta/dmesg 2>&1
    if [ -b "$ATVDISK_RESULTS_DEV" ] && tar -cf "$ATVDISK_RESULTS_DEV" -C / meta results; then
        sync
        echo "ATVDISK-GUEST: results-written $1 $(cut -d' ' -f1 /proc/uptime)" > /dev/console
    else
        echo "ATVDISK-GUEST: results-write-failed (results disk $ATVDISK_RESULTS_DEV too small or missing?)" > /dev/console
        return 1
    fi
}

# Records: per call, NUL-terminated fields: the argument count, the command name, each argument.
guest_recorders() {
    local dir=$1 name
    shift
    mkdir -p "$dir"
    cat > "$dir/.recorder" <<'EOF'
#!/bin/sh
printf '%s\0' "$#" "${0##*/}" "$@" >> "$RESULTS/calls"
exit 0
EOF
    chmod 755 "$dir/.recorder"
    for name in "$@"; do
        ln -sf .recorder "$dir/$name"
    done
}

guest_kexec_wrapper() {
    local dir=$1
    mkdir -p "$dir"
    cat > "$dir/kexec" <<'EOF'
#!/bin/sh
printf '%s\0' "$#" kexec "$@" >> "$RESULTS/calls"
load=0 run=0 initrd=0
for a in "$@"; do
    case $a in
        -l | --load) load=1 ;;
        -e | --exec) run=1 ;;
        --initrd | --initrd=* | --ramdisk | --ramdisk=*) initrd=1 ;;
    esac
done
if [ $run = 1 ]; then
    . /lib/atvdisk/guest.sh
    guest_write_results kexec
fi
if [ $load = 1 ] && [ $initrd = 0 ]; then
    exec "$ATVDISK_REAL_KEXEC" "$@" --initrd="$ATVDISK_KEXEC_PROBE"
fi
exec "$ATVDISK_REAL_KEXEC" "$@"
EOF
    chmod 755 "$dir/kexec"
}
