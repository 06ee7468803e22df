#!/usr/bin/env python3
"""Apple's fsck_hfs as a judge of every HFS+ volume atvdisk's tests build.

    .venv/bin/python tools/fsck_hfs.py /path/to/fsck_hfs            # or $ATVDISK_FSCK_HFS
    .venv/bin/python tools/fsck_hfs.py FSCK --only min- --keep /tmp/vols

It builds, in a temporary directory:

* every torture volume of tests/hfs_cases.py (the slow ones smaller unless ``--full``);
* the smallest volume plan_volume accepts for every block size from 512 to 65536 bytes, empty
  and holding a few files, and volumes a little larger (up to 1 MiB), journaled where a journal
  fits;
* both bundled layouts' disks (``atvdisk build --example``), whose HFS+ partitions are copied out
  (sparse) and checked one by one;

and runs ``fsck_hfs -fn -d`` on each, printing one line per volume and, for a volume it does not
pass, fsck's own findings. Exit status 1 if any volume fails.

Where to get fsck_hfs: no package registry this project may use ships it (Debian dropped
``hfsprogs``; bookworm, trixie and sid have none). It builds on Debian 12 from the source of
Debian's last ``hfsprogs`` packaging (diskdev_cmds 540.1.linux3 with Debian's patches applied)
with ``apt-get install libbsd-dev libssl-dev uuid-dev`` and
``CC=gcc CFLAGS="-O1 -fcommon -w" make``; the binary is ``fsck_hfs.tproj/fsck_hfs``. That is
why this is a developer's tool, like tools/mutation.py, and not part of the test suite: the
suite checks the rules fsck_hfs applies (tests/hfsplus/test_small_volumes.py) and reads every
volume with pyfshfs and pytsk3.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from hfs_cases import CASES, build_case_image, fill_little, minimum_region  # noqa: E402

from atvdisk.fs.hfsplus.errors import HfsError  # noqa: E402
from atvdisk.fs.hfsplus.layout import VolumeOptions  # noqa: E402
from atvdisk.fs.hfsplus.tree import HfsTree  # noqa: E402
from atvdisk.fs.hfsplus.writer import write_volume  # noqa: E402
from atvdisk.fs.region import Region  # noqa: E402

SMALL = {"large-sparse": {"size": 64 << 20}, "many-files": {"count": 2000}}
BLOCK_SIZES = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


def fsck(binary: str, image: Path) -> tuple[bool, str]:
    """(passed, findings): fsck_hfs -fn -d, the volume judged by its exit status."""
    p = subprocess.run([binary, "-fn", "-d", str(image)], capture_output=True, text=True, errors="replace")
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip() and not ln.startswith("** Checking")]
    return p.returncode == 0, "\n".join(lines)


def _small_volume(path: Path, tree: HfsTree, options: VolumeOptions, size: int) -> None:
    with Region.open(path, 0, size, create=True) as region:
        write_volume(tree, options, region)


def _little_tree(tmp: Path) -> HfsTree:
    src = tmp / "little-src"
    if not src.exists():
        src.mkdir()
        fill_little(src)
    return HfsTree.from_host_dir(src)


def small_volumes(tmp: Path) -> Iterator[tuple[str, Callable[[Path], None]]]:
    """The smallest volumes and their neighbours, for every block size."""
    base = VolumeOptions(create_time=1_700_000_000, volume_id=0x0123456789ABCDEF)
    for bs in BLOCK_SIZES:
        for what, tree_of in (("empty", lambda: HfsTree()), ("little", lambda: _little_tree(tmp))):
            for journaled in (False, True):
                opts = replace(base, block_size=bs, journaled=journaled, volume_name=f"min{bs}")
                low = minimum_region(tree_of(), opts)
                sizes = sorted({low, low + 512, low + bs, low + 4 * bs, 64 << 10, 128 << 10, 255 << 10,
                                256 << 10, 257 << 10, 512 << 10, 1 << 20})  # fmt: skip
                for size in sizes:
                    if size < low:
                        continue
                    name = f"min-{bs}-{what}{'-journaled' if journaled else ''}-{size}"
                    yield name, lambda p, t=tree_of, o=opts, s=size: _small_volume(p, t(), o, s)


def case_volumes(tmp: Path, full: bool) -> Iterator[tuple[str, Callable[[Path], None]]]:
    for case in CASES:
        if not full and case.name in SMALL:
            case = case.with_params(**SMALL[case.name])
        src = tmp / f"src-{case.name}"

        def build(p: Path, case=case, src=src) -> None:
            if not src.exists():
                case.populate(src)
            build_case_image(case, src, p)

        yield f"case-{case.name}", build


def layout_volumes(tmp: Path) -> Iterator[tuple[str, Callable[[Path], None]]]:
    """The HFS+ partitions of both bundled layouts' disks, built from the sample payload."""
    import json

    for layout in ("atv1-openelec", "atv1-factory"):
        disk = tmp / f"{layout}.img"
        cmd = [sys.executable, "-m", "atvdisk", "-q", "build", str(disk), "--layout", layout, "--size", "4G",
               "--example", "--no-verify", "--seed", "fsck"]  # fmt: skip
        plan = [sys.executable, "-m", "atvdisk", "plan", "--layout", layout, "--size", "4G", "--json", "--seed", "fsck"]
        parts = json.loads(subprocess.run(plan, check=True, capture_output=True, text=True).stdout)["partitions"]
        for part in parts:
            if part["fs"]["kind"] not in ("hfsplus", "hfsx"):
                continue

            def extract(p: Path, disk=disk, cmd=cmd, part=part) -> None:
                if not disk.exists():
                    subprocess.run(cmd, check=True)
                _sparse_copy(disk, part["offset_bytes"], part["size_bytes"], p)

            yield f"layout-{layout}-{part['name']}", extract


