"""The manifest on every disk atvdisk builds, read with tools we did not write (mtools' mtype,
debugfs, pyfshfs, blkid), and `verify` with no options re-checking a disk against it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from hfsplus.judges import listing_pyfshfs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atvdisk import manifest
from atvdisk.cli.main import main
from atvdisk.fs.entry import Entry
from atvdisk.inputs.tree import NodeKind
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import bundled_layouts, load_layout
from atvdisk.manifest import MANIFEST_NAME, MAX_MANIFEST_BYTES, Manifest, ManifestError

EPOCH = "1300000000"
SEED = "manifest-tests"
SIZE = 4 * 2**30


def atvdisk(*args, check=True, env=None):
    full_env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, **(env or {})}
    r = subprocess.run([sys.executable, "-m", "atvdisk", *map(str, args)], capture_output=True, text=True, env=full_env)
    if check and r.returncode != 0:
        raise AssertionError(f"atvdisk {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def mtype(img: Path, offset: int, name: str = MANIFEST_NAME) -> bytes:
    return subprocess.run(["mtype", "-i", f"{img}@@{offset}", f"::/{name}"], check=True, capture_output=True).stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("manifest")
    img = tmp / "m.img"
    atvdisk("build", img, "--size", "4G", "--example", "--seed", SEED)
    plan = resolve(load_layout("atv1-openelec"), SIZE, 512, seed=SEED)
    return img, plan


def test_manifest_is_a_file_on_the_efi_partition(built):
    img, plan = built
    data = mtype(img, plan.partitions[0].offset)
    doc = json.loads(data)
    assert doc["format"] == "atvdisk-manifest/1"
    assert doc["seed"] == SEED and doc["source_date_epoch"] == int(EPOCH)
    assert doc["layout"]["name"] == "atv1-openelec"
    assert doc["layout"]["text"] == bundled_layouts()["atv1-openelec"].read_text()
    assert doc["layout"]["sha256"] == hashlib.sha256(doc["layout"]["text"].encode()).hexdigest()
    assert doc["options"]["name_by"] == "device" and doc["options"]["atv_disk"] == "/dev/sda"
    assert doc["disk"] == {"bytes": SIZE, "sector_size": 512}
    # No host paths: an image shared with others tells nothing about the machine it was built on.
    assert str(img.parent) not in data.decode() and "/tmp" not in data.decode()


def test_manifest_lists_what_the_filesystems_hold(built):
    """Every file the manifest lists is on the disk with that sha256, read by libfshfs (HFS+) and
    debugfs (ext4), and nothing else is."""
    img, plan = built
    doc = json.loads(mtype(img, plan.partitions[0].offset))
    parts = {p["number"]: p for p in doc["partitions"]}
    assert sorted(parts) == [1, 2, 3, 4]
    for number in (2, 3):
        listing, _ = listing_pyfshfs(img, plan.partitions[number - 1].offset)
        recorded = {e["path"]: e for e in parts[number]["entries"]}
        assert set(recorded) == set(listing)
        for path, e in recorded.items():
            got = listing[path]
            assert (e["kind"], int(e["mode"], 8), e["uid"], e["gid"]) == (got.kind, got.mode, got.uid, got.gid), path
            if e["kind"] == "file":
                assert (e["size"], e["sha256"]) == (got.size, got.sha256), path
    media = plan.partitions[3]
    ssh = subprocess.run(["debugfs", "-R", "cat /.config/ssh_enable", f"{img}?offset={media.offset}"], capture_output=True, check=True).stdout
    recorded = {e["path"]: e for e in parts[4]["entries"]}
    assert recorded[".config/ssh_enable"]["sha256"] == hashlib.sha256(ssh).hexdigest()
    assert {p for p, e in recorded.items() if e["kind"] == "dir"} == {".config", ".cache", ".cache/services", ".xbmc", ".xbmc/userdata"}


def test_verify_with_no_options_uses_the_manifest(built):
    img, _ = built
    r = atvdisk("verify", img)
    assert "ok: manifest on partition 1: layout atv1-openelec, seed 'manifest-tests'" in r.stderr
    assert "not checked" not in r.stderr
    assert "partition 2 (Recovery): 13 entries (8 files) match" in r.stderr


def test_verify_with_no_options_finds_a_changed_file(built, tmp_path):
    img, plan = built
    copy = tmp_path / "c.img"
    subprocess.run(["cp", "--sparse=always", img, copy], check=True)
    from atvdisk.fs.hfsplus.reader import HfsVolume

    osb = plan.partitions[2]
    with HfsVolume.open(copy, osb.offset, osb.size_bytes) as vol:
        system = next(e for e in vol.walk() if e.path == "SYSTEM")
        pos = osb.offset + system.fork.extents[0].startBlock * vol.block_size + 7
    with open(copy, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x20]))
    r = atvdisk("verify", copy, check=False)
    assert r.returncode == 5
    assert "partition 3 (OSBoot): /SYSTEM: content differs from its source (sha256)" in r.stderr


def test_verify_finds_a_manifest_that_lies(built, tmp_path):
    """A manifest whose hash of a file was changed (same length, so the FAT is untouched) is a
    mismatch: the disk's files are compared with the manifest, and the manifest with itself."""
    img, plan = built
    copy = tmp_path / "lie.img"
    subprocess.run(["cp", "--sparse=always", img, copy], check=True)
    data = mtype(copy, plan.partitions[0].offset)
    doc = json.loads(data)
    kernel = next(e for p in doc["partitions"] for e in p["entries"] if e["path"] == "KERNEL")
    old = kernel["sha256"].encode()
    new = bytes(reversed(old))
    with open(copy, "r+b") as f:
        blob = f.read(plan.partitions[1].offset)
        at = blob.index(old)
        f.seek(at)
        f.write(new)
    r = atvdisk("verify", copy, check=False)
    assert r.returncode == 5
    assert "partition 3 (OSBoot): /KERNEL: content differs from its source (sha256)" in r.stderr


