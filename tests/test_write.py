"""`atvdisk write IMAGE DISK`: an image written to a disk (or an image file) of its size or
larger, grown to fit, judged by sfdisk, sgdisk, blkid, dumpe2fs, e2fsck, fsck.fat, libfshfs,
gzip/xz (for the compressed inputs) and `cmp`. Loop devices (root) get a used disk full of
stale bytes, refusals that must leave it unchanged, and the dry run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hfsplus.judges import listing_pyfshfs

from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import load_layout

EPOCH = "1300000000"
SEED = "write-tests"
GIB = 2**30
SMALL = 2_000_000_000 // 512 * 512 + 512  # just above atv1-openelec's 2 GB minimum
root = pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root")


def atvdisk(*args, check=True, input=None):
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    r = subprocess.run([sys.executable, "-m", "atvdisk", *map(str, args)], capture_output=True, text=True, env=env, input=input)
    if check and r.returncode != 0:
        raise AssertionError(f"atvdisk {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def tool(*args, **kw):
    return subprocess.run(list(map(str, args)), check=True, capture_output=True, text=True, **kw).stdout


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A 2 GB atv1-openelec image of the sample payload (the smallest disk the layout takes)."""
    img = tmp_path_factory.mktemp("write") / "atv.img"
    atvdisk("build", img, "--size", f"{SMALL // 512}s", "--example", "--seed", SEED)
    return img


def data_ranges(path) -> list[tuple[int, int]]:
    fd = os.open(path, os.O_RDONLY)
    out, pos, end = [], 0, os.fstat(fd).st_size
    try:
        while pos < end:
            try:
                a = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            b = os.lseek(fd, a, os.SEEK_HOLE)
            out.append((a, b))
            pos = b
    finally:
        os.close(fd)
    return out


def same_bytes(a, b) -> bool:
    """Whether two (sparse) files hold the same bytes: compared where either has data; both
    read as zeros everywhere else. Python's own reads; fast on 3 GiB sparse files."""
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    spans = sorted(data_ranges(a) + data_ranges(b))
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for x, y in spans:
            pos = x
            while pos < y:
                n = min(4 << 20, y - pos)
                if os.pread(fa.fileno(), n, pos) != os.pread(fb.fileno(), n, pos):
                    return False
                pos += n
    return True


def plan_for(size: int):
    return resolve(load_layout("atv1-openelec"), size, 512, seed=SEED)


def sfdisk(path) -> dict:
    return json.loads(tool("sfdisk", "--json", path))["partitiontable"]


def check_grown(target: Path | str, size: int) -> None:
    """The target is the layout resolved for its own size, judged by tools we did not write."""
    plan = plan_for(size)
    table = sfdisk(target)
    assert table["lastlba"] == plan.last_usable == size // 512 - 34
    assert [(p["start"], p["size"], p["uuid"]) for p in table["partitions"]] == [(p.start, p.sectors, p.guid) for p in plan.partitions]
    assert table["partitions"][4]["start"] + table["partitions"][4]["size"] == size // 512 - 33  # swap at the end
    assert "No problems found" in tool("sgdisk", "-v", target)
    media, swap = plan.partitions[3], plan.partitions[4]
    spec = f"{target}?offset={media.offset}"
    assert subprocess.run(["e2fsck", "-fn", spec], capture_output=True).returncode == 0
    dump = tool("dumpe2fs", "-h", spec)
    blocks = int(next(line.split()[-1] for line in dump.splitlines() if line.startswith("Block count:")))
    assert blocks == media.size_bytes // 4096  # ext4 grown to the whole partition
    probe = tool("blkid", "-p", "-o", "export", "-O", swap.offset, "-S", swap.size_bytes, target)
    assert f"UUID={swap.fs.uuid}" in probe and "LABEL=swap" in probe and "TYPE=swap" in probe
    efi = plan.partitions[0]
    copy = Path(str(target) + ".efi") if not str(target).startswith("/dev/") else Path("/tmp") / f"efi-{os.getpid()}.img"
    with open(target, "rb") as f, open(copy, "wb") as out:
        f.seek(efi.offset)
        out.write(f.read(efi.size_bytes))
    try:
        assert subprocess.run(["fsck.fat", "-n", copy], capture_output=True).returncode == 0
    finally:
        copy.unlink()
    for p in plan.partitions[1:3]:
        _, name = listing_pyfshfs(Path(target), p.offset)
        assert name == p.fs.label


