"""Exit codes as the README says, on every path (issue 11, items 2 and 4): a problem with what the
user gave is 2, a target refused is 3, and nothing reaches the user as an internal error (1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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
@pytest.mark.parametrize("kind", ["image", "loop"])
def test_verify_unprivileged_is_a_refused_target(tmp_path, kind):
    # Was a PermissionError traceback ("internal error", exit 1).
    for parent in (tmp_path, *tmp_path.parents):
        if not os.stat(parent).st_mode & 0o001:
            parent.chmod(parent.stat().st_mode | 0o001)  # let "nobody" reach the image's directory
    tmp_path.chmod(0o755)
    img = tmp_path / "disk.img"
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
