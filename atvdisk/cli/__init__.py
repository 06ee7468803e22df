"""The command line: click commands, the only place that prints and sets exit codes.

:mod:`.main` is the ``atvdisk`` group (global options, error reporting, ``layouts``, ``plan``);
:mod:`.common` the console and options the commands share; :mod:`.build` ``build`` and
``verify``; :mod:`.devices` ``devices``; :mod:`.hfs` ``mkhfs`` and ``lshfs``.

May touch: everything below it, through the library's functions. Nothing below imports it.
"""
