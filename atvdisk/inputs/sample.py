"""The bundled sample payload: clearly fake stand-ins for the user's files, generated on demand.

Apple's restore files and the OpenELEC release are not redistributable (and large), so the demo
(`atvdisk build demo.img --size 4G --example`, and `--layout atv1-openelec4` for 4.x) and the
tests use these: a fake 3.2-style release (KERNEL, SYSTEM) and a fake 4.x one (MACH_KERNEL,
SYSTEM), with md5 files, an ``atv_restore.tar.gz`` and an ``atv_recovery.tar.gz`` shaped like the real
ones (boot.efi of the real size, com.apple.Boot.plist with atv-boot=patchstick, a kext, the
patchstick scripts). Every byte is deterministic, so builds from it are reproducible. None of it
boots anything.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import plistlib
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from atvdisk.inputs.payload import BOOT_EFI_SIZE

SAMPLE_MTIME = 1_205_000_000  # March 2008, when the ATV1 shipped; fixed for reproducibility
FAKE = b"ATVDISK SAMPLE PAYLOAD - NOT A REAL FILE - "


@dataclass(frozen=True)
class SamplePayload:
    openelec: Path  # a 1.x-3.2 release (KERNEL): for atv1-openelec
    restore: Path
    recovery: Path
    openelec4: Path  # a 4.x release (MACH_KERNEL): for atv1-openelec4

    def openelec_for(self, kernel: str) -> Path:
        """The sample release that has ``kernel`` (a layout's [boot] kernel)."""
        return self.openelec4 if kernel == "MACH_KERNEL" else self.openelec


def fake_bytes(name: str, size: int) -> bytes:
    """``size`` deterministic, incompressible bytes, starting with a banner that says it is fake."""
    banner = FAKE + name.encode() + b"\n"
    body = hashlib.shake_256(name.encode()).digest(max(0, size - len(banner))) if size > len(banner) else b""
    return (banner + body)[:size]


def _png() -> bytes:
    """A valid 1x1 black PNG (the boot logo slot)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b"")


def _boot_plist(kernel_flags: str) -> bytes:
    return plistlib.dumps(
        {
            "Background Color": 0,
            "Boot Fail Logo": "BootLogo.png",
            "Boot Logo": "BootLogo.png",
            "Kernel": "mach_kernel",
            "Kernel Flags": kernel_flags,
        },
        sort_keys=True,
    )


ORIGINAL_BOOT_SCRIPT = b"""#!/bin/sh
# Sample stand-in for the patchstick's boot script (atvdisk replaces it).
fsck.hfsplus /dev/sda3 &> /dev/null
fsck.ext4 /dev/sda4 &> /dev/null
mkdir /boot
mount /dev/sda3 /boot
kexec -l /boot/KERNEL --command-line="boot=/dev/sda3 disk=/dev/sda4 quiet nosplash"
kexec -e
"""

INSTALLER_SCRIPT = b"""#!/bin/sh
# Sample stand-in for the patchstick's installer script (atvdisk replaces it).
echo "atvdisk sample payload: this is not a real patchstick"
"""


def restore_members() -> list[tuple[str, bytes, int]]:
    """(name, data, mode) of the sample atv_restore.tar.gz (Apple's factory restore files)."""
    kext = "System/Library/Extensions/AppleTVDummy.kext/Contents"
    return [
        ("boot.efi", fake_bytes("boot.efi", BOOT_EFI_SIZE), 0o644),
        ("mach_kernel", fake_bytes("mach_kernel (Apple)", 96 * 1024), 0o644),
        ("com.apple.Boot.plist", _boot_plist(""), 0o644),
        ("BootLogo.png", _png(), 0o644),
        (f"{kext}/Info.plist", plistlib.dumps({"CFBundleIdentifier": "com.example.atvdisk.sample"}), 0o644),
        ("OS.dmg", fake_bytes("OS.dmg", 1024 * 1024), 0o644),
    ]


def recovery_members() -> list[tuple[str, bytes, int]]:
    """(name, data, mode) of the sample atv_recovery.tar.gz (the patchstick files)."""
    return [
        ("mach_kernel", fake_bytes("mach_kernel (atv-bootloader)", 64 * 1024), 0o644),
        ("com.apple.Boot.plist", _boot_plist("atv-boot=patchstick video=vesafb"), 0o644),
        ("patchstick.sh", INSTALLER_SCRIPT, 0o755),
        ("patchstick.boot", ORIGINAL_BOOT_SCRIPT, 0o755),
    ]


def write_tar_gz(path: Path, members: list[tuple[str, bytes, int]], *, uid: int = 501, gid: int = 20) -> None:
    """A deterministic .tar.gz (fixed times and owners; a Mac user's 501:20, as Apple's files have)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for name, data, mode in members:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d + "/")
                    info.type, info.mode, info.mtime, info.uid, info.gid = tarfile.DIRTYPE, 0o755, SAMPLE_MTIME, uid, gid
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid, info.gid = len(data), mode, SAMPLE_MTIME, uid, gid
            tar.addfile(info, io.BytesIO(data))
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())


# (directory, [(file, size)]): a 3.2-style release and a 4.x-style one (MACH_KERNEL, no KERNEL).
RELEASES = (
    ("OpenELEC-sample", (("KERNEL", 3 * 1024 * 1024 + 123), ("SYSTEM", 24 * 1024 * 1024 + 4567))),
    ("OpenELEC4-sample", (("MACH_KERNEL", 4 * 1024 * 1024 + 321), ("SYSTEM", 20 * 1024 * 1024 + 7654))),
)


def write_sample(directory: str | Path) -> SamplePayload:
    """Write the sample payload into ``directory`` (created if needed) and say where it is."""
    d = Path(directory)
    targets = []
    for release, files in RELEASES:
        target = d / release / "target"
        target.mkdir(parents=True, exist_ok=True)
        for name, size in files:
            data = fake_bytes(f"{name} ({release})" if release != "OpenELEC-sample" else name, size)
            (target / name).write_bytes(data)
            (target / f"{name}.md5").write_text(f"{hashlib.md5(data).hexdigest()}  target/{name}\n")
        targets.append(target)
    restore = d / "atv_restore.tar.gz"
    recovery = d / "atv_recovery.tar.gz"
    write_tar_gz(restore, restore_members())
    write_tar_gz(recovery, recovery_members())
    return SamplePayload(targets[0], restore, recovery, targets[1])
