"""The one place the writer and reader get HFS+ name rules from.

The rules themselves (HFS+ canonical decomposition, ``:`` handling, Apple's case-folding table
and FastUnicodeCompare) live in :mod:`atvdisk.hfsplus.unicode`, owned by another engineer. This
module imports them by name and adds the volume-level helpers the writer needs:

* :func:`encode_component` -- a path component as stored (UTF-16BE, decomposed), with the
  length and emptiness checks that the layout step must make before anything is written;
* :class:`NameOrder` -- the catalog's name order for one volume: case-insensitive
  (``kHFSCaseFolding``) or binary (``kHFSBinaryCompare``), as a sort key and a comparison.

While ``unicode.py`` does not provide a function yet, a clearly-marked interim stand-in is used
(``INTERIM`` lists which). The stand-ins are *not* Apple's tables: they only let the rest of
the package run until the real implementation lands.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from atvdisk.hfsplus import unicode as _u
from atvdisk.hfsplus.errors import HfsNameError

#: Maximum length of an HFS+ name in UTF-16 code units (HFSUniStr255).
kHFSPlusMaxFileNameChars = 255

INTERIM: list[str] = []


def _interim(name: str) -> None:
    INTERIM.append(name)


# --------------------------------------------------------------------------------------------
# Interim stand-ins (used only while unicode.py lacks the function of the same name).

_NO_DECOMPOSE = ((0x2000, 0x2FFF), (0xF900, 0xFAFF), (0x2F800, 0x2FAFF))


def _fallback_decompose(name: str) -> str:
    out = []
    for ch in name:
        cp = ord(ch)
        if any(lo <= cp <= hi for lo, hi in _NO_DECOMPOSE):
            out.append(ch)
        else:
            out.append(unicodedata.normalize("NFD", ch))
    return "".join(out)


def _fallback_encode(name: str) -> bytes:
    if not isinstance(name, str):
        raise HfsNameError(f"name must be text, got {name!r}", name=name)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise HfsNameError(
            f"name {name!r} is not valid UTF-8 (undecodable byte or lone surrogate)",
            name=name,
            hint="rename the file so its name is valid UTF-8",
        ) from e
    if "\0" in name:
        raise HfsNameError(f"name {name!r} contains a NUL character", name=name)
    stored = _fallback_decompose(name).replace(":", "/")
    return stored.encode("utf-16-be", "surrogatepass")


def _fallback_decode(data: bytes) -> str:
    return data.decode("utf-16-be", "surrogatepass").replace("/", ":")


_IGNORABLE = set(range(0x200C, 0x2010)) | set(range(0x202A, 0x202F)) | set(range(0x206A, 0x2070))
_IGNORABLE |= {0xFEFF}


def _fallback_fold(u: int) -> int:
    if u == 0:
        return 0xFFFF
    if u in _IGNORABLE:
        return 0
    low = chr(u).lower()
    return ord(low) if len(low) == 1 and ord(low) <= 0xFFFF else u


def _units(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data) - 1, 2)]


def _fallback_sort_key_ci(data: bytes) -> bytes:
    out = bytearray()
    for u in _units(data):
        f = _fallback_fold(u)
        if f:
            out += f.to_bytes(2, "big")
    return bytes(out)


def _fallback_sort_key_binary(data: bytes) -> bytes:
    return bytes(data)


def _cmp(a: bytes, b: bytes) -> int:
    return (a > b) - (a < b)


def _fallback_compare_ci(a: bytes, b: bytes) -> int:
    return _cmp(_fallback_sort_key_ci(a), _fallback_sort_key_ci(b))


def _fallback_compare_binary(a: bytes, b: bytes) -> int:
    return _cmp(bytes(a), bytes(b))


def _pick(name: str, fallback: Callable) -> Callable:
    fn = getattr(_u, name, None)
    if fn is None:
        _interim(name)
        return fallback
    return fn


hfs_decompose: Callable[[str], str] = _pick("hfs_decompose", _fallback_decompose)
encode_name: Callable[[str], bytes] = _pick("encode_name", _fallback_encode)
decode_name: Callable[[bytes], str] = _pick("decode_name", _fallback_decode)
compare_names_ci: Callable[[bytes, bytes], int] = _pick("compare_names_ci", _fallback_compare_ci)
compare_names_binary: Callable[[bytes, bytes], int] = _pick(
    "compare_names_binary", _fallback_compare_binary
)
sort_key_ci: Callable[[bytes], bytes] = _pick("sort_key_ci", _fallback_sort_key_ci)
sort_key_binary: Callable[[bytes], bytes] = _pick("sort_key_binary", _fallback_sort_key_binary)


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
