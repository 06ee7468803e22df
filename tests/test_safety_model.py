"""One safety model for every path that writes (issue 11, item 4).

- a dry run makes every check the real run makes and says "would be refused: ..." (exit 3);
- too small is exit 3 on every path (plan, image builds, dry runs, disks);
- a TARGET under /dev that does not exist never becomes an image file there;
- mkhfs writes disks through the same checks, lock, exclusive open and confirmation as build,
  and writes into an existing image file only with --force;
- one atvdisk per disk: a second is refused at once, naming the first's pid;
- after the partition table, the kernel shows the partitions (BLKPG as partx does, when it did
  not read the table itself), and a loop device given by the user keeps none after it is detached;
- SIGTERM during the input checks and Ctrl-C at any moment end cleanly (exit 130, no traceback,
  no temporary files); SIGKILL during --loop leaves no loop device attached (autoclear).

(Layout modes and host files: tests/test_schema.py, tests/test_host_sources.py.)

Disks are loop devices (root; CI is root). Device contents are compared with O_DIRECT reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from blockdev_check import device_digest, opened_for_writing
from hfsplus.judges import listing_pyfshfs

ROOT = Path(__file__).resolve().parent.parent
EPOCH = "1300000000"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root")


def atvdisk(*args, input: str | None = None, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "atvdisk", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, input=input, timeout=timeout,
        env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH, **(env or {})},
    )  # fmt: skip


def traced(tmp_path: Path, *args, **kw) -> tuple[subprocess.CompletedProcess, Path]:
    """atvdisk under strace (every process it starts too): the result and the trace's path."""
    trace = tmp_path / f"strace-{uuid.uuid4().hex[:6]}.log"
    r = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2,creat", "-o", str(trace), sys.executable, "-m", "atvdisk", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, timeout=300, env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH, **kw.get("env", {})}, input=kw.get("input"),
    )  # fmt: skip
    assert trace.stat().st_size > 0, r.stderr  # strace saw the opens (an empty log would prove nothing)
    return r, trace


@contextlib.contextmanager
def mounted_ext4(dev: str, tmp_path: Path):
    """``dev`` made ext4 and mounted (unmounted afterwards): the mount point."""
    subprocess.run(["mkfs.ext4", "-q", dev], check=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", dev, str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@contextlib.contextmanager
def frozen(mountpoint: Path):
    """The filesystem at ``mountpoint`` frozen (fsfreeze): nothing it holds reaches its device
    meanwhile, so the device's digest can only change if someone else writes to it."""
    subprocess.run(["sync", "-f", str(mountpoint)], check=True)
    subprocess.run(["fsfreeze", "-f", str(mountpoint)], check=True)
    try:
        yield
    finally:
        subprocess.run(["fsfreeze", "-u", str(mountpoint)], check=True)


def clean(r: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr


def attached(image: Path) -> list[str]:
    out = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True, check=True).stdout
    return [line.split(":")[0] for line in out.splitlines() if line.strip()]


@pytest.fixture
def loop(tmp_path):
    """attach(size) -> a loop device over a new sparse file (no --partscan, as `losetup -f`
    does); detached afterwards, with its partitions."""
    devices = []

    def attach(size: int, name: str = "disk.img") -> str:
        img = tmp_path / name
        with open(img, "wb") as f:
            f.truncate(size)
        dev = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True, text=True, check=True).stdout.strip()
        devices.append(dev)
        return dev

    yield attach
    for dev in devices:
        subprocess.run(["partx", "-d", dev], capture_output=True)
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def system_disk() -> str:
    """The disk holding /, as findmnt and lsblk see it."""
    source = subprocess.run(["findmnt", "-no", "SOURCE", "/"], capture_output=True, text=True, check=True).stdout.strip()
    parent = subprocess.run(["lsblk", "-no", "PKNAME", source], capture_output=True, text=True).stdout.strip().splitlines()
    return f"/dev/{parent[0]}" if parent and parent[0] else source


