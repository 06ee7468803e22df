"""Filesystems and the partition table: lay the planned bytes into a region of the target.

:mod:`.region` is the bounded, overlap-checked writer; :mod:`.hfsplus` the pure-Python HFS+/HFSX
filesystem (writer and reader) and :mod:`.hfs_adapter` its bridge to the build; :mod:`.ext4`,
:mod:`.fat` and :mod:`.swap` drive e2fsprogs, dosfstools/mtools and mkswap at a partition's
offset; :mod:`.gpt` packs and checks GPT/MBR records, :mod:`.partition` writes the table with
libparted; :mod:`.entry` is the record verification compares.

May touch: the target only through what the target room hands it (a path or file descriptor
already checked and, on a disk, held exclusively); never decides whether a disk may be written,
never opens one on its own account.
"""
