from __future__ import annotations

import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atvdisk.layout.units import (
    Quantity,
    SizeSyntaxError,
    Unit,
    ceil_div,
    format_iec,
    format_iec_exact,
    format_parted,
    is_power_of_two,
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
        # Every unit the README lists, upper-case KB included (parted's kB, as people type it).
        ("3kB", Quantity(3000, Unit.BYTES)),
        ("3KB", Quantity(3000, Unit.BYTES)),
        ("3MB", Quantity(3 * 10**6, Unit.BYTES)),
        ("3TB", Quantity(3 * 10**12, Unit.BYTES)),
        ("3KiB", Quantity(3 * 2**10, Unit.BYTES)),
        ("3TiB", Quantity(3 * 2**40, Unit.BYTES)),
        ("3K", Quantity(3 * 2**10, Unit.BYTES)),
        ("3M", Quantity(3 * 2**20, Unit.BYTES)),
        ("3T", Quantity(3 * 2**40, Unit.BYTES)),
        # Zero is a size here (the layout refuses a zero partition size itself, with its path).
        ("0", Quantity(0, Unit.BYTES)),
        ("0s", Quantity(0, Unit.SECTORS)),
        (0, Quantity(0, Unit.BYTES)),
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
        ("4 g", "unknown unit 'g'"),  # case matters: no guessing between g, G and GB
        ("4kb", "unknown unit 'kb'"),
        ("4GiBs", "unknown unit"),
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
        (9, "9.00B"),  # (parted: two decimals below 10)
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


def test_quantity_prints_as_written_in_messages():
    # Error messages quote sizes back to the user: sectors as sectors, bytes in the largest
    # binary unit that is exact.
    assert str(parse_quantity("69632s")) == "69632s"
    assert str(parse_quantity("35MiB")) == "35MiB"
    assert str(parse_quantity("3kB")) == "3000B"
    assert str(parse_quantity("2T")) == "2TiB"
    assert str(parse_quantity("1536")) == "1536B"


@pytest.mark.parametrize(
    "nbytes, text",
    [
        (0, "0B"),
        (512, "512B"),
        (1536, "1536B"),
        (1024, "1KiB"),
        (35 * 2**20, "35MiB"),
        (3 * 2**39, "1536GiB"),
        (4 * 2**30, "4GiB"),
        (2**40, "1TiB"),
        (2**50, "1024TiB"),
    ],
)
def test_format_iec_exact(nbytes, text):
    assert format_iec_exact(nbytes) == text


@pytest.mark.parametrize(
    "nbytes, text",
    [
        # "disk too small ... short by N bytes (X)", progress meters, free-space warnings.
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (2**20 - 1, "1024.0 KiB"),
        (105923072, "101.0 MiB"),
        (4 * 2**30, "4.0 GiB"),
        (5 * 2**40 + 2**39, "5.5 TiB"),
        (2**50, "1.0 PiB"),
        (2**60, "1024.0 PiB"),  # nothing beyond PiB
    ],
)
def test_format_iec(nbytes, text):
    assert format_iec(nbytes) == text


def test_format_parted_agrees_with_parted_itself(tmp_path):
    """parted's own `unit compact` output for partitions of sizes around every rounding and unit
    boundary is the judge of format_parted."""
    sectors = [1, 2, 19, 20, 21, 195, 196, 197, 1953, 1954, 1955, 19531, 19532, 19533, 194336, 195300,
               195312, 195313, 1953124, 1953125, 1953222, 19531249, 19531250, 195312499, 195312500,
               1953125000, 2**31 + 12345, 19531250000]  # up to 10 TB: the image stays under ext4's 16 TiB
    script, start = ["label: gpt"], 2048
    for n in sectors:
        script.append(f"start={start}, size={n}")
        start = ceil_div(start + n, 2048) * 2048
    img = tmp_path / "sizes.img"
    with open(img, "wb") as f:
        f.truncate((start + 2048) * 512)
    subprocess.run(["sfdisk", "-q", str(img)], input="\n".join(script) + "\n", text=True, check=True)
    out = subprocess.run(["parted", "-s", "-m", str(img), "unit", "compact", "print"], check=True, capture_output=True, text=True).stdout
    printed = [line.split(":")[3] for line in out.splitlines()[2:]]
    assert printed == [format_parted(n * 512) for n in sectors]


def test_powers_of_two():
    assert [n for n in range(-8, 70000) if is_power_of_two(n)] == [2**k for k in range(17)]
    assert is_power_of_two(2**40) and not is_power_of_two(2**40 + 2**20)


def test_ceil_div():
    assert [ceil_div(n, 512) for n in (0, 1, 511, 512, 513, 1024)] == [0, 1, 1, 1, 2, 2]
