"""Sizes and offsets: parsing (``40s``, ``35MiB``, ``4GB``, ``4G``, ``rest``) and printing.

Units, as the README documents them:

* ``s``: sectors of the layout's ``disk.sector_size`` (512 bytes for the ATV layouts);
* ``B``: bytes; a bare integer also means bytes;
* ``kB``/``KB``, ``MB``, ``GB``, ``TB``: powers of 1000, as parted prints them;
* ``KiB``, ``MiB``, ``GiB``, ``TiB``: powers of 1024;
* ``K``, ``M``, ``G``, ``T``: powers of 1024, as ``truncate`` and ``dd`` read them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4

# Case matters: "Mb" (megabits?) is refused rather than guessed.
_FACTORS: dict[str, int] = {
    "B": 1,
    "": 1,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KiB": KIB,
    "MiB": MIB,
    "GiB": GIB,
    "TiB": TIB,
    "K": KIB,
    "M": MIB,
    "G": GIB,
    "T": TIB,
}

_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


class Unit(StrEnum):
    SECTORS = "sectors"
    BYTES = "bytes"


@dataclass(frozen=True)
class Quantity:
    """A size or offset as written: a count of layout sectors or of bytes."""

    value: int
    unit: Unit

    def to_bytes(self, sector_size: int) -> int:
        return self.value * sector_size if self.unit is Unit.SECTORS else self.value

    def __str__(self) -> str:
        if self.unit is Unit.SECTORS:
            return f"{self.value}s"
        return format_iec_exact(self.value)


class SizeSyntaxError(ValueError):
    """Raised by :func:`parse_quantity`; callers wrap it with the file and TOML path."""


def parse_quantity(text: str | int) -> Quantity:
    """Parse ``"40s"``, ``"35MiB"``, ``"4GB"``, ``"4G"``, ``"512"`` or an integer (bytes)."""
    if isinstance(text, bool):
        raise SizeSyntaxError(f"expected a size, got {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise SizeSyntaxError(f"size must not be negative: {text}")
        return Quantity(text, Unit.BYTES)
    if not isinstance(text, str):
        raise SizeSyntaxError(f"expected a size such as '40s', '35MiB' or '4GB', got {text!r}")
    m = _QUANTITY.match(text)
    if not m:
        raise SizeSyntaxError(f"not a size: {text!r} (examples: '40s', '35MiB', '4GB', '4G')")
    number, suffix = m.group(1), m.group(2)
    if suffix == "s":
        if "." in number:
            raise SizeSyntaxError(f"a sector count must be a whole number: {text!r}")
        return Quantity(int(number), Unit.SECTORS)
    factor = _FACTORS.get(suffix)
    if factor is None:
        raise SizeSyntaxError(
            f"unknown unit {suffix!r} in {text!r}; use s, B, kB, MB, GB, TB, KiB, MiB, GiB, TiB, K, M, G or T"
        )
    if "." in number:
        whole, frac = number.split(".")
        numerator = int(whole + frac) * factor
        denominator = 10 ** len(frac)
        if numerator % denominator:
            raise SizeSyntaxError(f"{text!r} is not a whole number of bytes")
        return Quantity(numerator // denominator, Unit.BYTES)
    return Quantity(int(number) * factor, Unit.BYTES)


def parse_bytes(text: str | int) -> int:
    """Parse a size that must be absolute (no sectors), e.g. a ``--size`` option."""
    q = parse_quantity(text)
    if q.unit is Unit.SECTORS:
        raise SizeSyntaxError(f"{text!r}: sectors are not allowed here; give bytes, e.g. '4G' or '4GB'")
    return q.value


def format_parted(nbytes: int) -> str:
    """Format like parted's default ``compact`` unit: ``20.5kB``, ``35.7MB``, ``4327MB``.

    parted picks the largest decimal unit in which the value is at least 10, then prints two
    decimals below 10, one below 100, and whole numbers from 100 up (trailing zeros kept).
    """
    units = [("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)]
    name, size = "B", 1
    for uname, usize in units:
        if nbytes >= 10 * usize:
            name, size = uname, usize
            break
    d = nbytes / size
    w = d + (0.005 if d < 10 else 0.05 if d < 100 else 0.5)
    precision = 2 if w < 10 else 1 if w < 100 else 0
    return f"{d:.{precision}f}{name}"


def format_iec(nbytes: int) -> str:
    """Human binary size with one decimal: ``128.0 MiB``, ``4.0 GiB`` (bytes as a whole number)."""
    if nbytes < 1024:
        return f"{nbytes} B"
    value = nbytes / 1024
    for name in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            return f"{value:.1f} {name}"
        value /= 1024
    return f"{value:.1f} PiB"


def format_iec_exact(nbytes: int) -> str:
    """The largest binary unit that divides ``nbytes`` exactly: ``35MiB``, ``4GiB``, ``512B``."""
    for name, size in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if nbytes and nbytes % size == 0:
            return f"{nbytes // size}{name}"
    return f"{nbytes}B"


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0

