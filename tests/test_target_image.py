"""ImageTarget: the image appears at its final path only after a successful build. Unprivileged."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from test_target_helpers import MIB, python_child

from atvdisk.errors import TargetRefused
from atvdisk.target.imagefile import ImageTarget


def _partials(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(".partial"))


def test_success_renames_a_sparse_image_into_place(tmp_path):
    final = tmp_path / "atv.img"
    old_umask = os.umask(0o022)
    try:
        with ImageTarget(final, 64 * MIB) as image:
            assert image.path is not None and image.path.parent == tmp_path
            assert image.path.name.startswith(
                ".atv.img.atvdisk-"
            ) and image.path.name.endswith(".partial")
            assert not final.exists()
            os.pwrite(image.fd, b"GPT!" * 1024, MIB)
    finally:
        os.umask(old_umask)
    st = final.stat()
    assert st.st_size == 64 * MIB
    assert st.st_blocks * 512 < 4 * MIB  # sparse: only what was written
    assert stat.S_IMODE(st.st_mode) == 0o644
    with open(final, "rb") as f:
        f.seek(MIB)
        assert f.read(4096) == b"GPT!" * 1024
    assert _partials(tmp_path) == []


def test_tools_can_write_through_the_temporary_path(tmp_path):
    final = tmp_path / "t.img"
    with ImageTarget(final, 16 * MIB) as image:
        subprocess.run(
            ["mkfs.fat", "-F", "32", "-n", "TOOLS", str(image.path)],
            check=True,
            capture_output=True,
        )
    out = subprocess.run(
        ["fsck.fat", "-n", str(final)], check=False, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_failure_leaves_nothing(tmp_path):
    final = tmp_path / "atv.img"
    with pytest.raises(RuntimeError), ImageTarget(final, 8 * MIB) as image:
        os.pwrite(image.fd, b"x" * 4096, 0)
        raise RuntimeError("mke2fs failed")
    assert not final.exists()
    assert _partials(tmp_path) == []


def test_keyboard_interrupt_leaves_nothing(tmp_path):
    final = tmp_path / "atv.img"
    with pytest.raises(KeyboardInterrupt), ImageTarget(final, 8 * MIB):
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_existing_image_refused_without_overwrite(tmp_path):
    final = tmp_path / "atv.img"
    final.write_bytes(b"old image")
    with pytest.raises(TargetRefused) as info, ImageTarget(final, 8 * MIB):
        pytest.fail("entered")
    assert "already exists" in str(info.value) and "--force" in info.value.hint
    assert final.read_bytes() == b"old image"
    assert _partials(tmp_path) == []


def test_overwrite_replaces_only_on_success(tmp_path):
    final = tmp_path / "atv.img"
    final.write_bytes(b"old image")
    with pytest.raises(RuntimeError), ImageTarget(final, 8 * MIB, overwrite=True):
        raise RuntimeError
    assert final.read_bytes() == b"old image"  # a failed build keeps the old image
    with ImageTarget(final, 8 * MIB, overwrite=True):
        pass
    assert final.stat().st_size == 8 * MIB
    assert _partials(tmp_path) == []


def test_final_appearing_during_the_build_is_not_clobbered(tmp_path):
    final = tmp_path / "atv.img"
    with (
        pytest.raises(TargetRefused, match="appeared while building"),
        ImageTarget(final, 8 * MIB),
    ):
        final.write_bytes(b"someone else's")
    assert final.read_bytes() == b"someone else's"
    assert _partials(tmp_path) == []


def test_directory_and_device_refused_even_with_overwrite(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(TargetRefused, match="is a directory"):
        ImageTarget(tmp_path / "dir", MIB, overwrite=True).__enter__()
    with pytest.raises(TargetRefused, match="not a regular file"):
        ImageTarget("/dev/null", MIB, overwrite=True).__enter__()
    # Any block device, but not a loop partition node: partx adds and removes those while root
    # tests run beside this one (the suite runs on every core).
    block = next(
        str(p)
        for p in sorted(Path("/dev").iterdir())
        if stat.S_ISBLK(p.lstat().st_mode) and not re.fullmatch(r"loop\d+p\d+", p.name)
    )
    with pytest.raises(TargetRefused, match="block device") as info:
        ImageTarget(block, MIB, overwrite=True).__enter__()
    assert "without --size" in info.value.hint
    with pytest.raises(TargetRefused, match="no such directory"):
        ImageTarget(tmp_path / "missing" / "x.img", MIB).__enter__()


UNWRITABLE = r"""
import os, sys
from atvdisk.errors import TargetRefused
from atvdisk.target.imagefile import ImageTarget
if os.geteuid() == 0:  # root writes anywhere: become nobody (after the imports: nobody may not read them)
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
try:
    ImageTarget(sys.argv[1], 1 << 20).__enter__()
except TargetRefused as e:
    print(e)
    sys.exit(3)
"""


def test_unwritable_directory_refused():
    base = Path(tempfile.mkdtemp(prefix="atvdisk-unwritable-"))
    try:
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        r = subprocess.run(
            [sys.executable, "-c", UNWRITABLE, str(locked / "x.img")],
            check=False,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 3, r.stdout + r.stderr
        assert "permission denied" in r.stdout
        assert list(locked.iterdir()) == []
    finally:
        shutil.rmtree(base)


# A build that writes slowly until killed. argv: final path.
SLOW_BUILD = r"""
import os, sys, time
from atvdisk.target.imagefile import ImageTarget
from atvdisk.target.interrupt import Terminated
try:
    with ImageTarget(sys.argv[1], 64 << 20) as image:
        print(image.path, flush=True)
        for i in range(600):
            os.pwrite(image.fd, b"\xee" * 65536, i * 65536)
            time.sleep(0.1)
except Terminated:
    sys.exit(143)
"""


def _start_slow_build(final: Path) -> tuple[subprocess.Popen, Path]:
    child = python_child(
        SLOW_BUILD, str(final), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    line = child.stdout.readline().decode().strip()
    assert line, child.stderr.read().decode()
    partial = Path(line)
    assert partial.exists() and not final.exists()
    return child, partial


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_killed_build_leaves_no_image(tmp_path, signum):
    final = tmp_path / "atv.img"
    child, partial = _start_slow_build(final)
    child.send_signal(signum)
    child.communicate(timeout=30)
    assert child.returncode in (143, -signal.SIGINT)
    assert not final.exists()
    assert not partial.exists()
    assert list(tmp_path.iterdir()) == []


def test_sigkilled_build_never_leaves_a_final_image(tmp_path):
    final = tmp_path / "atv.img"
    child, partial = _start_slow_build(final)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert not final.exists()
    # SIGKILL cannot be caught: the partial file may remain, but only under its temporary name
    assert [p.name for p in tmp_path.iterdir()] == [partial.name]
    # the next build says so, and still succeeds
    with ImageTarget(final, MIB) as image:
        assert image.stale_partials == (partial,)
        assert any(str(partial) in w for w in image.warnings)
    assert final.exists() and partial.exists()
