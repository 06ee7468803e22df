"""Exit codes as the README says, on every path (issue 11, items 2 and 4): a problem with what the
user gave is 2, a target refused is 3, and nothing reaches the user as an internal error (1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to drop to another user, and for loop devices)")


def atvdisk(*args, user: str | None = None, timeout: int = 120):
    cmd = [sys.executable, "-m", "atvdisk", *map(str, args)]
    if user is not None:
        cmd = [shutil.which("setpriv") or "setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def no_internal_error(r) -> None:
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.root
@needs_root
@pytest.mark.parametrize("kind", ["image", "loop", "hidden-directory"])
def test_verify_unprivileged_is_a_refused_target(request, kind):
    # Was a PermissionError traceback ("internal error", exit 1). The image lives in a directory
    # "nobody" can reach (pytest keeps its own temporary directories private).
    tmp_path = Path(tempfile.mkdtemp(prefix="atvdisk-test-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))
    tmp_path.chmod(0o755)
    img = tmp_path / "disk.img"
    if kind == "hidden-directory":  # the image's directory cannot be entered: was exit 2
        (tmp_path / "private").mkdir(mode=0o700)
        img = tmp_path / "private" / "disk.img"
    with open(img, "wb") as f:
        f.truncate(4 << 30)
    img.chmod(0o600)
    target = str(img)
    loop = None
    if kind == "loop":
        loop = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True, text=True, check=True).stdout.strip()
        os.chmod(loop, 0o600)
        target = loop
    try:
        r = atvdisk("verify", target, "--example", user="nobody")
    finally:
        if loop:
            subprocess.run(["losetup", "-d", loop], check=True)
    no_internal_error(r)
    assert r.returncode == 3, r.stderr
    assert f"{target}: permission denied" in r.stderr and "run as root" in r.stderr


def _public_dir(request) -> Path:  # noqa: ANN001
    d = Path(tempfile.mkdtemp(prefix="atvdisk-test-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    d.chmod(0o755)
    return d


@pytest.mark.root
@needs_root
@pytest.mark.parametrize("what", ["openelec-kernel", "layout-file", "layout-directory"])
def test_unreadable_host_inputs_are_refused_before_writing(request, what):
    # Only the writer opened these files: a dry run passed, a real build failed after the wipe.
    d = _public_dir(request)
    if what == "openelec-kernel":
        rel = d / "release"
        rel.mkdir(mode=0o755)
        (rel / "KERNEL").write_bytes(b"k")
        (rel / "SYSTEM").write_bytes(b"s")
        (rel / "KERNEL").chmod(0o600)
        args, message = ["--example", "--openelec", rel], "cannot read KERNEL: Permission denied"
    else:
        src = d / "tree"
        (src / "private").mkdir(parents=True)
        (src / "secret").write_text("x")
        (src / "secret").chmod(0o600 if what == "layout-file" else 0o644)
        (src / "private").chmod(0o700 if what == "layout-directory" else 0o755)
        src.chmod(0o755)
        kind = '{ kind = "file", source = "{layout_dir}/tree/secret", path = "s" }' if what == "layout-file" else '{ kind = "directory", source = "{layout_dir}/tree" }'
        (d / "layout.toml").write_text(f'[[partition]]\nname = "P"\ntype = "linux"\nstart = "1MiB"\nsize = "20MiB"\nfs = {{ kind = "ext4" }}\ncontents = [ {kind} ]\n')
        args = ["--layout", d / "layout.toml"]
        message = "cannot read " + str(src / "secret") if what == "layout-file" else "cannot read the directory " + str(src / "private")
    out = d / "out"  # where nobody may create the image: the dry run checks that too
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    r = atvdisk("build", out / "out.img", "--size", "4G", "--dry-run", *args, user="nobody")
    no_internal_error(r)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
