"""What the Apple TV's boot software accepts: every value atvdisk puts into a boot script or a
``com.apple.Boot.plist`` is checked here first, against the strictest of the programs that read it.

- atv-bootloader's ``find_run_script.sh`` searches ``sd[b-h][1-9]`` then ``sda[1-9]``: the ATV's
  disks are ``sda`` to ``sdh`` (reference: atv-bootchain.md).
- The Linux kernel splits its command line at spaces (double quotes group, and ``--`` ends the
  kernel's part); Apple's ``boot.efi`` passes at most 1024 bytes of ``Kernel Flags``.
- OpenELEC's init reads its parameters with ``for arg in $(cat /proc/cmdline)``: unquoted, so a
  value with a space is cut in two and one with ``*``, ``?`` or ``[`` is glob-expanded.
- busybox's volume_id (``mount LABEL=``/``findfs``, in OpenELEC's initramfs) keeps labels of at
  most 64 bytes and compares them exactly.

So labels used to name partitions, kernel parameters and kernel file names are restricted to
printable ASCII without white space, quotes, backslashes, shell or glob characters. These are
allow-lists: a value passes only if every character is known to be inert for all of the above.
Pure: no I/O.
"""

from __future__ import annotations

import re

ATV_DISKS = tuple(f"sd{c}" for c in "abcdefgh")
KERNEL_FLAGS_MAX = 1024  # boot.efi's limit on Kernel Flags; also our bound for kexec's command line
LABEL_MAX = 64  # busybox volume_id's VOLUME_ID_LABEL_SIZE
FILE_NAME_MAX = 255

_DISK = re.compile(r"(?:/dev/)?(sd[a-h])")
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
# A kernel parameter: name[=value], value without white space, quotes, backslashes, $ ` ; & | < >
# ( ) { } * ? [ ] ! # ~ or control characters.
_PARAM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.,:/+@%=-]*")
# Set by [boot] itself; a second one in options would make the command line ambiguous.
RESERVED_PARAMS = ("boot", "disk")


class AtvValueError(ValueError):
    """A value the ATV's boot software would not take. ``hint`` says what would."""

    def __init__(self, message: str, *, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def atv_disk(value: str) -> str:
    """``sdb`` or ``/dev/sdb`` -> ``/dev/sdb``; anything but sda..sdh is refused."""
    m = _DISK.fullmatch(value) if isinstance(value, str) else None
    if not m:
        raise AtvValueError(
            f"not a disk name the ATV has: {value!r}",
            hint="the ATV's disks are sda to sdh (internal sda; a USB stick sdb), with or without /dev/",
        )
    return f"/dev/{m.group(1)}"


def file_name(value: str, what: str = "kernel") -> str:
    """A plain file name at a partition's root (the kernel, in a script and in Kernel Flags)."""
    if not isinstance(value, str) or not _FILE_NAME.fullmatch(value) or len(value) > FILE_NAME_MAX:
        raise AtvValueError(
            f"{what} must be a plain file name, not {value!r}",
            hint='letters, digits and _ . + - (not starting with . + -), at most 255: e.g. "KERNEL" or "MACH_KERNEL"',
        )
    return value


def label(value: str | None, partition: str) -> str:
    """A filesystem label that LABEL= can name on every part of the boot chain."""
    if not isinstance(value, str) or not value:
        raise AtvValueError(f"partition {partition} has no label to name it by", hint="give it fs.label, or name partitions by device or uuid")
    if not _LABEL.fullmatch(value) or len(value.encode()) > LABEL_MAX:
        raise AtvValueError(
            f"the label {value!r} of partition {partition} cannot be named with LABEL= on the ATV:"
            f" labels used for booting are 1 to {LABEL_MAX} letters, digits and _ . + - (OpenELEC's init splits"
            " its command line at spaces and expands * ? [)",
            hint="give the partition a label such as \"OSBoot\", or name partitions by device or uuid",
        )
    return value


def kernel_options(value: str) -> tuple[str, ...]:
    """The words of ``options``: kernel parameters the whole chain passes through unchanged."""
    if not isinstance(value, str):
        raise AtvValueError(f"options must be text, not {value!r}", hint='e.g. options = "quiet nosplash"')
    words = tuple(value.split(" ")) if value else ()
    for w in words:
        if not w:
            raise AtvValueError(f"options must be words separated by single spaces: {value!r}", hint='e.g. options = "quiet nosplash"')
        if not _PARAM.fullmatch(w):
            raise AtvValueError(
                f"option {w!r} is not a plain kernel parameter (letters, digits and _ . , : / + @ % = -,"
                " not starting with - . , : / + @ % =)",
                hint="quotes, white space, backslashes and shell or glob characters cannot pass the ATV's boot chain safely",
            )
        name = w.partition("=")[0]
        if name in RESERVED_PARAMS:
            raise AtvValueError(f"option {w!r}: {name}= is set by [boot] itself", hint="remove it from options; [boot] boot/storage and name_by set boot= and disk=")
    return words


def kernel_flags(value: str) -> str:
    """A complete command line: every word a plain parameter, at most 1024 bytes."""
    for w in value.split(" "):
        if not _PARAM.fullmatch(w):
            raise AtvValueError(f"kernel command line word {w!r} is not a plain kernel parameter", hint="check the labels, options and file names")
    n = len(value.encode())
    if n > KERNEL_FLAGS_MAX:
        raise AtvValueError(
            f"the kernel command line is {n} bytes; boot.efi passes at most {KERNEL_FLAGS_MAX}",
            hint="shorten options (or labels)",
        )
    return value
