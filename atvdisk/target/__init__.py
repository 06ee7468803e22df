"""Targets: image files, loop devices and disks — the only room that opens block devices.

:mod:`.probe` reads a target's size and sector size; :mod:`.sysblock` and :mod:`.lsblk` describe
disks from /sys and lsblk; :mod:`.checks` decides whether a disk may be erased (system disk,
mounted, too small, ...) and asks the user to confirm; :mod:`.blockdev` holds a disk for a
build (udev lock, O_EXCL, flush, partition re-read) and attaches loop devices;
:mod:`.imagefile` creates an image that appears at its final path only on success;
:mod:`.access` hands the build its way of writing to either;
:mod:`.interrupt` turns SIGTERM into an exception and defers signals around steps that must
not be split.

May touch: devices and image files; a disk is written only after :mod:`.checks` passed and the
user confirmed. Prints nothing of its own: what the user must see goes through the console the
CLI hands in.
"""
