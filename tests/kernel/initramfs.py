"""Build the guest's initramfs: a newc cpio archive, cached under its inputs' digest.

The base archive holds busybox (all applets linked), util-linux ``blkid`` and kexec-tools'
``kexec`` with the shared libraries ``ldd`` names, the kernel modules the harness loads (in
``modules.dep`` order, decompressed if the package ships them compressed), and the guest's
``/init`` and shell library from ``guest/``. It is rebuilt whenever any of those inputs
changes. Per run, the harness appends a small second archive (the job): the Linux initramfs
unpacker accepts concatenated archives.
"""

from __future__ import annotations

import hashlib
import logging
import lzma
import os
import re
import shutil
import stat
import tempfile
import time
import zlib
from collections.abc import Iterable
from pathlib import Path

from ._run import run
from .assets import Kernel
from .errors import AssetError, ToolError

log = logging.getLogger("atvdisk.tests.kernel")

# Bump when the archive's layout changes in a way the inputs below do not capture.
FORMAT = 1

GUEST_DIR = Path(__file__).parent / "guest"

# Loaded in this order (each after its modules.dep dependencies), then the nls modules of the
# kernel's default FAT iocharset/codepage and NLS; a missing one fails the build.
REQUIRED_MODULES = (
    # images on q35's AHCI controller -> /dev/sda, /dev/sdb..; the results disk on virtio-blk
    "ahci",
    "sd_mod",
    "virtio_pci",
    "virtio_blk",
    # filesystems and the code pages their mount options name
    "nls_utf8",
    "nls_cp437",
    "nls_iso8859-1",
    "hfsplus",
    "vfat",
    "msdos",
    "crc32c_generic",
    "ext4",
    "loop",
)
# Loaded when present; a load failure is only logged (crc32c-intel needs SSE4.2). The crypto
# modules sd_mod's t10-pi wants (crct10dif, crc64-rocksoft) come through request_module and the
# shipped modules.alias.
OPTIONAL_MODULES = ("crc32c-intel",)

GUEST_KEXEC = "/opt/kexec-tools/sbin/kexec"  # off PATH: rehearsals put recorders first anyway
GUEST_KEXEC_PROBE = "/opt/kexec-probe/initrd.cpio"


def _norm(name: str) -> str:
    return name.replace("-", "_")


def _module_name(relpath: str) -> str:
    base = relpath.rsplit("/", 1)[-1]
    return _norm(re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base))


