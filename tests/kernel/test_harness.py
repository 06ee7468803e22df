"""The harness proven on images made by standard tools (sgdisk, sfdisk, mkfs.fat, mtools,
mke2fs, mkswap), judged by the Debian kernel's own drivers and util-linux blkid in the guest."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from .errors import GuestScriptFailed, GuestTimeout
from .harness import Disk, GuestResult
from .records import Entry, host_listing, parse_blkid_export

pytestmark = pytest.mark.kernel

MiB = 1 << 20
SECTOR = 512
FAT_UUID = "1234ABCD"
EXT4_UUID = "6b1a2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d"
SWAP_UUID = "0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9"

# Names the listing must carry through byte for byte.
ODD_NAMES = ["with space", "new\nline", "café NFC", "cafe\u0301 NFD", "日本語", "tab\there", "-dash"]


def sh(*argv: str | Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert proc.returncode == 0, f"{argv}: {proc.stderr}"
    return proc.stdout


@dataclass(frozen=True)
class GptImage:
    path: Path
    sha256: str
    fat_src: Path
    ext4_src: Path
    partitions: list[dict[str, object]]  # sfdisk --json view
    label_id: str
    host_blkid: dict[str, dict[str, str]]  # "/dev/sdaN" -> host blkid -p of that byte range
    second: Path  # a whole-disk FAT image (no partition table), attached as /dev/sdb


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_tree(root: Path) -> None:
    rng = random.Random(5)
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "dir" / "sub" / "big.bin").write_bytes(rng.randbytes(3 * MiB + 123))
    (root / "empty").write_bytes(b"")
    (root / "script.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "script.sh", 0o755)
    (root / "secret").write_text("only root\n")
    os.chmod(root / "secret", 0o600)
    (root / "owned").write_text("uid 1000 gid 100\n")
    os.chown(root / "owned", 1000, 100)
    for i, name in enumerate(ODD_NAMES):
        (root / "dir" / name).write_bytes(f"{i}: {name}\n".encode())
    os.symlink("dir/sub/big.bin", root / "link to big")
    os.symlink("/absolute/dangling", root / "dangling")
    os.link(root / "empty", root / "hardlink-to-empty")


def _write_fat_tree(root: Path) -> None:
    rng = random.Random(1)
    (root / "EFI" / "BOOT").mkdir(parents=True)
    (root / "EFI" / "BOOT" / "BOOTX64.EFI").write_bytes(rng.randbytes(64 * 1024 + 7))
    (root / "readme.txt").write_text("a short name in lower case\n")
    (root / "Long Name With Spaces.txt").write_text("vfat long name\n")
    (root / "café.txt").write_text("non-ASCII long name\n")


@pytest.fixture(scope="module")
def gpt_image(tmp_path_factory: pytest.TempPathFactory) -> GptImage:
    tmp = tmp_path_factory.mktemp("gpt")
    img = tmp / "gpt.img"
    with open(img, "wb") as f:
        f.truncate(80 * MiB)
    sh(
        "sgdisk", "-o",
        "-n", "1:2048:+40M", "-t", "1:ef00", "-c", "1:EFI System",
        "-n", "2:0:+24M", "-t", "2:8300", "-c", "2:Media",
        "-n", "3:0:+8M", "-t", "3:8200", "-c", "3:Swap",
        img,
    )  # fmt: skip
    table = json.loads(sh("sfdisk", "--json", img))["partitiontable"]
    parts = table["partitions"]
    (efi, media, swap) = parts
    fat_src = tmp / "fat-src"
    _write_fat_tree(fat_src)
    fat_kib = str(efi["size"] * SECTOR // 1024)
    sh("mkfs.fat", "-F", "32", "-n", "EFI", "-i", FAT_UUID, f"--offset={efi['start']}", img, fat_kib)
    mtools_env = {"MTOOLS_SKIP_CHECK": "1", "LC_ALL": "C.UTF-8"}
    for entry in sorted(fat_src.iterdir()):
        sh("mcopy", "-s", "-m", "-i", f"{img}@@{efi['start'] * SECTOR}", entry, "::/", env=mtools_env)
    ext4_src = tmp / "ext4-src"
    ext4_src.mkdir()
    _write_tree(ext4_src)
    sh(
        "mke2fs", "-q", "-F", "-t", "ext4", "-L", "Media", "-U", EXT4_UUID,
        "-E", f"offset={media['start'] * SECTOR}", "-d", ext4_src,
        img, f"{media['size'] * SECTOR // 1024}k",
    )  # fmt: skip
    swap_file = tmp / "swap.bin"
    with open(swap_file, "wb") as f:
        f.truncate(swap["size"] * SECTOR)
    sh("mkswap", "-L", "SWAP", "-U", SWAP_UUID, swap_file)
    with open(img, "r+b") as f:
        f.seek(swap["start"] * SECTOR)
        f.write(swap_file.read_bytes())
    host_blkid = {}
    for i, part in enumerate(parts, start=1):
        out = sh(
            "blkid", "-p", "-o", "export", "-O", str(part["start"] * SECTOR), "-S", str(part["size"] * SECTOR), img
        )
        host_blkid[f"/dev/sda{i}"] = parse_blkid_export(out)
    second = tmp / "second.img"
    with open(second, "wb") as f:
        f.truncate(8 * MiB)
    sh("mkfs.fat", "-n", "SECOND", second)
    sh("mcopy", "-i", second, fat_src / "readme.txt", "::/", env=mtools_env)
    return GptImage(
        path=img,
        sha256=_sha256(img),
        fat_src=fat_src,
        ext4_src=ext4_src,
        partitions=parts,
        label_id=table["id"],
        host_blkid=host_blkid,
        second=second,
    )


FAT_OPTS = "ro,codepage=437,iocharset=utf8,fmask=0133,dmask=0022"

MAIN_SCRIPT = f"""
set -u
guest_blkid
guest_mount efi /dev/sda1 vfat {FAT_OPTS} && guest_list efi
guest_umount efi
guest_mount efi_latin1 /dev/sda1 vfat ro,utf8=0,iocharset=iso8859-1 && guest_list efi_latin1
guest_umount efi_latin1
guest_mount media /dev/sda2 ext4 rw && guest_list media
echo written by the guest > /mnt/media/guest-was-here
guest_umount media
guest_swapon swap /dev/sda3
guest_mount not_hfs /dev/sda2 hfsplus ro
guest_save filesystems cat /proc/filesystems
guest_save sdb-ro cat /sys/block/sdb/ro
guest_mount second /dev/sdb vfat ro && guest_list second
guest_recorders /tmp/rec fsck.hfsplus fsck.ext4
(export PATH=/tmp/rec:$PATH; fsck.hfsplus /dev/sda3; fsck.ext4 "an argument with spaces" "")
echo main script done
"""


@pytest.fixture(scope="module")
def main_run(module_run_guest, gpt_image: GptImage) -> GuestResult:  # type: ignore[no-untyped-def]
    """One boot serves most checks below."""
    return module_run_guest([gpt_image.path, Disk(gpt_image.second, readonly=True)], MAIN_SCRIPT, timeout=180)


def test_script_ran_to_completion(main_run: GuestResult) -> None:
    assert main_run.status == 0
    assert "main script done" in main_run.output
    assert "ATVDISK-GUEST: script-exit 0" in main_run.console


def test_blkid_shows_what_the_host_tools_made(main_run: GuestResult, gpt_image: GptImage) -> None:
    seen = main_run.blkid()
    assert seen["/dev/sda"]["PTTYPE"] == "gpt"
    assert seen["/dev/sda"]["PTUUID"].lower() == gpt_image.label_id.lower()
    for number, part in enumerate(gpt_image.partitions, start=1):
        dev = f"/dev/sda{number}"
        got = seen[dev]
        assert got["PART_ENTRY_SCHEME"] == "gpt"
        assert got["PART_ENTRY_NUMBER"] == str(number)
        assert got["PART_ENTRY_TYPE"] == str(part["type"]).lower()
        assert got["PART_ENTRY_UUID"] == str(part["uuid"]).lower()
        assert got["PART_ENTRY_NAME"] == part["name"]
        assert int(got["PART_ENTRY_OFFSET"]) == part["start"]
        assert int(got["PART_ENTRY_SIZE"]) == part["size"]
        fs_keys = {k: v for k, v in got.items() if not k.startswith("PART_ENTRY_") and k != "DEVNAME"}
        host = {k: v for k, v in gpt_image.host_blkid[dev].items() if k != "DEVNAME"}
        assert fs_keys == host, dev
        assert got["DEVNAME"] == dev
    assert seen["/dev/sda1"]["TYPE"] == "vfat"
    assert seen["/dev/sda1"]["LABEL"] == "EFI"
    assert seen["/dev/sda1"]["UUID"] == f"{FAT_UUID[:4]}-{FAT_UUID[4:]}"
    assert seen["/dev/sda1"]["PART_ENTRY_TYPE"] == "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
    assert seen["/dev/sda2"]["TYPE"] == "ext4"
    assert seen["/dev/sda2"]["LABEL"] == "Media"
    assert seen["/dev/sda2"]["UUID"] == EXT4_UUID
    assert seen["/dev/sda2"]["PART_ENTRY_TYPE"] == "0fc63daf-8483-4772-8e79-3d69d8477de4"
    assert seen["/dev/sda3"]["TYPE"] == "swap"
    assert seen["/dev/sda3"]["LABEL"] == "SWAP"
    assert seen["/dev/sda3"]["UUID"] == SWAP_UUID
    assert seen["/dev/sda3"]["PART_ENTRY_TYPE"] == "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"
    assert seen["/dev/sdb"]["TYPE"] == "vfat"
    assert seen["/dev/sdb"]["LABEL"] == "SECOND"


def _without_root(entries: dict[str, Entry], *skip: str) -> dict[str, tuple[object, ...]]:
    return {p: e.key() for p, e in entries.items() if p != "." and p not in skip}


def test_vfat_mounted_and_listed_like_the_sources(main_run: GuestResult, gpt_image: GptImage) -> None:
    mount = main_run.mount("efi")
    assert mount.rc == 0, mount.stderr
    assert mount.fstype == "vfat" and mount.read_only
    assert "iocharset=utf8" in mount.options and "codepage=437" in mount.options
    listing = main_run.listing("efi")
    host = host_listing(gpt_image.fat_src)
    assert set(listing) == set(host)
    for path, entry in host.items():
        got = listing[path]
        assert got.type == entry.type, path
        assert got.size == entry.size or entry.type == "d", path
        assert got.sha256 == entry.sha256, path
        assert (got.uid, got.gid) == (0, 0)
        assert got.mode == (0o755 if entry.type == "d" else 0o644), path
    assert main_run.umount("efi").rc == 0


def test_vfat_iso8859_1_codepage(main_run: GuestResult) -> None:
    mount = main_run.mount("efi_latin1")
    assert mount.rc == 0, mount.stderr
    assert "iocharset=iso8859-1" in mount.options, mount.options
    names = set(main_run.listing("efi_latin1"))
    # The kernel converts the UTF-16 long name to the iocharset: "é" is byte 0xE9 in Latin-1.
    assert "caf\udce9.txt" in names
    assert "café.txt" not in names


def test_ext4_mounted_rw_and_listed_like_the_sources(main_run: GuestResult, gpt_image: GptImage) -> None:
    mount = main_run.mount("media")
    assert mount.rc == 0, mount.stderr
    assert mount.fstype == "ext4" and not mount.read_only
    assert any(line.startswith("EXT4-fs (sda2): mounted filesystem") for line in mount.dmesg), mount.dmesg
    listing = main_run.listing("media")
    assert listing["lost+found"].type == "d"
    host = host_listing(gpt_image.ext4_src)
    assert _without_root(listing, "lost+found") == _without_root(host)
    for name in ODD_NAMES:
        assert f"dir/{name}" in listing
    assert listing["owned"].uid == 1000 and listing["owned"].gid == 100
    assert listing["secret"].mode == 0o600
    assert listing["link to big"].target == "dir/sub/big.bin"
    assert listing["hardlink-to-empty"].inode == listing["empty"].inode
    assert main_run.umount("media").rc == 0


def test_guest_writes_do_not_reach_the_image(main_run: GuestResult, gpt_image: GptImage) -> None:
    assert main_run.status == 0  # the guest's write to the rw ext4 mount succeeded
    assert _sha256(gpt_image.path) == gpt_image.sha256


def test_swapon_accepted(main_run: GuestResult) -> None:
    swap = main_run.swap("swap")
    assert swap.rc == 0, swap.stderr
    entry = swap.active_entry
    assert entry is not None and entry["Type"] == "partition", swap.swaps
    assert any(line.startswith("Adding ") and "swap on /dev/sda3" in line for line in swap.dmesg), swap.dmesg
    assert swap.swapoff_rc == 0


def test_filesystems_include_hfsplus(main_run: GuestResult) -> None:
    names = {line.split()[-1] for line in main_run.text("filesystems").splitlines() if line.strip()}
    assert {"hfsplus", "vfat", "msdos", "ext4"} <= names


def test_failed_mount_is_recorded_with_the_kernel_reason(main_run: GuestResult) -> None:
    # hfsplus refuses the ext4 partition: the mount fails and its kernel message is captured.
    mount = main_run.mount("not_hfs")
    assert mount.rc != 0 and not mount.mounted
    assert any("hfsplus: unable to find HFS+ superblock" in line for line in mount.dmesg), mount.dmesg


def test_second_disk_is_sdb_and_read_only(main_run: GuestResult, gpt_image: GptImage) -> None:
    assert main_run.text("sdb-ro").strip() == "1"
    assert main_run.mount("second").rc == 0
    listing = main_run.listing("second")
    assert listing["readme.txt"].sha256 == host_listing(gpt_image.fat_src)["readme.txt"].sha256


def test_failing_script_is_reported(run_guest, gpt_image: GptImage) -> None:  # type: ignore[no-untyped-def]
    script = """