# -- too small: exit 3 everywhere ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["plan", "--size", "1G"], ["build", "{tmp}/a.img", "--size", "1G", "--example"], ["build", "{tmp}/a.img", "--size", "1G", "--example", "--dry-run"]],
    ids=["plan", "image", "image-dry-run"],
)
def test_too_small_is_a_refused_target_on_every_path(tmp_path, args):
    r = atvdisk(*(a.format(tmp=tmp_path) for a in args))
    clean(r)
    assert r.returncode == 3, r.stderr  # was 2 on these paths, 3 on a disk
    assert "too small" in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.root
@needs_root
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "real"])
def test_too_small_disk_is_3_and_untouched(loop, dry_run):
    dev = loop(64 << 20)
    before = device_digest(dev)
    r = atvdisk("build", dev, "--example", "--yes", *(["--dry-run"] if dry_run else []))
    clean(r)
    assert r.returncode == 3, r.stderr
    assert ("would be refused: refusing " if dry_run else "refusing ") + dev in r.stderr and "too small" in r.stderr
    assert device_digest(dev) == before


# -- a dry run refuses what the real run refuses --------------------------------------------------


@pytest.mark.root
@needs_root
def test_dry_run_on_the_system_disk_would_be_refused(tmp_path):
    """The running system's disk cannot be hashed (it changes under us): strace shows that no
    process atvdisk ran opened it, or a partition of it, for writing."""
    disk = system_disk()
    r, trace = traced(tmp_path, "build", disk, "--example", "--dry-run")
    clean(r)
    assert r.returncode == 3, r.stderr  # was 0: the plan was printed
    assert f"would be refused: refusing {disk}" in r.stderr or f"would be refused: refusing /dev/" in r.stderr
    assert "the running system uses" in r.stderr
    assert opened_for_writing(trace, disk) == []


@pytest.mark.root
@needs_root
def test_dry_run_on_a_mounted_disk_would_be_refused_and_unmounts_nothing(loop, tmp_path):
    dev = loop(4 << 30)
    with mounted_ext4(dev, tmp_path) as mnt, frozen(mnt):
        before = device_digest(dev)
        r, trace = traced(tmp_path, "build", dev, "--example", "--dry-run")
        clean(r)
        assert r.returncode == 3, r.stderr
        assert "would be refused" in r.stderr and "mounted" in r.stderr
        # With --unmount the real run would go on (after the confirmation): so does the dry
        # run, and it unmounts nothing.
        r, trace2 = traced(tmp_path, "build", dev, "--example", "--dry-run", "--unmount")
        clean(r)
        assert r.returncode == 0, r.stderr
        assert subprocess.run(["findmnt", "-n", str(mnt)], capture_output=True).returncode == 0
        assert device_digest(dev) == before
        assert opened_for_writing(trace, dev) == [] and opened_for_writing(trace2, dev) == []


@pytest.mark.root
@needs_root
def test_the_write_open_oracle_sees_a_write(loop, tmp_path):
    """The strace judge above is not blind: a process that opens the disk (by another name) or
    a partition of it for writing is reported; reading it is not."""
    dev = loop(64 << 20)
    subprocess.run(["sfdisk", "-q", dev], input="label: gpt\n,32M\n,\n", text=True, check=True, capture_output=True)
    subprocess.run(["partx", "-a", dev], check=True)
    link = tmp_path / "another-name"
    link.symlink_to(dev)
    for opener, writes in ((f"exec 3<>{link}", True), (f"exec 3>{dev}p2", True), (f"exec 3<{dev}", False), (f"exec 3<{dev}p1", False)):
        trace = tmp_path / "t.log"
        subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat,openat2,creat", "-o", str(trace), "sh", "-c", opener], check=True)
        assert bool(opened_for_writing(trace, dev)) is writes, opener


# -- /dev paths that do not exist ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["build", "{dev}", "--size", "80M", "--example"], ["build", "{dev}", "--size", "80M", "--example", "--dry-run"], ["build", "{dev}", "--example"], ["mkhfs", "{dev}", "--size", "8M"]],
    ids=["build", "dry-run", "no-size", "mkhfs"],
)
def test_a_missing_disk_never_becomes_an_image_in_dev(args):
    dev = f"/dev/atvdisk-test-{uuid.uuid4().hex[:8]}"
    try:
        r = atvdisk(*(a.format(dev=dev) for a in args))
        clean(r)
        assert r.returncode == 3, r.stderr
        assert f"{dev} does not exist: there is no such disk" in r.stderr and "atvdisk devices" in r.stderr
        assert not os.path.lexists(dev)
        assert not [p for p in os.listdir("/dev") if p.startswith(f".{os.path.basename(dev)}.")]  # no temporary image either
    finally:
        if os.path.lexists(dev) and not Path(dev).is_block_device():
            os.unlink(dev)


