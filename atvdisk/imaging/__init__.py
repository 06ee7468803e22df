"""Disk images and whole disks, the repair-shop way: write a built image to any disk (grown to
fit), extract the files of an old disk's HFS+ volumes, back a disk up as a sparse image.

:mod:`.extract` (HFS+ volume -> deterministic tarball, ``atvdisk extract``).

May touch: sources only through :mod:`atvdisk.target.source` (read-only descriptors) and targets
only through the target room (checks, confirmation, exclusive sessions, image files); output
files it creates itself. Prints nothing: reports go back to :mod:`atvdisk.cli`.
"""