guest_save uname uname -r
cp "$JOB/data/query list.txt" "$RESULTS/copied.txt"
stat -c %a "$JOB/data/query list.txt" > "$RESULTS/mode.txt"
printf '%s' "$GREETING" > "$RESULTS/env.txt"
echo about to fail >&2
exit 3
"""
    query = "line 1\nnon-ASCII: é 日本\n".encode()
    greeting = 'it\'s "quoted" $HOME `x`'
    with pytest.raises(GuestScriptFailed) as failed:
        run_guest(
            [gpt_image.path],
            script,
            files={"data/query list.txt": query},
            env={"GREETING": greeting},
            timeout=120,
        )
    err = failed.value
    assert err.result.status == 3
    assert "exited with status 3" in str(err) and "about to fail" in str(err)
    # What the script wrote before failing still came back, and its inputs arrived intact.
    assert err.result.text("uname").strip() == guest_kernel_release(err.result)
    assert err.result.files["copied.txt"] == query
    assert err.result.text("mode.txt").strip() == "755"
    assert err.result.text("env.txt") == greeting


def guest_kernel_release(result: GuestResult) -> str:
    for line in result.dmesg_lines():
        if line.startswith("Linux version "):
            return line.split()[2]
    raise AssertionError("no 'Linux version' line in the guest's kernel log")


def test_hanging_guest_times_out_with_console_tail(  # type: ignore[no-untyped-def]
    run_guest, gpt_image: GptImage, main_run: GuestResult
) -> None:
    # Short, but long enough to reach the script on a loaded host: how long the main boot took to
    # reach its script (guest uptime, +1 s for qemu and firmware) measures how slow this host is
    # right now; not its whole wall time, which grows with the checks its script makes.
    assert main_run.ready_uptime is not None
    timeout = round(max(12.0, 2 * (main_run.ready_uptime + 1)))
    with pytest.raises(GuestTimeout) as timed_out:
        run_guest([gpt_image.path], "echo going to hang now\nwhile :; do sleep 1; done\n", timeout=timeout)
    message = str(timed_out.value)
    assert f"did not finish within {timeout} s" in message
    assert "ATVDISK-GUEST: init" in message
    assert "going to hang now" in message


def test_missing_image_is_refused_before_boot(guest_assets, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from .harness import run_guest

    with pytest.raises(FileNotFoundError, match="no-such.img"):
        run_guest([tmp_path / "no-such.img"], "true", assets=guest_assets)


def test_recorders_keep_every_argument(main_run: GuestResult) -> None:
    # guest_kexec_wrapper and the real kexec hand-over are proven on an ATV disk by
    # test_atv_disk_kernel.py::test_real_hand_over_to_the_kernel_on_osboot (one boot fewer).
    assert main_run.calls() == [("fsck.hfsplus", "/dev/sda3"), ("fsck.ext4", "an argument with spaces", "")]
