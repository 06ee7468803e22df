"""`atvdisk build` for both boot chains, end to end through the command line, judged by sfdisk,
sgdisk, blkid, debugfs, pyfshfs and Python's tarfile/plistlib:

- atv1-openelec4 (OpenELEC 4.x: boot.efi starts MACH_KERNEL) laid out as OpenELEC's installer;
- a 4.x release picks that layout by itself; a release that does not fit a layout is refused
  before anything is written; an extracted release directory (holding target/) is accepted;
- atv1-openelec (3.x: kexec) boots whatever the recovery plist says: its atv-boot= is fixed
  (and reported), or the build is refused with --keep-boot-plist; verify checks the plist.
"""

from __future__ import annotations

import hashlib
import json
import os
import plistlib
import subprocess
import sys
import tarfile
from pathlib import Path

import pyfshfs
import pytest

from atvdisk.inputs.sample import (
    recovery_members,
    restore_members,
    write_sample,
    write_tar_gz,
)

EPOCH = "1300000000"
SIZE = "4G"
BYTES = 4 << 30


def atvdisk(*args, check=True):
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    r = subprocess.run([sys.executable, "-m", "atvdisk", *map(str, args)], capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"atvdisk {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def tool(*args):
    return subprocess.run(list(map(str, args)), check=True, capture_output=True, text=True).stdout


class _At:
    def __init__(self, path: Path, offset: int) -> None:
        self.f, self.offset = open(path, "rb"), offset

    def read(self, n=-1):
        return self.f.read(n)

    def seek(self, pos, whence=0):
        return self.f.seek(pos + self.offset if whence == 0 else pos, whence) - self.offset

    def tell(self):
        return self.f.tell() - self.offset

    def get_size(self):
        return self.f.seek(0, 2) - self.offset

    def close(self):
        self.f.close()


def hfs_files(image: Path, offset: int) -> dict[str, bytes | None]:
    """{path: data (None for directories)} of the HFS+/HFSX volume at ``offset``, read by libfshfs."""
    vol = pyfshfs.volume()
    at = _At(image, offset)
    vol.open_file_object(at)
    out: dict[str, bytes | None] = {}
    try:
        stack = [(vol.get_root_directory(), "")]
        while stack:
            d, prefix = stack.pop()
            for i in range(d.get_number_of_sub_file_entries()):
                e = d.get_sub_file_entry(i)
                path = f"{prefix}/{e.name}" if prefix else e.name
                if e.get_number_of_sub_file_entries() or (e.file_mode & 0o170000) == 0o040000:
                    out[path] = None
                    stack.append((e, path))
                else:
                    e.seek_offset(0, 0)
                    out[path] = e.read_buffer(e.size) if e.size else b""
    finally:
        vol.close()
        at.close()
    return out


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("sample"))


# ------------------------------------------------------------------------ 4.x


@pytest.fixture(scope="module")
def demo4(tmp_path_factory):
    img = tmp_path_factory.mktemp("demo4") / "demo4.img"
    r = atvdisk("build", img, "--size", SIZE, "--example", "--layout", "atv1-openelec4", "--json")
    return img, json.loads(r.stdout)


