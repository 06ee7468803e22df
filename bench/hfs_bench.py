#!/usr/bin/env python3
"""HFS+ writer benchmark (not a test): figures as ratios against baselines measured in the
same run, on the same file system.

(a) throughput: a volume holding a 150 MB and a 300 MB file, written by atvdisk's HFS+ writer
    (tree + layout + write + fsync, as mkfs tools do) against ``cp`` of the same two files plus
    an fsync of the copies; and the writer without its fsync against plain ``cp``. Target:
    >= 0.9 x cp throughput in both comparisons.
(b) 10,000 small files in nested folders: time to build the volume. Target: <= 3 s. Baseline:
    ``cp -a`` of the same tree.
(c) peak RSS of a child process building a volume with a 2 GB file (resource.getrusage),
    through the kernel copy path and through the pread/pwrite fallback. Target: <= 100 MB.
    Baseline: a child that only imports atvdisk.

    python bench/hfs_bench.py            # full run (needs ~6 GB free in --workdir)
    python bench/hfs_bench.py --smoke    # tiny sizes, a few seconds (CI)

Each timing is the best of ``--repeat`` runs (page cache warm for both sides).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 1000 * 1000
MIB = 1 << 20

CHILD = r"""
import json, os, resource, sys
from atvdisk.fs.hfsplus.layout import VolumeOptions
from atvdisk.fs.hfsplus.tree import HfsTree
from atvdisk.fs.hfsplus.writer import write_volume
from atvdisk.fs.region import Region
src, image, size, slow = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
if src != "-":
    tree = HfsTree.from_host_dir(src)
    with Region.open(image, 0, size, create=True) as region:
        if slow:
            region._cfr_ok = region._sendfile_ok = False
        write_volume(tree, VolumeOptions(create_time=1, volume_id=1), region)
