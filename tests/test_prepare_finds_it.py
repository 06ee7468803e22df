"""What the writers would fail on is found by build.prepare (issue 11, item 3), as a property.

Hypothesis makes tarballs with hostile member names (FAT's forbidden characters, trailing dots,
DOS device names, control characters, case and Unicode-normalization twins, long names and
symlink targets) for an ext4, FAT32, HFS+ or HFSX partition, and builds an image in this
process. Whatever the input, the build either succeeds and verifies (exit 0) or is refused
before the first write (exit 2): never a failure in a writer (4), a verification mismatch (5)
or an internal error (1). ATVDISK_FUZZ_EXAMPLES=N runs longer.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mustfail import DISK_BYTES, data_layout
from tarcraft import archive, gz, header, member, pax, pax_record

from atvdisk.cli.main import main

EXAMPLES = max(10, int(os.environ.get("ATVDISK_FUZZ_EXAMPLES", "150")) // 6)

pieces = st.sampled_from(["a", "A", "b", "B", "x" * 120, ".", " ", ":", "*", "?", "\\", "|", '"', "<", "\n", "\r", "\x01", "\x7f",
                          "é", "e\u0301", "Ω", "ß", "SS", "\u200d", "😀", "CON", "nul", "aux.txt", "-", "~", "[", ";"])  # fmt: skip
component = st.lists(pieces, min_size=1, max_size=4).map("".join).filter(lambda s: s not in (".", ".."))
paths = st.lists(component, min_size=1, max_size=3).map("/".join)


@st.composite
def tarballs(draw) -> bytes:
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        name = draw(paths)
        kind = draw(st.sampled_from(["file", "file", "dir", "symlink"]))
        record = pax(pax_record("path", name))
        if kind == "file":
            parts.append(record + member("x", draw(st.binary(max_size=50))))
        elif kind == "dir":
            parts.append(record + header("x", typeflag=b"5"))
        else:
            target = draw(st.sampled_from(["t", "a/../t", "é", "x" * 300, "y/" * 2100]))
            parts.append(record + pax(pax_record("linkpath", target)) + header("x", typeflag=b"2"))
    return gz(archive(*parts))


def build(fs: str, tarball: bytes) -> tuple[int, str]:
    with tempfile.TemporaryDirectory(prefix="atvdisk-prop-") as d:
        (Path(d) / "t.tar.gz").write_bytes(tarball)
        layout = Path(d) / "layout.toml"
        layout.write_text(data_layout(fs, '{ kind = "tarball", source = "{layout_dir}/t.tar.gz" }'), encoding="utf-8")
        r = CliRunner().invoke(main, ["build", str(Path(d) / "disk.img"), "--size", str(DISK_BYTES), "--layout", str(layout)], env={"SOURCE_DATE_EPOCH": "1300000000"})
        return r.exit_code, r.stderr


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fs=st.sampled_from(["ext4", "fat32", "hfsplus", "hfsx"]), tarball=tarballs())
@example(fs="fat32", tarball=gz(archive(member("Foo", b"1"), member("foo", b"2"))))
@example(fs="ext4", tarball=gz(archive(member("a\nb", b"1"))))
@example(fs="fat32", tarball=gz(archive(member("a.", b"1"))))
def test_a_build_succeeds_or_is_refused_before_writing(fs: str, tarball: bytes) -> None:
    code, err = build(fs, tarball)
    assert code in (0, 2), f"exit {code}:\n{err}"
    assert "Traceback" not in err
