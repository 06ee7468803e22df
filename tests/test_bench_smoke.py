"""The benchmark harness (bench/run.py) in its smoke mode, so that it cannot rot: every section
runs on tiny payloads, the table has every row, the peers' images are read back and found equal,
and the work directory is cleaned up. No time is asserted (targets are for full runs only).

The harness's image comparison is itself checked here: it must find the files atvdisk wrote
(hashes computed from the sources with hashlib) and must report a difference when there is one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
ROWS = {"1a", "1b", "1c", "1d", "1e", "2a", "2b", "2c", "3a", "3b", "4a", "4b", "4c", "5a", "5b", "5c", "6a", "6b"}
ROWS_WITH_TARGETS = {"1a", "1b", "1c", "1d", "2a", "3a", "3b", "4a", "4c", "5a", "5b", "5c"}


def table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and cells[0] in ROWS:
            rows[cells[0]] = cells
    return rows


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="systemd-repart 252 and the original procedure need loop devices and mount (root)")
def test_smoke_run_has_every_row_and_cleans_up(tmp_path):
    work = tmp_path / "work"
    raw = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, str(BENCH / "run.py"), "--smoke", "--workdir", str(work), "--json", str(raw)], check=False, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"bench/run.py --smoke failed:\n{r.stdout}\n{r.stderr}"
    rows = table_rows(r.stdout)
    assert set(rows) == ROWS, r.stdout
    for key, cells in rows.items():
        result = cells[-1]
        assert "FAIL" not in result and "could not run" not in result and "differ" not in result, f"row {key}: {result}"
        if key in ROWS_WITH_TARGETS:
            assert result == "(smoke)", f"row {key}: a smoke run gives no verdict, got {result!r}"
    # Both peers built the same image as atvdisk, judged by sfdisk/blkid/e2fsck/debugfs.
    assert "genimage (contents verified equal)" in rows["2b"][1]
    assert "systemd-repart (contents verified equal)" in rows["2c"][1]
    for name in ("CPU", "kernel", "work dir", "e2fsprogs", "dosfstools", "mtools", "genimage", "systemd", "atvdisk"):
        assert f"| {name} |" in r.stdout
    doc = json.loads(raw.read_text())
    assert doc["smoke"] is True and doc["runs"] == 1
    assert all(section["rows"] for section in doc["sections"].values())
    # No loop device or mount is left behind (the original procedure attaches five)...
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    assert str(work) not in loops, loops
    mounts = Path("/proc/self/mounts").read_text()
    assert str(work) not in mounts
    # ...and only the payload cache stays behind, for a second run to reuse.
    assert [p.name for p in work.iterdir()] == ["cache"]
    cached = sorted(p.name for p in (work / "cache").iterdir())
    assert cached and all(not n.startswith(".") for n in cached)


def test_image_comparison_reads_the_files_and_finds_differences(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        import imagecheck
    finally:
        sys.path.remove(str(BENCH))
    media = tmp_path / "media"
    (media / "sub").mkdir(parents=True)
    (media / "a.bin").write_bytes(os.urandom(300_000))
    (media / "sub" / "b.txt").write_bytes(b"hello\n")
    (media / "sub" / "b.txt").chmod(0o600)
    shutil.copyfile(BENCH / "layouts" / "peers-gpt.toml", tmp_path / "peers-gpt.toml")
    image = tmp_path / "disk.img"
    r = subprocess.run(
        [sys.executable, "-m", "atvdisk", "build", str(image), "--size", "4G", "--layout", str(tmp_path / "peers-gpt.toml"), "--no-verify"],
        check=False, capture_output=True, text=True, env={**os.environ, "SOURCE_DATE_EPOCH": "1300000000"},
    )
    assert r.returncode == 0, r.stderr
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    d = imagecheck.describe(image, scratch)
    assert [p["table"]["name"] for p in d["partitions"]] == ["EFI", "Media", "Swap"]
    assert [p["blkid"].get("TYPE") for p in d["partitions"]] == ["vfat", "ext4", "swap"]
    files = d["partitions"][1]["files"]
    assert files["a.bin"] == ("file", (media / "a.bin").stat().st_mode & 0o777, 0, 0, 300_000, hashlib.sha256((media / "a.bin").read_bytes()).hexdigest())
    assert files["sub/b.txt"] == ("file", 0o600, 0, 0, 6, hashlib.sha256(b"hello\n").hexdigest())
    assert files["sub"][0] == "dir" and files["lost+found"][0] == "dir"
    assert d["partitions"][1]["fsck"] == "clean"
    assert imagecheck.differences(d, d) == []
    changed = json.loads(json.dumps(d))  # a deep copy (tuples become lists: compare like for like)
    same = json.loads(json.dumps(d))
    entry = list(changed["partitions"][1]["files"]["sub/b.txt"])
    entry[5] = "0" * 64
    changed["partitions"][1]["files"]["sub/b.txt"] = entry
    assert imagecheck.differences(same, same) == []
    assert any("sub/b.txt" in diff for diff in imagecheck.differences(same, changed))
    moved = json.loads(json.dumps(d))
    moved["partitions"][2]["table"]["start"] += 8
    assert any("partition 3: table entry" in diff for diff in imagecheck.differences(same, moved))
