"""The user's inputs: the OpenELEC release, the Apple restore files, the patchstick files.

Everything here is checked before the target is touched: missing files are named, md5 files are
verified, ``boot.efi`` is looked at. An OpenELEC ATV release is either 1.x-3.2 (``KERNEL``,
started by atv-bootloader with kexec: layout atv1-openelec) or 4.0-4.2 (``MACH_KERNEL``, started
by Apple's boot.efi directly: layout atv1-openelec4); :func:`fitting_layouts` says which bundled
layouts boot a given release.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from atvdisk.errors import InputError
from atvdisk.inputs.tarstream import Member, TarStream, TarStreamError
from atvdisk.inputs.tree import FileTree, HostFile, OpenElecMember, Source

BOOT_EFI_SIZE = 298_800  # Apple's boot.efi for the ATV1 (atv1-facts.md)
KERNELS = ("KERNEL", "MACH_KERNEL")  # 1.x-3.2 (kexec'd by atv-bootloader), 4.x (boot.efi's)
OPENELEC_FILES = ("SYSTEM",)  # needed by every release, besides one of KERNELS
OPENELEC_OPTIONAL = ("KERNEL.md5", "MACH_KERNEL.md5", "SYSTEM.md5")
MD5_CHECKED = ("KERNEL", "MACH_KERNEL", "SYSTEM")
RELEASE_NAMES = KERNELS + OPENELEC_FILES + OPENELEC_OPTIONAL


@dataclass(frozen=True)
class ReleaseFile:
    source: Source
    size: int


@dataclass
class OpenElecRelease:
    """KERNEL or MACH_KERNEL, SYSTEM and their md5 files, from a directory or a release tarball."""

    path: str
    files: dict[str, ReleaseFile] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str, *, check: bool = True) -> OpenElecRelease:
        """Find KERNEL or MACH_KERNEL, SYSTEM and their md5 files, in a directory (the release's
        ``target/``, or the extracted release that holds it) or a release tarball; with ``check``,
        verify the md5 sums now (the build runs :meth:`check_md5` itself, alongside its other checks)."""
        p = Path(path)
        if p.is_dir():
            release = cls(path)
            if not any((p / n).is_file() for n in KERNELS + OPENELEC_FILES) and (p / "target").is_dir():
                p = p / "target"  # the extracted release: OpenELEC-ATV.i386-3.2.4/target/KERNEL
            for name in RELEASE_NAMES:
                f = p / name
                if f.is_file():
                    try:
                        os.close(os.open(f, os.O_RDONLY | os.O_CLOEXEC))
                    except OSError as e:
                        raise InputError(f"--openelec {path}: cannot read {name}: {e.strerror}", hint="check its permissions") from None
                    release.files[name] = ReleaseFile(HostFile(str(f)), f.stat().st_size)
        elif p.is_file():
            release = cls._from_tarball(path)
        else:
            raise InputError(f"--openelec {path}: no such file or directory", hint="give the OpenELEC-ATV.i386-*.tar release, or its directory (holding target/, or KERNEL or MACH_KERNEL and SYSTEM)")
        missing = [n for n in OPENELEC_FILES if n not in release.files]
        if not release.kernels:
            missing.insert(0, "KERNEL (1.x-3.2) or MACH_KERNEL (4.x)")
        if missing:
            raise InputError(
                f"--openelec {path}: missing {' and '.join(missing)}",
                hint="an OpenELEC ATV release has SYSTEM and KERNEL (1.x-3.2) or MACH_KERNEL (4.x) in target/: give the release tarball, the directory it unpacks to, or its target/",
            )
        if check:
            release.check_md5()
        return release

    @property
    def kernels(self) -> tuple[str, ...]:
        return tuple(k for k in KERNELS if k in self.files)

    def describe(self) -> str:
        """What kind of release this is, in the user's terms."""
        if "KERNEL" in self.files and "MACH_KERNEL" not in self.files:
            return "an OpenELEC 1.x-3.2 release (KERNEL, started by atv-bootloader)"
        if "MACH_KERNEL" in self.files and "KERNEL" not in self.files:
            return "an OpenELEC 4.x release (MACH_KERNEL, started by boot.efi)"
        return "an OpenELEC release with both KERNEL and MACH_KERNEL"

    @classmethod
    def _from_tarball(cls, path: str) -> OpenElecRelease:
        release = cls(path)
        with _release_stream(path) as tar:
            for index, m in _members(tar, path):
                name = _release_name(m)
                if name is not None:
                    release.files[name] = ReleaseFile(OpenElecMember(path, m.name, index), m.size)
        return release

    def read(self, name: str) -> bytes:
        """A small file of the release (an md5 file), refused before reading if it is not small."""
        size = self.files[name].size
        if size > MD5_FILE_LIMIT:
            raise InputError(f"--openelec {self.path}: {name} is {size} bytes; an md5 file is a line of text", hint="download the release again")
        return b"".join(self.chunks(name))

    def chunks(self, name: str):
        f = self.files[name]
        if isinstance(f.source, HostFile):
            with open(f.source.path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    yield chunk
            return
        assert isinstance(f.source, OpenElecMember)
        with _release_stream(self.path) as tar:
            for index, _ in _members(tar, self.path):
                if index == f.source.index:
                    yield from _data(tar, self.path)
                    return
        raise InputError(f"--openelec {self.path}: the archive changed since it was checked", hint="do not modify input files during a build")

    def check_md5(self) -> None:
        if any(isinstance(f.source, OpenElecMember) for f in self.files.values()):
            self._check_md5_in_one_pass()
            return
        for name in MD5_CHECKED:
            md5name = f"{name}.md5"
            if md5name not in self.files or name not in self.files:
                continue
            expected = self._expected_md5(md5name, self.read(md5name))
            digest = hashlib.md5()
            for chunk in self.chunks(name):
                digest.update(chunk)
            self._compare_md5(name, md5name, digest.hexdigest(), expected)

    def _check_md5_in_one_pass(self) -> None:
        """The release tarball read once: md5 files read (small), the kernel and SYSTEM hashed."""
        for md5name in (f"{n}.md5" for n in MD5_CHECKED):
            if md5name in self.files and self.files[md5name].size > MD5_FILE_LIMIT:
                self.read(md5name)  # refuses it, naming it
        by_index = {f.source.index: name for name, f in self.files.items() if isinstance(f.source, OpenElecMember)}
        texts: dict[str, bytes] = {}
        digests: dict[str, str] = {}
        with _release_stream(self.path) as tar:
            for index, _ in _members(tar, self.path):
                name = by_index.get(index)
                if name is None:
                    continue
                if name.endswith(".md5"):
                    texts[name] = b"".join(_data(tar, self.path))
                else:
                    digest = hashlib.md5()
                    for chunk in _data(tar, self.path):
                        digest.update(chunk)
                    digests[name] = digest.hexdigest()
        for name in MD5_CHECKED:
            md5name = f"{name}.md5"
            if md5name in texts and name in digests:
                self._compare_md5(name, md5name, digests[name], self._expected_md5(md5name, texts[md5name]))

    def _expected_md5(self, md5name: str, data: bytes) -> str:
        m = re.match(r"\s*([0-9a-fA-F]{32})\b", data.decode("ascii", errors="replace"))
        if not m:
            raise InputError(f"--openelec {self.path}: {md5name} does not hold an md5 sum", hint="download the release again")
        return m.group(1).lower()

    def _compare_md5(self, name: str, md5name: str, actual: str, expected: str) -> None:
        if actual != expected:
            raise InputError(
                f"--openelec {self.path}: {name} does not match {md5name} (md5 {actual}, expected {expected})",
                hint="the file is damaged or from another release: download the release again",
            )


MD5_FILE_LIMIT = 64 * 1024  # "<32 hex digits>  target/KERNEL\n"; anything larger is not one


def _release_name(m: Member) -> str | None:
    """KERNEL, MACH_KERNEL, SYSTEM or an md5 file when the member is one (``*/target/NAME``)."""
    if not m.isreg():
        return None
    parts = m.name.strip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "target" and parts[-1] in RELEASE_NAMES:
        return parts[-1]
    return None


@contextmanager
def _release_stream(path: str) -> Iterator[TarStream]:
    try:
        tar = TarStream(path)
    except OSError as e:
        raise InputError(f"--openelec {path}: cannot read: {e.strerror}", hint="check the file") from None
    with tar:
        yield tar


def _members(tar: TarStream, path: str) -> Iterator[tuple[int, Member]]:
    it = enumerate(tar)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except TarStreamError as e:
            raise InputError(f"--openelec {path}: not a readable OpenELEC release tarball ({e})", hint="download the release again") from None
        yield item


def _data(tar: TarStream, path: str) -> Iterator[bytes]:
    try:
        while chunk := tar.read(1 << 20):
            yield chunk
    except TarStreamError as e:
        raise InputError(f"--openelec {path}: the release tarball is truncated or corrupt ({e})", hint="download the release again") from None


@dataclass(frozen=True)
class Inputs:
    """Values for the layout's placeholders."""

    openelec: OpenElecRelease | None = None
    restore: str | None = None
    recovery: str | None = None
    layout_dir: str | None = None

    def path_for(self, placeholder: str) -> str | None:
        return {"restore": self.restore, "recovery": self.recovery, "layout_dir": self.layout_dir, "openelec": self.openelec.path if self.openelec else None}[placeholder]


OPTION_FOR = {"openelec": "--openelec", "restore": "--restore", "recovery": "--recovery"}


def check_input_file(option: str, path: str | None) -> str | None:
    if path is None:
        return None
    if not os.path.isfile(path):
        raise InputError(f"{option} {path}: no such file", hint="check the path")
    if not os.access(path, os.R_OK):
        raise InputError(f"{option} {path}: not readable", hint="check its permissions")
    return path


def fitting_layouts(release: OpenElecRelease) -> list[str]:
    """The bundled layouts whose [boot] kernel this release has."""
    from atvdisk.layout.schema import bundled_layouts, load_layout

    out = []
    for name in bundled_layouts():
        boot = load_layout(name).boot
        if boot is not None and boot.kernel in release.files:
            out.append(name)
    return out


def check_release_fits(release: OpenElecRelease, kernel: str, layout_name: str) -> None:
    """Refuse (before anything is written) a release that does not have the layout's kernel."""
    if kernel in release.files:
        return
    fitting = fitting_layouts(release)
    raise InputError(
        f"--openelec {release.path} is {release.describe()}; layout {layout_name} boots {kernel}, which it does not have",
        hint=(f"use --layout {' or --layout '.join(fitting)}" if fitting else "give a release that has " + kernel)
        + " (atv1-openelec: OpenELEC 1.x-3.2; atv1-openelec4: OpenELEC 4.x)",
    )


def inspect_boot_efi(tree: FileTree) -> list[str]:
    """Warnings about boot.efi on the partition boot.efi boots from (it is the user's, Apple's)."""
    warnings: list[str] = []
    efi = [p for p, n in tree.files() if p.split("/")[-1] == "boot.efi"]
    if not efi:
        warnings.append("no boot.efi in the restore files: the ATV firmware will not boot from this disk (it comes in atv_restore.tar.gz)")
    for p in efi:
        size = tree.nodes[p].size
        if size != BOOT_EFI_SIZE:
            warnings.append(f"/{p} is {size} bytes, not the {BOOT_EFI_SIZE} bytes of Apple's ATV boot.efi")
    return warnings
