"""Prepare the guest's assets: the Debian kernel (fetched, unpacked, cached) and the initramfs.

This is the single entry point for set-up scripts::

    python -m tests.kernel.assets            # from the repository root; idempotent

It resolves the image package that ``linux-image-amd64`` currently depends on (running
``apt-get update`` first if apt has no lists), fetches it with ``apt-get download``, unpacks it
with ``dpkg -x`` into the cache, generates ``modules.dep`` when the package lacks it, extracts
the uncompressed ELF ``vmlinux`` (booted through its PVH entry: saves ~5 s of TCG decompression
per boot), then builds the cached base initramfs. Nothing is installed as the host's kernel.

Cache: ``$ATVDISK_KERNEL_CACHE``, else ``~/.cache/atvdisk-kernel``. Offline use:
``ATVDISK_KERNEL_DEB=/path/to/linux-image-*.deb`` skips apt entirely.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import lzma
import os
import shutil
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ._run import run
from .errors import AssetError, ToolError

log = logging.getLogger("atvdisk.tests.kernel")

META_PACKAGE = "linux-image-amd64"
CACHE_ENV = "ATVDISK_KERNEL_CACHE"
DEB_ENV = "ATVDISK_KERNEL_DEB"
_COMPLETE = ".complete.json"

# Kernel options the harness relies on being built in (=y); modules it loads are checked by
# the initramfs builder.
REQUIRED_BUILTIN = {
    "CONFIG_BLK_DEV_INITRD": "the initramfs",
    "CONFIG_DEVTMPFS": "/dev nodes for /dev/sda1..",
    "CONFIG_SERIAL_8250_CONSOLE": "the serial console",
    "CONFIG_EFI_PARTITION": "the GPT partition parser",
    "CONFIG_MSDOS_PARTITION": "the MBR partition parser",
    "CONFIG_SWAP": "swapon",
}


@dataclass(frozen=True)
class Kernel:
    """An unpacked Debian kernel image package in the cache."""

    package: str  # linux-image-6.1.0-56-amd64
    version: str  # 6.1.192-2
    release: str  # 6.1.0-56-amd64 (uname -r)
    root: Path  # the dpkg -x tree

    @property
    def vmlinuz(self) -> Path:
        """The package's bzImage, as the bootloader (or kexec) would load it."""
        return self.root / "boot" / f"vmlinuz-{self.release}"

    @property
    def vmlinux(self) -> Path | None:
        """The same kernel as an uncompressed ELF with a PVH entry (None if not extractable)."""
        path = self.root / "boot" / f"vmlinux-{self.release}"
        return path if path.exists() else None

    @property
    def modules_dir(self) -> Path:
        return _modules_base(self.root) / self.release

    def config(self) -> dict[str, str]:
        """The kernel's ``config-*`` as {CONFIG_X: value}; unset options are absent."""
        values: dict[str, str] = {}
        text = (self.root / "boot" / f"config-{self.release}").read_text()
        for line in text.splitlines():
            if line.startswith("CONFIG_") and "=" in line:
                key, _, value = line.partition("=")
                values[key] = value
        return values


