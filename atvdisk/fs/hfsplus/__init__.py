"""Pure-Python HFS+ / HFSX volume writer and reader (Apple TN1150), no hfsprogs, no mounting.

Writing (the build reuses this; ``atvdisk mkhfs`` is a thin wrapper)::

    from atvdisk.fs.hfsplus import (HfsTree, PathSource, BytesSource, ExternalSource,
                                 VolumeOptions, plan_volume, VolumeWriter)
    from atvdisk.fs.region import Region

    tree = HfsTree()                                    # or HfsTree.from_host_dir(dir)
    tree.add_dir("System", mode=0o755, uid=0, gid=0, mtime=t)
    tree.add_file("mach_kernel", ExternalSource(size), mode=0o644, mtime=t)
    tree.add_symlink("boot", "System/Library")
    opts = VolumeOptions(volume_name="OSBoot", journaled=True,
                         create_time=t, volume_id=vid)  # both set: reproducible bytes
    layout = plan_volume(tree, opts, region_size)       # pure; raises before any write
    with Region(fd, offset, region_size, known_zero=False) as region:
        w = VolumeWriter(layout, region)
        w.write()                                       # metadata + PathSource/BytesSource data
        for member in tar:                              # any order
            w.write_external(member.name, tar.extractfile(member))
        w.finish()                                      # size checks, then both volume headers

Reading (``atvdisk lshfs``, ``atvdisk verify``)::

    from atvdisk.fs.hfsplus import HfsVolume
    with HfsVolume.open(image, offset) as vol:
        for e in vol.walk(): e.path_nfc, e.kind, e.mode, e.uid, e.gid, e.size, vol.sha256(e)

Modules, one job each: :mod:`.records` (on-disk structures and TN1150 constants),
:mod:`.btree` (node packing and checked parsing), :mod:`.names` (the bridge to the Unicode
rules of :mod:`.unicode`), :mod:`.tree` (what to store; overlay semantics), :mod:`.sizing`
(newfs_hfs's default sizes), :mod:`.layout` (every block decided up front, phase by phase), :mod:`.writer` (bytes through :class:`atvdisk.fs.region.Region`),
:mod:`.reader`, :mod:`.errors`; the `mkhfs`/`lshfs` commands live in :mod:`atvdisk.cli.hfs`.

Names below are imported lazily (``from atvdisk.fs.hfsplus import HfsTree`` works).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "HfsTree": "tree",
    "PathSource": "tree",
    "BytesSource": "tree",
    "ExternalSource": "tree",
    "Kind": "tree",
    "TreeEntry": "tree",
    "VolumeOptions": "layout",
    "VolumeLayout": "layout",
    "PlannedFile": "layout",
    "plan_volume": "layout",
    "VolumeWriter": "writer",
    "write_volume": "writer",
    "HfsVolume": "reader",
    "HfsEntry": "reader",
    "HfsError": "errors",
    "HfsNameError": "errors",
    "HfsDuplicateNameError": "errors",
    "HfsSpaceError": "errors",
    "HfsUnsupportedError": "errors",
    "HfsTreeError": "errors",
    "HfsCorruptError": "errors",
    "HfsWriteError": "errors",
    "RegionError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'atvdisk.fs.hfsplus' has no attribute {name!r}")
    return getattr(importlib.import_module(f"atvdisk.fs.hfsplus.{module}"), name)
