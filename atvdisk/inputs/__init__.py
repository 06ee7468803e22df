"""Inputs: what the user gives (the OpenELEC release, Apple's restore and recovery tarballs,
host files and directories, the bundled sample payload), read, checked and streamed.

:mod:`.payload` finds and checks the OpenELEC release and the recovery's boot files;
:mod:`.tarstream` and :mod:`.tarsafe` read tarballs forward-only, refusing unsafe members;
:mod:`.tree` is the filesystem-independent tree of one partition; :mod:`.contents` builds it
from the plan's contents; :mod:`.feed` streams every file's data to a writer; :mod:`.staging`
materialises a tree as a directory for tools that read one; :mod:`.sample` writes the fake
sample payload.

May touch: the user's input files (read only) and temporary directories. Never opens, writes or
probes a disk or image.
"""
