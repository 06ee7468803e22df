"""Section 4: peak memory of a full build with a 2 GB file in the payload, and with 100,000
files in a tarball.

The 2 GB file is the restore tarball's OS.dmg (gzip'ed like the rest), so it streams through
atvdisk's tarball checks, the HFS+ writer and the verification. It does not fit the bundled
layout's 400 MiB Recovery, so the build uses the bundled atv1-openelec layout with only
Recovery enlarged to 2.5 GiB (OSBoot and Media then follow it), on an 8 GiB sparse image,
with verification (the default). Peak RSS comes from bench/rss_child.py (wait4's ru_maxrss: the
largest of atvdisk's process and the tools it runs), with atvdisk's own VmHWM beside it.
Baselines: ``atvdisk --version`` (interpreter and imports) and the 4 GiB build of section 1.
The many-file case is the same layout and image with the restore tarball carrying 100,000 more
small files (64 B to 1 KiB, 100 to a directory), verified: every per-file record (tree node,
HFS+ catalog record, recorded hash, verification entry) is counted 100,000 times.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from atvbuild import BENCH, atvdisk_env, build_cmd
from common import MB, BenchError, Row, Section, remove, run, settle, verdict
from payload import AtvPayload

RSS_LIMIT = 100 * MB
RECOVERY_SECTORS = 5_242_880  # 2.5 GiB


def big_recovery_layout(work: Path) -> Path:
    """atv1-openelec with a 2.5 GiB Recovery; OSBoot and Media start right after their predecessor."""
    from atvdisk.layout.schema import bundled_layouts

    text = bundled_layouts()["atv1-openelec"].read_text()
    edits = (('size = "819200s"', f'size = "{RECOVERY_SECTORS}s"'), ('start = "888872s"', ""), ('start = "2732072s"', ""))
    for old, new in edits:
        if text.count(old) != 1:
            raise BenchError(f"the bundled atv1-openelec layout no longer has exactly one {old!r}: update bench/memory.py")
        text = text.replace(old, new)
    text = text.replace('description = "', 'description = "benchmark (2.5 GiB Recovery): ', 1)
    path = work / "atv1-openelec-bigrecovery.toml"
    path.write_text(text)
    return path


def measure(cmd: list[str]) -> dict:
    r = run([sys.executable, str(BENCH / "rss_child.py"), "--", *cmd], env=atvdisk_env())
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    if doc["returncode"] != 0:
        raise BenchError(f"`{' '.join(cmd[:6])} ...` exited {doc['returncode']}: {doc['stderr'][-600:]}")
    return doc


def run_memory(work: Path, payload: AtvPayload, restore_big: Path, big_size: int, restore_many: Path, many: int, *, smoke: bool) -> Section:
    sec = Section("4. Memory: peak RSS of a full build with a 2 GB file in the payload, and with many files")
    layout = big_recovery_layout(work)
    image = work / "rss.img"
    try:
        settle()
        base = measure([sys.executable, "-m", "atvdisk", "--version"])
        remove(image)
        normal = measure(build_cmd(image, "4G", payload=payload))
        remove(image)
        settle()
        big = measure(build_cmd(image, "8G", layout=layout, payload=payload, restore=restore_big))
        remove(image)
        settle()
        files = measure(build_cmd(image, "8G", layout=layout, payload=payload, restore=restore_many))
    finally:
        remove(image, layout)
        settle()
    peak = max(big["maxrss_bytes"], big["own_hwm_bytes"])
    sec.rows.append(
        Row("4a", f"peak RSS, build with a {big_size / MB:,.0f} MB OS.dmg (verified) vs `atvdisk --version`", f"{peak / MB:.1f} MB", f"{base['maxrss_bytes'] / MB:.1f} MB", "-", f"<= {RSS_LIMIT / MB:.0f} MB", verdict(peak <= RSS_LIMIT, smoke))
    )
    files_peak = max(files["maxrss_bytes"], files["own_hwm_bytes"])
    sec.rows.append(Row("4c", f"peak RSS, build with {many:,} more files in the restore tarball (verified) vs `atvdisk --version`", f"{files_peak / MB:.1f} MB", f"{base['maxrss_bytes'] / MB:.1f} MB", "-", f"<= {RSS_LIMIT / MB:.0f} MB", verdict(files_peak <= RSS_LIMIT, smoke)))
    sec.rows.append(Row("4b", "peak RSS, the 4 GiB build of section 1 (largest file 285 MB)" if not smoke else "peak RSS, the 4 GiB build of section 1", f"{max(normal['maxrss_bytes'], normal['own_hwm_bytes']) / MB:.1f} MB", "-", "-", "-", "info"))
    sec.notes.append(
        f"atvdisk's own process (VmHWM): {big['own_hwm_bytes'] / MB:.1f} MB with the large file, {normal['own_hwm_bytes'] / MB:.1f} MB in the 4 GiB build, "
        f"{base['own_hwm_bytes'] / MB:.1f} MB for --version; the rest of the peak, if any, is the largest tool atvdisk ran. One run (memory is not a timing); "
        f"the large build took {big['wall']:.1f} s."
    )
    sec.notes.append(f"With {many:,} more files: atvdisk's own VmHWM {files['own_hwm_bytes'] / MB:.1f} MB, largest tool {files['maxrss_bytes'] / MB:.1f} MB; the build took {files['wall']:.1f} s.")
    sec.data = {"version": base, "normal": normal, "big": big, "big_file_bytes": big_size, "many": files, "many_files": many}
    return sec
