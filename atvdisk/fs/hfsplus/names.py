"""The one place the writer and reader get HFS+ name rules from.

The rules themselves (HFS+ canonical decomposition, ``:`` handling, Apple's case-folding table
and FastUnicodeCompare) live in :mod:`atvdisk.fs.hfsplus.unicode`. This module adds the
volume-level helpers the writer and reader need:

* :func:`encode_component` -- a path component as stored (UTF-16BE, decomposed), with the
  length and emptiness checks that the layout step must make before anything is written;
* :class:`NameOrder` -- the catalog's name order for one volume: case-insensitive
  (``kHFSCaseFolding``) or binary (``kHFSBinaryCompare``), as a sort key and a comparison.
"""

from __future__ import annotations

from atvdisk.fs.hfsplus.errors import HfsNameError
from atvdisk.fs.hfsplus.unicode import (
    compare_names_binary,
    compare_names_ci,
    decode_name,
    encode_name,
    hfs_decompose,
    sort_key_binary,
    sort_key_ci,
)

__all__ = [
    "NameOrder",
    "compare_names_binary",
    "compare_names_ci",
    "decode_name",
    "display_name",
    "encode_component",
    "encode_name",
    "hfs_decompose",
    "kHFSPlusMaxFileNameChars",
    "sort_key_binary",
    "sort_key_ci",
]

#: Maximum length of an HFS+ name in UTF-16 code units (HFSUniStr255).
kHFSPlusMaxFileNameChars = 255


# --------------------------------------------------------------------------------------------
# Volume-level helpers.


def encode_component(name: str, *, path: str | None = None) -> bytes:
    """``name`` (one path component) as stored in a catalog key: UTF-16BE, decomposed.

    Raises :class:`HfsNameError` for names that cannot be stored: not text, empty, ``.``/``..``,
    containing ``/``, invalid UTF-8 (lone surrogates from ``os.fsdecode``), NUL, or longer than
    255 UTF-16 units once decomposed. ``path`` (for messages) names the whole entry.
    """
    where = f" (in {path!r})" if path and path != name else ""
    if not isinstance(name, str):
        raise HfsNameError(f"name must be text, got {name!r}{where}", name=name, path=path)
    if name in ("", ".", ".."):
        raise HfsNameError(f"invalid file name {name!r}{where}", name=name, path=path)
    if "/" in name:
        raise HfsNameError(f"file name {name!r} contains '/'{where}", name=name, path=path)
    try:
        data = encode_name(name)
    except HfsNameError as e:
        if path and e.path is None:
            raise HfsNameError(f"{e.message}{where}", name=name, path=path, hint=e.hint) from e
        raise
    except (UnicodeError, ValueError) as e:
        raise HfsNameError(
            f"file name {name!r} cannot be stored in HFS+: {e}{where}",
            name=name,
            path=path,
            hint="rename the file so its name is valid UTF-8",
        ) from e
    units = len(data) // 2
    if units > kHFSPlusMaxFileNameChars:
        raise HfsNameError(
            f"file name too long: {units} UTF-16 units after HFS+ decomposition "
            f"(maximum {kHFSPlusMaxFileNameChars}): {name!r}{where}",
            name=name,
            path=path,
            hint="shorten the name; accented letters count twice once decomposed",
        )
    return data


class NameOrder:
    """The catalog's name ordering for one volume (TN1150 "Catalog File Key")."""

    def __init__(self, case_sensitive: bool) -> None:
        self.case_sensitive = case_sensitive
        if case_sensitive:
            self.sort_key = sort_key_binary
            self.compare = compare_names_binary
        else:
            self.sort_key = sort_key_ci
            self.compare = compare_names_ci
        self.empty_key = self.sort_key(b"")


def display_name(data: bytes) -> str:
    """A stored name as text (for messages and listings)."""
    try:
        return decode_name(data)
    except Exception:  # noqa: BLE001 - messages must never fail
        return data.decode("utf-16-be", "replace")
