"""``com.apple.Boot.plist``: what Apple's boot.efi starts, and with which Kernel Flags.

boot.efi reads the plist at the root of the partition it boots from (keys Background Color, Boot
Fail Logo, Boot Logo, Kernel, Kernel Flags); ``Kernel`` names a Mach-O file at that root and
``Kernel Flags`` (at most 1024 bytes) become its command line (reference: atv-bootchain.md).

- Boot method ``bootefi`` (OpenELEC 4.x): the plist is generated from ``[boot]``, as OpenELEC's
  own 4.x installer writes it: Kernel ``MACH_KERNEL``, Kernel Flags ``boot=... disk=...`` and the
  layout's options, Boot Logo ``BootLogo.png`` when the partition has one, Background Color 0.
- Boot method ``kexec`` (OpenELEC 1.x-3.2): boot.efi starts atv-bootloader (``mach_kernel``),
  whose rcS runs our boot script only when Kernel Flags say ``atv-boot=patchstick`` (for
  patchstick.sh; ``manual`` for boot_linux.sh). The recovery's own plist often says otherwise
  (OpenELEC 3.2's says ``none``), and without ``atv-boot=`` rcS boots nothing. So the plist is
  fixed: ``atv-boot=`` is set to the script's mode, the other flags and keys are kept, and the
  change is reported; a plist that already says the right mode is kept byte for byte. With no
  plist at all, one is generated. ``keep`` (``--keep-boot-plist``) keeps the plist as it is, and
  refuses when the disk would then not boot.

Everything here is pure and runs in prepare: a plist that cannot be made to boot is refused
(:class:`~atvdisk.errors.BootFilesError`, exit 2) before anything is written. Generated values
go through :mod:`atvdisk.layout.atv`'s checks; the XML is written by plistlib, which escapes it.
"""

from __future__ import annotations

import plistlib
from dataclasses import dataclass

from atvdisk.bootscript import command_line, script_entry, spec_for
from atvdisk.errors import BootFilesError
from atvdisk.layout import atv
from atvdisk.layout.plan import Plan
from atvdisk.layout.schema import (
    BOOT_PLIST,
    SCRIPT_MODES,
    BootMethod,
    ContentKind,
    NameBy,
)

ATV_BOOTLOADER = "mach_kernel"  # atv-bootloader's Mach-O wrapper, from the recovery files
BOOT_LOGO = "BootLogo.png"
KEXEC_EXTRA_FLAGS = "video=vesafb"  # what atv-bootloader plists carry for its console
PLIST_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class BootPlist:
    data: bytes
    kernel: str
    kernel_flags: str
    original_flags: str | None = None  # kexec: the recovery plist's Kernel Flags (None: no plist)
    changed: bool = False  # kexec: atvdisk changed (or created) the plist
    note: str | None = None  # what was changed and why, for the user


@dataclass(frozen=True)
class PlistExpectation:
    """What a boot plist on the disk must say; checked by ``verify`` on what it reads back."""

    path: str
    method: BootMethod
    kernel: str | None = None  # bootefi: exactly this Kernel
    kernel_flags: str | None = None  # bootefi: exactly these Kernel Flags
    mode: str | None = None  # kexec: the atv-boot= mode that runs the boot script

    def problems(self, data: bytes, root_files: set[str]) -> list[str]:
        """What is wrong with ``data`` (the plist as read back); ``root_files``: the files at the
        partition's root (the Kernel must be one of them)."""
        try:
            d = plistlib.loads(data)
        except Exception as e:  # noqa: BLE001 - plistlib raises many types on bad input
            return [f"/{self.path} is not a readable plist ({e})"]
        if not isinstance(d, dict):
            return [f"/{self.path} is not a dictionary plist"]
        out = []
        kernel = d.get("Kernel", ATV_BOOTLOADER)
        flags = d.get("Kernel Flags", "")
        if not isinstance(kernel, str) or not isinstance(flags, str):
            return [f"/{self.path}: Kernel and Kernel Flags must be strings"]
        if len(flags.encode()) > atv.KERNEL_FLAGS_MAX:
            out.append(f"/{self.path}: Kernel Flags are {len(flags.encode())} bytes; boot.efi takes at most {atv.KERNEL_FLAGS_MAX}")
        if kernel not in root_files:
            out.append(f"/{self.path}: Kernel {kernel!r} is not a file at the partition's root")
        if self.method is BootMethod.BOOTEFI:
            if kernel != self.kernel:
                out.append(f"/{self.path}: Kernel {kernel!r}, expected {self.kernel!r}")
            if self.kernel_flags is not None and flags != self.kernel_flags:
                out.append(f"/{self.path}: Kernel Flags {flags!r}, expected {self.kernel_flags!r}")
            words = flags.split(" ")
            if self.kernel_flags is None and not (len(words) >= 2 and words[0].startswith("boot=") and words[1].startswith("disk=")):
                out.append(f"/{self.path}: Kernel Flags {flags!r} do not start with boot=... disk=...")
        else:
            mode = atv_boot_mode(flags)
            if mode != self.mode:
                out.append(f"/{self.path}: Kernel Flags {flags!r} make atv-bootloader run " + (f"atv-boot={mode}" if mode else "nothing (no atv-boot=)") + f", not atv-boot={self.mode}")
        return out