# -- mkhfs: the same target layer ---------------------------------------------------------------------


def test_mkhfs_over_an_existing_file_needs_force(tmp_path):
    img = tmp_path / "vol.img"
    img.write_bytes(b"precious" * 1000)
    r = atvdisk("mkhfs", img, "--size", "1M")
    clean(r)
    assert r.returncode == 3 and "already exists" in r.stderr and "--force" in r.stderr
    assert img.read_bytes() == b"precious" * 1000
    r = atvdisk("mkhfs", img, "--size", "1M", "--force")
    assert r.returncode == 0, r.stderr
    assert atvdisk("lshfs", img).returncode == 0


@pytest.mark.root
@needs_root
def test_mkhfs_on_a_disk_is_checked_confirmed_and_exclusive(loop, tmp_path):
    dev = loop(64 << 20)
    before = device_digest(dev)
    # No terminal, no --yes: refused, nothing written (it wrote at once before).
    r = atvdisk("mkhfs", dev, "--offset", "1M", "--size", "8M", input="")
    clean(r)
    assert r.returncode == 3 and "no terminal to confirm on" in r.stderr, r.stderr
    assert device_digest(dev) == before
    # Larger than the disk: refused as too small.
    r = atvdisk("mkhfs", dev, "--offset", "60M", "--size", "8M", "--yes")
    assert r.returncode == 3 and "too small" in r.stderr, r.stderr
    assert device_digest(dev) == before
    # Mounted (a filesystem on the whole disk): refused, although mkhfs writes elsewhere on it.
    subprocess.run(["mkfs.ext4", "-q", dev, "16M"], check=True)
    before = device_digest(dev)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-o", "ro,noload", dev, str(mnt)], check=True)  # read-only: the mount writes nothing
    try:
        r = atvdisk("mkhfs", dev, "--offset", "32M", "--size", "8M", "--yes")
        clean(r)
        assert r.returncode == 3 and "mounted" in r.stderr, r.stderr
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert device_digest(dev) == before
    # Confirmed: written, and read back by an HFS+ reader we did not write.
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello").write_text("from mkhfs")
    r = atvdisk("mkhfs", dev, "--offset", "32M", "--size", "8M", "--from", src, "--yes")
    assert r.returncode == 0, r.stderr
    listing, _ = listing_pyfshfs(Path(dev), 32 << 20)
    assert "hello" in listing


@pytest.mark.root
@needs_root
def test_mkhfs_refuses_a_partition_and_says_the_offset(loop):
    dev = loop(64 << 20)
    subprocess.run(["sgdisk", "-n1:2048:+8M", dev], check=True, capture_output=True)
    subprocess.run(["partx", "-a", dev], check=True)
    part = f"{dev}p1"
    r = atvdisk("mkhfs", part, "--size", "4M", "--yes")
    clean(r)
    assert r.returncode == 3, r.stderr
    assert f"is partition 1 of {dev}" in r.stderr and f"atvdisk mkhfs {dev} --offset {2048 * 512}" in r.stderr


@pytest.mark.root
@needs_root
def test_system_disk_is_refused_by_mkhfs_before_anything(tmp_path):
    disk = system_disk()
    r, trace = traced(tmp_path, "mkhfs", disk, "--offset", "1M", "--size", "1M", input="")  # no --yes: never past the confirmation
    clean(r)
    assert r.returncode == 3 and "the running system uses" in r.stderr, r.stderr
    assert opened_for_writing(trace, disk) == []


# -- one atvdisk per disk -------------------------------------------------------------------------------