def test_verify_checks_given_options_and_inputs_against_the_manifest(built, tmp_path):
    img, _ = built
    r = atvdisk("verify", img, "--seed", "another", "--name-by", "label", check=False)
    assert r.returncode == 5
    assert "the manifest says seed 'manifest-tests', not 'another'" in r.stderr
    assert "the manifest says --name-by 'device', not 'label'" in r.stderr
    # The sample inputs are what the disk was built from: they match the manifest.
    r = atvdisk("verify", img, "--example")
    assert "ok: partition 2 (Recovery): the manifest against the inputs given: 13 entries (8 files) match" in r.stderr
    # Other inputs do not.
    other = tmp_path / "other"
    other.mkdir()
    (other / "KERNEL").write_bytes(b"another kernel")
    (other / "SYSTEM").write_bytes(b"another system")
    r = atvdisk("verify", img, "--openelec", other, check=False)
    assert r.returncode == 5
    assert "partition 3 (OSBoot): the manifest against the inputs given: /KERNEL: size 3145851, expected 14" in r.stderr


def test_manifest_on_ext4_when_the_layout_has_no_fat(tmp_path):
    """A layout like OpenELEC 4.x's (HFSX boot, ext4 storage, swap): the manifest goes to ext4."""
    layout = tmp_path / "noefi.toml"
    layout.write_text(
        """
        [[partition]]
        name = "BOOT"
        type = "atvrecv"
        start = "40s"
        size = "64MiB"
        fs = { kind = "hfsx", label = "BOOT" }
        contents = [ { kind = "text", path = "hello", text = "hi\\n" } ]
        [[partition]]
        name = "STORAGE"
        type = "linux"
        size = "rest"
        fs = { kind = "ext4", label = "STORAGE" }
        [[partition]]
        name = "LINUX-SWAP"
        type = "swap"
        size = "64MiB"
        fs = { kind = "swap" }
        """
    )
    img = tmp_path / "x.img"
    atvdisk("build", img, "--layout", layout, "--size", "1G", "--seed", "s")
    plan = resolve(load_layout(str(layout)), 2**30, 512, seed="s")
    spec = f"{img}?offset={plan.partitions[1].offset}"
    data = subprocess.run(["debugfs", "-R", f"cat /{MANIFEST_NAME}", spec], capture_output=True, check=True).stdout
    assert json.loads(data)["layout"]["text"] == layout.read_text()
    stat = subprocess.run(["debugfs", "-R", f"stat /{MANIFEST_NAME}", spec], capture_output=True, text=True, check=True).stdout
    assert "User:     0   Group:     0" in stat and "Mode:  0644" in stat
    assert subprocess.run(["e2fsck", "-fn", spec], capture_output=True).returncode == 0
    r = atvdisk("verify", img)
    assert "ok: manifest on partition 2" in r.stderr and "partition 1 (BOOT): 1 entries (1 files) match" in r.stderr


