"""Did a refused build leave a block device untouched? Read it back past every cache.

    with filled_loop_device(tmp_path, 64 << 20) as dev:
        before = device_digest(dev)
        r = run_atvdisk("build", dev, "--yes", ...)        # must be refused
        assert r.returncode == 2
        assert device_digest(dev) == before

:func:`device_digest` reads the whole device with ``O_DIRECT`` (page-aligned buffers), so what
it hashes is what the device holds, not what the page cache kept of a write that never reached
it. :func:`filled_loop_device` makes a loop device over a file full of seeded random bytes: any
write at all (a partition table wiped, a filesystem started) changes the digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

CHUNK = 4 << 20  # a multiple of every logical block size


def device_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of every byte of a block device (or file), read with O_DIRECT."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, CHUNK)  # page-aligned, as O_DIRECT needs
    h = hashlib.sha256()
    try:
        while True:
            n = os.readv(fd, [buf])
            if n <= 0:
                break
            h.update(memoryview(buf)[:n])
    finally:
        os.close(fd)
        buf.close()
    return h.hexdigest()


@contextlib.contextmanager
def filled_loop_device(tmp_path: Path, size: int, *, seed: int = 0) -> Iterator[str]:
    """A loop device of ``size`` bytes full of random data; detached afterwards."""
    backing = tmp_path / "blockdev.img"
    rng = random.Random(seed)
    with open(backing, "wb") as f:
        for _ in range(size // CHUNK):
            f.write(rng.randbytes(CHUNK))
        f.write(rng.randbytes(size % CHUNK))
    dev = subprocess.run(
        ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def opened_for_writing(trace: str | os.PathLike[str], device: str | os.PathLike[str]) -> list[str]:
    """The opens in an ``strace -f -e trace=open,openat,openat2,creat`` log that asked to write
    to ``device`` or one of its partitions (whatever path named it: /dev/..., a by-id link, a
    /proc/self/fd alias), judged by the device numbers of what the path names now."""
    rdev = os.stat(device).st_rdev
    sysfs = f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}"
    family = {rdev}
    for part in Path(sysfs).glob("*/partition"):  # the disk's partitions, as the kernel has them now
        major, minor = part.with_name("dev").read_text().split(":")
        family.add(os.makedev(int(major), int(minor)))
    found = []
    for line in Path(trace).read_text(errors="replace").splitlines():
        if not any(f"{call}(" in line for call in ("open", "openat", "openat2", "creat")):
            continue
        start = line.find('"')
        end = line.find('"', start + 1)
        if start < 0 or end < 0:
            continue
        path = line[start + 1 : end]
        flags = line[end + 1 :]
        if "creat(" not in line and "O_WRONLY" not in flags and "O_RDWR" not in flags:
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        if st.st_rdev in family and not os.path.isfile(path):
            found.append(line.strip())
    return found
