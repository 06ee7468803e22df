"""A layout may copy files of this computer (``source = "/etc/..."``): the plan and the build say
which ones lie outside the inputs given and the layout's own directory (issue 11, item 4). The
plan reads sources lexically (it is pure); the build also follows symlinks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def atvdisk(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "atvdisk", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "SOURCE_DATE_EPOCH": "1300000000"}, timeout=300)  # fmt: skip


HOST_LAYOUT = """
[[partition]]
name = "Data"
type = "linux"
size = "64MiB"
fs = { kind = "ext4" }
contents = [
  { kind = "file", path = "inside", source = "{layout_dir}/inside.txt" },
  { kind = "file", path = "absolute", source = "%(absolute)s" },
  { kind = "file", path = "up", source = "{layout_dir}/../outside.txt" },
  { kind = "file", path = "link", source = "{layout_dir}/link" },
  { kind = "file", path = "sub", source = "{layout_dir}/sub/../inside.txt" },
]
"""


def test_host_files_outside_the_inputs_and_the_layout_directory_are_named(tmp_path):
    lay = tmp_path / "lay"
    (lay / "sub").mkdir(parents=True)
    (lay / "inside.txt").write_text("mine")
    (tmp_path / "outside.txt").write_text("not the layout's")
    secret = tmp_path / "secret"
    secret.write_text("a host file")
    (lay / "link").symlink_to(secret)
    layout = lay / "host.toml"
    layout.write_text(HOST_LAYOUT % {"absolute": secret})

    def warned(text: str) -> set[str]:
        """The sources named by a warning (the plan wraps them at 80 columns: joined here)."""
        warnings = " ".join(text.split()).split("warning: ")[1:]
        return {w.split("copies ", 1)[1].split(" ", 1)[0].rstrip(",:") for w in warnings if "outside the inputs given and the layout's directory" in w}

    # The plan (pure: read lexically) names the absolute path and the one that climbs out.
    r = atvdisk("plan", "--layout", layout, "--size", "80M")
    assert "Traceback" not in r.stderr
    assert r.returncode == 0, r.stderr
    assert warned(r.stdout + r.stderr) == {f"'{secret}'", "'{layout_dir}/../outside.txt'"}
    # The build names the symlink that leads out too, as its output says before writing.
    img = tmp_path / "host.img"
    r = atvdisk("build", img, "--size", "80M", "--layout", layout)
    assert "Traceback" not in r.stderr
    assert r.returncode == 0, r.stderr
    assert warned(r.stderr) == {f"'{secret}'", "'{layout_dir}/../outside.txt'", "'{layout_dir}/link'"}
    assert f"resolves to {secret}" in r.stderr
    # A dry run says the same.
    r = atvdisk("build", tmp_path / "dry.img", "--size", "80M", "--layout", layout, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert warned(r.stdout + r.stderr) == {f"'{secret}'", "'{layout_dir}/../outside.txt'", "'{layout_dir}/link'"}