def test_no_manifest_without_fat_or_ext4(tmp_path):
    layout = tmp_path / "hfsonly.toml"
    layout.write_text('[[partition]]\nname = "D"\ntype = "hfsplus"\nstart = "1MiB"\nsize = "rest"\nfs = { kind = "hfsplus" }\n')
    img = tmp_path / "h.img"
    r = atvdisk("build", img, "--layout", layout, "--size", "64M")
    assert "has no FAT32 or ext4 partition to hold atvdisk's manifest" in r.stderr
    r = atvdisk("verify", img, check=False)
    assert "carries no atvdisk manifest" in r.stderr


# -- hostile manifests ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def valid_doc(built):
    img, plan = built
    return mtype(img, plan.partitions[0].offset)


def test_valid_manifest_round_trips(valid_doc):
    m = Manifest.from_bytes(valid_doc)
    assert m.to_bytes() == valid_doc
    assert m.plan().disk_guid == resolve(load_layout("atv1-openelec"), SIZE, 512, seed=SEED).disk_guid


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.lists(st.sampled_from(["format", "layout", "text", "name", "options", "inputs", "name_by", "atv_disk", "disk", "bytes", "sector_size", "seed", "source_date_epoch", "partitions", 0, 1, "entries", "path", "kind", "mode", "size", "sha256", "uid", "target"]), min_size=1, max_size=5), value=json_values)
def test_mutated_manifest_is_read_or_refused_never_crashes(valid_doc, path, value):
    """Any field replaced by any JSON value: the reader accepts it or raises ManifestError."""
    doc = json.loads(valid_doc)
    node = doc
    for key in path[:-1]:
        if isinstance(node, dict) and isinstance(key, str) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            break
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value
    try:
        m = Manifest.from_bytes(json.dumps(doc).encode())
    except ManifestError:
        return
    m.to_bytes()  # what was accepted can be written back


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (("options", "atv_disk"), "sda;reboot", "atv_disk: not a disk name the ATV has"),
        (("options", "atv_disk"), "/dev/sdz", "atv_disk: not a disk name the ATV has"),
        (("options", "atv_disk"), "", "atv_disk: not a disk name the ATV has"),
        (("seed",), "", "a seed is 1 to 200 printable characters"),
        (("seed",), "x\x1b]0;owned\x07", "a seed is 1 to 200 printable characters"),
        (("seed",), "s" * 201, "a seed is 1 to 200 printable characters"),
        (("source_date_epoch",), -1, "outside 0..4294967295"),
        (("source_date_epoch",), 2**32, "outside 0..4294967295"),
    ],
)
def test_a_manifest_carries_only_values_a_build_takes(valid_doc, where, value, message):
    """A disk's manifest is input like any other (it may come from a disk of unknown history):
    its ATV disk name, seed and SOURCE_DATE_EPOCH are held to the rules --atv-disk, --seed and
    the environment are held to, before verify uses them."""
    doc = json.loads(valid_doc)
    node = doc
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    with pytest.raises(ManifestError, match=re.escape(message)):
        Manifest.from_bytes(json.dumps(doc).encode())


def test_a_manifest_names_the_atv_disk_as_the_build_does(valid_doc):
    doc = json.loads(valid_doc)
    assert Manifest.from_bytes(valid_doc).atv_disk == "/dev/sda"
    doc["options"]["atv_disk"] = "sdb"  # written by hand: read as --atv-disk reads it
    m = Manifest.from_bytes(json.dumps(doc).encode())
    assert m.atv_disk == "/dev/sdb" and m.layout().disk.atv_disk == "/dev/sdb"
    doc["seed"], doc["source_date_epoch"] = "s" * 200, 2**32 - 1  # the limits themselves are taken
    assert Manifest.from_bytes(json.dumps(doc).encode()).seed == "s" * 200


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_is_refused(data):
    with pytest.raises(ManifestError):
        Manifest.from_bytes(data)


