"""Section 2: atvdisk against genimage and systemd-repart on the HFS+-free part of the job.

The job: a 4 GiB sparse GPT image with an empty FAT32 EFI partition (64 MiB at 1 MiB), an ext4
"Media" partition filling the middle with the same directory of files, and a 128 MiB swap
partition ending on a 4 KiB boundary before the backup GPT. The partition table is the one
systemd-repart 252 computes for these definitions; atvdisk's layout (bench/layouts/peers-gpt.toml)
and genimage's config (offsets and sizes from ``atvdisk plan --json``) reproduce it, and the
results are compared entry by entry afterwards (bench/imagecheck.py).

How each side runs (each timed from its start to an fsync of the finished image, which all three
get, so all end with the image on disk; intermediate files are deleted untimed):

* atvdisk: ``atvdisk build IMG --size 4G --layout peers-gpt.toml --no-verify`` (the peers verify
  nothing). mkfs.fat + mtools, mke2fs -d (from a staging copy) + debugfs for owners, mkswap.
* genimage 16: ``mkswap`` of a 128 MiB sparse swap.img, then ``genimage`` with ``vfat``
  (``-F 32``), ``ext4`` (``use-mke2fs``: mke2fs -d into a temporary image file, then genimage's
  own ``e2fsck -pvfD``) and ``hdimage`` (GPT) that copies the partition images into the disk.
* systemd-repart 252: ``systemd-repart --empty=create --size=4G --definitions=DIR --dry-run=no``
  with ``Format=vfat|ext4|swap`` and ``CopyFiles=``. Version 252 has no offline mode (``--offline``
  came in 254): it formats through loop devices (direct I/O) and copies the files into a
  mounted ext4, so it needs root, loop devices and the kernel's ext4 driver.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from atvbuild import BENCH, atvdisk_env, build_cmd, plan_json
from common import (
    BenchError,
    Row,
    Sample,
    Section,
    allocated,
    median,
    remove,
    run,
    secs,
    settle,
    size_mb,
    spread,
    stopwatch,
    verdict,
)
from imagecheck import ATVDISK_MANIFEST, describe, differences, file_count

PEER_LIMIT = 1.3  # issue 12: within 1.3x systemd-repart (issue 6 asked 0.8x the faster peer)
DISK = "4G"
REPART_SEED = "6f1c5c3e-3f0a-4b8e-9d55-0a7d2b3c4e51"


def _parts(plan: dict) -> dict[str, dict]:
    return {p["name"]: p for p in plan["partitions"]}


def repart_definitions(d: Path, plan: dict, media: Path) -> None:
    parts = _parts(plan)
    d.mkdir(parents=True, exist_ok=True)
    (d / "00-efi.conf").write_text(f"[Partition]\nType=esp\nLabel=EFI\nFormat=vfat\nSizeMinBytes={parts['EFI']['size_bytes']}\nSizeMaxBytes={parts['EFI']['size_bytes']}\n")
    (d / "10-media.conf").write_text(f"[Partition]\nType=linux-generic\nLabel=Media\nFormat=ext4\nCopyFiles={media}:/\n")
    (d / "20-swap.conf").write_text(f"[Partition]\nType=swap\nLabel=Swap\nFormat=swap\nSizeMinBytes={parts['Swap']['size_bytes']}\nSizeMaxBytes={parts['Swap']['size_bytes']}\n")


def genimage_config(path: Path, plan: dict, media: Path, swap: Path) -> None:
    parts = _parts(plan)
    efi, med, sw = parts["EFI"], parts["Media"], parts["Swap"]
    path.write_text(
        f"""image efi.vfat {{
  vfat {{
    label = "EFI"
    extraargs = "-F 32"
  }}
  size = {efi['size_bytes']}
  empty = true
  temporary = true
}}
image media.ext4 {{
  ext4 {{
    use-mke2fs = true
    label = "Media"
  }}
  srcpath = "{media}"
  size = {med['size_bytes']}
  temporary = true
}}
image disk.img {{
  hdimage {{
    partition-table-type = "gpt"
    align = 4K
  }}
  size = {plan['disk_bytes']}
  partition EFI {{
    offset = {efi['offset_bytes']}
    size = {efi['size_bytes']}
    image = "efi.vfat"
    partition-type-uuid = "U"
  }}
  partition Media {{
    offset = {med['offset_bytes']}
    size = {med['size_bytes']}
    image = "media.ext4"
    partition-type-uuid = "L"
  }}
  partition Swap {{
    offset = {sw['offset_bytes']}
    size = {sw['size_bytes']}
    image = "{swap}"
    partition-type-uuid = "S"
  }}
}}
"""
    )


class Peers:
    def __init__(self, work: Path, media: Path) -> None:
        self.work = work / "peers"
        remove(self.work)
        self.work.mkdir(parents=True)
        self.media = media
        # The layout must sit next to media/ for its {layout_dir}/media source.
        self.layout = media.parent / "peers-gpt.toml"
        shutil.copyfile(BENCH / "layouts" / "peers-gpt.toml", self.layout)
        self.plan = plan_json(self.layout, DISK)
        self.images = {"atvdisk": self.work / "atvdisk.img", "genimage": self.work / "genimage" / "out" / "disk.img", "systemd-repart": self.work / "repart.img"}
        g = self.work / "genimage"
        for sub in ("out", "input", "root"):
            (g / sub).mkdir(parents=True)
        self.swap = g / "input" / "swap.img"
        genimage_config(g / "genimage.cfg", self.plan, media, self.swap)
        repart_definitions(self.work / "repart.d", self.plan, media)

    def why_not(self, tool: str) -> str | None:
        exe = {"genimage": "genimage", "systemd-repart": "systemd-repart"}.get(tool)
        if exe and shutil.which(exe) is None:
            return f"{exe} is not installed"
        if tool == "systemd-repart":
            if os.geteuid() != 0:
                return "systemd-repart 252 formats through loop devices and mounts the ext4 to copy files: it needs root"
            if not Path("/dev/loop-control").exists():
                return "systemd-repart 252 needs loop devices (no /dev/loop-control)"
        return None

    def run_atvdisk(self) -> Sample:
        img = self.images["atvdisk"]
        remove(img)
        settle()
        with stopwatch() as s:
            run(build_cmd(img, DISK, layout=self.layout, verify=False), env=atvdisk_env())
            run(["sync", str(img)])
        return s

    def run_genimage(self) -> Sample:
        g = self.work / "genimage"
        img = self.images["genimage"]
        remove(img, self.swap, g / "tmp")
        settle()
        with stopwatch() as s:
            run(["truncate", "-s", str(_parts(self.plan)["Swap"]["size_bytes"]), str(self.swap)])
            run(["mkswap", "-L", "Swap", str(self.swap)])
            run(["genimage", "--config", str(g / "genimage.cfg"), "--outputpath", str(g / "out"), "--tmppath", str(g / "tmp"), "--inputpath", str(g / "input"), "--rootpath", str(g / "root")])
            run(["sync", str(img)])
        remove(g / "tmp", self.swap)
        return s

    def run_repart(self) -> Sample:
        img = self.images["systemd-repart"]
        remove(img)
        settle()
        with stopwatch() as s:
            run(["systemd-repart", "--empty=create", f"--size={DISK}", f"--definitions={self.work / 'repart.d'}", "--dry-run=no", "--pretty=no", f"--seed={REPART_SEED}", str(img)])
            run(["sync", str(img)])
        return s

    def cleanup(self) -> None:
        remove(self.work, self.layout)


def run_peers(work: Path, media: Path, runs: int, *, smoke: bool) -> Section:
    sec = Section("2. Against genimage and systemd-repart (4 GiB GPT: FAT32 EFI, ext4 Media with the same files, swap)")
    peers = Peers(work, media)
    runners = {"atvdisk": peers.run_atvdisk, "genimage": peers.run_genimage, "systemd-repart": peers.run_repart}
    samples: dict[str, list[Sample]] = {k: [] for k in runners}
    errors = {k: why for k in runners if (why := peers.why_not(k))}
    try:
        for _ in range(runs):
            for name, fn in runners.items():
                if name in errors:
                    continue
                try:
                    samples[name].append(fn())
                except BenchError as e:
                    errors[name] = str(e)
        # Compare what the last run of each left behind.
        scratch = peers.work / "check"
        scratch.mkdir()
        descriptions = {}
        for name, img in peers.images.items():
            if name not in errors and img.exists():
                try:
                    descriptions[name] = describe(img, scratch, without=(ATVDISK_MANIFEST,) if name == "atvdisk" else ())
                except BenchError as e:
                    errors[name] = f"its image could not be read back: {e}"
        alloc = {name: allocated(img) for name, img in peers.images.items() if img.exists()}
    finally:
        peers.cleanup()
        settle()

    if "atvdisk" in errors:
        sec.rows.append(Row("2a", "atvdisk vs systemd-repart", "-", "-", "-", f"<= {PEER_LIMIT}x", f"FAIL: atvdisk: {errors['atvdisk']}"))
        return sec
    med = {k: median([s.wall for s in v]) for k, v in samples.items() if v}
    ref = descriptions.get("atvdisk")
    same: dict[str, list[str]] = {}
    for name, d in descriptions.items():
        if name != "atvdisk" and ref is not None:
            same[name] = differences(ref, d)
    ok_peers = [k for k in ("genimage", "systemd-repart") if k in med and not same.get(k)]
    if "systemd-repart" in ok_peers:
        r = med["atvdisk"] / med["systemd-repart"]
        below = "genimage" not in ok_peers or med["atvdisk"] < med["genimage"]
        sec.rows.append(Row("2a", "atvdisk build --no-verify vs systemd-repart (and faster than genimage)", secs(med["atvdisk"]), secs(med["systemd-repart"]), f"{r:.2f}x", f"<= {PEER_LIMIT}x and < genimage", verdict(r <= PEER_LIMIT and below, smoke)))
    elif ok_peers:
        fastest = min(ok_peers, key=lambda k: med[k])
        r = med["atvdisk"] / med[fastest]
        sec.rows.append(Row("2a", f"atvdisk build --no-verify vs {fastest} (systemd-repart could not be compared)", secs(med["atvdisk"]), secs(med[fastest]), f"{r:.2f}x", f"<= {PEER_LIMIT}x systemd-repart", "info"))
    else:
        sec.rows.append(Row("2a", "atvdisk vs the peers", secs(med["atvdisk"]), "-", "-", f"<= {PEER_LIMIT}x systemd-repart", "no peer produced a comparable image (see below)"))
    for key, name in (("2b", "genimage"), ("2c", "systemd-repart")):
        if name in errors:
            sec.rows.append(Row(key, f"{name}: same image", "-", "-", "-", "-", f"could not run: {errors[name]}"))
        elif same.get(name):
            sec.rows.append(Row(key, f"{name}: same image", "-", secs(med[name]), "-", "-", f"contents differ: {'; '.join(same[name][:3])}"))
        else:
            r = med["atvdisk"] / med[name]
            sec.rows.append(Row(key, f"atvdisk vs {name} (contents verified equal)", secs(med["atvdisk"]), secs(med[name]), f"{r:.2f}x", "-", "info"))
    if ref is not None:
        n, size = file_count(ref)
        t = ref["table"]
        sec.notes.append(
            f"Media holds {n} files, {size:,} bytes. Compared with atvdisk's image: GPT entries (start, size, type, name), blkid type/label/version "
            f"of every partition, e2fsck -fn, and for ext4 every entry's path, type, mode, uid, gid, size and sha256 (debugfs ls -p + rdump); "
            f"GUIDs, UUIDs, timestamps and atvdisk's own {ATVDISK_MANIFEST} (in its EFI partition) differ by design and are not compared. GPT header first usable LBA: atvdisk {t['firstlba']}, "
            + ", ".join(f"{k} {d['table']['firstlba']}" for k, d in descriptions.items() if k != "atvdisk")
            + " (not a content difference)."
        )
    sec.notes.append("Allocated bytes of the images: " + ", ".join(f"{k} {size_mb(v)}" for k, v in alloc.items()) + ".")
    sec.notes.append("Samples (min-max wall s): " + ", ".join(f"{k} {spread([s.wall for s in v])}" for k, v in samples.items() if v) + "; CPU s (median): " + ", ".join(f"{k} {median([s.cpu for s in v]):.2f}" for k, v in samples.items() if v) + ".")
    sec.data = {"samples": {k: [(s.wall, s.cpu) for s in v] for k, v in samples.items()}, "errors": errors, "differences": same, "allocated": alloc}
    return sec


__all__ = ["run_peers"]