def test_same_size_write_gives_the_image_back_byte_for_byte(image, tmp_path):
    out = tmp_path / "same.img"
    r = atvdisk("write", image, out)
    assert same_bytes(image, out)
    assert re.fullmatch(rf"Wrote {re.escape(str(image))} to {re.escape(str(out))}: .* written .* in \d+\.\d s, verified \(\d+ checks, read back from the disk\)\.\n", r.stdout), r.stdout
    # Only the image's data was written: the copy is as sparse as the image.
    assert os.stat(out).st_blocks <= os.stat(image).st_blocks * 1.1


def test_written_to_a_larger_disk_the_layout_grows(image, tmp_path):
    out = tmp_path / "big.img"
    r = atvdisk("write", image, out, "--size", "3G", "--json")
    summary = json.loads(r.stdout)
    assert summary["mode"] == "manifest" and summary["layout"] == "atv1-openelec" and summary["seed"] == SEED
    assert [p["action"] for p in summary["partitions"]] == ["copy", "copy", "copy", "grow", "remake"]
    check_grown(out, 3 * GIB)
    assert summary["verified"] and summary["verified"][0].startswith("manifest on partition 1")
    assert atvdisk("verify", out).returncode == 0


SMALL_LAYOUT = """
[disk]
min_size = "128MiB"
[boot]
boot = "OSBoot"
storage = "Media"
[[partition]]
name = "EFI"
type = "efi"
start = "40s"
size = "69632s"
fs = { kind = "fat32", label = "EFI", cluster_size = 512 }
[[partition]]
name = "OSBoot"
type = "hfsplus"
size = "24MiB"
fs = { kind = "hfsplus", label = "OSBoot" }
contents = [ { kind = "text", path = "KERNEL", text = "not a kernel\\n" }, { kind = "bootscript", path = "patchstick.sh" } ]
[[partition]]
name = "Media"
type = "linux"
size = "rest"
min_size = "32MiB"
fs = { kind = "ext4", label = "Linux" }
contents = [ { kind = "dir", path = ".cache" } ]
[[partition]]
name = "Swap"
type = "swap"
size = "8MiB"
fs = { kind = "swap", label = "swap" }
"""


@pytest.fixture(scope="module")
def small_image(tmp_path_factory):
    """A 160 MiB image of a small layout shaped like the bundled one (EFI, HFS+, ext4 rest, swap)."""
    tmp = tmp_path_factory.mktemp("small")
    layout = tmp / "small.toml"
    layout.write_text(SMALL_LAYOUT)
    img = tmp / "small.img"
    atvdisk("build", img, "--layout", layout, "--size", "160M", "--seed", SEED)
    return img


@pytest.mark.parametrize("compressor", [["gzip", "-c"], ["xz", "-T1", "-c"]], ids=["gz", "xz"])
def test_compressed_images_are_streamed(small_image, tmp_path, compressor):
    """.img.gz and .img.xz made by gzip and xz: the same disk as from the raw image."""
    packed = tmp_path / f"small.img.{compressor[0][:2]}"
    with open(packed, "wb") as f:
        subprocess.run([*compressor, small_image], stdout=f, check=True)
    out = tmp_path / "from-packed.img"
    r = atvdisk("write", packed, out, "--size", "400M", "--json")
    summary = json.loads(r.stdout)
    assert summary["compression"] == {"gzip": "gzip", "xz": "xz"}[compressor[0]]
    assert [p["action"] for p in summary["partitions"]] == ["copy", "copy", "grow", "remake"]
    direct = tmp_path / "direct.img"
    atvdisk("write", small_image, direct, "--size", "400M")
    assert same_bytes(out, direct)  # and reproducible: no clock in what resize2fs and e2fsck wrote
    # A damaged stream is refused before anything is written.
    broken = tmp_path / f"broken.{compressor[0]}"
    data = packed.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    r = atvdisk("write", broken, tmp_path / "never.img", "--size", "400M", check=False)
    assert r.returncode == 2 and not (tmp_path / "never.img").exists()