class Cpio:
    """A newc ("070701") archive built in memory, deterministic (mtime 0, uid/gid 0)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, bytes]] = {}

    def _parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in self._entries:
                self._entries[parent] = (stat.S_IFDIR | 0o755, b"")

    @staticmethod
    def _clean(path: str) -> str:
        path = path.strip("/")
        if not path or any(p in ("", ".", "..") for p in path.split("/")):
            raise AssetError(f"invalid path for the initramfs: {path!r}")
        return path

    def dir(self, path: str, mode: int = 0o755) -> None:
        path = self._clean(path)
        self._parents(path)
        self._entries[path] = (stat.S_IFDIR | mode, b"")

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        path = self._clean(path)
        self._parents(path)
        self._entries[path] = (stat.S_IFREG | mode, data)

    def symlink(self, path: str, target: str) -> None:
        path = self._clean(path)
        self._parents(path)
        self._entries[path] = (stat.S_IFLNK | 0o777, target.encode())

    def manifest_digest(self, *extra: str) -> str:
        h = hashlib.sha256()
        for item in extra:
            h.update(item.encode() + b"\0")
        for path, (mode, data) in sorted(self._entries.items()):
            h.update(f"{path}\0{mode:o}\0{len(data)}\0".encode())
            h.update(hashlib.sha256(data).digest())
        return h.hexdigest()

    def pack(self) -> bytes:
        out = bytearray()

        def entry(ino: int, mode: int, nlink: int, name: str, data: bytes) -> None:
            raw = name.encode() + b"\0"
            fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(raw), 0)
            out.extend(b"070701" + b"".join(b"%08X" % v for v in fields))
            out.extend(raw)
            out.extend(b"\0" * (-len(out) % 4))
            out.extend(data)
            out.extend(b"\0" * (-len(out) % 4))

        for ino, (path, (mode, data)) in enumerate(self._entries.items(), start=1):
            entry(ino, mode, 2 if stat.S_ISDIR(mode) else 1, path, data)
        entry(0, 0, 1, "TRAILER!!!", b"")
        return bytes(out)


def _ldd(binary: Path) -> list[Path]:
    """Shared libraries (and the loader) ``binary`` needs; [] for a static binary."""
    try:
        out = run(["ldd", binary]).stdout.decode()
    except ToolError as exc:
        if "not a dynamic executable" in exc.stderr + exc.message:
            return []
        raise
    libs = []
    for line in out.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            libs.append(Path(m.group(1)))
        elif "not found" in line:
            raise AssetError(f"{binary}: shared library missing on the host: {line.strip()}")
    return libs


def _add_binary(cpio: Cpio, host: Path, guest: str) -> None:
    cpio.file(guest, host.read_bytes(), 0o755)
    for lib in _ldd(host):
        cpio.file(str(lib), lib.resolve().read_bytes(), 0o755)


def _host_tool(name: str, package: str) -> Path:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not found:
        raise AssetError(f"host tool {name!r} not found", hint=f"apt-get install {package}")
    return Path(found)


def _read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    if path.name.endswith(".ko.zst"):
        return run(["zstd", "-dc", path], hint="apt-get install zstd").stdout
    return data


def module_load_order(kernel: Kernel) -> list[tuple[str, bool]]:
    """[(modules.dep path, required)] in a valid load order for the harness's module list."""
    moddir = kernel.modules_dir
    deps: dict[str, list[str]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        if ":" in line:
            key, _, rest = line.partition(":")
            deps[key.strip()] = rest.split()
    by_name = {_module_name(p): p for p in deps}
    builtin_file = moddir / "modules.builtin"
    builtin = {_module_name(p) for p in builtin_file.read_text().split()} if builtin_file.exists() else set()

    order: list[tuple[str, bool]] = []
    seen: set[str] = set()

    def visit(path: str, required: bool, stack: tuple[str, ...]) -> None:
        if path in seen:
            return
        if path in stack:
            raise AssetError(f"module dependency cycle: {' -> '.join(stack + (path,))}")
        for dep in deps.get(path, []):
            visit(dep, required, stack + (path,))
        seen.add(path)
        order.append((path, required))

    config = kernel.config()
    # The code pages FAT mounts use when the options name none.
    defaults = [
        f"nls_{config.get('CONFIG_FAT_DEFAULT_IOCHARSET', '').strip(chr(34))}",
        f"nls_cp{config.get('CONFIG_FAT_DEFAULT_CODEPAGE', '437')}",
        f"nls_{config.get('CONFIG_NLS_DEFAULT', '').strip(chr(34))}",
    ]
    wanted_modules = [(m, True) for m in (*REQUIRED_MODULES, *defaults) if m != "nls_"]
    for wanted, required in wanted_modules + [(m, False) for m in OPTIONAL_MODULES]:
        name = _norm(wanted)
        if name in builtin:
            continue
        if name not in by_name:
            if required:
                raise AssetError(
                    f"kernel {kernel.release} has no module {wanted!r} and it is not built in",
                    hint="the harness needs it; check the kernel config",
                )
            continue
        visit(by_name[name], required, ())
    return order


def _add_modules(cpio: Cpio, kernel: Kernel) -> None:
    moddir = kernel.modules_dir
    order = module_load_order(kernel)
    base = f"lib/modules/{kernel.release}"
    plain = {p: re.sub(r"\.(xz|zst|gz)$", "", p) for p, _ in order}
    for path, _ in order:
        cpio.file(f"{base}/{plain[path]}", _read_module(moddir / path))
    # Filtered indexes so busybox modprobe (and the kernel's request_module) find what we ship.
    dep_lines = []
    for line in (moddir / "modules.dep").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key.strip() in plain:
            dep_lines.append(f"{plain[key.strip()]}: " + " ".join(plain[d] for d in rest.split()))
    cpio.file(f"{base}/modules.dep", ("\n".join(dep_lines) + "\n").encode())
    shipped = {_module_name(p) for p in plain}
    alias_file = moddir / "modules.alias"
    if alias_file.exists():
        aliases = [
            line
            for line in alias_file.read_text().splitlines()
            if line.startswith("alias ") and _norm(line.split()[-1]) in shipped
        ]
        cpio.file(f"{base}/modules.alias", ("\n".join(aliases) + "\n").encode())
    for extra in ("modules.builtin", "modules.order"):
        if (moddir / extra).exists():
            cpio.file(f"{base}/{extra}", (moddir / extra).read_bytes())
    load_list = "".join(f"{'req' if req else 'opt'} {plain[p]}\n" for p, req in order)
    cpio.file("etc/atvdisk/modules", load_list.encode())


def probe_archive(busybox: Path) -> bytes:
    """The initramfs a kexec'd kernel boots in guest_kexec_wrapper: prints its command line on
    ttyS0 ("ATVDISK-KEXEC-PROBE: cmdline ...") and powers off. Needs a static busybox."""
    if _ldd(busybox):
        raise AssetError(f"{busybox} is not static", hint="apt-get install busybox-static")
    cpio = Cpio()
    for d in ("dev", "proc"):
        cpio.dir(d)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.file("init", (GUEST_DIR / "kexec-probe-init.sh").read_bytes(), 0o755)
    return cpio.pack()


def base_archive(kernel: Kernel) -> Cpio:
    """The base initramfs contents (not yet packed)."""
    cpio = Cpio()
    for d in ("dev", "proc", "sys", "run", "mnt", "root", "results", "meta", "job", "var/tmp"):
        cpio.dir(d)
    cpio.dir("tmp", 0o1777)

    busybox = _host_tool("busybox", "busybox-static")
    _add_binary(cpio, busybox, "bin/busybox")
    applets = run([busybox, "--list-full"]).stdout.decode().split()
    for applet in applets:
        if applet.rsplit("/", 1)[-1] in ("blkid", "kexec", "busybox"):
            continue
        cpio.symlink(applet, "/bin/busybox")

    _add_binary(cpio, _host_tool("blkid", "util-linux"), "sbin/blkid")
    _add_binary(cpio, _host_tool("kexec", "kexec-tools"), GUEST_KEXEC)
    cpio.file(GUEST_KEXEC_PROBE, probe_archive(busybox), 0o644)

    _add_modules(cpio, kernel)

    cpio.file("init", (GUEST_DIR / "init.sh").read_bytes(), 0o755)
    cpio.file("lib/atvdisk/guest.sh", (GUEST_DIR / "guest.sh").read_bytes(), 0o644)
    cpio.file(
        "etc/atvdisk/kernel.env",
        f"KVER={kernel.release}\nATVDISK_REAL_KEXEC={GUEST_KEXEC}\nATVDISK_KEXEC_PROBE={GUEST_KEXEC_PROBE}\n".encode(),
    )
    cpio.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    cpio.file("etc/group", b"root:x:0:\n")
    return cpio


def build_base_initramfs(kernel: Kernel, cache: Path) -> tuple[Path, str]:
    """Return (path, digest) of the base initramfs, building it if its inputs changed."""
    cpio = base_archive(kernel)
    digest = cpio.manifest_digest(f"format={FORMAT}", kernel.package, kernel.version, kernel.release)
    outdir = cache / "initramfs"
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / f"base-{digest[:16]}.cpio"
    if path.exists():
        os.utime(path)  # in use: see _prune
    else:
        fd, tmpname = tempfile.mkstemp(prefix=".build-", dir=outdir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(cpio.pack())
            os.chmod(tmpname, 0o644)
            os.rename(tmpname, path)  # atomic: concurrent sessions may build the same archive
        except BaseException:
            Path(tmpname).unlink(missing_ok=True)
            raise
        log.info("built initramfs %s", path)
        _prune(outdir, keep=path)
    return path, digest


def _prune(outdir: Path, keep: Path, count: int = 3, idle_s: float = 86400) -> None:
    """Drop archives beyond the few most recent that no session has used for a day (other
    checkouts and sessions sharing the cache may still use older ones)."""
    now = time.time()
    old = sorted((p for p in outdir.glob("base-*.cpio") if p != keep), key=lambda p: p.stat().st_mtime, reverse=True)
    for p in old[count - 1 :]:
        if now - p.stat().st_mtime > idle_s:
            p.unlink(missing_ok=True)


def job_archive(files: Iterable[tuple[str, bytes, int]]) -> bytes:
    """A small archive appended to the base for one run: (path, data, mode) entries."""
    cpio = Cpio()
    for path, data, mode in files:
        cpio.file(path, data, mode)
    return cpio.pack()