def atv_boot_mode(flags: str) -> str | None:
    """The mode atv-bootloader's rcS reads: the last ``atv-boot=`` word, cut at its second ``=``."""
    mode = None
    for word in flags.split():
        if word.startswith("atv-boot="):
            mode = word.split("=")[1]
    return mode


def _dumps(d: dict) -> bytes:
    try:
        return plistlib.dumps(d, fmt=plistlib.FMT_XML, sort_keys=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise BootFilesError(f"{BOOT_PLIST} cannot be written as XML: {e}", hint="check the recovery's plist for odd values") from None


def bootefi_flags(plan: Plan, name_by: NameBy | None = None) -> str:
    """Kernel Flags of a bootefi layout: ``boot=... disk=...`` and the layout's options."""
    boot = plan.boot
    assert boot is not None
    name_by = name_by or boot.name_by
    return command_line(spec_for(plan.partition(boot.boot), name_by), spec_for(plan.partition(boot.storage), name_by), boot.options)


def bootefi_plist(plan: Plan, name_by: NameBy | None, root_files: set[str]) -> BootPlist:
    """The plist boot.efi reads to start OpenELEC 4.x's MACH_KERNEL directly."""
    boot = plan.boot
    if boot is None or boot.method is not BootMethod.BOOTEFI:
        raise BootFilesError("the layout does not boot by bootefi", hint='set method = "bootefi" in [boot]')
    try:
        kernel = atv.file_name(boot.kernel)
    except atv.AtvValueError as e:
        raise BootFilesError(e.message, hint=e.hint) from None
    flags = bootefi_flags(plan, name_by)
    d: dict[str, object] = {"Background Color": 0, "Kernel": kernel, "Kernel Flags": flags}
    if BOOT_LOGO in root_files:
        d["Boot Logo"] = BOOT_LOGO
    return BootPlist(_dumps(d), kernel, flags)


def kexec_plist(existing: bytes | None, mode: str, root_files: set[str], *, keep: bool = False, origin: str = BOOT_PLIST) -> BootPlist:
    """The plist that makes boot.efi start atv-bootloader with ``atv-boot=mode``.

    ``existing``: the plist the recovery files put there (None: none); ``root_files``: the files
    at the partition's root, where Kernel must be.
    """
    script = {m: name for name, m in SCRIPT_MODES.items()}[mode]
    if existing is None:
        if keep:
            raise BootFilesError(
                f"there is no {BOOT_PLIST} in the recovery files, so boot.efi passes no atv-boot= and atv-bootloader would not run {script}",
                hint=f"drop --keep-boot-plist: atvdisk then writes one with atv-boot={mode}",
            )
        flags = f"atv-boot={mode} {KEXEC_EXTRA_FLAGS}"
        d: dict[str, object] = {"Background Color": 0, "Kernel": ATV_BOOTLOADER, "Kernel Flags": flags}
        if BOOT_LOGO in root_files:
            d["Boot Logo"] = d["Boot Fail Logo"] = BOOT_LOGO
        _check_kernel(ATV_BOOTLOADER, root_files, origin)
        note = f"the recovery files have no {BOOT_PLIST}: atvdisk wrote one (Kernel {ATV_BOOTLOADER}, Kernel Flags {flags!r}) so that atv-bootloader runs {script}"
        return BootPlist(_dumps(d), ATV_BOOTLOADER, flags, None, True, note)
    if len(existing) > PLIST_MAX_BYTES:
        raise BootFilesError(f"{origin} is {len(existing)} bytes: not a boot plist", hint="check the recovery files")
    try:
        d = plistlib.loads(existing)
    except Exception as e:  # noqa: BLE001 - plistlib raises many types on bad input
        raise BootFilesError(f"{origin} cannot be read as a plist ({e})", hint="the recovery files are damaged: get atv_recovery.tar.gz again") from None
    if not isinstance(d, dict):
        raise BootFilesError(f"{origin} is not a dictionary plist", hint="the recovery files are damaged: get atv_recovery.tar.gz again")
    kernel = d.get("Kernel", ATV_BOOTLOADER)
    flags = d.get("Kernel Flags", "")
    if not isinstance(kernel, str) or not isinstance(flags, str):
        raise BootFilesError(f"{origin}: Kernel and Kernel Flags must be strings", hint="the recovery files are damaged: get atv_recovery.tar.gz again")
    _check_kernel(kernel, root_files, origin)
    current = atv_boot_mode(flags)
    words = flags.split()
    right = [w for w in words if w.startswith("atv-boot=")] == [f"atv-boot={mode}"]
    if right:
        _check_length(flags, origin)
        return BootPlist(existing, kernel, flags, flags, False, None)
    said = f"atv-boot={current}" if current is not None else "no atv-boot="
    if keep:
        raise BootFilesError(
            f"{origin} says {said} (Kernel Flags {flags!r}): atv-bootloader would not run {script}, and --keep-boot-plist keeps it so",
            hint=f"drop --keep-boot-plist: atvdisk then sets atv-boot={mode} and keeps the other flags",
        )
    new_flags = " ".join([f"atv-boot={mode}"] + [w for w in words if not w.startswith("atv-boot=")])
    _check_length(new_flags, origin)
    data = _dumps({**d, "Kernel Flags": new_flags})
    note = (
        f"{origin} said {said} (Kernel Flags {flags!r}), which would not run {script}: Kernel Flags are now {new_flags!r}"
        " (give --keep-boot-plist to keep them as they were)"
    )
    return BootPlist(data, kernel, new_flags, flags, True, note)


def _check_kernel(kernel: str, root_files: set[str], origin: str) -> None:
    if kernel not in root_files:
        raise BootFilesError(
            f"{origin} names Kernel {kernel!r}, which is not a file at the partition's root: boot.efi would have nothing to start",
            hint=f"atv-bootloader's {ATV_BOOTLOADER} comes in atv_recovery.tar.gz; check --recovery",
        )


def _check_length(flags: str, origin: str) -> None:
    n = len(flags.encode())
    if n > atv.KERNEL_FLAGS_MAX:
        raise BootFilesError(f"{origin}: Kernel Flags would be {n} bytes; boot.efi takes at most {atv.KERNEL_FLAGS_MAX}", hint="shorten the recovery plist's Kernel Flags")


def expectation(plan: Plan, name_by: NameBy | None = None) -> PlistExpectation | None:
    """What the layout's boot plist must say, or None if the layout has none."""
    if plan.boot is None:
        return None
    for p in plan.partitions:
        for c in p.contents:
            if c.kind is ContentKind.BOOTPLIST:
                if plan.boot.method is BootMethod.BOOTEFI:
                    # Without the build's identifiers (verify of an unseeded layout), UUID= is unknown.
                    flags = None if plan.seed is None and (name_by or plan.boot.name_by) is NameBy.UUID else bootefi_flags(plan, name_by)
                    return PlistExpectation(c.path, BootMethod.BOOTEFI, plan.boot.kernel, flags)
                entry = script_entry(plan)
                return PlistExpectation(c.path, BootMethod.KEXEC, mode=SCRIPT_MODES.get(entry[1]) if entry else None)
    return None
