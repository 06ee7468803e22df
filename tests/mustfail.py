"""Inputs every build must refuse before its first write (issue 11, item 3): the case list.

tests/test_mustfail_blockdev.py runs every case through ``atvdisk build DEVICE --yes`` onto a loop
device full of random bytes and asserts the exit code, the message, and that the device's bytes,
read back with O_DIRECT (tests/blockdev_check.py), are unchanged; and through ``--dry-run`` on an
image path (same exit code, same message, no file). A refusal that came after the wipe changes
the device: the layouts used here put an ext4 partition FIRST, so a failure in a later
partition's writer is caught too.

How to add a case (anyone: hfs, boot, workflow, ...): append to CASES, in your section, one of

    layout_case("name", TOML_TEXT, r"message regex")                 # a layout that must fail
    tarball_case("name", TAR_BYTES, r"message regex", fs="ext4")     # a tarball in a partition of
                                                                     # fs (ext4|fat32|hfsplus|hfsx)
    MustFail("name", setup, r"message regex", code=2)                # anything else: setup(dir)
                                                                     # writes the inputs and returns
                                                                     # the build's extra arguments

``setup`` gets an empty directory and returns the arguments after ``build DEVICE``. Layouts may
use ``{layout_dir}`` for files put beside them. The device is DISK_BYTES (64 MiB): use
``data_layout(...)`` for a layout that fits (ext4 "First" 12 MiB, then your partition). Every
file of tests/layouts-fail/ is a case as well (CASES_FROM_DIRECTORY), and so is every HFS+ case
of tests/test_hfs_refusals.py.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tarcraft import archive, gnu_long, gz, gz_stream, header, member, pad, pax, pax_record

DISK_BYTES = 64 << 20
TESTS = Path(__file__).resolve().parent

Setup = Callable[[Path], list[str]]


@dataclass(frozen=True)
class MustFail:
    name: str
    setup: Setup
    message: str  # regular expression the error output must match
    code: int | tuple[int, ...] = 2

    def codes(self) -> tuple[int, ...]:
        return self.code if isinstance(self.code, tuple) else (self.code,)


FS_TYPE = {"ext4": "linux", "fat32": "efi", "hfsplus": "hfsplus", "hfsx": "hfsplus"}


def data_layout(fs: str, contents: str, *, fs_options: str = "", name: str = "Data", size: str = "40MiB") -> str:
    """A layout that fits DISK_BYTES: ext4 "First" (written first, so a late failure changes the
    device), then a partition of ``fs`` holding ``contents`` (TOML inline tables, comma-separated)."""
    return f"""
