"""`atvdisk extract` of HFS+ volumes written by a foreign writer: the Linux kernel's hfsplus.

One boot. The guest mounts an empty Recovery volume (atvrecv partition, made by atvdisk) read-
write with the Debian kernel's own driver and writes into it: files of many sizes, Unicode
names (composed as typed; the kernel decomposes them on disk), a name with ':', symlinks, a hard
link (the kernel puts its data in HFS+'s private directory), modes and times, 400 files of which
300 are deleted and 100 new ones written (a catalog B-tree that grew, split and lost records),
interleaved appends (fragmented files), a subtree created and removed. It copies the whole disk
while the volume is still mounted (after ``sync``: not cleanly unmounted), lists the volume as
the kernel sees it, unmounts, and copies the disk again.

On the host, ``atvdisk extract`` of both copies must give a tarball whose members (read with
Python's tarfile) are exactly the kernel's listing: names, kinds, modes, sizes, sha256, link
targets and modification times; the not-cleanly-unmounted copy with a warning and the same
tarball; neither copy changed by the extraction; and ``atvdisk build --restore`` takes it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

from .harness import GuestResult

pytestmark = pytest.mark.kernel

EPOCH = "1300000000"
LAYOUT = """
[[partition]]
name = "Recovery"
type = "atvrecv"
start = "1MiB"
size = "40MiB"
fs = { kind = "hfsplus", label = "Recovery" }
"""

SCRIPT = r"""
set -u
guest_mount rec /dev/sda1 hfsplus rw || exit 10
cd /mnt/rec || exit 11
mkdir -p "docs/Ünïcödé dir" System/Library/Extensions gone/deeper
printf 'hello\n' > hello.txt
printf 'café\n' > café.txt
printf 'jp\n' > 日本語.txt
printf 'n\n' > "docs/Ünïcödé dir/ñ.txt"
printf 'colon\n' > "a:b"
: > empty
head -c 1234567 /dev/urandom > big.bin
head -c 4096 /dev/urandom > System/Library/Extensions/block.bin
ln -s hello.txt link-to-hello
ln -s ../docs System/up-link
ln hello.txt hard-link
for i in 1 2 3; do printf "$i\n" > gone/deeper/f$i; done
rm -r gone
i=0
mkdir many
while [ $i -lt 400 ]; do printf '%s\n' $i > many/file-$i-with-a-long-name-that-fills-catalog-nodes; i=$((i + 1)); done
i=0
while [ $i -lt 400 ]; do
    [ $((i % 4)) = 0 ] || rm many/file-$i-with-a-long-name-that-fills-catalog-nodes
    i=$((i + 1))
done
i=0
while [ $i -lt 100 ]; do printf 'rewritten %s\n' $i > many/new-$i; i=$((i + 1)); done
i=0
while [ $i -lt 24 ]; do
    head -c 40000 /dev/urandom >> frag1
    head -c 50000 /dev/urandom >> frag2
    i=$((i + 1))