def _sparse_copy(src: Path, offset: int, size: int, dst: Path) -> None:
    chunk = 1 << 20
    with open(src, "rb") as f, open(dst, "wb") as out:
        out.truncate(size)
        f.seek(offset)
        done = 0
        while done < size:
            data = f.read(min(chunk, size - done))
            if data.count(0) != len(data):
                out.seek(done)
                out.write(data)
            done += len(data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fsck", nargs="?", default=os.environ.get("ATVDISK_FSCK_HFS"), help="the fsck_hfs binary")
    ap.add_argument("--only", default="", help="check only volumes whose name contains this")
    ap.add_argument("--full", action="store_true", help="the slow torture cases at full size")
    ap.add_argument("--keep", type=Path, help="write the volumes here and keep them")
    args = ap.parse_args(argv)
    if not args.fsck:
        ap.error("give the fsck_hfs binary (or set ATVDISK_FSCK_HFS)")
    with tempfile.TemporaryDirectory(prefix="atvdisk-fsck-") as t:
        tmp = Path(t)
        out_dir = args.keep or tmp
        out_dir.mkdir(parents=True, exist_ok=True)
        failed = checked = 0
        for source in (small_volumes(tmp), case_volumes(tmp, args.full), layout_volumes(tmp)):
            for name, build in source:
                if args.only not in name:
                    continue
                image = out_dir / f"{name}.hfs"
                image.unlink(missing_ok=True)
                try:
                    build(image)
                except HfsError as e:
                    print(f"{name}: not built: {e}")
                    failed += 1
                    continue
                ok, findings = fsck(args.fsck, image)
                checked += 1
                print(f"{name}: {'OK' if ok else 'FAILED'}", flush=True)
                if not ok:
                    failed += 1
                    print("    " + findings.replace("\n", "\n    "))
                if not args.keep:
                    image.unlink()
        print(f"{checked} volumes checked by {args.fsck}: {checked - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
