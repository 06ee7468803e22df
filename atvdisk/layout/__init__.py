"""Layout -> plan: what a disk holds, resolved for one disk size. The pipeline's first room.

:mod:`.units` parses and prints sizes; :mod:`.schema` reads a TOML layout into frozen dataclasses
and validates it; :mod:`.resolver` turns (layout, disk size, sector size) into a :mod:`.plan` —
every sector, identifier and step a build will use.

May touch: nothing. Pure computation: no files, no devices, no subprocesses (reading the layout
file itself is :func:`.schema.load_layout`'s one exception). Imports no other room of atvdisk,
except the pure HFS+ naming and sizing rules (:mod:`atvdisk.fs.hfsplus.unicode`, and
newfs_hfs's journal size from :mod:`atvdisk.fs.hfsplus.sizing`) the plan is validated against.
"""