done
chmod 0600 big.bin
chmod 0700 "docs/Ünïcödé dir"
chmod 0755 System
chmod 0751 docs
touch -d '2009-02-13 23:31:30' hello.txt
touch -d '2001-09-09 01:46:40' many
cd /
sync
dd if=/dev/sda of=$RESULTS/dirty.img bs=1M 2>/dev/null || exit 12
guest_list rec || exit 13
guest_umount rec || exit 14
dd if=/dev/sda of=$RESULTS/clean.img bs=1M 2>/dev/null || exit 15
echo extract script done
"""


@dataclass(frozen=True)
class Written:
    result: GuestResult
    dirty: Path
    clean: Path
    tmp: Path


def atvdisk(*args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    r = subprocess.run([sys.executable, "-m", "atvdisk", *map(str, args)], capture_output=True, text=True, env=env)
    if check:
        assert r.returncode == 0, f"atvdisk {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def written(module_run_guest, tmp_path_factory: pytest.TempPathFactory) -> Written:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("kernel-extract")
    layout = tmp / "recovery-only.toml"
    layout.write_text(LAYOUT)
    disk = tmp / "disk.img"
    atvdisk("build", disk, "--layout", layout, "--size", "48M", "--seed", "kernel-extract")
    result = module_run_guest([disk], SCRIPT, timeout=240, results_mb=160)
    dirty, clean = tmp / "dirty.img", tmp / "clean.img"
    dirty.write_bytes(result.files["dirty.img"])
    clean.write_bytes(result.files["clean.img"])
    return Written(result, dirty, clean, tmp)


def kernel_members(result: GuestResult) -> dict[str, tuple[object, ...]]:
    out = {}
    kind = {"f": "file", "d": "dir", "l": "symlink"}
    for path, e in result.listing("rec").items():
        if path == ".":
            continue
        mode = 0o777 if e.type == "l" else e.mode
        size = e.size if e.type == "f" else 0
        out[unicodedata.normalize("NFC", path)] = (kind[e.type], mode, size, e.uid, e.gid, e.sha256, e.target, e.mtime)
    return out


def tar_members(tgz: Path) -> dict[str, tuple[object, ...]]:
    out = {}
    with tarfile.open(tgz) as tar:
        for m in tar:
            data = tar.extractfile(m).read() if m.isreg() else None  # type: ignore[union-attr]
            kind = "dir" if m.isdir() else "file" if m.isreg() else "symlink" if m.issym() else m.type
            sha = hashlib.sha256(data).hexdigest() if data is not None else None
            out[unicodedata.normalize("NFC", m.name)] = (kind, m.mode, m.size if m.isreg() else 0, m.uid, m.gid, sha, m.linkname or None, m.mtime)
    return out


def test_guest_wrote_the_volume(written: Written) -> None:
    assert written.result.status == 0 and "extract script done" in written.result.output
    listing = written.result.listing("rec")
    assert listing["hard-link"].nlink == 2 and listing["a:b"].type == "f"
    assert sum(1 for p in listing if p.startswith("many/")) == 100 + 100


def test_clean_volume_extracts_to_exactly_what_the_kernel_wrote(written: Written) -> None:
    before = hashlib.sha256(written.clean.read_bytes()).hexdigest()
    out = written.tmp / "clean.tar.gz"
    r = atvdisk("extract", written.clean, "-o", out)
    assert hashlib.sha256(written.clean.read_bytes()).hexdigest() == before
    assert "not cleanly unmounted" not in r.stderr
    assert tar_members(out) == kernel_members(written.result)
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert "café.txt" in names and "a:b" in names  # composed again, ':' as Linux shows it
        assert names == sorted(names, key=lambda n: n.split("/"))


def test_unclean_volume_is_read_with_a_warning_and_gives_the_same_tarball(written: Written) -> None:
    before = hashlib.sha256(written.dirty.read_bytes()).hexdigest()
    out = written.tmp / "dirty.tar.gz"
    r = atvdisk("extract", written.dirty, "-o", out)
    assert "was not cleanly unmounted" in r.stderr
    assert hashlib.sha256(written.dirty.read_bytes()).hexdigest() == before  # never written
    clean = written.tmp / "clean2.tar.gz"
    atvdisk("extract", written.clean, "-o", clean)
    assert out.read_bytes() == clean.read_bytes()


def test_build_takes_the_kernel_written_tarball_back(written: Written) -> None:
    tgz = written.tmp / "again.tar.gz"
    atvdisk("extract", written.clean, "-o", tgz)
    img = written.tmp / "factory.img"
    atvdisk("build", img, "--layout", "atv1-factory", "--size", "4GB", "--restore", tgz, "--seed", "k")
    again = written.tmp / "again2.tar.gz"
    atvdisk("extract", img, "-o", again)
    assert tar_members(again) == tar_members(tgz)