hwm = 0
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
print(json.dumps({"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "hwm_kib": hwm}))
"""


def _fill(path: Path, size: int, seed: int) -> None:
    block = random.Random(seed).randbytes(MIB)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def _volume_size(data_bytes: int) -> int:
    return (data_bytes * 11 // 10 // MIB + 64) * MIB


def _build(src: Path, image: Path, size: int, sync: bool = True) -> float:
    from atvdisk.fs.hfsplus.layout import VolumeOptions
    from atvdisk.fs.hfsplus.tree import HfsTree
    from atvdisk.fs.hfsplus.writer import write_volume
    from atvdisk.fs.region import Region

    if image.exists():
        image.unlink()
    t0 = time.perf_counter()
    tree = HfsTree.from_host_dir(src)
    with Region.open(image, 0, size, create=True) as region:
        write_volume(tree, VolumeOptions(create_time=1, volume_id=1), region, sync=sync)
    return time.perf_counter() - t0


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def _fsync_tree(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def bench_throughput(work: Path, sizes: list[int], repeat: int) -> dict:
    src = work / "big-src"
    src.mkdir()
    for i, n in enumerate(sizes):
        _fill(src / f"file{i}.bin", n, i)
    total = sum(sizes)
    image = work / "big.hfs"
    vol = _volume_size(total)
    t_hfs, t_hfs_nosync, t_cp, t_cp_sync = [], [], [], []
    for _ in range(repeat):
        dst = work / "cp-dst"
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir()
        os.sync()
        t_cp.append(_timed(["cp", *[str(p) for p in sorted(src.iterdir())], str(dst)]))
        t0 = time.perf_counter()
        _fsync_tree(dst)
        t_cp_sync.append(t_cp[-1] + time.perf_counter() - t0)
        shutil.rmtree(dst)
        os.sync()
        t_hfs.append(_build(src, image, vol))
        image.unlink()
        os.sync()
        t_hfs_nosync.append(_build(src, image, vol, sync=False))
        image.unlink()
        os.sync()
    shutil.rmtree(src)
    best = {"hfs": min(t_hfs), "hfs_nosync": min(t_hfs_nosync), "cp": min(t_cp), "cp_sync": min(t_cp_sync)}
    return {
        "bytes": total,
        "seconds": best,
        "mb_per_s": {k: total / MB / v for k, v in best.items()},
        "ratio_vs_cp_sync": best["cp_sync"] / best["hfs"],
        "ratio_nosync_vs_cp": best["cp"] / best["hfs_nosync"],
        "ratio_vs_cp": best["cp"] / best["hfs"],
    }


def bench_small_files(work: Path, count: int, repeat: int) -> dict:
    src = work / "small-src"
    for i in range(count):
        d = src / f"group-{i // 1000:03d}" / f"dir-{(i // 100) % 10:02d}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"file-{i:05d}.txt").write_bytes(b"%d\n" % i)
    image = work / "small.hfs"
    t_hfs, t_cp = [], []
    for _ in range(repeat):
        t_hfs.append(_build(src, image, 64 * MIB + count * 8192))
        image.unlink()
        dst = work / "small-cp"
        t_cp.append(_timed(["cp", "-a", str(src), str(dst)]))
        shutil.rmtree(dst)
    shutil.rmtree(src)
    return {"files": count, "seconds": min(t_hfs), "cp_a_seconds": min(t_cp), "ratio_vs_cp_a": min(t_cp) / min(t_hfs)}


def _child(args: list[str]) -> int:
    """Peak RSS of a child: getrusage's ru_maxrss, checked against /proc's VmHWM (on Linux,
    ru_maxrss also counts the parent's RSS at fork time, VmHWM only the child's own memory)."""
    out = subprocess.run([sys.executable, "-c", CHILD, *args], check=True, capture_output=True, text=True)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    return max(doc["maxrss_kib"], doc["hwm_kib"]) * 1024


def bench_rss(work: Path, size: int) -> dict:
    src = work / "rss-src"
    src.mkdir()
    _fill(src / "big.bin", size, 42)
    image = work / "rss.hfs"
    vol = _volume_size(size)
    baseline = _child(["-", "-", "0", "0"])
    fast = _child([str(src), str(image), str(vol), "0"])
    image.unlink()
    slow = _child([str(src), str(image), str(vol), "1"])
    image.unlink()
    shutil.rmtree(src)
    return {"file_bytes": size, "baseline_bytes": baseline, "copy_file_range_bytes": fast, "pread_pwrite_bytes": slow}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the benchmark runs (CI)")
    ap.add_argument("--workdir", default=None, help="where to put sources and images (one file system)")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target is missed (full runs only)")
    args = ap.parse_args()
    if args.smoke:
        sizes, count, big, repeat = [3 * MB, 6 * MB], 300, 32 * MIB, args.repeat or 1
    else:
        sizes, count, big, repeat = [150 * MB, 300 * MB], 10_000, 2 * 1000 * MB, args.repeat or 5
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    work = Path(tempfile.mkdtemp(prefix="atvdisk-hfs-bench-", dir=args.workdir))
    try:
        rss_res = bench_rss(work, big)  # first, while this process is still small
        res = {
            "mode": "smoke" if args.smoke else "full",
            "throughput": bench_throughput(work, sizes, repeat),
            "small_files": bench_small_files(work, count, repeat),
            "rss": rss_res,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tp, sf, rss = res["throughput"], res["small_files"], res["rss"]
    peak = max(rss["copy_file_range_bytes"], rss["pread_pwrite_bytes"])
    targets = {
        "throughput >= 0.9 x cp": min(tp["ratio_vs_cp_sync"], tp["ratio_nosync_vs_cp"]) >= 0.9,
        "10,000 small files <= 3 s": sf["seconds"] <= 3.0 if sf["files"] >= 10_000 else None,
        "peak RSS <= 100 MB": peak <= 100 * MB,
    }
    res["targets"] = targets
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        s = tp["seconds"]
        print(f"mode: {res['mode']}")
        print(
            f"(a) {tp['bytes'] / MB:.0f} MB in 2 files: hfs {s['hfs']:.2f} s ({tp['mb_per_s']['hfs']:.0f} MB/s) "
            f"vs cp+fsync {s['cp_sync']:.2f} s -> {tp['ratio_vs_cp_sync']:.2f} x; "
            f"hfs without fsync {s['hfs_nosync']:.2f} s vs cp {s['cp']:.2f} s -> {tp['ratio_nosync_vs_cp']:.2f} x "
            f"(hfs with fsync vs cp: {tp['ratio_vs_cp']:.2f} x)"
        )
        print(
            f"(b) {sf['files']} small files: hfs {sf['seconds']:.2f} s, cp -a {sf['cp_a_seconds']:.2f} s "
            f"-> {sf['ratio_vs_cp_a']:.2f} x cp -a"
        )
        print(
            f"(c) {rss['file_bytes'] / MB:.0f} MB file: peak RSS {rss['copy_file_range_bytes'] / MB:.1f} MB "
            f"(kernel copy), {rss['pread_pwrite_bytes'] / MB:.1f} MB (pread/pwrite); "
            f"python+atvdisk alone {rss['baseline_bytes'] / MB:.1f} MB"
        )
        for name, ok in targets.items():
            print(f"    {name}: {'n/a (smoke sizes)' if ok is None or args.smoke else 'met' if ok else 'MISSED'}")
    if args.strict and not args.smoke and not all(v for v in targets.values() if v is not None):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