@dataclass(frozen=True)
class GuestAssets:
    """Everything a guest boot needs: the kernel and the cached base initramfs."""

    kernel: Kernel
    initramfs: Path
    initramfs_digest: str


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "atvdisk-kernel"


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """Serialise preparation between concurrent test sessions sharing the cache."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare_assets(cache: Path | None = None) -> GuestAssets:
    """Prepare (or find in the cache) the kernel and the base initramfs. Idempotent."""
    from .initramfs import build_base_initramfs

    cache = cache or cache_dir()
    kernel = prepare_kernel(cache)
    path, digest = build_base_initramfs(kernel, cache)
    return GuestAssets(kernel=kernel, initramfs=path, initramfs_digest=digest)


def prepare_kernel(cache: Path | None = None) -> Kernel:
    """Fetch and unpack the current Debian kernel image package into the cache. Idempotent."""
    cache = cache or cache_dir()
    with _locked(cache):
        deb_env = os.environ.get(DEB_ENV)
        if deb_env:
            deb = Path(deb_env)
            if not deb.is_file():
                raise AssetError(f"{DEB_ENV}={deb_env}: no such file", hint="point it at a linux-image-*.deb")
            package = run(["dpkg-deb", "-f", deb, "Package"]).stdout.decode().strip()
            version = run(["dpkg-deb", "-f", deb, "Version"]).stdout.decode().strip()
        else:
            try:
                package, version = _resolve_package()
            except AssetError:
                cached = _newest_complete(cache)
                if cached is None:
                    raise
                log.warning("apt cannot resolve %s; using the cached %s", META_PACKAGE, cached.package)
                return cached
            deb = None
        tree = cache / "kernel" / f"{package}_{version}"
        if (tree / _COMPLETE).exists():
            return _load_complete(tree)
        if deb is None:
            deb = _download(package, version, cache / "debs")
        return _unpack(deb, package, version, tree)


def _apt_update() -> None:
    if os.geteuid() != 0:
        raise AssetError(
            "apt has no usable package lists and this user cannot run apt-get update",
            hint="run `apt-get update` as root, or set ATVDISK_KERNEL_DEB to a downloaded .deb",
        )
    run(["apt-get", "update"], hint="the Debian mirror must be reachable to fetch the kernel")


def _resolve_package() -> tuple[str, str]:
    """(image package, candidate version) that linux-image-amd64 depends on now."""
    for attempt in (1, 2):
        try:
            out = run(["apt-cache", "depends", META_PACKAGE]).stdout.decode()
            image = [
                line.split(":", 1)[1].strip()
                for line in out.splitlines()
                if line.strip().startswith("Depends:") and "linux-image-" in line
            ]
            if image:
                package = image[0]
                policy = run(["apt-cache", "policy", package]).stdout.decode()
                for line in policy.splitlines():
                    if line.strip().startswith("Candidate:"):
                        version = line.split(":", 1)[1].strip()
                        if version and version != "(none)":
                            return package, version
        except ToolError as exc:
            log.info("apt-cache lookup failed: %s", exc.message)
        if attempt == 1:
            _apt_update()
    raise AssetError(
        f"apt cannot resolve the image package of {META_PACKAGE}",
        hint="check /etc/apt/sources.list(.d) has Debian main and run `apt-get update`",
    )


def _download(package: str, version: str, debs: Path) -> Path:
    debs.mkdir(parents=True, exist_ok=True)
    for attempt in (1, 2):
        for old in debs.glob(f"{package}_*.deb"):
            old.unlink()
        try:
            # The sandbox user _apt cannot write into root's cache: download as root.
            run(
                ["apt-get", "download", "-o", "APT::Sandbox::User=root", f"{package}={version}"],
                cwd=debs,
                hint="the Debian mirror must be reachable (or set ATVDISK_KERNEL_DEB)",
            )
        except ToolError:
            if attempt == 2:
                raise
            _apt_update()  # stale lists point at a version the mirror no longer has
            continue
        found = sorted(debs.glob(f"{package}_*.deb"))
        if found:
            return found[0]
    raise AssetError(f"apt-get download {package}={version} produced no .deb in {debs}")


def _modules_base(root: Path) -> Path:
    for base in (root / "lib" / "modules", root / "usr" / "lib" / "modules"):
        if base.is_dir():
            return base
    raise AssetError(f"no lib/modules in the unpacked kernel package at {root}")


def _unpack(deb: Path, package: str, version: str, tree: Path) -> Kernel:
    tree.parent.mkdir(parents=True, exist_ok=True)
    if tree.exists():
        shutil.rmtree(tree)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=tree.parent))
    try:
        run(["dpkg", "-x", deb, tmp])
        releases = [p.name for p in _modules_base(tmp).iterdir() if p.is_dir()]
        if len(releases) != 1:
            raise AssetError(f"{deb.name}: expected one modules directory, found {releases}")
        release = releases[0]
        kernel = Kernel(package=package, version=version, release=release, root=tmp)
        if not kernel.vmlinuz.exists():
            raise AssetError(f"{deb.name}: no boot/vmlinuz-{release}")
        config = kernel.config()
        missing = [f"{k} ({why})" for k, why in REQUIRED_BUILTIN.items() if config.get(k) != "y"]
        if missing:
            raise AssetError(f"{package} lacks built-in support the harness needs: {', '.join(missing)}")
        if not (kernel.modules_dir / "modules.dep").exists():
            _depmod(tmp, release)
        _extract_vmlinux(kernel.vmlinuz, tmp / "boot" / f"vmlinux-{release}", config)
        meta = {"package": package, "version": version, "release": release, "deb": deb.name}
        (tmp / _COMPLETE).write_text(json.dumps(meta, indent=1) + "\n")
        tmp.rename(tree)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _load_complete(tree)


def _depmod(root: Path, release: str) -> None:
    """modules.dep for the unpacked tree: kmod's depmod if the host has it, else busybox's."""
    depmod = shutil.which("depmod") or shutil.which("depmod", path="/usr/sbin:/sbin")
    if depmod:
        run([depmod, "-b", root, release])
    else:
        run(["busybox", "depmod", "-b", root, release], hint="apt-get install busybox-static (or kmod)")
    if (
        not (root / "lib" / "modules" / release / "modules.dep").exists()
        and not (root / "usr" / "lib" / "modules" / release / "modules.dep").exists()
    ):
        raise AssetError(f"depmod wrote no modules.dep under {root}")


def _extract_vmlinux(vmlinuz: Path, out: Path, config: dict[str, str]) -> None:
    """Decompress the bzImage payload into an ELF vmlinux if it has a PVH entry qemu can boot."""
    if config.get("CONFIG_PVH") != "y":
        log.info("no CONFIG_PVH: guests will boot the bzImage")
        return
    data = vmlinuz.read_bytes()
    if data[0x202:0x206] != b"HdrS":
        raise AssetError(f"{vmlinuz}: not a bzImage (no HdrS boot header)")
    setup_sects = data[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = data[start : start + payload_length]
    if payload.startswith(b"\xfd7zXZ\x00"):
        decomp = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        elf = decomp.decompress(payload)
    elif payload.startswith(b"\x1f\x8b"):
        elf = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
    elif payload.startswith(b"\x28\xb5\x2f\xfd"):
        elf = run(["zstd", "-dc"], input=payload, hint="apt-get install zstd").stdout
    else:
        log.info("%s: payload compression not handled (%r): guests boot the bzImage", vmlinuz, payload[:4])
        return
    if not elf.startswith(b"\x7fELF"):
        raise AssetError(f"{vmlinuz}: decompressed payload is not an ELF file")
    out.write_bytes(elf)


def _load_complete(tree: Path) -> Kernel:
    meta = json.loads((tree / _COMPLETE).read_text())
    return Kernel(package=meta["package"], version=meta["version"], release=meta["release"], root=tree)


def _newest_complete(cache: Path) -> Kernel | None:
    trees = sorted(
        (p for p in (cache / "kernel").glob("*") if (p / _COMPLETE).exists()),
        key=lambda p: p.stat().st_mtime,
    )
    return _load_complete(trees[-1]) if trees else None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        assets = prepare_assets()
    except AssetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    k = assets.kernel
    print(f"kernel: {k.package} {k.version} (release {k.release})")
    print(f"tree: {k.root}")
    print(f"boot image: {k.vmlinux or k.vmlinuz}")
    print(f"initramfs: {assets.initramfs} ({assets.initramfs.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
