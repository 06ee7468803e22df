"""Every limit the resolver enforces, at its boundary, judged by the tool that sets the limit.

A limit is right when a partition of exactly the minimum is built by the real tool (mke2fs, mkswap,
mkfs.fat) into a filesystem its own checker accepts, and one step less is refused before anything
is written. The size quoted in "disk too small" must be a disk the layout really fits on.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from atvdisk.errors import DiskTooSmall, PlanError
from atvdisk.fs.gpt import read_table
from atvdisk.fs.partition import write_partition_table
from atvdisk.layout.resolver import fat32_cluster_count, fat32_min_bytes, resolve
from atvdisk.layout.schema import parse_layout

MIB = 2**20


def atvdisk(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1300000000"}
    return subprocess.run([sys.executable, "-m", "atvdisk", *map(str, args)], capture_output=True, text=True, env=env)


def one_partition(fs: str, size: str, type_: str = "linux") -> str:
    return f'[[partition]]\nname = "P"\ntype = "{type_}"\nstart = "1MiB"\nsize = "{size}"\nfs = {fs}\n'


def refused(layout_text: str, disk: int = 256 * MIB) -> PlanError:
    with pytest.raises(PlanError) as info:
        resolve(parse_layout(layout_text), disk, 512)
    return info.value


# -- ext4, swap, FAT32: the tools' own limits -------------------------------------------------


@pytest.mark.parametrize(
    "fs, minimum",
    [
        ('{ kind = "ext4" }', 2048 * 4096),  # mke2fs makes a journal from 2048 blocks on
        ('{ kind = "ext4", block_size = 1024 }', 2048 * 1024),
        ('{ kind = "ext4", journal = false }', MIB),
    ],
)
def test_ext4_minimum_is_where_mke2fs_makes_what_was_asked(fs, minimum):
    resolve(parse_layout(one_partition(fs, f"{minimum // 512}s")), 256 * MIB, 512)
    error = refused(one_partition(fs, f"{minimum // 512 - 1}s"))
    assert f"at least {minimum} bytes" in str(error) and f"P is {minimum - 512} bytes" in str(error)
    assert error.where == "partition[1].fs"
    # With a journal, the hint offers to do without one (the smaller minimum).
    assert error.hint.startswith(f"make P at least {minimum} bytes")
    assert ("set journal = false" in error.hint) == ("journal = false" not in fs)


def test_swap_minimum_is_mkswaps(tmp_path):
    # mkswap itself: 10 pages of 4 KiB is the least it accepts.
    swap = tmp_path / "swap"
    for sectors, ok in ((80, True), (79, False)):
        swap.write_bytes(b"")
        os.truncate(swap, sectors * 512)
        r = subprocess.run(["mkswap", "-p", "4096", str(swap)], capture_output=True, text=True)
        assert (r.returncode == 0) is ok, r.stderr
    resolve(parse_layout(one_partition('{ kind = "swap" }', "80s", "swap")), 256 * MIB, 512)
    assert "swap needs at least 10 pages of 4096 bytes; P is 40448 bytes" in str(refused(one_partition('{ kind = "swap" }', "79s", "swap")))


def mkfs_fat_clusters(img: Path, sectors: int, cluster: int) -> int:
    with open(img, "wb") as f:
        f.truncate(sectors * 512)
    subprocess.run(["mkfs.fat", "-F", "32", "-S", "512", "-s", str(cluster // 512), "-g", "1/1", "--invariant", str(img), str(sectors // 2)],
                   check=True, capture_output=True)
    out = subprocess.run(["fsck.fat", "-n", "-v", str(img)], capture_output=True, text=True).stdout
    return int(re.search(r"(\d+) data clusters", out).group(1))


@pytest.mark.parametrize("cluster", [512, 1024, 4096, 32768])
def test_fat32_arithmetic_is_mkfs_fats(tmp_path, cluster):
    """The resolver's cluster count is the one mkfs.fat makes (fsck.fat counts them), around the
    FAT32 minimum and at sizes of every kind (seeded, so a failure is reproducible)."""
    minimum = fat32_min_bytes(cluster) // 512
    rng = random.Random(cluster)
    sizes = [minimum - 2, minimum, minimum + 2, 8192, 8194, 66000, 73860] + [rng.randrange(8200, 4 * minimum) // 2 * 2 for _ in range(8)]
    for sectors in sizes:
        assert fat32_cluster_count(sectors * 512, cluster) == mkfs_fat_clusters(tmp_path / "fat.img", sectors, cluster), sectors
    assert mkfs_fat_clusters(tmp_path / "fat.img", minimum, cluster) >= 65525 > mkfs_fat_clusters(tmp_path / "fat.img", minimum - 2, cluster)
    # ... and no size above the minimum falls back under it (two FATs growing by a cluster).
    assert all(fat32_cluster_count(s * 512, cluster) >= 65525 for s in range(minimum, minimum + 4 * cluster // 512 + 64, 2))


def test_fat32_too_small_hints_at_a_size_that_works():
    fat = '{ kind = "fat32" }'
    need = fat32_min_bytes(512)
    with pytest.raises(PlanError) as info:
        resolve(parse_layout(one_partition(fat, f"{need // 512 - 2}s", "efi")), 256 * MIB, 512)
    assert f"make the partition at least {need} bytes" in info.value.hint
    plan = resolve(parse_layout(one_partition(fat, f"{need // 512}s", "efi")), 256 * MIB, 512)
    assert plan.partitions[0].fs.cluster_size == 512
    # With a cluster size given, the hint names the least size for that cluster size.
    with pytest.raises(PlanError) as info:
        resolve(parse_layout(one_partition('{ kind = "fat32", cluster_size = 4096 }', "69632s", "efi")), 256 * MIB, 512)
    assert f"at least {fat32_min_bytes(4096)} bytes" in info.value.hint and "cluster_size = 512" in info.value.hint


MINIMA = f"""
description = "every filesystem at the least size atvdisk allows; no [boot]"
[disk]
seed = "minima"
[[partition]]
name = "Journaled"
type = "linux"
start = "1MiB"
size = "{2048 * 4096 // 512}s"
fs = {{ kind = "ext4", label = "J" }}
[[partition]]
name = "Small blocks"
type = "linux"
size = "{2048 * 1024 // 512}s"
fs = {{ kind = "ext4", block_size = 1024 }}
[[partition]]
name = "No journal"
type = "linux"
size = "{MIB // 512 + 1}s"
fs = {{ kind = "ext4", journal = false }}
contents = [{{ kind = "text", path = "hello", text = "hi\\n" }}]
[[partition]]
name = "Swap"
type = "swap"
size = "81s"
fs = {{ kind = "swap" }}
[[partition]]
name = "EFI"
type = "efi"
size = "{fat32_min_bytes(512) // 512}s"
fs = {{ kind = "fat32", label = "EFI" }}
contents = [{{ kind = "text", path = "hello.txt", text = "hi\\n" }}]
[[partition]]
name = "{"N" * 34}\U0001D11E"
type = "hfsplus"
size = "rest"
fs = {{ kind = "hfsplus", label = "Volume" }}
"""


def test_every_filesystem_at_its_minimum_builds_and_verifies(tmp_path):
    """One image with each filesystem at (or one sector past, for odd sizes) its minimum, a GPT
    name of exactly 36 UTF-16 units, and no [boot] table: built, verified by atvdisk (e2fsck -fn,
    fsck.fat -n, the swap header, pyfshfs-independent reads), then judged by the tools."""
    layout = tmp_path / "minima.toml"
    layout.write_text(MINIMA)
    img = tmp_path / "minima.img"
    r = atvdisk("build", img, "--layout", layout, "--size", "64MiB")
    assert r.returncode == 0, r.stdout + r.stderr
    plan = resolve(parse_layout(MINIMA), 64 * MIB, 512)
    assert plan.boot is None and "Boot:" not in plan.render()
    assert not any("boot script" in s.description for s in plan.steps)
    p = {x.name: x for x in plan.partitions}

    def region(name: str) -> str:
        out = tmp_path / f"{name[:8]}.part"
        with open(img, "rb") as f, open(out, "wb") as o:
            f.seek(p[name].offset)
            o.write(f.read(p[name].size_bytes))
        return str(out)

    journaled = subprocess.run(["dumpe2fs", "-h", region("Journaled")], capture_output=True, text=True).stdout
    assert "has_journal" in journaled and re.search(r"Block size:\s+4096", journaled)
    small = subprocess.run(["dumpe2fs", "-h", region("Small blocks")], capture_output=True, text=True).stdout
    assert "has_journal" in small and re.search(r"Block size:\s+1024", small)
    bare = subprocess.run(["dumpe2fs", "-h", region("No journal")], capture_output=True, text=True).stdout
    assert "has_journal" not in bare
    for name in ("Journaled", "Small blocks", "No journal"):
        assert subprocess.run(["e2fsck", "-fn", region(name)], capture_output=True).returncode == 0
    efi = subprocess.run(["fsck.fat", "-n", "-v", region("EFI")], capture_output=True, text=True)
    assert efi.returncode == 0, efi.stdout
    clusters = int(re.search(r"(\d+) data clusters", efi.stdout).group(1))
    total = int(re.search(r"(\d+) sectors total", efi.stdout).group(1))
    assert clusters >= 65525 and total == p["EFI"].sectors  # FAT32 proper, over the whole partition
    swap = subprocess.run(["blkid", "-p", "-o", "export", region("Swap")], capture_output=True, text=True).stdout
    assert "TYPE=swap" in swap
    names = [x["name"] for x in json.loads(subprocess.run(["sfdisk", "--json", str(img)], check=True, capture_output=True, text=True).stdout)["partitiontable"]["partitions"]]
    assert names == [x.name for x in plan.partitions]
    assert len(names[-1].encode("utf-16-le")) == 72


def test_below_a_minimum_is_refused_before_writing(tmp_path):
    layout = tmp_path / "below.toml"
    old = f'size = "{fat32_min_bytes(512) // 512}s"'
    assert old in MINIMA
    layout.write_text(MINIMA.replace(old, f'size = "{fat32_min_bytes(512) // 512 - 2}s"', 1))
    img = tmp_path / "below.img"
    r = atvdisk("build", img, "--layout", layout, "--size", "64MiB")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "FAT32 too small" in r.stderr and "hint:" in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.glob("*.img*"))  # not even a temporary image


def test_a_36_unit_gpt_name_is_written_whole(tmp_path):
    names = ["A" * 36, "B" * 34 + "\U0001F600", "Ünïcödé" * 5 + "x"]
    assert [len(n.encode("utf-16-le")) for n in names] == [72, 72, 72]
    text = "".join(f'[[partition]]\nname = "{n}"\ntype = "linux"\nsize = "1MiB"\n' for n in names)
    plan = resolve(parse_layout('[disk]\nseed = "n"\n' + text), 64 * MIB, 512)
    img = tmp_path / "names.img"
    with open(img, "wb") as f:
        f.truncate(64 * MIB)
    write_partition_table(str(img), plan)
    dump = subprocess.run(["sfdisk", "--json", str(img)], check=True, capture_output=True, text=True).stdout
    assert [x["name"] for x in json.loads(dump)["partitiontable"]["partitions"]] == names
    with open(img, "rb") as f:
        assert [e.name for _, e in read_table(f, 512, 64 * MIB // 512).partitions] == names


# -- "disk too small": the size it quotes is one the layout fits on ----------------------------


@st.composite
def layouts(draw):
    align = draw(st.sampled_from([None, "4096", "1MiB", "4MiB"]))
    head = draw(st.lists(st.integers(1, 40_000), min_size=0, max_size=3))
    rest = draw(st.booleans())
    tail = draw(st.lists(st.integers(1, 40_000), min_size=0, max_size=2)) if rest else []
    min_size = draw(st.sampled_from([None, "1MiB", "20MiB", "64MiB"]))
    rest_min = draw(st.sampled_from([None, "1s", "3MiB", "10MiB"]))
    # The rest partition's filesystem has minimums of its own, which a larger disk also meets.
    rest_type, rest_fs = draw(st.sampled_from([("linux", None), ("linux", "ext4"), ("swap", "swap"), ("efi", "fat32"), ("hfsplus", "hfsplus")]))
    lines = ['[disk]']
    if align:
        lines.append(f'align = "{align}"')
    if min_size:
        lines.append(f'min_size = "{min_size}"')
    parts = [("linux", f'size = "{n}s"') for n in head]
    if rest:
        fs = f'\nfs = {{ kind = "{rest_fs}" }}' if rest_fs else ""
        parts.append((rest_type, 'size = "rest"' + (f'\nmin_size = "{rest_min}"' if rest_min else "") + fs))
    parts += [("linux", f'size = "{n}s"') for n in tail]
    if not parts:
        parts = [("linux", 'size = "1s"')]
    for i, (type_, size) in enumerate(parts, 1):
        lines.append(f'[[partition]]\nname = "P{i}"\ntype = "{type_}"\n{size}')
    return "\n".join(lines) + "\n"


@settings(max_examples=200, deadline=None)
@given(layouts(), st.integers(1, 200_000), st.sampled_from([512, 4096]))
def test_disk_too_small_quotes_a_size_that_fits(text, sectors, sector_size):
    layout = parse_layout(text)
    try:
        resolve(layout, 2**40, sector_size)
    except PlanError:
        assume(False)  # not a size problem: misaligned for 4096-byte sectors, overlapping starts
    disk = sectors * sector_size
    try:
        resolve(layout, disk, sector_size)
    except DiskTooSmall as e:
        need = e.need_bytes
        assert need > disk and need % sector_size == 0
        assert f"needs at least {need} bytes" in str(e) and f"short by {need - disk} bytes" in str(e)
        resolve(layout, need, sector_size)  # the quoted size is enough, for everything...
        with pytest.raises(DiskTooSmall):  # ...and a sector less is not: it is the least
            resolve(layout, need - sector_size, sector_size)
    # Any other refusal on a small disk would be a size problem reported as something else.


def test_disk_too_small_with_aligned_partitions_after_the_rest():
    # The swap after 'rest' is placed from the disk's end and aligned down: each extra sector
    # does not give the rest partition an extra sector. The quoted size accounts for that.
    text = '[disk]\nalign = "1MiB"\n[[partition]]\nname = "A"\ntype = "linux"\nsize = "100s"\n' \
           '[[partition]]\nname = "B"\ntype = "linux"\nsize = "rest"\nmin_size = "8MiB"\n' \
           '[[partition]]\nname = "C"\ntype = "swap"\nsize = "10MiB"\n'
    layout = parse_layout(text)
    with pytest.raises(DiskTooSmall) as info:
        resolve(layout, 16 * MIB, 512)
    need = info.value.need_bytes
    plan = resolve(layout, need, 512)
    assert plan.partition("B").size_bytes >= 8 * MIB
    with pytest.raises(DiskTooSmall):
        resolve(layout, need - 512, 512)


# -- the resolver's other limits ----------------------------------------------------------------


def test_supported_logical_sector_sizes():
    layout = parse_layout('[[partition]]\nname = "A"\ntype = "linux"\nsize = "rest"\n')
    for good in (512, 4096, 65536):
        plan = resolve(layout, 2**30, good)
        assert plan.partitions[0].start == 2 + -(-128 * 128 // good) and plan.partitions[0].end == plan.last_usable
    for bad in (256, 3072, 131072):
        with pytest.raises(PlanError, match=f"unsupported logical sector size {bad}"):
            resolve(layout, 2**30, bad)


@pytest.mark.parametrize("sector_size, entries", [(512, 32), (4096, 4)])
def test_gpt_reserved_regions(sector_size, entries):
    layout = parse_layout('[[partition]]\nname = "A"\ntype = "linux"\nsize = "rest"\n')
    total = 2**30 // sector_size
    plan = resolve(layout, 2**30, sector_size)
    assert [(r.name, r.start, r.end) for r in plan.reserved] == [
        ("protective MBR", 0, 0),
        ("primary GPT header", 1, 1),
        ("primary GPT entries", 2, 1 + entries),
        ("backup GPT entries", total - 1 - entries, total - 2),
        ("backup GPT header", total - 1, total - 1),
    ]
    assert (plan.first_usable, plan.last_usable) == (2 + entries, total - 2 - entries)
    hint = refused_at(f'[[partition]]\nname = "A"\ntype = "linux"\nstart = "{(1 + entries) * sector_size // 512}s"\nsize = "1MiB"\n', 2**30, sector_size).hint
    assert hint == f"partitions must lie within sectors {2 + entries}-{total - 2 - entries} and not overlap"


def refused_at(text: str, disk: int, sector_size: int = 512) -> PlanError:
    with pytest.raises(PlanError) as info:
        resolve(parse_layout(text), disk, sector_size)
    return info.value


def test_hfs_block_size_and_block_count_limits():
    def hfs(size: str, block: int) -> str:
        return f'[[partition]]\nname = "H"\ntype = "hfsplus"\nstart = "1MiB"\nsize = "{size}"\nfs = {{ kind = "hfsplus", block_size = {block} }}\n'

    # At least 16 blocks: 64 KiB blocks need a 1 MiB volume.
    resolve(parse_layout(hfs("1MiB", 65536)), 2**30, 512)
    assert "block size 65536 is too large" in str(refused_at(hfs("2047s", 65536), 2**30))
    # The smallest volume: 512 KiB.
    resolve(parse_layout(hfs("512KiB", 512)), 2**30, 512)
    assert "an HFS+ volume needs at least 512.0 KiB" in str(refused_at(hfs("1023s", 512), 2**30))
    # HFS+ counts blocks in 32 bits: 2^32 - 1 blocks of 512 bytes is the most (plans are pure:
    # a 4 TiB disk costs nothing here).
    resolve(parse_layout(hfs(f"{2**32 - 1}s", 512)), 2**42, 512)
    error = refused_at(hfs(f"{2**32}s", 512), 2**42)
    assert "4294967296 blocks of 512 bytes: HFS+ counts at most 2^32-1 blocks" in str(error) and error.where == "partition[1].fs.block_size"


@pytest.mark.parametrize("cluster", [4096, 2048, 1024, 512])
def test_automatic_fat_cluster_is_the_largest_that_keeps_fat32(cluster):
    """At exactly the least size for a cluster size, that cluster size is chosen; a KiB less, the
    next smaller one (mkfs.fat would make FAT16 otherwise)."""
    def fat(sectors: int) -> str:
        return f'[[partition]]\nname = "E"\ntype = "efi"\nstart = "1MiB"\nsize = "{sectors}s"\nfs = {{ kind = "fat32" }}\n'

    least = fat32_min_bytes(cluster) // 512
    assert resolve(parse_layout(fat(least)), 2**32, 512).partitions[0].fs.cluster_size == cluster
    if cluster > 512:
        assert resolve(parse_layout(fat(least - 2)), 2**32, 512).partitions[0].fs.cluster_size == cluster // 2
    assert resolve(parse_layout(fat(2 * fat32_min_bytes(4096) // 512)), 2**32, 512).partitions[0].fs.cluster_size == 4096  # never more


def test_fat32_cluster_count_limit():
    """FAT32 numbers clusters in 28 bits, 0x0FFFFFF5 at most (Microsoft's FAT specification):
    a partition with that many clusters is planned, one with one more is refused (plans are pure:
    a 130 GiB FAT32 partition costs nothing here)."""
    limit = 0x0FFFFFF5
    size = (limit + 32) * 512 + 2 * (limit + 2) * 4  # about right; then walk to the exact sizes
    size -= size % 1024
    while fat32_cluster_count(size, 512) > limit:
        size -= 1024
    while fat32_cluster_count(size + 1024, 512) <= limit:
        size += 1024

    def fat(nbytes: int) -> str:
        return f'[[partition]]\nname = "E"\ntype = "efi"\nstart = "1MiB"\nsize = "{nbytes // 512}s"\nfs = {{ kind = "fat32", cluster_size = 512 }}\n'

    assert fat32_cluster_count(size, 512) <= limit < fat32_cluster_count(size + 1024, 512)
    resolve(parse_layout(fat(size)), 2**40, 512)
    error = refused_at(fat(size + 1024), 2**40)
    assert f"{fat32_cluster_count(size + 1024, 512)} clusters is more than FAT32 allows" in str(error)
    assert error.where == "partition[1].fs.cluster_size" and error.hint == "use a larger cluster_size"


def test_misaligned_sizes_say_what_would_be_aligned():
    def one(size: str, layout_sector: int = 512) -> str:
        return f'[disk]\nsector_size = {layout_sector}\n[[partition]]\nname = "A"\ntype = "linux"\nstart = "1MiB"\nsize = "{size}"\n'

    error = refused_at(one("1000"), 2**30, 512)
    assert "size 1000B is byte 1000, not a multiple of this disk's 512-byte sectors (misaligned)" in str(error)
    assert error.hint == "use a multiple of 1s or of 512 bytes"
    assert refused_at(one("1000", 4096), 2**30, 512).hint == "use a multiple of 1s or of 512 bytes"
    assert refused_at(one("12s"), 2**30, 4096).hint == "use a multiple of 8s or of 4096 bytes"


@pytest.mark.parametrize("overlap", [1, 2])
def test_overlaps_are_counted_in_sectors(overlap):
    text = ('[[partition]]\nname = "A"\ntype = "linux"\nstart = "2048s"\nsize = "2048s"\n'
            f'[[partition]]\nname = "B"\ntype = "linux"\nstart = "{4096 - overlap}s"\nsize = "2048s"\n')
    message = str(refused_at(text, 2**30))
    assert message.endswith(f"overlaps partition 2 (B) (sectors {4096 - overlap}-{6143 - overlap}) by {overlap} sector{'s' if overlap > 1 else ''}")


def test_where_a_size_problem_is_in_the_layout():
    misaligned = '[[partition]]\nname = "A"\ntype = "linux"\nstart = "1MiB"\nsize = "1MiB"\n[[partition]]\nname = "B"\ntype = "linux"\nsize = "1000"\n'
    assert refused_at(misaligned, 2**30).where == "partition[2].size"
    rest = '[[partition]]\nname = "A"\ntype = "linux"\nstart = "1MiB"\nsize = "1MiB"\n[[partition]]\nname = "B"\ntype = "linux"\nsize = "rest"\nmin_size = "100MiB"\n'
    with pytest.raises(DiskTooSmall) as info:
        resolve(parse_layout(rest), 64 * MIB, 512)
    assert info.value.where == "partition[2].size"


def test_a_fat32_rest_partition_ends_on_a_whole_kib():
    text = '[[partition]]\nname = "EFI"\ntype = "efi"\nstart = "2048s"\nsize = "rest"\nfs = { kind = "fat32" }\n'
    for sectors in (200_001, 200_002):  # the rest would be an odd number of sectors on one of them
        plan = resolve(parse_layout(text), sectors * 512, 512)
        efi = plan.partitions[0]
        assert efi.size_bytes % 1024 == 0 and plan.last_usable - efi.end in (0, 1)


def test_a_fat32_partition_with_no_room_for_clusters():
    text = '[[partition]]\nname = "EFI"\ntype = "efi"\nstart = "1MiB"\nsize = "16KiB"\nfs = { kind = "fat32" }\n'
    assert "even 512-byte clusters give 0 clusters" in str(refused_at(text, 2**30))
    assert fat32_cluster_count(16 * 1024, 512) == 0


def test_fat32_minimums_are_whole_kib():
    assert all(fat32_min_bytes(c) % 1024 == 0 for c in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536))
