from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atvdisk.layout.units import (
    Quantity,
    SizeSyntaxError,
    Unit,
    format_iec_exact,
    format_parted,
    parse_bytes,
    parse_quantity,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("40s", Quantity(40, Unit.SECTORS)),
        ("69632s", Quantity(69632, Unit.SECTORS)),
        ("35MiB", Quantity(35 * 2**20, Unit.BYTES)),
        ("4GB", Quantity(4 * 10**9, Unit.BYTES)),
        ("4G", Quantity(4 * 2**30, Unit.BYTES)),
        ("4GiB", Quantity(4 * 2**30, Unit.BYTES)),
        ("2TB", Quantity(2 * 10**12, Unit.BYTES)),
        ("512", Quantity(512, Unit.BYTES)),
        ("512B", Quantity(512, Unit.BYTES)),
        ("1.5GiB", Quantity(3 * 2**29, Unit.BYTES)),
        ("20.5kB", Quantity(20500, Unit.BYTES)),
        (" 8 MiB ", Quantity(8 * 2**20, Unit.BYTES)),
        (4096, Quantity(4096, Unit.BYTES)),
    ],
)
def test_parse_quantity(text, expected):
    assert parse_quantity(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("35Mb", "unknown unit 'Mb'"),
        ("4 gigs", "unknown unit"),
        ("-4G", "not a size"),
        ("1.5s", "whole number"),
        ("0.3B", "whole number of bytes"),
        ("", "not a size"),
        (True, "expected a size"),
        (-1, "negative"),
        (1.5, "expected a size"),
    ],
)
def test_parse_quantity_rejects(text, message):
    with pytest.raises(SizeSyntaxError, match=message):
        parse_quantity(text)


def test_parse_bytes_refuses_sectors():
    with pytest.raises(SizeSyntaxError, match="sectors are not allowed"):
        parse_bytes("100s")
    assert parse_bytes("4G") == 4 * 2**30


def test_sectors_scale_with_layout_sector_size():
    q = parse_quantity("40s")
    assert q.to_bytes(512) == 20480
    assert q.to_bytes(4096) == 163840


@pytest.mark.parametrize(
    "nbytes, text",
    [
        # The original procedure's table, as parted printed it.
        (40 * 512, "20.5kB"),
        (69632 * 512, "35.7MB"),
        (819200 * 512, "419MB"),
        (1843200 * 512, "944MB"),
        (5456823 * 512, "2794MB"),
        (262144 * 512, "134MB"),
        (8451072 * 512, "4327MB"),
        (888871 * 512, "455MB"),
        (0, "0.00B"),
        (512, "512B"),
        (5 * 10**9, "5000MB"),
        (9999, "9999B"),
        (40007761920, "40.0GB"),
        # More of parted 3.5's own output (parted -s img print on a 40 GB image).
        (512512, "513kB"),
        (10240, "10.2kB"),
        (1048576000, "1049MB"),
        (35672063, "35.7MB"),
    ],
)
def test_format_parted(nbytes, text):
    assert format_parted(nbytes) == text


@given(st.integers(min_value=1, max_value=2**50))
def test_iec_exact_round_trips(n):
    assert parse_bytes(format_iec_exact(n)) == n