[disk]
seed = "mustfail"
[[partition]]
name = "First"
type = "linux"
start = "1MiB"
size = "12MiB"
fs = {{ kind = "ext4", label = "First" }}
contents = [ {{ kind = "text", path = "hello", text = "written first" }} ]
[[partition]]
name = "{name}"
type = "{FS_TYPE[fs]}"
size = "{size}"
fs = {{ kind = "{fs}"{fs_options} }}
contents = [ {contents} ]
"""


def layout_case(name: str, text: str, message: str, *, code: int | tuple[int, ...] = 2, files: dict[str, bytes] | None = None) -> MustFail:
    def setup(d: Path) -> list[str]:
        for fname, data in (files or {}).items():
            (d / fname).write_bytes(data)
        (d / "layout.toml").write_text(text, encoding="utf-8")
        return ["--layout", str(d / "layout.toml")]

    return MustFail(name, setup, message, code)


def tarball_case(name: str, data: bytes, message: str, *, fs: str = "hfsplus") -> MustFail:
    contents = '{ kind = "tarball", source = "{layout_dir}/input.tar.gz" }'
    return layout_case(f"{name}-{fs}", data_layout(fs, contents), message, files={"input.tar.gz": data})


def _tar_members(*members: bytes) -> bytes:
    return gz(archive(*members))


def _release(d: Path, *, kernel: bytes = b"k" * 100, md5: bytes | None = None, system: bool = True) -> str:
    rel = d / "release"
    rel.mkdir()
    (rel / "KERNEL").write_bytes(kernel)
    if system:
        (rel / "SYSTEM").write_bytes(b"s" * 100)
    if md5 is not None:
        (rel / "KERNEL.md5").write_bytes(md5)
    return str(rel)


def release_case(name: str, message: str, **release) -> MustFail:  # noqa: ANN003
    contents = '{ kind = "file", source = "{openelec}/KERNEL", path = "KERNEL" }'

    def setup(d: Path) -> list[str]:
        (d / "layout.toml").write_text(data_layout("hfsplus", contents))
        return ["--layout", str(d / "layout.toml"), "--openelec", _release(d, **release)]

    return MustFail(name, setup, message)


def _directory_with_fifo(d: Path) -> list[str]:
    src = d / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "ok").write_text("fine")
    os.mkfifo(src / "sub" / "pipe")
    (d / "layout.toml").write_text(data_layout("ext4", '{ kind = "directory", source = "{layout_dir}/tree" }'))
    return ["--layout", str(d / "layout.toml")]


# --------------------------------------------------------------------------------------------
# The cases. Keep one section per area; name cases so that the test id says what is refused.

CASES: list[MustFail] = []

# -- hostile tarballs (safety) ----------------------------------------------------------------
CASES += [
    tarball_case("pax-size-negative", _tar_members(pax(pax_record("size", "-1536")), member("a", b"x" * 10)), r"size='-1536'"),
    tarball_case("pax-size-minus-512", _tar_members(pax(pax_record("size", "-512")), member("a")), r"size='-512'"),
    tarball_case("base256-size-negative", _tar_members(header("a", size=-512), b"x" * 512), r"size -512, outside"),
    tarball_case("pax-mtime-inf", _tar_members(pax(pax_record("mtime", "inf")), member("a", b"x")), r"mtime='inf'"),
    tarball_case("pax-header-300MB", gz_stream(header("././@PaxHeader", size=300 << 20, typeflag=b"x"), (b"9" * 4096, (300 << 20) // 4096)), r"a pax header of 314572800 bytes"),
    tarball_case("long-name-empty", _tar_members(gnu_long(b""), member("a", b"x")), r"member '' is a file with an empty name"),
    tarball_case("name-with-nul", _tar_members(pax(pax_record("path", "a\0b")), member("x", b"1")), r"has a NUL in its name"),
    tarball_case("unknown-type", _tar_members(header("v", size=512, typeflag=b"Z") + pad(b"z")), r"member 'v' has an unsupported type"),
    tarball_case("truncated", _tar_members(member("a", b"x" * 5000))[:-40], r"truncated or corrupt"),
    tarball_case("not-a-tarball", b"hello, world\n" * 100, r"not a readable tar archive"),
    tarball_case("data-after-end", gz(archive(member("a", b"x")) + b"junk" * 200), r"data after the end-of-archive marker"),
    tarball_case("absolute-path", _tar_members(member("/etc/passwd", b"x")), r"has an absolute path"),
    tarball_case("dotdot", _tar_members(member("a/../../x", b"x")), r"contains '\.\.'"),
    tarball_case("device-node", _tar_members(header("dev/sda", typeflag=b"4")), r"is a device node"),
    tarball_case("fifo", _tar_members(header("p", typeflag=b"6")), r"is a FIFO"),
    tarball_case("symlink-outside", _tar_members(header("a/l", typeflag=b"2", linkname="../../x")), r"points outside this partition"),
    tarball_case("hardlink-outside", _tar_members(header("h", typeflag=b"1", linkname="/etc/passwd")), r"is a hard link to '/etc/passwd'"),
    tarball_case("file-named-like-a-dir", _tar_members(member("e/", b"x")), r"whose name ends in '/'"),
]

# -- what FAT32 and ext4 cannot hold, found before mkfs.fat / mke2fs run (safety) -------------
CASES += [
    tarball_case("fat-colon", _tar_members(member("a:b", b"1")), r"FAT names cannot contain ':'", fs="fat32"),
    tarball_case("fat-control", _tar_members(member("a\x01b", b"1")), r"FAT names cannot contain '\\x01'", fs="fat32"),
    tarball_case("fat-trailing-dot", _tar_members(member("a.", b"1")), r"FAT drops a name's trailing dots", fs="fat32"),
    tarball_case("fat-dos-device", _tar_members(member("sub/CON.txt", b"1")), r"'CON.txt' is a DOS device name", fs="fat32"),
    tarball_case("fat-case-pair", _tar_members(member("Foo", b"1"), member("foo", b"2")), r"/Foo and /foo are the same name on FAT", fs="fat32"),
    tarball_case("fat-case-dirs", _tar_members(member("a/b", b"1"), member("A/c", b"2")), r"/(a|A) and /(a|A) are the same name on FAT", fs="fat32"),
    tarball_case("fat-symlink", _tar_members(header("l", typeflag=b"2", linkname="x")), r"FAT cannot hold the symlink /l", fs="fat32"),
    tarball_case("ext4-line-break", _tar_members(member("a\nb", b"1")), r"a name with a line break", fs="ext4"),
    tarball_case("ext4-name-300-bytes", _tar_members(pax(pax_record("path", "x" * 300)), member("x", b"1")), r"a name of 300 bytes \(the most is 255\)", fs="ext4"),
    tarball_case("fat-name-300-bytes", _tar_members(pax(pax_record("path", "x" * 300)), member("x", b"1")), r"a name of 300 bytes", fs="fat32"),
    tarball_case("ext4-symlink-6001", _tar_members(pax(pax_record("linkpath", "a/" * 3000 + "b")), header("l", typeflag=b"2", linkname="x")), r"target of 6001 bytes", fs="ext4"),
    tarball_case("ext4-too-full", _tar_members(member("big", b"\x01" * (40 << 20))), r"its contents need about", fs="ext4"),
]

# -- layouts: names validated as they will be stored (safety) ---------------------------------
_ONE = """
[[partition]]
name = {name}
type = "linux"
start = "1MiB"
size = "12MiB"
fs = {{ kind = "{fs}", label = {label} }}
"""
CASES += [
    layout_case("gpt-name-nul", _ONE.format(name='"A\\u0000B"', fs="ext4", label='"x"'), r"partition\[1\]\.name: a GPT partition name must not contain control characters \(U\+0000\)"),
    layout_case("gpt-name-bell", _ONE.format(name='"a\\u0007b"', fs="ext4", label='"x"'), r"control characters \(U\+0007\)"),
    layout_case("gpt-name-19-emoji", _ONE.format(name='"' + "😀" * 19 + '"', fs="ext4", label='"x"'), r"GPT partition names are 1 to 36 UTF-16 units"),
    layout_case("ext4-label-nul", _ONE.format(name='"P"', fs="ext4", label='"a\\u0000b"'), r"fs\.label: a filesystem label must not contain control characters"),
    layout_case("hfs-label-bell", _ONE.format(name='"P"', fs="hfsplus", label='"a\\u0007b"').replace('"linux"', '"hfsplus"'), r"a filesystem label must not contain control characters \(U\+0007\)"),
    layout_case("swap-label-nul", _ONE.format(name='"P"', fs="swap", label='"a\\u0000b"').replace('"linux"', '"swap"'), r"a filesystem label must not contain control characters"),
    layout_case("symlink-target-nul", data_layout("ext4", '{ kind = "symlink", path = "l", target = "a\\u0000b" }'), r"a symlink target must not contain NUL"),
]

# -- inputs (safety) ----------------------------------------------------------------------------
CASES += [
    release_case("release-md5-mismatch", r"KERNEL does not match KERNEL\.md5", md5=hashlib.md5(b"other").hexdigest().encode() + b"  target/KERNEL\n"),
    release_case("release-md5-huge", r"KERNEL\.md5 is 70000 bytes; an md5 file is a line of text", md5=b"0" * 70000),
    release_case("release-no-system", r"missing SYSTEM", system=False),
    MustFail("directory-with-fifo", _directory_with_fifo, r"pipe is a FIFO"),
    layout_case("file-source-missing", data_layout("ext4", '{ kind = "file", source = "{layout_dir}/nothing", path = "x" }'), r"nothing: no such file"),
    layout_case("remove-nothing", data_layout("ext4", '{ kind = "remove", path = "x" }'), r"cannot remove /x: nothing put it there"),
]


# -- every must-fail layout of tests/layouts-fail/ ---------------------------------------------
def _directives(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(":")
        out[key.strip()] = value.strip()
    return out


def _from_file(path: Path) -> MustFail | None:
    d = _directives(path)

    def setup(_: Path) -> list[str]:
        return ["--layout", str(path)]

    if "disk" in d:
        # Made to fail for a disk of another size or sector size: a case here only if it fails
        # on this device too (its own message, or "too small"), which must be before any write.
        from atvdisk.errors import LayoutError
        from atvdisk.layout.resolver import resolve
        from atvdisk.layout.schema import load_layout

        try:
            resolve(load_layout(str(path)), DISK_BYTES, 512)
        except LayoutError:
            return MustFail(f"layouts-fail/{path.stem}", setup, r"error:", code=(2, 3))
        return None
    return MustFail(f"layouts-fail/{path.stem}", setup, re.escape(d["expect"]))


CASES_FROM_DIRECTORY = [c for c in (_from_file(p) for p in sorted((TESTS / "layouts-fail").glob("*.toml"))) if c is not None]


# -- the HFS+ refusals of tests/test_hfs_refusals.py (hfs) ------------------------------------
def _hfs_cases() -> list[MustFail]:
    import test_hfs_refusals as hfs

    out = []
    for param in hfs._refusals():
        case, kind = param.values

        def setup(d: Path, case=case, kind=kind) -> list[str]:  # noqa: ANN001
            return ["--layout", str(hfs._layout(d, case, kind))]

        out.append(MustFail(f"hfs/{case.name}-{kind}", setup, hfs._expected(case, kind)))
    return out


def all_cases() -> list[MustFail]:
    return CASES + CASES_FROM_DIRECTORY + _hfs_cases()
