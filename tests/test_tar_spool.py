"""Inflate once: the scan keeps a compressed tarball's decompressed bytes (a spool), and the
writing reads those instead of inflating the tarball again (atvdisk/inputs/tarsafe.py).

Judges: Python's gzip and tarfile (the spool is the decompressed archive, byte for byte), and
builds that must still come out right when the tarball itself is gone or garbage by the time the
partitions are written (only the spool can then have supplied the data).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile

import pytest

from atvdisk.errors import InputError
from atvdisk.inputs import tarsafe
from atvdisk.inputs.sample import write_sample, write_tar_gz
from atvdisk.inputs.tree import ArchiveMember, FileTree


@pytest.fixture
def sample(tmp_path):
    return write_sample(tmp_path / "sample")


def _members(tree: FileTree) -> list[ArchiveMember]:
    return [n.source for _, n in tree.files() if isinstance(n.source, ArchiveMember)]


def _streamed(archive: str, tree: FileTree, spool) -> dict[str, bytes]:  # noqa: ANN001
    got: dict[str, bytes] = {}

    def sink(paths, f, size):  # noqa: ANN001, ANN202
        data = f.read(size)
        for p in paths:
            got[p] = data

    tarsafe.stream(archive, tree.sources_from(archive), sink, spool=spool)
    return got


def test_the_spool_is_the_decompressed_archive_and_is_read_instead_of_it(tmp_path, sample):
    spooler = tarsafe.Spooler(str(tmp_path))
    tree = FileTree(default_mtime=0)
    tarsafe.scan(str(sample.restore), tree, spooler=spooler)
    spools = {m.spool for m in _members(tree)}
    assert len(spools) == 1
    spool = spools.pop()
    assert spool is not None and spool.ready
    with open(spool.path, "rb") as f:
        assert f.read() == gzip.decompress(sample.restore.read_bytes())
    expected = {m.name: tarfile.open(sample.restore).extractfile(m).read() for m in tarfile.open(sample.restore) if m.isfile()}
    # The tarball is gone: only the spool can supply the members now.
    copy = sample.restore.read_bytes()
    sample.restore.unlink()
    assert _streamed(str(sample.restore), tree, spool) == expected
    spooler.close()
    assert not spool.ready and spooler.open_spools == 0
    sample.restore.write_bytes(copy)
    assert _streamed(str(sample.restore), tree, spool) == expected  # closed: the tarball again


def test_a_spool_over_its_budget_is_given_up_and_the_tarball_read_again(tmp_path, sample):
    spooler = tarsafe.Spooler(str(tmp_path), budget=4096)
    tree = FileTree(default_mtime=0)
    tarsafe.scan(str(sample.restore), tree, spooler=spooler)
    spool = _members(tree)[0].spool
    assert spool is not None and not spool.ready
    assert spooler.open_spools == 0  # the partial spool was freed
    expected = {m.name: tarfile.open(sample.restore).extractfile(m).read() for m in tarfile.open(sample.restore) if m.isfile()}
    assert _streamed(str(sample.restore), tree, spool) == expected
    spooler.close()


def test_a_plain_tarball_is_not_spooled(tmp_path):
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("a")
        info.size = 3
        t.addfile(info, io.BytesIO(b"abc"))
    spooler = tarsafe.Spooler(str(tmp_path))
    tree = FileTree(default_mtime=0)
    tarsafe.scan(str(plain), tree, spooler=spooler)
    assert _members(tree)[0].spool is None
    assert spooler.open_spools == 0
    spooler.close()


@pytest.mark.parametrize("damage", ["truncated", "bad member"])
def test_a_refused_tarball_leaves_no_spool_and_the_same_message(tmp_path, damage):
    members = [("ok.txt", b"fine\n", 0o644), ("big.bin", os.urandom(300_000), 0o644)]
    bad = tmp_path / "bad.tar.gz"
    if damage == "truncated":
        write_tar_gz(bad, members)
        bad.write_bytes(bad.read_bytes()[:-5000])
    else:
        write_tar_gz(bad, [*members, ("../escape", b"x", 0o644)])
    with pytest.raises(InputError) as without:
        tarsafe.scan(str(bad), FileTree(default_mtime=0))
    spooler = tarsafe.Spooler(str(tmp_path))
    with pytest.raises(InputError) as spooled:
        tarsafe.scan(str(bad), FileTree(default_mtime=0), spooler=spooler)
    assert spooled.value.message == without.value.message and spooled.value.hint == without.value.hint
    assert spooler.open_spools == 0
    spooler.close()


def test_the_build_writes_from_the_spool_and_deletes_it(tmp_path, sample):
    """prepare(spool=True), then the tarballs are replaced by garbage of the same size: apply
    must still write the members as checked (from the spools), and delete the spools."""
    from atvdisk.build import BuildSettings, apply, prepare
    from atvdisk.inputs.payload import Inputs, OpenElecRelease
    from atvdisk.layout.schema import load_layout
    from atvdisk.progress import Progress
    from atvdisk.target.access import ImageAccess
    from atvdisk.verify import verify

    settings = BuildSettings(load_layout("atv1-openelec"), Inputs(OpenElecRelease.open(str(sample.openelec)), str(sample.restore), str(sample.recovery)), epoch=1, seed="spool")
    prepared = prepare(settings, 4 * 2**30, 512, spool=True)
    spooler = prepared.spooler
    assert spooler is not None and spooler.open_spools == 2  # restore and recovery
    want = {m.name: hashlib.sha256(tarfile.open(sample.restore).extractfile(m).read()).hexdigest() for m in tarfile.open(sample.restore) if m.isfile()}
    for tarball in (sample.restore, sample.recovery):
        tarball.write_bytes(b"\x1f\x8b" + bytes(tarball.stat().st_size - 2))
    img = tmp_path / "s.img"
    with open(img, "wb") as f:
        f.truncate(4 * 2**30)
    apply(prepared, ImageAccess(str(img), known_zero=True), Progress(quiet=True), workdir=str(tmp_path))
    assert prepared.spooler is None and spooler.open_spools == 0
    assert prepared.hashes[2]["boot.efi"] == want["boot.efi"]
    report = verify(str(img), prepared.plan, prepared.contents, expected=prepared.expected, known_hashes=prepared.hashes)
    assert report.mismatches == []


def test_a_build_leaves_no_spool_behind(tmp_path, sample):
    """Whether the build succeeds or fails after its inputs were scanned (here: SYSTEM does not
    match its md5, found while an image is written), nothing of it is left in TMPDIR."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "SOURCE_DATE_EPOCH": "1"}

    def build(img, openelec):  # noqa: ANN001, ANN202
        cmd = [sys.executable, "-m", "atvdisk", "build", str(img), "--size", "4G", "--no-verify", "--openelec", str(openelec), "--restore", str(sample.restore), "--recovery", str(sample.recovery)]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)

    r = build(tmp_path / "x.img", sample.openelec)
    assert r.returncode == 0, r.stderr
    assert os.listdir(tmp) == []
    system = sample.openelec / "SYSTEM"
    data = bytearray(system.read_bytes())
    data[len(data) // 2] ^= 1
    system.write_bytes(bytes(data))
    r = build(tmp_path / "y.img", sample.openelec)
    assert r.returncode == 2 and "SYSTEM does not match SYSTEM.md5" in r.stderr, r.stderr
    assert os.listdir(tmp) == []


def test_an_image_build_refused_after_its_checks_deletes_the_spools(tmp_path, sample, monkeypatch):
    """The CLI closes the prepared build however it ends, also when it stops before apply()
    (here the image cannot be created after the inputs were checked)."""
    from atvdisk.build import BuildSettings
    from atvdisk.cli import build as cli_build
    from atvdisk.cli.console import Console
    from atvdisk.errors import TargetRefused
    from atvdisk.inputs.payload import Inputs, OpenElecRelease
    from atvdisk.layout.schema import load_layout
    from atvdisk.progress import Progress

    made: list[tarsafe.Spooler] = []
    real = tarsafe.Spooler.__init__

    def spy(self, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        real(self, str(tmp_path), **k)
        made.append(self)

    def refuse(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise TargetRefused("refused after the checks (test)", hint="")

    monkeypatch.setattr(tarsafe.Spooler, "__init__", spy)
    monkeypatch.setattr(cli_build.targets, "ImageTarget", refuse)
    settings = BuildSettings(load_layout("atv1-openelec"), Inputs(OpenElecRelease.open(str(sample.openelec)), str(sample.restore), str(sample.recovery)), epoch=1)
    with pytest.raises(TargetRefused):
        cli_build._build_image(Console(), settings, str(tmp_path / "z.img"), 4 * 2**30, loop=False, force=False, verify_after=False, progress=Progress(quiet=True))
    assert len(made) == 1 and made[0].open_spools == 0


def test_a_prepare_that_refuses_an_input_deletes_its_spools(tmp_path, sample, monkeypatch):
    """The restore tarball was spooled, then the recovery tarball is refused: prepare() raises
    the refusal and leaves nothing in the temporary directory."""
    import tempfile

    from atvdisk.build import BuildSettings, prepare
    from atvdisk.inputs.payload import Inputs, OpenElecRelease
    from atvdisk.layout.schema import load_layout

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    write_tar_gz(sample.recovery, [("ok", b"x", 0o644), ("/etc/passwd", b"x", 0o644)])
    settings = BuildSettings(load_layout("atv1-openelec"), Inputs(OpenElecRelease.open(str(sample.openelec)), str(sample.restore), str(sample.recovery)), epoch=1)
    with pytest.raises(InputError, match="absolute path"):
        prepare(settings, 4 * 2**30, 512, spool=True)
    assert os.listdir(tmp) == []


def test_a_killed_build_leaves_no_spool(tmp_path, sample):
    """Spools have no name from the moment they exist: a process killed with SIGKILL after its
    scan (nothing can clean up then) leaves nothing of them in TMPDIR."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code = (
        "import os, signal, sys\n"
        "from atvdisk.inputs import tarsafe\n"
        "from atvdisk.inputs.tree import FileTree\n"
        "spooler = tarsafe.Spooler()\n"
        "tree = FileTree(default_mtime=0)\n"
        "tarsafe.scan(sys.argv[1], tree, spooler=spooler)\n"
        "assert spooler.open_spools == 1\n"
        "print(len(os.listdir(sys.argv[2])), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(sample.restore), str(tmp)], env={**os.environ, "TMPDIR": str(tmp)}, capture_output=True, text=True, check=False)
    assert r.returncode == -9 and r.stdout.strip() == "0", (r.returncode, r.stdout, r.stderr)
    assert os.listdir(tmp) == []
