"""Boot the real Debian kernel under qemu (TCG) against disk images and bring results back.

One call, one boot: :func:`run_guest` attaches the images with qemu ``snapshot=on`` (the
guest may write, the writes are discarded; :class:`Disk` ``readonly=True`` forbids them) as ``/dev/sda``, ``/dev/sdb``,
... on q35's AHCI controller (so partitions are ``/dev/sda1``.. and a generated ATV boot script
runs unmodified), runs ``script`` with busybox ``sh`` as part of the guest's init, and returns a
:class:`GuestResult`: the console log, the script's exit status and output, the kernel log, and
every file the script wrote under ``$RESULTS``. Results travel as a tar on a second, virtio
disk (``/dev/vda``, never an ``sd*`` name). Keep boots few: put several checks in one script.

The script runs with ``guest/guest.sh`` sourced, whose helpers write records that
:class:`GuestResult` parses (see ``records.py``):

=================================  ============================================================
guest side (in ``script``)         host side (on the result)
=================================  ============================================================
``guest_blkid [DEV...]``           ``result.blkid()`` -> {"/dev/sda1": {"TYPE": "vfat", ...}}
``guest_mount N DEV FS [OPTS]``    ``result.mount(N)`` -> rc, effective options, dmesg lines
``guest_umount N``                 ``result.umount(N)`` -> rc, dmesg lines
``guest_list N [DIR]``             ``result.listing(N)`` -> {path: Entry(type, mode, size,
                                   uid, gid, sha256, target, ...)} (any byte in names is safe)
``guest_swapon N DEV``             ``result.swap(N)`` -> rc, /proc/swaps rows, dmesg lines
``guest_save N CMD ARGS``          ``result.text(N)`` (stdout), ``N.err``, ``N.rc``
``guest_recorders DIR CMD...``     ``result.calls()`` -> [("fsck.ext4", "/dev/sda4"), ...]
``guest_kexec_wrapper DIR``        ``result.calls()``, ``result.ended == "kexec"``,
                                   ``result.kexec_probe["cmdline"]`` (second kernel's)
anything else writing ``$RESULTS``  ``result.files[relative path]`` (bytes)
=================================  ============================================================

Inside the guest: ``$JOB`` holds ``files`` (mode 0755, so scripts shipped there can run, and a
directory of them can go first on ``PATH``), ``$ATVDISK_REAL_KEXEC`` is kexec-tools' ``kexec``
(deliberately not on ``PATH``), ``$KVER`` the kernel release. Modules for AHCI/SCSI disks,
virtio, hfsplus, vfat/msdos (+ nls cp437, iso8859-1, utf8, ascii), ext4 and loop are loaded;
swap, GPT/MBR partitions and kexec are built in. ``mount`` of a journaled HFS+ volume without
``force`` is left read-only by the kernel: ``result.mount(N).read_only`` and ``.dmesg`` show it.

Boot-script rehearsal (recorders replace ``kexec`` and ``fsck.*``; the disk is ``/dev/sda``)::

    guest_recorders /tmp/rec kexec fsck.hfsplus fsck.ext4
    export PATH=/tmp/rec:$PATH
    mount /dev/sda2 /mnt/recovery && sh /mnt/recovery/boot-script
    # host: result.calls() == [("fsck.hfsplus", "/dev/sda3"), ..., ("kexec", "-e")]

Real hand-over: ``guest_kexec_wrapper /tmp/rec`` puts a ``kexec`` there that records the call,
runs kexec-tools, adds ``--initrd=$ATVDISK_KEXEC_PROBE`` to a load that has no initrd (the
probe's /init prints ``ATVDISK-KEXEC-PROBE: cmdline ...`` on ttyS0 even under ``quiet``
without ``console=``, then powers off) and writes the results before ``kexec -e``. The kernel
to load must be a file in the guest (e.g. ``files={"KERNEL": assets.kernel.vmlinuz...}`` or on
the image); a second boot costs ~20-30 s under TCG (kexec-tools' hashing, bzImage
decompression).

Example::

    # In a test module under tests/kernel/ (recommended: the fixtures of conftest.py apply):
    #     def test_x(run_guest): ...    or    from .harness import run_guest
    from tests.kernel.harness import run_guest   # from the repository root

    result = run_guest(
        [Path("disk.img")],
        '''
        guest_blkid
        guest_mount efi /dev/sda1 vfat ro && guest_list efi
        guest_mount media /dev/sda4 ext4 rw && guest_list media
        guest_swapon swap /dev/sda5
        guest_save filesystems cat /proc/filesystems
        ''',
        timeout=120,
    )
    assert result.blkid()["/dev/sda1"]["TYPE"] == "vfat"
    assert not result.mount("media").read_only
    assert result.listing("efi")["EFI/BOOT/x.efi"].sha256 == expected
    assert "hfsplus" in result.text("filesystems")

Guest-side pitfalls: busybox ``xargs -0`` mangles arguments at its buffer boundaries (use
``find ... -exec CMD {} +``); a plain busybox ``mount`` passes MS_SILENT, which hides some kernel
reasons (``guest_mount`` does not); ``/dev/sda`` is the first image only because the init binds
the disks in order; large inputs belong on a disk image, not in ``files`` (they live in RAM).

Failures raise (see ``errors.py``): :class:`GuestScriptFailed` when the script exits non-zero
(``check=False`` returns the result instead), :class:`GuestTimeout` when the guest does not
power off in ``timeout`` seconds, :class:`GuestNoResult` when qemu ends without results (panic,
kexec: with ``check=False`` the result has ``status=None`` and the console log),
:class:`GuestSetupFailed` when the init could not load a module or attach the disks. Their
messages end with the tail of the guest console.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import records
from ._run import popen
from .assets import GuestAssets, prepare_assets
from .errors import (
    GuestError,
    GuestNoResult,
    GuestScriptFailed,
    GuestSetupFailed,
    GuestTimeout,
)
from .initramfs import job_archive

QEMU = "qemu-system-x86_64"
MAX_DISKS = 6  # ports of q35's ICH9 AHCI controller
RESULTS_DEV = "/dev/vda"
BASE_APPEND = "console=ttyS0,115200 panic=-1 quiet printk.devkmsg=on rdinit=/init"


@dataclass(frozen=True)
class Disk:
    """An image to attach, always with qemu ``snapshot=on``: the image file is never written.

    By default the guest may write (the writes are thrown away at exit). ``readonly=True``
    also makes the guest's kernel treat the disk and its partitions as read-only (``blockdev
    --setro`` before the script: qemu's AHCI disks cannot be read-only devices), so rw mounts
    fail as on write-protected media."""

    path: Path
    readonly: bool = False
    format: str = "raw"

    @classmethod
    def of(cls, value: Disk | Path | str) -> Disk:
        return value if isinstance(value, Disk) else cls(Path(value))


@dataclass(frozen=True)
class GuestResult:
    """What one guest run brought back."""

    console: str  # the serial console (markers, script output, kernel errors)
    status: int | None  # the script's exit status; None if it did not exit (see ``ended``)
    output: str  # the script's stdout and stderr
    files: Mapping[str, bytes]  # everything the script wrote under $RESULTS
    dmesg: str  # the guest's kernel log when the script ended
    seconds: float  # wall time of the qemu process
    init_uptime: float | None  # guest uptime when /init started (kernel boot time)
    ready_uptime: float | None  # guest uptime when the script started (modules, disks)
    argv: tuple[str, ...] = field(default=(), repr=False)  # the qemu command line
    # "exit": the script ended; "kexec": guest_kexec_wrapper saved the results before kexec -e;
    # "none": qemu ended without results (only with check=False)
    ended: str = "exit"

    def text(self, name: str) -> str:
        return records._text(self.files, name)

    def blkid(self) -> dict[str, dict[str, str]]:
        return records.blkid(self.files)

    def mount(self, name: str) -> records.MountRecord:
        return records.mount(self.files, name)

    def umount(self, name: str) -> records.CommandRecord:
        return records.umount(self.files, name)

    def listing(self, name: str) -> dict[str, records.Entry]:
        return records.listing(self.files, name)

    def swap(self, name: str) -> records.SwapRecord:
        return records.swap(self.files, name)

    def dmesg_lines(self) -> list[str]:
        return records.dmesg_lines(self.dmesg)

    def calls(self) -> list[tuple[str, ...]]:
        """Calls of guest_recorders' recorders and guest_kexec_wrapper's kexec, in order."""
        return records.calls(self.files)

    @property
    def kexec_probe(self) -> dict[str, str] | None:
        """{"release", "uptime", "cmdline"} printed by a kernel booted into the kexec probe."""
        return records.kexec_probe(self.console)


@functools.cache
def default_assets() -> GuestAssets:
    """The assets from the default cache, prepared once per process."""
    return prepare_assets()


def _qemu_path(path: Path) -> str:
    return str(path.resolve()).replace(",", ",,")


def qemu_argv(
    assets: GuestAssets,
    disks: Sequence[Disk],
    initrd: Path,
    results: Path,
    console: Path,
    *,
    append: str = "",
    memory_mb: int = 512,
    kernel_image: str = "auto",
) -> list[str]:
    """The qemu command line of a run (exposed for debugging: run it by hand with -serial stdio)."""
    kernel = assets.kernel
    if kernel_image == "auto":
        image = kernel.vmlinux or kernel.vmlinuz
    elif kernel_image == "bzimage":
        image = kernel.vmlinuz
    else:
        raise ValueError(f"kernel_image must be 'auto' or 'bzimage', not {kernel_image!r}")
    argv = [
        QEMU,
        "-machine", "q35",
        "-accel", "tcg",
        "-cpu", "max",
        "-smp", "1",
        "-m", str(memory_mb),
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-monitor", "none",
        "-no-reboot",
        "-chardev", f"file,id=console,path={_qemu_path(console)}",
        "-serial", "chardev:console",
        "-kernel", str(image),
        "-initrd", str(initrd),
        "-append", f"{BASE_APPEND} {append}".strip(),
    ]  # fmt: skip
    for i, disk in enumerate(disks):
        argv += [
            "-drive", f"if=none,id=disk{i},file={_qemu_path(disk.path)},format={disk.format},snapshot=on",
            "-device", f"ide-hd,bus=ide.{i},drive=disk{i},model=ATVDISK{i}",
        ]  # fmt: skip
    argv += [
        "-drive", f"if=none,id=results,file={_qemu_path(results)},format=raw",
        "-device", "virtio-blk-pci,drive=results",
    ]  # fmt: skip
    return argv


def _job_env(disks: Sequence[Disk], env: Mapping[str, str]) -> bytes:
    names = [f"sd{chr(ord('a') + i)}" for i in range(len(disks))]
    read_only = [name for name, disk in zip(names, disks, strict=True) if disk.readonly]
    lines = [
        f"ATVDISK_DISKS={shlex.quote(' '.join(names))}",
        f"ATVDISK_RO_DISKS={shlex.quote(' '.join(read_only))}",
        f"ATVDISK_RESULTS_DEV={RESULTS_DEV}",
    ]
    for key, value in env.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"invalid environment variable name {key!r}")
        lines.append(f"export {key}={shlex.quote(value)}")
    return ("\n".join(lines) + "\n").encode()


def _marker_uptime(console: str, marker: str) -> float | None:
    m = re.search(rf"^ATVDISK-GUEST: {marker} (\d+\.\d+)", console, re.M)
    return float(m.group(1)) if m else None


def _read_results(path: Path, console: str) -> tuple[dict[str, bytes], dict[str, bytes]] | None:
    """(results files, meta files) from the results disk, or None if the guest wrote nothing."""
    with open(path, "rb") as f:
        if not any(f.read(1024)):
            return None
    meta: dict[str, bytes] = {}
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name.removeprefix("./")
                top, _, rel = name.partition("/")
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                if top == "results":
                    files[rel] = data
                elif top == "meta":
                    meta[rel] = data
    except (tarfile.TarError, OSError) as exc:
        raise GuestNoResult(
            f"the results disk is not a readable tar ({exc}): the guest died while writing it?", console=console
        ) from exc
    return files, meta


def run_guest(
    disks: Sequence[Disk | Path | str],
    script: str,
    *,
    timeout: float = 120,
    files: Mapping[str, bytes] | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    assets: GuestAssets | None = None,
    append: str = "",
    memory_mb: int = 512,
    results_mb: int = 256,
    kernel_image: str = "auto",
) -> GuestResult:
    """Boot the guest with ``disks`` attached, run ``script``, return what it brought back.

    ``files`` are put under ``$JOB`` (relative paths, mode 0755); ``env`` is exported to the
    script; ``append`` is added to the kernel command line; ``results_mb`` bounds what the
    script may write under ``$RESULTS`` (a sparse file on the host). ``kernel_image="bzimage"``
    boots the package's vmlinuz instead of its extracted vmlinux (slower under TCG).
    """
    assets = assets or default_assets()
    attached = [Disk.of(d) for d in disks]
    if len(attached) > MAX_DISKS:
        raise ValueError(f"at most {MAX_DISKS} disks, got {len(attached)}")
    for disk in attached:
        if not disk.path.is_file() and not disk.path.is_block_device():
            raise FileNotFoundError(f"disk image {disk.path} does not exist")
    if shutil.which(QEMU) is None:
        raise GuestError(f"{QEMU} not found", hint="apt-get install qemu-system-x86")

    job = [
        ("etc/atvdisk/job.env", _job_env(attached, env or {}), 0o644),
        ("etc/atvdisk/script.sh", script.encode(), 0o644),
    ]
    for name, data in (files or {}).items():
        job.append((f"job/{name.lstrip('/')}", data, 0o755))

    with tempfile.TemporaryDirectory(prefix="atvdisk-guest-") as tmpname:
        tmp = Path(tmpname)
        initrd = tmp / "initrd.cpio"
        with open(initrd, "wb") as out, open(assets.initramfs, "rb") as base:
            shutil.copyfileobj(base, out)
            out.write(job_archive(job))
        results = tmp / "results.img"
        with open(results, "wb") as f:
            f.truncate(results_mb << 20)
        console_path = tmp / "console.log"
        argv = qemu_argv(
            assets,
            attached,
            initrd,
            results,
            console_path,
            append=append,
            memory_mb=memory_mb,
            kernel_image=kernel_image,
        )
        qemu_log = tmp / "qemu.log"
        start = time.monotonic()
        with open(qemu_log, "wb") as log_file:
            # qemu's snapshot overlays go to TMPDIR: keep them in our temporary directory.
            proc = popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TMPDIR": str(tmp)},
            )
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise GuestTimeout(
                    f"the guest did not finish within {timeout:g} s (qemu killed)",
                    console=_read_console(console_path),
                    hint="a script waiting forever, or a slow host: raise timeout=",
                ) from None
            finally:
                if proc.poll() is None:  # timed out, or interrupted (Ctrl-C): never leave qemu behind
                    proc.kill()
                    proc.wait()
        seconds = time.monotonic() - start
        console = _read_console(console_path)
        if proc.returncode != 0:
            raise GuestError(
                f"qemu exited with status {proc.returncode}: {qemu_log.read_text(errors='replace').strip()}",
                console=console,
            )
        found = _read_results(results, console)

    init_uptime = _marker_uptime(console, "init")
    ready_uptime = _marker_uptime(console, "ready")
    if found is None:
        if check:
            raise GuestNoResult("qemu exited but the guest wrote no results", console=console)
        return GuestResult(console, None, "", {}, "", seconds, init_uptime, ready_uptime, tuple(argv), "none")
    result_files, meta = found
    status_text = meta.get("status", b"").decode().strip()
    if status_text == "setup":
        reason = meta.get("setup-error", b"").decode(errors="replace").strip()
        raise GuestSetupFailed(f"the guest's init failed before the script: {reason}", console=console)
    result = GuestResult(
        console=console,
        status=None if status_text == "kexec" else int(status_text),
        ended="kexec" if status_text == "kexec" else "exit",
        output=meta.get("output", b"").decode("utf-8", "replace"),
        files=result_files,
        dmesg=meta.get("dmesg", b"").decode("utf-8", "replace"),
        seconds=seconds,
        init_uptime=init_uptime,
        ready_uptime=ready_uptime,
        argv=tuple(argv),
    )
    if check and result.ended == "exit" and result.status != 0:
        raise GuestScriptFailed(f"the guest script exited with status {result.status}", result=result)
    return result


def _read_console(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
    except FileNotFoundError:
        return ""