def test_4x_partition_table_is_the_installers(demo4):
    img, summary = demo4
    sf = json.loads(tool("sfdisk", "--json", img))["partitiontable"]
    last = BYTES // 512 - 34
    assert [(p["start"], p["size"], p["type"], p["name"]) for p in sf["partitions"]] == [
        (40, 409561, "5265636F-7665-11AA-AA11-00306543ECAC", "BOOT"),  # 40s-409600s, atvrecv
        (409601, last - 1048576 - 409601 + 1, "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "STORAGE"),
        (last - 1048576 + 1, 1048576, "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "LINUX-SWAP"),  # 512 MiB, before the backup GPT
    ]
    assert "No problems found" in tool("sgdisk", "-v", img)
    mbr = [line.split() for line in tool("sgdisk", "--print-mbr", img).splitlines() if line.strip()[:1].isdigit()]
    assert [(r[1], r[-1]) for r in mbr] == [("1", "0xEE"), ("40", "0xAF"), ("409601", "0x83"), (str(last - 1048576 + 1), "0x82")]
    assert summary["plan"]["layout_name"] == "atv1-openelec4"


def test_4x_boot_is_hfsx_with_only_what_boot_efi_needs(demo4, sample):
    img, summary = demo4
    boot = summary["plan"]["partitions"][0]
    with open(img, "rb") as f:
        f.seek(boot["offset_bytes"] + 1024)
        assert f.read(2) == b"HX"  # HFSX: case-sensitive, as mkfs.hfsplus -s
    probe = dict(line.split("=", 1) for line in tool("blkid", "-p", "-o", "export", "-O", boot["offset_bytes"], img).splitlines())
    assert (probe["TYPE"], probe["LABEL"]) == ("hfsplus", "BOOT")
    files = hfs_files(img, boot["offset_bytes"])
    with tarfile.open(sample.restore) as tar:
        wanted = {m.name: (tar.extractfile(m).read() if m.isfile() else None) for m in tar if m.name.split("/")[0] in ("boot.efi", "BootLogo.png", "System")}
    release = sample.openelec4
    wanted["MACH_KERNEL"] = (release / "MACH_KERNEL").read_bytes()
    wanted["SYSTEM"] = (release / "SYSTEM").read_bytes()
    plist = files.pop("com.apple.Boot.plist")
    assert {k: hashlib.sha256(v).hexdigest() if v is not None else None for k, v in files.items()} == {
        k.rstrip("/"): hashlib.sha256(v).hexdigest() if v is not None else None for k, v in wanted.items()
    }
    assert plistlib.loads(plist) == {
        "Background Color": 0,
        "Boot Logo": "BootLogo.png",
        "Kernel": "MACH_KERNEL",
        "Kernel Flags": "boot=/dev/sda1 disk=/dev/sda2 quiet BOOT_IMAGE=MACH_KERNEL SYSTEM_IMAGE=SYSTEM",
    }
    assert summary["kernel_flags"] == plistlib.loads(plist)["Kernel Flags"] and summary["boot_script"] is None


def test_4x_storage_seeds_ssh_and_update(demo4):
    img, summary = demo4
    spec = f"{img}?offset={summary['plan']['partitions'][1]['offset_bytes']}"
    assert "STORAGE" in tool("dumpe2fs", "-h", spec)
    assert tool("debugfs", "-R", "cat /.cache/services/ssh.conf", spec) == "SSHD_START=true\n"
    assert tool("debugfs", "-R", "cat /.cache/services/sshd.conf", spec) == ""
    assert "/040755/0/0/.update/" in tool("debugfs", "-R", "ls -p /", spec)


def test_4x_verify_parses_the_plist(demo4):
    img, _ = demo4
    r = atvdisk("verify", img, "--layout", "atv1-openelec4", "--example")
    assert "ok: partition 1 (BOOT): /com.apple.Boot.plist parsed: Kernel MACH_KERNEL, Kernel Flags as planned" in r.stderr


def test_a_4x_release_picks_its_layout_and_says_so(tmp_path, sample):
    img = tmp_path / "auto.img"
    r = atvdisk("build", img, "--size", SIZE, "--openelec", sample.openelec4, "--restore", sample.restore, "--json")
    assert "is an OpenELEC 4.x release (MACH_KERNEL, started by boot.efi): using layout atv1-openelec4" in r.stderr
    assert json.loads(r.stdout)["plan"]["layout_name"] == "atv1-openelec4"


@pytest.mark.parametrize(("layout", "release", "fits"), [("atv1-openelec", "openelec4", "atv1-openelec4"), ("atv1-openelec4", "openelec", "atv1-openelec")])
def test_a_release_that_does_not_fit_is_refused_before_writing(tmp_path, sample, layout, release, fits):
    img = tmp_path / "never.img"
    r = atvdisk("build", img, "--size", SIZE, "--layout", layout, "--openelec", getattr(sample, release), "--restore", sample.restore, "--recovery", sample.recovery, check=False)
    assert r.returncode == 2, r.stderr
    assert f"layout {layout} boots" in r.stderr and f"--layout {fits}" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_extracted_release_directory_is_accepted(tmp_path, sample):
    top = sample.openelec.parent  # OpenELEC-sample/, which holds target/
    r = atvdisk("build", tmp_path / "x.img", "--size", SIZE, "--openelec", top, "--restore", sample.restore, "--recovery", sample.recovery, "--dry-run")
    assert "Dry run" in r.stdout


# ------------------------------------------------------------------------ 3.x: the recovery plist


def _recovery(tmp: Path, flags: str | None) -> Path:
    """The sample recovery tarball with its plist saying ``flags`` (None: without a plist)."""
    members = []
    for name, data, mode in recovery_members():
        if name == "com.apple.Boot.plist":
            if flags is None:
                continue
            d = plistlib.loads(data)
            d["Kernel Flags"] = flags
            data = plistlib.dumps(d)
        members.append((name, data, mode))
    path = tmp / f"recovery-{flags}.tar.gz"
    write_tar_gz(path, members)
    return path


def _restore_without_plist(tmp: Path) -> Path:
    path = tmp / "restore-no-plist.tar.gz"
    write_tar_gz(path, [m for m in restore_members() if m[0] != "com.apple.Boot.plist"])
    return path


@pytest.mark.parametrize("flags", ["atv-boot=none video=vesafb", "atv-boot=manual video=vesafb", "atv-boot=auto video=vesafb", "video=vesafb", None])
def test_3x_recovery_plist_is_made_to_run_the_script(tmp_path, sample, flags):
    img = tmp_path / "x.img"
    restore = _restore_without_plist(tmp_path) if flags is None else sample.restore
    args = ["build", img, "--size", SIZE, "--openelec", sample.openelec, "--restore", restore, "--recovery", _recovery(tmp_path, flags)]
    r = atvdisk(*args, "--json")
    summary = json.loads(r.stdout)
    rec = summary["plan"]["partitions"][1]
    plist = plistlib.loads(hfs_files(img, rec["offset_bytes"])["com.apple.Boot.plist"])
    expected = "atv-boot=patchstick video=vesafb"
    assert plist["Kernel Flags"] == expected and plist["Kernel"] == "mach_kernel"
    assert summary["boot_plist"]["changed"] and summary["boot_plist"]["original_kernel_flags"] == flags
    assert "note: " in r.stderr and "patchstick" in r.stderr
    # With --keep-boot-plist the disk would not boot: refused, nothing written.
    keep = tmp_path / "keep.img"
    r = atvdisk(*args[:1], keep, *args[2:], "--keep-boot-plist", check=False)
    assert r.returncode == 2 and "--keep-boot-plist" in r.stderr and not keep.exists()


def test_3x_plist_that_already_runs_the_script_is_kept_as_it_is(tmp_path, sample):
    img = tmp_path / "x.img"
    r = atvdisk("build", img, "--size", SIZE, "--example", "--keep-boot-plist", "--json")
    summary = json.loads(r.stdout)
    rec = summary["plan"]["partitions"][1]
    with tarfile.open(sample.recovery) as tar:
        original = tar.extractfile("com.apple.Boot.plist").read()
    assert hfs_files(img, rec["offset_bytes"])["com.apple.Boot.plist"] == original
    assert summary["boot_plist"]["changed"] is False and "note:" not in r.stderr


def test_3x_recovery_without_atv_bootloader_is_refused(tmp_path, sample):
    recovery = tmp_path / "no-mach-kernel.tar.gz"
    write_tar_gz(recovery, [m for m in recovery_members() if m[0] != "mach_kernel"])
    restore = tmp_path / "restore.tar.gz"
    write_tar_gz(restore, [m for m in restore_members() if m[0] != "mach_kernel"])
    r = atvdisk("build", tmp_path / "x.img", "--size", SIZE, "--openelec", sample.openelec, "--restore", restore, "--recovery", recovery, check=False)
    assert r.returncode == 2 and "names Kernel 'mach_kernel', which is not a file" in r.stderr
    assert not (tmp_path / "x.img").exists()


def test_verify_reads_the_plist_back_and_catches_a_wrong_mode(tmp_path):
    img = tmp_path / "x.img"
    atvdisk("build", img, "--size", SIZE, "--example")
    needle = b"<string>atv-boot=patchstick video=vesafb</string>"
    with open(img, "r+b") as f:
        pos, chunk = 0, 64 << 20
        while True:
            f.seek(pos)
            block = f.read(chunk + len(needle))
            if not block:
                raise AssertionError("the plist is not in the image")
            i = block.find(needle)
            if i >= 0:
                f.seek(pos + i)
                f.write(b"<string>atv-boot=none       video=vesafb</string>")
                break
            pos += chunk
    for extra in ([], ["--example"]):  # with and without the inputs: the plist itself is judged
        r = atvdisk("verify", img, *extra, check=False)
        assert r.returncode == 5
        assert "/com.apple.Boot.plist: Kernel Flags 'atv-boot=none       video=vesafb' make atv-bootloader run atv-boot=none, not atv-boot=patchstick" in r.stderr