def test_oversized_manifest_is_refused():
    with pytest.raises(ManifestError, match="too large"):
        Manifest.from_bytes(b" " * (MAX_MANIFEST_BYTES - 1) + b"{}")
    with pytest.raises(ManifestError, match="no 'format'"):  # the limit itself is read
        Manifest.from_bytes(b" " * (MAX_MANIFEST_BYTES - 2) + b"{}")


# -- size: what the build writes, the reader takes -------------------------------------------


def test_a_manifest_of_100000_files_is_written_and_read_back(valid_doc):
    """The manifest of a disk with 100,000 more files (paths as bench row 4c's) fits the bundled
    layout's EFI partition and the reader's limit, and reads back to the same entries (it did
    not: 22.6 MB of indented JSON against a 16 MiB limit)."""
    base = Manifest.from_bytes(valid_doc)
    extra = tuple(
        Entry(f"Many/{i // 10_000:02d}/{(i // 100) % 100:02d}/file-{i:06d}", NodeKind.FILE, 64 + i % 961, 0o644, 501, 20, hashlib.sha256(b"%d" % i).hexdigest())
        for i in range(100_000)
    )
    parts = tuple(replace(p, entries=p.entries + extra) if p.name == "Recovery" else p for p in base.partitions)
    big = replace(base, partitions=parts)
    data = big.to_bytes()
    assert 100_000 < big.files and len(data) <= MAX_MANIFEST_BYTES
    efi = big.plan().partitions[0]
    assert efi.name == "EFI" and manifest.fits(len(data), efi, 0) is None
    back = Manifest.from_bytes(data)
    assert back == big and back.to_bytes() == data
    assert json.loads(data) == big.to_dict()


def test_a_manifest_that_cannot_be_read_back_is_not_written(built, tmp_path, monkeypatch):
    """The build predicts the manifest's exact size before the first write; one above the
    reader's limit (here lowered to 1 KiB) is left out with a warning, and the disk still
    builds and verifies with the build's options."""
    img, plan = built
    predicted = []
    fits = manifest.fits
    monkeypatch.setattr(manifest, "fits", lambda size, p, used: predicted.append(size) or fits(size, p, used))
    # the prediction is exact: the size of the manifest written by the module's build
    out = tmp_path / "again.img"
    r = CliRunner().invoke(main, ["build", str(out), "--size", "4G", "--example", "--seed", SEED, "--no-verify"], env={"SOURCE_DATE_EPOCH": EPOCH})
    assert r.exit_code == 0, r.output
    assert predicted == [len(mtype(out, plan.partitions[0].offset))]
    out.unlink()
    monkeypatch.setattr(manifest, "MAX_MANIFEST_BYTES", 1024)
    r = CliRunner().invoke(main, ["build", str(out), "--size", "4G", "--example", "--seed", SEED], env={"SOURCE_DATE_EPOCH": EPOCH})
    assert r.exit_code == 0, r.output
    assert f"this disk gets no atvdisk manifest: its manifest would be {predicted[0]:,} bytes, more than the 1,024 bytes atvdisk reads back" in r.stderr
    listing = subprocess.run(["mdir", "-i", f"{out}@@{plan.partitions[0].offset}", "-b", "::/"], capture_output=True, text=True).stdout
    assert MANIFEST_NAME not in listing
    r = atvdisk("verify", out, check=False)
    assert "carries no atvdisk manifest" in r.stderr


def test_fits_counts_the_holders_room():
    plan = resolve(load_layout("atv1-openelec"), SIZE, 512, seed=SEED)
    efi = plan.partitions[0]
    room = int(efi.size_bytes * 0.97) // 512 * 512  # 3 % kept for FAT32's own structures
    assert manifest.fits(room, efi, 0) is None
    assert "would not fit partition 1 (EFI) beside its 1,024 bytes" in manifest.fits(room - 1023, efi, 1024)
    assert manifest.fits(room - 1024, efi, 1024) is None
    assert "more than the 67,108,864 bytes atvdisk reads back" in manifest.fits(MAX_MANIFEST_BYTES + 1, efi, 0)