def _lock_holder(dev: str) -> int | None:
    """The pid in the atvdisk lock of ``dev`` while it is locked (read with flock(1), not atvdisk)."""
    st = os.stat(dev)
    lock = Path(f"/run/lock/atvdisk/block-{os.major(st.st_rdev)}-{os.minor(st.st_rdev)}.lock")
    if not lock.exists():
        return None
    free = subprocess.run(["flock", "-n", "-s", str(lock), "true"]).returncode == 0
    return None if free else int(lock.read_text().strip() or 0)


@pytest.mark.root
@needs_root
def test_a_second_build_on_the_same_disk_is_refused_at_once(loop):
    dev = loop(4 << 30)
    # The first build waits at its confirmation (stdin is a terminal): it holds the disk from
    # before its inputs are read until it ends, so the second comes while it holds it.
    master, slave = os.openpty()
    first = subprocess.Popen([sys.executable, "-m", "atvdisk", "build", dev, "--example", "--seed", "first"], stdin=slave,
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH})  # fmt: skip
    os.close(slave)
    try:
        deadline = time.monotonic() + 60
        while _lock_holder(dev) != first.pid:
            assert first.poll() is None and time.monotonic() < deadline, f"the first build never held the disk: {first.stderr.read() if first.poll() is not None else ''}"
            time.sleep(0.02)
        for args in (["--dry-run"], ["--yes"]):
            start = time.monotonic()
            second = atvdisk("build", dev, "--example", "--seed", "second", *args)
            clean(second)
            assert second.returncode == 3, second.stderr  # it waited for the lock and rebuilt over the first
            assert f"in use by another atvdisk (pid {first.pid})" in second.stderr
            assert time.monotonic() - start < 20  # at once: not after waiting for the first
            assert first.poll() is None
        os.write(master, os.path.basename(dev).encode() + b"\n")  # the first is confirmed now
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        os.close(master)
        if first.poll() is None:
            first.kill()
            first.wait()
    r = atvdisk("verify", dev, "--example")  # the disk holds the first build, whole
    assert r.returncode == 0, r.stderr
    manifest = subprocess.run(["mtype", "-i", f"{dev}@@{40 * 512}", "::/atvdisk-manifest.json"], capture_output=True, text=True,
                              env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}, check=True).stdout  # fmt: skip
    assert json.loads(manifest)["seed"] == "first"


# -- the kernel's view of the new partition table -------------------------------------------------------