def test_too_small_is_refused_saying_by_how_much(image, tmp_path):
    out = tmp_path / "small.img"
    r = atvdisk("write", image, out, "--size", f"{SMALL - 1024 * 1024}", check=False)
    assert r.returncode == 3  # too small: a refused target, as on every path (README, exit codes)
    assert "short by 1048576 bytes (1.0 MiB)" in r.stderr
    assert not out.exists() and not list(tmp_path.glob(".small.img*"))


def test_dry_run_writes_nothing(image, tmp_path):
    out = tmp_path / "dry.img"
    r = atvdisk("write", image, out, "--size", "3G", "--dry-run")
    assert "partition 4 Media: ext4" in r.stdout and "copied and grown" in r.stdout
    assert "partition 5 Swap: swap" in r.stdout and "made anew" in r.stdout
    assert "Dry run: nothing was written" in r.stdout
    assert list(tmp_path.iterdir()) == []


def foreign_image(tmp: Path) -> Path:
    """A GPT image atvdisk did not make: sgdisk partitions, mke2fs and mkfs.fat filesystems."""
    img = tmp / "foreign.img"
    with open(img, "wb") as f:
        f.truncate(256 * 2**20)
    tool("sgdisk", "-o", "-n", "1:2048:+64M", "-t", "1:EF00", "-n", "2:0:+128M", "-t", "2:8300", img)
    tool("mkfs.fat", "-F", "32", "-S", "512", "-s", "1", "--offset=2048", "-I", img, str(64 * 1024))
    table = sfdisk(img)
    ext = table["partitions"][1]
    tool("mke2fs", "-q", "-F", "-t", "ext4", "-E", f"offset={ext['start'] * 512}", img, f"{ext['size'] // 2}k")
    tool("debugfs", "-w", "-R", "mkdir hello", f"{img}?offset={ext['start'] * 512}")
    return img


def test_an_image_without_manifest_is_written_as_it_is(tmp_path):
    img = foreign_image(tmp_path)
    out = tmp_path / "out.img"
    r = atvdisk("write", img, out, "--size", "512M")
    assert "has no atvdisk manifest: it is written as it is" in r.stderr
    assert re.search(r"^Wrote .*, verified \(1 checks, read back from the disk\)\.$", r.stdout, re.MULTILINE), r.stdout
    before, after = sfdisk(img), sfdisk(out)
    assert [(p["start"], p["size"], p["uuid"], p["type"]) for p in after["partitions"]] == [(p["start"], p["size"], p["uuid"], p["type"]) for p in before["partitions"]]
    assert after["id"] == before["id"] and after["lastlba"] == 512 * 2048 - 34
    assert "No problems found" in tool("sgdisk", "-v", out)
    ext = after["partitions"][1]
    assert subprocess.run(["e2fsck", "-fn", f"{out}?offset={ext['start'] * 512}"], capture_output=True).returncode == 0
    with open(img, "rb") as a, open(out, "rb") as b:  # the data of both partitions, as it was
        for p in before["partitions"]:
            a.seek(p["start"] * 512)
            b.seek(p["start"] * 512)
            assert a.read(p["size"] * 512) == b.read(p["size"] * 512)


def test_raw_image_without_gpt_is_copied_byte_for_byte(tmp_path):
    img = tmp_path / "raw.img"
    with open(img, "wb") as f:
        f.write(os.urandom(3 * 2**20))
        f.truncate(8 * 2**20)
        f.seek(6 * 2**20)
        f.write(b"tail")
    out = tmp_path / "raw-out.img"
    r = atvdisk("write", img, out)
    assert "has no GPT" in r.stderr
    assert same_bytes(img, out) and subprocess.run(["cmp", img, out]).returncode == 0


def test_a_manifest_that_does_not_match_the_partitions_is_refused(image, tmp_path):
    bad = tmp_path / "moved.img"
    subprocess.run(["cp", "--sparse=always", image, bad], check=True)
    tool("sgdisk", "-d", "5", "-n", "5:0:+64M", "-t", "5:8200", bad)  # swap's entry changed
    r = atvdisk("write", bad, tmp_path / "x.img", "--size", "3G", check=False)
    assert r.returncode == 2 and "partition 5 (Swap) is not where its manifest's layout puts it" in r.stderr


# -- block devices (root) -------------------------------------------------------------------


