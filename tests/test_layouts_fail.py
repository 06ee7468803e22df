"""Layouts that must fail, each with the message it must fail with (tests/layouts-fail/*.toml).

Each file starts with comment lines: ``# expect: <text the error message must contain>``, and
optionally ``# where: <TOML path>``, ``# disk: <size>`` (resolve for a disk of that size; without it
the file must already fail to load) and ``# sector_size: <n>``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from atvdisk.errors import EXIT_REFUSED, EXIT_USAGE, DiskTooSmall, LayoutError
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import load_layout
from atvdisk.layout.units import parse_bytes

CASES = sorted((Path(__file__).parent / "layouts-fail").glob("*.toml"))


def _directives(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(":")
        out[key.strip()] = value.strip()
    return out


def test_there_are_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_layout_fails_with_expected_message(path: Path):
    d = _directives(path)
    assert "expect" in d, f"{path.name} has no '# expect:' line"
    with pytest.raises(LayoutError) as info:
        layout = load_layout(str(path))
        if "disk" in d:
            resolve(layout, parse_bytes(d["disk"]), int(d.get("sector_size", 512)))
    err = info.value
    message = str(err)
    assert d["expect"] in message
    # Every error names the layout file, and says what would fix it.
    assert str(path) in message
    assert err.hint, f"no hint for {path.name}: {message}"
    # A disk too small for the layout is a refused target (3) on every path; the rest are usage errors.
    assert err.exit_code == (EXIT_REFUSED if isinstance(err, DiskTooSmall) else EXIT_USAGE)
    if "where" in d:
        assert err.where == d["where"]
    if "disk" not in d:
        # Load-time failures must not depend on a disk: the layout itself is invalid.
        pass