@pytest.mark.root
@needs_root
def test_the_kernel_shows_the_partitions_and_a_detached_loop_keeps_none(loop, tmp_path):
    dev = loop(4 << 30)
    r = atvdisk("build", dev, "--example", "--yes", "--no-verify", "--seed", "kernel-view")
    assert r.returncode == 0, r.stderr
    assert "does not show its new partitions" not in r.stderr
    table = json.loads(subprocess.run(["sfdisk", "--json", dev], capture_output=True, text=True, check=True).stdout)["partitiontable"]
    on_disk = sorted((p["node"], p["start"], p["size"]) for p in table["partitions"])
    shown = json.loads(subprocess.run(["lsblk", "--json", "--list", "-b", "-o", "PATH,START,SIZE", dev], capture_output=True, text=True, check=True).stdout)
    kernel = sorted((c["path"], c["start"], c["size"] // 512) for c in shown["blockdevices"] if c["path"] != dev)
    assert kernel == on_disk and len(kernel) == 5
    # Detached, the loop device keeps none of them (they would describe the next image on it).
    name = os.path.basename(dev)
    subprocess.run(["losetup", "-d", dev], check=True)
    deadline = time.monotonic() + 10
    while any(p.startswith(name + "p") for p in os.listdir(f"/sys/block/{name}")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(p.startswith(name + "p") for p in os.listdir(f"/sys/block/{name}"))


# -- signals ----------------------------------------------------------------------------------------------


def _big_tarball(path: Path) -> None:
    """A recovery tarball whose check takes a few seconds (120 MB of incompressible data)."""
    import tarfile

    blob = path.parent / "blob"
    with open(blob, "wb") as f:
        for _ in range(120):
            f.write(os.urandom(1 << 20))
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        tar.add(blob, arcname="big")
    blob.unlink()


def test_sigterm_while_checking_inputs_cleans_up(tmp_path):
    recovery = tmp_path / "recovery.tar.gz"
    _big_tarball(recovery)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "atvdisk", "build", tmp_path / "a.img", "--size", "4G", "--example", "--recovery", recovery],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(tmp)})  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(tmp.glob("atvdisk-sample-*/**/KERNEL")):  # the sample is written: the checks run
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "no sample"
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # was 143 (killed), with the sample left behind
    assert "Traceback" not in err and "interrupted" in err
    assert list(tmp.iterdir()) == []
    assert not (tmp_path / "a.img").exists()


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a SIGTERM handler (atvdisk's launcher installs one first thing;
    the interpreter does not): read from /proc, not from atvdisk."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    except OSError:
        pass
    return False


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5])
def test_ctrl_c_at_any_moment_prints_no_traceback(tmp_path, delay):
    # From the first instruction of atvdisk's own code (the launcher's handlers) on; before it,
    # the interpreter is still starting (importing site) and prints its own message, whatever
    # atvdisk does.
    proc = subprocess.Popen([sys.executable, "-m", "atvdisk", "build", tmp_path / "a.img", "--size", "4G", "--example", "--dry-run"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while not _catches_sigterm(proc.pid) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    assert proc.returncode in (130, 0), (proc.returncode, err)  # interrupted, or done before the signal came


@pytest.mark.root
@needs_root
def test_sigkill_during_a_loop_build_leaves_no_loop_device(tmp_path):
    img = tmp_path / "k.img"
    proc = subprocess.Popen([sys.executable, "-m", "atvdisk", "build", img, "--size", "4G", "--example", "--loop"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    def partials() -> list[Path]:
        return list(tmp_path.glob(".k.img.atvdisk-*.partial"))

    deadline = time.monotonic() + 60
    while not (partials() and attached(partials()[0])):
        assert proc.poll() is None and time.monotonic() < deadline, "never attached"
        time.sleep(0.01)
    partial = partials()[0]
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 60  # mke2fs may still be writing through it: then when it ends
    while attached(partial) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert attached(partial) == []  # was left attached: losetup had no autoclear


# -- atvdisk write: the same model -------------------------------------------------------------------


@pytest.fixture
def raw_image(tmp_path) -> Path:
    """An image without a GPT (written byte for byte): the smallest image `write` takes."""
    img = tmp_path / "raw.img"
    img.write_bytes(os.urandom(4096) * 256)
    return img


@pytest.mark.root
@needs_root
def test_write_dry_run_on_the_system_disk_would_be_refused(raw_image, tmp_path):
    disk = system_disk()
    r, trace = traced(tmp_path, "write", raw_image, disk, "--dry-run")
    clean(r)
    assert r.returncode == 3, r.stderr
    assert "would be refused: refusing /dev/" in r.stderr and "the running system uses" in r.stderr
    assert opened_for_writing(trace, disk) == []


@pytest.mark.root
@needs_root
def test_write_dry_run_on_a_mounted_disk_would_be_refused(loop, tmp_path, raw_image):
    dev = loop(64 << 20)
    with mounted_ext4(dev, tmp_path) as mnt, frozen(mnt):
        before = device_digest(dev)
        r, trace = traced(tmp_path, "write", raw_image, dev, "--dry-run")
        clean(r)
        assert r.returncode == 3, r.stderr
        assert "would be refused" in r.stderr and "mounted" in r.stderr
        assert device_digest(dev) == before and opened_for_writing(trace, dev) == []


@pytest.mark.root
@needs_root
def test_write_to_a_disk_another_atvdisk_holds_is_refused_at_once(loop, raw_image):
    import fcntl

    dev = loop(64 << 20)
    before = device_digest(dev)
    st = os.stat(dev)
    lock_dir = Path("/run/lock/atvdisk")
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / f"block-{os.major(st.st_rdev)}-{os.minor(st.st_rdev)}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        for args in (["--dry-run"], ["--yes"]):
            start = time.monotonic()
            r = atvdisk("write", raw_image, dev, *args)
            clean(r)
            assert r.returncode == 3, r.stderr  # was: written over whatever the other one wrote
            assert f"in use by another atvdisk (pid {os.getpid()})" in r.stderr
            assert time.monotonic() - start < 20
    finally:
        os.close(fd)
    assert device_digest(dev) == before