def snapshot(path: Path | str) -> str:
    """sha256 of a whole loop device read with O_DIRECT (what the medium holds)."""
    os.sync()
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    h = hashlib.sha256()
    try:
        import mmap

        buf = mmap.mmap(-1, 1 << 22)
        pos = 0
        while True:
            n = os.preadv(fd, [buf], pos)
            if n <= 0:
                break
            h.update(buf[:n])
            pos += n
    finally:
        os.close(fd)
    return h.hexdigest()


@pytest.fixture
def stale_loop(tmp_path):
    """A 3 GiB loop device whose every byte is stale (0xA5): a used disk."""
    backing = tmp_path / "used.img"
    pattern = bytes([0xA5]) * (64 << 20)
    with open(backing, "wb") as f:
        for _ in range(3 * GIB // len(pattern)):
            f.write(pattern)
    dev = tool("losetup", "--find", "--show", backing).strip()
    yield dev, backing
    subprocess.run(["losetup", "-d", dev], capture_output=True)


def structures(img: Path) -> list[tuple[int, int]]:
    """Byte ranges of the image that its filesystems rely on reading exactly (holes included),
    found without atvdisk's code: each HFS+ volume's allocation, extents and catalog files (the
    volume header's fork records, TN1150 offsets), each ext4's inode tables (dumpe2fs) and journal
    (debugfs), each FAT's reserved sectors and FATs (the boot sector)."""
    out = []
    for p in sfdisk(img)["partitions"]:
        base = p["start"] * 512
        with open(img, "rb") as f:
            f.seek(base)
            head = f.read(2048)
        if head[1024:1026] == b"H+":
            block = int.from_bytes(head[1024 + 40 : 1024 + 44], "big")
            for fork in (112, 192, 272):  # allocationFile, extentsFile, catalogFile
                for i in range(8):
                    at = 1024 + fork + 16 + 8 * i
                    start, count = int.from_bytes(head[at : at + 4], "big"), int.from_bytes(head[at + 4 : at + 8], "big")
                    if count:
                        out.append((base + start * block, count * block))
        elif head[1024 + 56 : 1024 + 58] == b"\x53\xef":
            spec = f"{img}?offset={base}"
            dump = tool("dumpe2fs", spec)
            bs = int(next(line.split()[-1] for line in dump.splitlines() if line.startswith("Block size:")))
            tables = [line.split("Inode table at ")[1].split()[0].split("-") for line in dump.splitlines() if "Inode table at" in line]
            # Group 0's table holds the inodes in use, which growing the filesystem rewrites.
            out += [(base + int(a) * bs, (int(b) - int(a) + 1) * bs) for a, b in tables[1:]]
            blocks = tool("debugfs", "-R", "blocks <8>", spec).split()
            out += [(base + int(b) * bs, bs) for b in blocks]
        elif head[82:90] == b"FAT32   ":
            reserved = int.from_bytes(head[14:16], "little")
            fats, fat_sectors = head[16], int.from_bytes(head[36:40], "little")
            out.append((base, (reserved + fats * fat_sectors) * 512))
    return out


@pytest.mark.root
@root
def test_written_to_a_used_disk_everything_checks(image, stale_loop):
    """Every byte of the disk was stale: what the filesystems rely on must have been zeroed
    (bitmaps, inode tables, journal, B-trees), or e2fsck, fsck.fat and the HFS+ checks fail."""
    dev, _ = stale_loop
    r = atvdisk("write", image, dev, "--yes")
    assert "ALL DATA ON" in r.stderr and "It will hold" in r.stderr
    assert re.search(rf"^Wrote .* to {dev}: .*, verified \(\d+ checks, read back from the disk\)\.$", r.stdout, re.MULTILINE), r.stdout
    # What the filesystems rely on reads on the disk exactly as in the image (zeros where the
    # image had holes), not as the stale bytes that were there.
    ranges = structures(image)
    assert sum(n for _, n in ranges) > 48 << 20  # journal, inode tables, B-trees: real amounts
    with open(image, "rb") as a, open(dev, "rb") as b:
        for pos, n in ranges:
            assert os.pread(a.fileno(), n, pos) == os.pread(b.fileno(), n, pos), f"bytes {pos}+{n}"
    check_grown(dev, 3 * GIB)
    from atvdisk.fs.hfsplus.reader import HfsVolume

    plan = plan_for(3 * GIB)
    for p in plan.partitions[1:3]:
        with HfsVolume.open(dev, p.offset, p.size_bytes) as vol:
            vol.check()  # allocation bitmap, B-tree maps and counts
    assert atvdisk("verify", dev).returncode == 0


@pytest.fixture
def sparse_loop(tmp_path, request):
    """A loop device of ``request.param`` bytes holding stale random data here and there."""
    backing = tmp_path / "disk.img"
    with open(backing, "wb") as f:
        f.truncate(request.param)
        for pos in range(0, request.param, 32 << 20):
            f.seek(pos)
            f.write(os.urandom(1 << 20))
    dev = tool("losetup", "--find", "--show", backing).strip()
    yield dev
    subprocess.run(["losetup", "-d", dev], capture_output=True)


@pytest.mark.root
@root
@pytest.mark.parametrize("sparse_loop", [160 * 2**20 - 1024 * 1024], indirect=True)
def test_a_too_small_disk_is_refused_unchanged(small_image, sparse_loop):
    before = snapshot(sparse_loop)
    r = atvdisk("write", small_image, sparse_loop, "--yes", check=False)
    assert r.returncode == 3 and "it is too small" in r.stderr and "short by 1048576 bytes" in r.stderr
    r = atvdisk("write", small_image, sparse_loop, "--dry-run", check=False)
    assert r.returncode == 3  # a dry run runs every check
    assert snapshot(sparse_loop) == before


@pytest.mark.root
@root
@pytest.mark.parametrize("sparse_loop", [320 * 2**20], indirect=True)
def test_no_confirmation_means_nothing_written(small_image, sparse_loop):
    before = snapshot(sparse_loop)
    r = atvdisk("write", small_image, sparse_loop, check=False, input="")
    assert r.returncode == 3 and "no terminal to confirm on" in r.stderr
    assert "It will hold" in r.stderr  # what it would hold was shown before asking
    r = atvdisk("write", small_image, sparse_loop, "--dry-run")
    assert "Dry run: nothing was written" in r.stdout and "grown to" in r.stdout
    assert snapshot(sparse_loop) == before
    # With --yes it is written, grown and verified.
    atvdisk("write", small_image, sparse_loop, "--yes")
    assert "No problems found" in tool("sgdisk", "-v", sparse_loop)


@pytest.mark.root
@root
def test_a_partition_is_refused_naming_its_disk(image, tmp_path):
    backing = tmp_path / "p.img"
    atvdisk("write", image, backing)
    dev = tool("losetup", "--find", "--show", "--partscan", backing).strip()
    try:
        tool("partx", "-u", dev) if os.path.exists(dev + "p1") else tool("partx", "-a", dev)
        r = atvdisk("write", image, dev + "p4", "--yes", check=False)
        assert r.returncode == 3 and f"is partition 4 of {dev}" in r.stderr
    finally:
        subprocess.run(["partx", "-d", dev], capture_output=True)
        subprocess.run(["losetup", "-d", dev], capture_output=True)


NO_FAT_LAYOUT = """
[[partition]]
name = "BOOT"
type = "atvrecv"
start = "40s"
size = "32MiB"
fs = { kind = "hfsx", label = "BOOT" }
contents = [ { kind = "text", path = "hello", text = "hi" } ]
[[partition]]
name = "STORAGE"
type = "linux"
size = "rest"
fs = { kind = "ext4", label = "STORAGE" }
[[partition]]
name = "LINUX-SWAP"
type = "swap"
size = "16MiB"
fs = { kind = "swap" }
"""


def test_compressed_image_with_its_manifest_on_ext4(tmp_path):
    """OpenELEC 4.x's shape (no FAT: the manifest is on the ext4 rest partition): the first pass
    of a compressed image must read that far, and the image still grows."""
    layout = tmp_path / "noefi.toml"
    layout.write_text(NO_FAT_LAYOUT)
    img = tmp_path / "n.img"
    atvdisk("build", img, "--layout", layout, "--size", "128M", "--seed", "n")
    subprocess.run(["gzip", "-k", img], check=True)
    r = atvdisk("write", tmp_path / "n.img.gz", tmp_path / "out.img", "--size", "256M", "--json")
    summary = json.loads(r.stdout)
    assert summary["mode"] == "manifest" and [p["action"] for p in summary["partitions"]] == ["copy", "grow", "remake"]
    assert atvdisk("verify", tmp_path / "out.img").returncode == 0
