#!/usr/bin/env python3
"""atvdisk's benchmark harness: every figure of issues 6 and 12 in one run, printed as a markdown table.

    /work/venv/bin/python bench/run.py                # full run: 5 runs per figure, medians
    /work/venv/bin/python bench/run.py --runs 7
    /work/venv/bin/python bench/run.py --smoke        # tiny payloads, one run: checks the harness works (CI)
    /work/venv/bin/python bench/run.py --only 1,2     # some sections only

Sections (bench/README.md says exactly what each row measures):
  1  full atv1-openelec build (4 GiB) vs cp -a + fsync of the extracted payload (the headline), and vs
     cp + fsync of the input files, with and without verification
  2  the HFS+-free disk (FAT32 EFI, ext4 Media, swap) vs genimage and systemd-repart
  3  the HFS+ writer alone vs cp (large files) and on 10,000 small files
  4  peak RSS of a build with a 2 GB file in the payload, and with 100,000 files in a tarball
  5  the same build to 4 GiB and 2 TiB sparse images: time and allocated bytes
  6  the original shell procedure's runnable subset (root: loop devices, mount)

Every side reads its inputs warm from the page cache (nothing drops caches); outputs go through
the page cache and every side's time ends with its output fsynced. Payloads are generated
deterministically once and cached in WORKDIR/cache; everything else is deleted at the end.
Needs about 7 GB free in the work directory for a full run (4 GB cached payloads).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(1, str(BENCH.parent))  # atvdisk itself, when not installed

import machine
import payload as payloads
from common import BenchError, Row, Section

ALL = ("1", "2", "3", "4", "5", "6")
METHOD = (
    "Method: wall-clock medians; ratio = atvdisk / baseline (lower is better for atvdisk). Inputs are read warm from the page cache on every side "
    "(no cache dropping); outputs go through the page cache and every timed side ends with its output fsynced; `sync` runs untimed between samples; "
    "sides are interleaved run by run. The machine's cores may be shared with other work: see the min-max spreads below."
)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def failed(title: str, key: str, e: Exception) -> Section:
    s = Section(title)
    s.rows.append(Row(key, title, "-", "-", "-", "-", f"FAIL: {e}"))
    return s


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(info: dict[str, str], sections: list[Section], args: argparse.Namespace, started: str, ended: str, seconds: float) -> str:
    mode = "SMOKE MODE (tiny payloads, 1 run: the figures mean nothing, no verdicts)" if args.smoke else f"full run, medians of {args.runs} runs"
    out = [f"## atvdisk benchmark: {mode}", "", "| machine and versions | |", "|---|---|"]
    for k, v in info.items():
        out.append(f"| {cell(k)} | {cell(v)} |")
    out.append(f"| load average (1/5/15 min) at start / end | {started} / {ended} |")
    out.append(f"| harness wall time | {seconds / 60:.1f} min |")
    out += ["", "| # | measurement | atvdisk | baseline | ratio | target | result |", "|---|---|---|---|---|---|---|"]
    for s in sections:
        for r in s.rows:
            out.append(f"| {r.key} | {cell(r.what)} | {cell(r.atvdisk)} | {cell(r.baseline)} | {cell(r.ratio)} | {cell(r.target)} | {cell(r.result)} |")
    out += ["", METHOD, ""]
    for s in sections:
        if s.notes:
            out.append(f"**{s.title}**")
            out += [f"- {n}" for n in s.notes]
            out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=None, help="samples per timed figure (default 5; 1 with --smoke)")
    ap.add_argument("--smoke", action="store_true", help="tiny payloads and one run: checks that the harness works (CI), in seconds")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch and payload cache (default $TMPDIR/atvdisk-bench); one filesystem")
    ap.add_argument("--only", default=",".join(ALL), help="comma-separated sections to run (default all: 1,2,3,4,5,6)")
    ap.add_argument("--json", type=Path, default=None, help="also write every sample to this JSON file")
    ap.add_argument("--clear-cache", action="store_true", help="delete the cached payloads at the end")
    args = ap.parse_args(argv)
    args.runs = args.runs or (1 if args.smoke else 5)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if not only <= set(ALL):
        ap.error(f"--only takes section numbers from {','.join(ALL)}")

    root = (args.workdir or Path(tempfile.gettempdir()) / "atvdisk-bench").resolve()
    cache = root / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=root))
    sizes = payloads.SMOKE if args.smoke else payloads.FULL
    t0 = time.perf_counter()
    started = machine.loadavg()
    info = machine.describe(root, sys.executable)
    info["atvdisk byte-compiled"] = machine.byte_compile(sys.executable)
    sections: list[Section] = []
    try:
        log(f"payloads (cached in {cache})")
        atv = payloads.atv_payload(cache, sizes.atv)
        from common import warm

        # Section 3 first: cp -a of 10,000 files slows down right after other mass deletions on
        # the same filesystem (ext4 skips inodes deleted in the last ~30 s), and the later
        # sections delete staging trees and images.
        if "3" in only:
            log("section 3: HFS+ writer")
            from hfswriter import run_hfs

            try:
                large = payloads.hfs_large(cache, sizes.hfs.large)
                small = payloads.hfs_small(cache, sizes.hfs.small_count)
                warm([large, small])
                sections.append(run_hfs(work, large, small, args.runs, smoke=args.smoke))
            except BenchError as e:
                sections.append(failed("3. HFS+ writer", "3a", e))
        if "4" in only:
            log("section 4: memory")
            from memory import run_memory

            try:
                big = payloads.big_restore(cache, sizes.atv, sizes.rss_file)
                many = payloads.many_files_restore(cache, sizes.atv, sizes.many_files)
                warm([atv.openelec, atv.restore, atv.recovery, many])
                sections.append(run_memory(work, atv, big, sizes.rss_file, many, sizes.many_files, smoke=args.smoke))
            except BenchError as e:
                sections.append(failed("4. Memory", "4a", e))
        if only & {"1", "5", "6"}:
            log("sections 1, 5, 6: full builds, scale, original procedure")
            from atvbuild import plan_json
            from fullbuild import can_loop_mount, run_all

            proc_plan = proc_err = None
            if "6" in only:
                proc_err = can_loop_mount()
                if proc_err is None:
                    proc_plan = plan_json("atv1-openelec", "4G")
            try:
                extracted = payloads.extracted(cache, atv)
                warm([atv.openelec, atv.restore, atv.recovery, extracted])
                found = run_all(work, atv, extracted, args.runs, smoke=args.smoke, scale="5" in only, procedure_plan=proc_plan, procedure_error=proc_err)
                sections += [s for s in found if s.title[0] in only]
            except BenchError as e:
                sections.append(failed("1. Full build", "1a", e))
        if "2" in only:
            log("section 2: genimage and systemd-repart")
            from peers import run_peers

            try:
                media = payloads.media_payload(cache, sizes.media)
                warm([media])
                sections.append(run_peers(work, media, args.runs, smoke=args.smoke))
            except BenchError as e:
                sections.append(failed("2. Peers", "2a", e))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.clear_cache:
            shutil.rmtree(cache, ignore_errors=True)
    sections.sort(key=lambda s: s.title[:2])
    print(render(info, sections, args, started, machine.loadavg(), time.perf_counter() - t0))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "smoke": args.smoke, "runs": args.runs, "sections": {s.title: {"rows": [r.__dict__ for r in s.rows], "notes": s.notes, "data": s.data} for s in sections}}, indent=2, default=str))
    return 1 if any(r.result.startswith("FAIL") for s in sections for r in s.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
