"""HFS+ names: canonical decomposition and the case-insensitive comparison (TN1150)."""

from __future__ import annotations

import unicodedata


def hfs_name_units(name: str) -> int:
    """Number of UTF-16 code units ``name`` occupies once stored (decomposed) in HFS+."""
    return len(unicodedata.normalize("NFD", name).encode("utf-16-be")) // 2
