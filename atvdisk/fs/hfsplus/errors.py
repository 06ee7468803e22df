"""Exceptions of the HFS+ layer (writer, reader, names, bounded region writer).

Every class carries the offending value in its message and, where one exists, a hint saying
what would fix the problem. Nothing here prints.

* :class:`HfsError` -- base of the family (a :class:`~atvdisk.errors.AtvdiskError`).
* :class:`HfsNameError` -- a name cannot be stored (invalid UTF-8/surrogates, too long after
  decomposition, contains NUL, two names equal under the volume's comparison...).
  Usage error: detected before anything is written.
* :class:`HfsSpaceError` -- the tree does not fit the volume (says by how many bytes).
* :class:`HfsUnsupportedError` -- a file type or option HFS+ support here cannot store
  (device nodes, FIFOs, sockets, a bad block size...).
* :class:`HfsTreeError` -- the tree description is inconsistent (e.g. a path under a file).
* :class:`HfsCorruptError` -- the reader refuses a volume (bad signature, node descriptor,
  cycle...). Verification error.
* :class:`HfsWriteError` -- writing the volume failed part-way (external data of the wrong size,
  I/O error). Build error.
* :class:`RegionError` -- a write outside the bounded region or overlapping an earlier write:
  a bug in the caller, or a region too small. Build error.
"""

from __future__ import annotations

from atvdisk.errors import EXIT_BUILD, EXIT_USAGE, EXIT_VERIFY, AtvdiskError


class HfsError(AtvdiskError):
    """Base class of the HFS+ layer."""

    exit_code = EXIT_USAGE


class HfsNameError(HfsError):
    """A file name cannot be stored in HFS+ (or collides with another under the comparison)."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, name: object = None, path: str | None = None,
                 hint: str | None = None) -> None:
        self.name = name
        self.path = path
        super().__init__(message, hint=hint)


class HfsDuplicateNameError(HfsNameError):
    """Two names in one directory are equal under the volume's comparison."""

    def __init__(self, message: str, *, first: str, second: str, path: str | None = None,
                 hint: str | None = None) -> None:
        self.first = first
        self.second = second
        super().__init__(message, name=second, path=path, hint=hint)


class HfsSpaceError(HfsError):
    """The tree does not fit the volume. ``shortfall`` is the number of missing bytes."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, shortfall: int = 0, hint: str | None = None) -> None:
        self.shortfall = shortfall
        super().__init__(message, hint=hint)


class HfsUnsupportedError(HfsError):
    """Something HFS+ (as written here) cannot store: device nodes, FIFOs, sockets, options."""

    exit_code = EXIT_USAGE


class HfsTreeError(HfsError):
    """The tree description is inconsistent (e.g. a path below a regular file)."""

    exit_code = EXIT_USAGE


class HfsCorruptError(HfsError):
    """The reader found a volume structure it cannot trust."""

    exit_code = EXIT_VERIFY


class HfsWriteError(HfsError):
    """Writing the volume failed part-way (external data of the wrong size, I/O error)."""

    exit_code = EXIT_BUILD


class RegionError(HfsError):
    """A write outside the bounded region, or overlapping an earlier write."""

    exit_code = EXIT_BUILD
