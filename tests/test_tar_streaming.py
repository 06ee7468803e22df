"""Streaming errors: what happens when a tarball goes wrong where the reader is far from its start
(beyond the first 2 MiB chunk), or after it was checked (during the write phase).

Python's tarfile is the oracle for what an archive holds; refusals are atvdisk's own policy (it
refuses anything after the end-of-archive marker but zeros, as GNU tar warns about it).
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from tarcraft import BLOCK, archive, gz, member, pax

from atvdisk.build import BuildSettings, apply, prepare
from atvdisk.errors import EXIT_BUILD, InputError
from atvdisk.inputs import tarsafe
from atvdisk.inputs.payload import Inputs, OpenElecRelease
from atvdisk.inputs.sample import write_sample
from atvdisk.inputs.tarstream import CHUNK, TarStream, TarStreamError
from atvdisk.inputs.tree import FileTree
from atvdisk.layout.schema import load_layout
from atvdisk.progress import Progress
from atvdisk.target.access import ImageAccess

COMPRESSIONS = {
    "plain": lambda data: data,
    "gz": gz,
    "bz2": lambda data: bz2.compress(data, 1),
    "xz": lambda data: lzma.compress(data, preset=0),
}


def names(path: Path) -> list[str]:
    with TarStream(str(path)) as ts:
        out = []
        for m in ts:
            while ts.read(1 << 20):
                pass
            out.append(m.name)
        return out


# -- after the end-of-archive marker, far from the start ----------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("zeros", [CHUNK - 1024, CHUNK, 3 * CHUNK + 7 * BLOCK])
def test_garbage_after_the_end_beyond_the_first_chunk_is_refused(tmp_path, compression, zeros):
    body = archive(member("a", b"x" * 5000), member("b", b"y")) + b"\0" * zeros
    good = tmp_path / "good.tar"
    good.write_bytes(COMPRESSIONS[compression](body))
    assert names(good) == ["a", "b"]
    with tarfile.open(good) as t:  # the oracle reads the same members
        assert t.getnames() == ["a", "b"]
    bad = tmp_path / "bad.tar"
    bad.write_bytes(COMPRESSIONS[compression](body + b"junk" + b"\0" * 508))
    with pytest.raises(TarStreamError, match="data after the end-of-archive marker"):
        names(bad)
    with pytest.raises(InputError, match=f"{bad}: .*data after the end-of-archive marker"):
        tarsafe.scan(str(bad), FileTree(default_mtime=0))


def test_a_lone_nonzero_byte_megabytes_after_the_end_is_found(tmp_path):
    """A single byte, 9 MiB into trailing zeros: the reader checks every chunk, not the first."""
    body = bytearray(archive(member("a", b"x")) + b"\0" * (9 << 20))
    body[-1000] = 1
    path = tmp_path / "t.tar.gz"
    path.write_bytes(gz(bytes(body)))
    with pytest.raises(TarStreamError, match="data after the end-of-archive marker"):
        names(path)


# -- pax lengths that are not numbers ------------------------------------------------------------


@pytest.mark.parametrize(
    "records",
    [
        b"+7 a=b\n",
        b"-7 a=b\n",
        b" 7 a=b\n",
        b"7\ta=b\n",
        "\uff17 a=b\n".encode(),  # a fullwidth 7: int() would take it
        b"0x7 a=b\n",
        b"7.0 a=b\n",
        b"1e1 a=bcdefg\n",
        b"seven a=b\n",
        b" a=b\n",
    ],
)
def test_non_numeric_pax_lengths_are_refused(tmp_path, records):
    path = tmp_path / "p.tar"
    path.write_bytes(archive(pax(records), member("a", b"x")))
    with pytest.raises(TarStreamError):
        names(path)
    with pytest.raises(InputError, match=str(path)):
        tarsafe.scan(str(path), FileTree(default_mtime=0))


# -- truncated after it was checked: found while writing -----------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("sample"))


def restore_tarball(path: Path, compression: str) -> bytes:
    """A restore tarball with a member beyond the first chunk; returns the uncompressed bytes."""
    big = os.urandom(3 << 20)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in (("boot.efi", b"efi" * 1000), ("restore-only.bin", big)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    path.write_bytes(COMPRESSIONS[compression](raw.getvalue()))
    return raw.getvalue()


def cut_inside_the_big_member(path: Path, raw: bytes, compression: str) -> None:
    path.write_bytes(COMPRESSIONS[compression](raw[: 3 * BLOCK + len(b"efi" * 1000) + (2 << 20)]))


@pytest.mark.parametrize("compression", ["plain", "gz"])
def test_a_tarball_truncated_while_an_image_is_written(tmp_path, sample, compression):
    """The restore tarball passes every check, then loses its end (a USB stick pulled, a copy
    still running) before the write phase reads it again. An image is built under a temporary
    name: the refusal is an input error naming the tarball, as if found before writing, and no
    short file is ever written as if it were whole."""
    restore = tmp_path / f"restore.tar.{compression}"
    raw = restore_tarball(restore, compression)
    img = tmp_path / "atv.img"
    with open(img, "wb") as f:
        f.truncate(4 << 30)
    settings = BuildSettings(load_layout("atv1-openelec"), Inputs(OpenElecRelease.open(str(sample.openelec)), str(restore), str(sample.recovery)), epoch=1, seed="t")
    prepared = prepare(settings, 4 << 30, 512)
    cut_inside_the_big_member(restore, raw, compression)
    with pytest.raises(InputError) as info:
        apply(prepared, ImageAccess(img, known_zero=True), Progress(quiet=True), workdir=str(tmp_path))
    assert str(restore) in str(info.value) and "truncated" in str(info.value) and info.value.hint


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root (CI is root)")
def test_a_tarball_truncated_while_a_disk_is_written(tmp_path, sample, monkeypatch):
    """The same on a disk (a loop device): the disk is already wiped and half-written, so it is a
    build failure (exit 4: build it again), not a usage error (exit 2 says nothing was written).
    (The tarball is read again when its decompressed copy could not be kept, here for lack of
    room: see the next test for the build that keeps one.)"""
    from click.testing import CliRunner

    import atvdisk.cli.build as cli_build
    from atvdisk.cli.main import main

    monkeypatch.setattr(tarsafe, "SPOOL_RESERVE", 1 << 62)  # no room for a spool anywhere
    restore = tmp_path / "restore.tar.gz"
    raw = restore_tarball(restore, "gz")
    real_prepare = cli_build.prepare

    def prepare_then_cut(*args, **kwargs):  # the checks pass; then the file changes under us
        prepared = real_prepare(*args, **kwargs)
        cut_inside_the_big_member(restore, raw, "gz")
        return prepared

    monkeypatch.setattr(cli_build, "prepare", prepare_then_cut)
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(4 << 30)
    dev = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True, text=True, check=True).stdout.strip()
    try:
        result = CliRunner().invoke(main, ["build", dev, "--example", "--restore", str(restore), "--yes"])
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
    assert result.exit_code == EXIT_BUILD, result.output
    assert "truncated" in result.output and f"found while writing {dev}" in result.output and f"{dev} is now incomplete" in result.output
    assert f"build {dev} again" in result.output and "Traceback" not in result.output


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root (CI is root)")
def test_a_tarball_truncated_after_its_checks_does_not_reach_the_disk(tmp_path, sample, monkeypatch):
    """A compressed tarball is decompressed once, while it is checked, into a private spool that
    the writing reads: cut after the checks, the disk still gets exactly what was checked. The
    build succeeds (its own verification included), and ``verify`` against an untouched copy
    of the tarball (tarfile-made: the judge of what it holds) finds every member."""
    import shutil

    from click.testing import CliRunner

    import atvdisk.cli.build as cli_build
    from atvdisk.cli.main import main

    restore = tmp_path / "restore.tar.gz"
    raw = restore_tarball(restore, "gz")
    original = tmp_path / "original.tar.gz"
    shutil.copyfile(restore, original)
    real_prepare = cli_build.prepare

    def prepare_then_cut(*args, **kwargs):  # the checks pass; then the file changes under us
        prepared = real_prepare(*args, **kwargs)
        cut_inside_the_big_member(restore, raw, "gz")
        return prepared

    monkeypatch.setattr(cli_build, "prepare", prepare_then_cut)
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(4 << 30)
    dev = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True, text=True, check=True).stdout.strip()
    try:
        built = CliRunner().invoke(main, ["build", dev, "--example", "--restore", str(restore), "--yes"])
        checked = CliRunner().invoke(main, ["verify", dev, "--example", "--restore", str(original)])
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
    assert built.exit_code == 0, built.output
    assert checked.exit_code == 0, checked.output
