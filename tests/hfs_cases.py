"""HFS+ torture cases, shared by the pure-Python tests (pyfshfs, pytsk3, our reader) and the
Linux-kernel test under qemu.

Each :class:`HfsCase` has a name, the volume options, a region size, a ``populate`` function
that fills a source directory, and parameters (file counts, big-file size...) that a caller can
shrink: ``case.params`` holds the defaults, ``case.with_params(count=500)`` a smaller variant.

Typical use::

    for case in CASES:
        src = tmp / case.name
        case.populate(src)                       # or case.with_params(...).populate(src)
        image = tmp / f"{case.name}.img"
        layout = build_case_image(case, src, image)
        expected = expected_listing(src)         # {path_nfc: Expected}

:data:`FAIL_CASES` are trees the layout step must refuse before writing anything:
``case.error`` is the exception class and ``case.message`` a regular expression its message
must match.

``expected_listing`` describes the source as a correct volume must list it: paths in NFC,
kind, size, permission bits, uid, gid, sha256 of file contents, symlink target.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from atvdisk.fs.hfsplus.errors import (
    HfsDuplicateNameError,
    HfsNameError,
    HfsSpaceError,
    HfsUnsupportedError,
)
from atvdisk.fs.hfsplus.layout import VolumeLayout, VolumeOptions, plan_volume
from atvdisk.fs.hfsplus.tree import HfsTree
from atvdisk.fs.hfsplus.writer import write_volume
from atvdisk.fs.region import Region

MIB = 1024 * 1024
GIB = 1024 * MIB
CREATE_TIME = 1_700_000_000  # 2023-11-14, fixed for reproducible images
VOLUME_ID = 0x0123456789ABCDEF
IS_ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class Expected:
    path: str
    kind: str  # "dir" | "file" | "symlink"
    size: int
    mode: int  # permission bits (& 0o7777)
    uid: int
    gid: int
    sha256: str | None
    target: str | None


@dataclass(frozen=True)
class HfsCase:
    name: str
    options: VolumeOptions
    fill: Callable[..., None]
    region: Callable[..., int]
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    slow: bool = False

    def with_params(self, **kw: Any) -> HfsCase:
        unknown = set(kw) - set(self.params)
        if unknown:
            raise KeyError(f"{self.name}: unknown parameters {sorted(unknown)}")
        return replace(self, params={**self.params, **kw})

    def populate(self, src: Path) -> None:
        src = Path(src)
        src.mkdir(parents=True, exist_ok=True)
        self.fill(src, **self.params)

    @property
    def region_size(self) -> int:
        return self.region(**self.params)


@dataclass(frozen=True)
class FailCase:
    name: str
    options: VolumeOptions
    fill: Callable[[Path], None]
    region_size: int
    error: type[Exception]
    message: str  # regular expression
    at_tree: bool = False  # True: building the tree (not the layout) raises

    def populate(self, src: Path) -> None:
        src = Path(src)
        src.mkdir(parents=True, exist_ok=True)
        self.fill(src)


def _opts(**kw: Any) -> VolumeOptions:
    return VolumeOptions(create_time=CREATE_TIME, volume_id=VOLUME_ID, **kw)


def _rand(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _write(p: Path, data: bytes, mode: int | None = None) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    if mode is not None:
        os.chmod(p, mode)


# -- fills ------------------------------------------------------------------------------------


def fill_empty(src: Path) -> None:
    pass


def fill_small_files(src: Path) -> None:
    for n in (0, 1, 4095, 4096, 4097):
        _write(src / f"size-{n}.bin", _rand(n, n))
    _write(src / "dir" / "nested" / "hello.txt", b"hello, world\n")


def fill_large_sparse(src: Path, size: int = GIB + 12345) -> None:
    """One sparse file: holes with data at the start, in the middle and at the end."""
    p = src / "large.bin"
    with open(p, "wb") as f:
        f.truncate(size)
        for i, off in enumerate((0, size // 2 - 100_000, size - 70_000)):
            f.seek(off)
            f.write(_rand(100 + i, 70_000))
    _write(src / "small.txt", b"next to a large file\n")


def fill_many_files(src: Path, count: int = 10_000, per_dir: int = 100) -> None:
    """``count`` small files in nested folders (a multi-level catalog B-tree)."""
    for i in range(count):
        d = src / f"group-{i // (per_dir * 10):03d}" / f"dir-{(i // per_dir) % 10:02d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"file-{i:05d}-with-a-longer-name.txt").write_bytes(b"%d\n" % i if i % 7 else b"")


_NAMES_NFC = [
    "café.txt",  # precomposed é
    "Ångström Å",
    "naïve résumé",
    "日本語のファイル名",  # CJK
    "中文文件",
    "한국어 파일",  # Hangul syllables: stored as conjoining jamo
    "emoji 😀 and 𝄞",  # outside the BMP (surrogate pairs)
    "ﬁ ligature",  # compatibility character, kept as is
    "a\u200db zero-width joiner",  # ignorable on HFS+
    "x" * 255,  # 255 units
    "Ω ohm sign \u2126",  # U+2126 is in the 2000-2FFF range HFS+ leaves alone
    "dash\u2013and\u2014quotes\u201c\u201d",
    "colon:name",
]


# Linux allows 255 bytes per name: these fit in NFC only. U+01D6 (2 bytes) decomposes to
# three UTF-16 units, so 85 of them make exactly 255 units.
_LONG_NFC = ["\u01d6" * 85, "é" * 100 + "x" * 55]


def fill_unicode(src: Path, non_bmp: bool = True) -> None:
    """``non_bmp=False`` leaves out names with characters outside the BMP: Linux's hfsplus
    driver converts names one UTF-16 unit at a time, so it lists a surrogate pair as ``??`` and
    cannot look such a file up (the volume is right; pyfshfs and pytsk3 read those names)."""
    pre = src / "precomposed"
    dec = src / "decomposed"
    pre.mkdir(parents=True)
    dec.mkdir(parents=True)
    for i, n in enumerate(_NAMES_NFC):
        if not non_bmp and any(ord(c) > 0xFFFF for c in n):
            continue
        _write(pre / n, f"{i} pre\n".encode())
        _write(dec / unicodedata.normalize("NFD", n), f"{i} dec\n".encode())
    for i, n in enumerate(_LONG_NFC):
        _write(pre / n, f"long {i}\n".encode())
    (src / "ünïcödé dir").mkdir()
    _write(src / "ünïcödé dir" / "inside", b"x")


def fill_case_variants(src: Path) -> None:
    for n in ("a", "A", "Bob", "BOB", "bob", "straße", "STRASSE", "Straße"):
        _write(src / n, n.encode() + b"\n")
    (src / "Dir").mkdir()
    (src / "dir").mkdir()
    _write(src / "Dir" / "x", b"upper")
    _write(src / "dir" / "x", b"lower")
    _write(src / "a\u200db", b"with an ignorable")
    _write(src / "ab", b"without")


def fill_tree(src: Path) -> None:
    """A bit of everything: nested dirs, modes, owners, symlinks."""
    _write(src / "bin" / "tool", _rand(1, 10_000), 0o755)
    _write(src / "bin" / "setuid", _rand(2, 300), 0o4755)
    _write(src / "etc" / "secret", b"s3cret\n", 0o600)
    _write(src / "etc" / "conf", b"key=value\n", 0o644)
    (src / "tmp").mkdir()
    os.chmod(src / "tmp", 0o1777)
    (src / "empty-dir").mkdir()
    os.symlink("bin/tool", src / "rel-link")
    os.symlink("/etc/conf", src / "abs-link")
    os.symlink("../nowhere/ünï", src / "etc" / "dangling")
    os.symlink("d/" * 500 + "end", src / "long-link")
    os.symlink("tmp", src / "dir-link")
    if IS_ROOT:
        os.chown(src / "bin" / "tool", 1000, 1000)
        os.chown(src / "etc" / "secret", 0, 42)
        os.lchown(src / "rel-link", 65534, 65534)
        os.chown(src / "tmp", 2**31, 7)
    for t, p in enumerate(sorted(src.rglob("*"))):
        os.utime(p, (1_600_000_000 + t, 1_500_000_000 + t * 3), follow_symlinks=False)


def fill_fragmented(src: Path, blocks: int = 2000) -> None:
    _write(src / "fragmented.bin", _rand(7, blocks * 4096 - 123))
    _write(src / "also.bin", _rand(8, 20 * 4096))
    _write(src / "tiny", b"t")


def fill_little(src: Path) -> None:
    _write(src / "one", b"1" * 5000)
    _write(src / "d" / "two", _rand(3, 70_000))
    os.symlink("one", src / "link")


# -- cases ------------------------------------------------------------------------------------

CASES: list[HfsCase] = [
    HfsCase("empty", _opts(volume_name="Empty"), fill_empty, lambda: 8 * MIB, description="an empty volume"),
    HfsCase("small-files", _opts(volume_name="Small"), fill_small_files, lambda: 16 * MIB,
            description="0, 1, 4095, 4096 and 4097-byte files"),
    HfsCase("large-sparse", _opts(volume_name="Large"), fill_large_sparse, lambda size: (size // MIB + 80) * MIB,
            params={"size": GIB + 12345}, slow=True,
            description="one sparse >= 1 GB file (8 KiB catalog nodes: volume >= 1 GiB)"),
    HfsCase("many-files", _opts(volume_name="Many"), fill_many_files,
            lambda count, per_dir: 32 * MIB + count * 4096 * 2, params={"count": 10_000, "per_dir": 100},
            slow=True, description="10,000 files in nested folders: multi-level catalog B-tree"),
    HfsCase("unicode", _opts(volume_name="Ünicode ☃"), fill_unicode, lambda non_bmp: 16 * MIB,
            params={"non_bmp": True},
            description="precomposed/decomposed accents, CJK, Hangul, non-BMP, ignorables, 255-unit names"),
    HfsCase("hfsx-case", _opts(volume_name="CaseSensitive", case_sensitive=True), fill_case_variants,
            lambda: 16 * MIB, description="a/A, Bob/BOB/bob... on case-sensitive HFSX"),
    HfsCase("hfsx-unicode", _opts(volume_name="X", case_sensitive=True), fill_unicode,
            lambda non_bmp: 16 * MIB, params={"non_bmp": True}, description="the unicode tree on HFSX"),
    HfsCase("tree", _opts(volume_name="Tree"), fill_tree, lambda: 16 * MIB,
            description="modes (setuid, sticky), owners, symlinks"),
    HfsCase("journaled", _opts(volume_name="Journaled", journaled=True), fill_tree, lambda: 64 * MIB,
            description="the tree on a journaled volume"),
    HfsCase("journaled-hfsx", _opts(volume_name="JX", journaled=True, case_sensitive=True),
            fill_case_variants, lambda: 200 * MIB, description="journaled HFSX (8 MiB journal)"),
    HfsCase("fragmented", _opts(volume_name="Frag", fragment_blocks=1), fill_fragmented,
            lambda blocks: 8 * MIB + blocks * 8192 + 400 * 1024, params={"blocks": 2000},
            description="files forced into >8 extents: overflow records, multi-level extents B-tree"),
    HfsCase("block-512", _opts(volume_name="B512", block_size=512), fill_little, lambda: 4 * MIB,
            description="512-byte allocation blocks"),
    HfsCase("block-1024-odd", _opts(volume_name="B1K", block_size=1024), fill_little,
            lambda: 4 * MIB + 1536, description="1 KiB blocks, size not a multiple of the block size"),
    HfsCase("block-64k", _opts(volume_name="B64K", block_size=65536), fill_little, lambda: 32 * MIB,
            description="64 KiB allocation blocks"),
    HfsCase("map-nodes", _opts(volume_name="Map", catalog_min_size=130 * MIB), fill_little,
            lambda: 200 * MIB, description="a catalog file large enough to need B-tree map nodes"),
]  # fmt: skip

CASES_BY_NAME = {c.name: c for c in CASES}


def _fill_too_big(src: Path) -> None:
    _write(src / "big", _rand(1, 3 * MIB))
    _write(src / "big2", _rand(2, 3 * MIB))


def _fill_case_dup(src: Path) -> None:
    _write(src / "sub" / "README", b"1")
    _write(src / "sub" / "readme", b"2")


def _fill_ignorable_dup(src: Path) -> None:
    _write(src / "ab", b"1")
    _write(src / "a\u200db", b"2")


def _fill_too_long(src: Path) -> None:
    _write(src / ("\u01d6" * 86), b"1")  # 172 bytes, 258 UTF-16 units once decomposed


def _fill_bad_utf8(src: Path) -> None:
    with open(os.path.join(os.fsencode(src), b"bad-\xff-name"), "wb") as f:
        f.write(b"x")


def _fill_fifo(src: Path) -> None:
    (src / "d").mkdir()
    os.mkfifo(src / "d" / "pipe")


def _fill_device(src: Path) -> None:
    os.mknod(src / "null", 0o600 | 0o020000, os.makedev(1, 3))


def _fill_nfc_nfd_same_dir(src: Path) -> None:
    _write(src / "café", b"1")
    _write(src / unicodedata.normalize("NFD", "café"), b"2")


FAIL_CASES: list[FailCase] = [
    FailCase("too-small", _opts(), _fill_too_big, 4 * MIB, HfsSpaceError,
             r"need a volume of at least \d+ bytes .*, \d+ bytes more than the 4194304-byte region"),
    FailCase("duplicate-case", _opts(), _fill_case_dup, 8 * MIB, HfsDuplicateNameError,
             r"names '(README|readme)' and '(README|readme)' in directory 'sub' are equal"),
    FailCase("duplicate-ignorable", _opts(), _fill_ignorable_dup, 8 * MIB, HfsDuplicateNameError,
             r"names .* in directory '/' are equal on a case-insensitive HFS\+ volume"),
    FailCase("name-too-long", _opts(), _fill_too_long, 8 * MIB, HfsNameError,
             r"too long.*258 UTF-16 units", at_tree=True),
    FailCase("bad-utf8", _opts(), _fill_bad_utf8, 8 * MIB, HfsNameError, r"UTF-8", at_tree=True),
    FailCase("fifo", _opts(), _fill_fifo, 8 * MIB, HfsUnsupportedError, r"d/pipe: a FIFO cannot be stored",
             at_tree=True),
    FailCase("device-node", _opts(), _fill_device, 8 * MIB, HfsUnsupportedError,
             r"null: a character device cannot be stored", at_tree=True),
    FailCase("nfc-nfd-same-directory", _opts(), _fill_nfc_nfd_same_dir, 8 * MIB, HfsDuplicateNameError,
             r"same name on HFS\+", at_tree=True),
]  # fmt: skip


# -- building and expectations ----------------------------------------------------------------


def build_case_image(case: HfsCase, src: Path, image: Path, *, offset: int = 0) -> VolumeLayout:
    """Write ``case``'s volume holding ``src`` into a new sparse ``image`` (at ``offset``)."""
    tree = HfsTree.from_host_dir(src)
    with Region.open(image, offset, case.region_size, create=True) as region:
        return write_volume(tree, case.options, region)


def minimum_region(tree: HfsTree, options: VolumeOptions) -> int:
    """The smallest region (a multiple of 512 bytes) plan_volume lays ``tree`` out on, found
    from the shortfall its refusals report."""
    size = 512
    while True:
        try:
            plan_volume(tree, options, size)
        except HfsSpaceError as e:
            if e.shortfall <= 0:
                raise AssertionError(f"refused {size} bytes with a shortfall of {e.shortfall}") from e
            size += -(-e.shortfall // 512) * 512
            continue
        break
    return size


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def nfc_path(p: str) -> str:
    return unicodedata.normalize("NFC", p)


def expected_listing(src: Path, *, owner: tuple[int, int] | None = None) -> dict[str, Expected]:
    """What a correct volume built from ``src`` lists (keys: NFC paths relative to the root)."""
    out: dict[str, Expected] = {}
    src = Path(src)
    for dirpath, dirnames, filenames in os.walk(src):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = nfc_path(p.relative_to(src).as_posix())
            uid, gid = owner if owner else (st.st_uid, st.st_gid)
            mode = st.st_mode & 0o7777
            if os.path.islink(p):
                t = os.readlink(p)
                out[rel] = Expected(rel, "symlink", len(t.encode()), mode, uid, gid, None, t)
            elif p.is_dir():
                out[rel] = Expected(rel, "dir", 0, mode, uid, gid, None, None)
            else:
                out[rel] = Expected(rel, "file", st.st_size, mode, uid, gid, _sha256(p), None)
    return out


def journal_entries(case: HfsCase) -> set[str]:
    """Entries a volume of ``case`` holds beyond the source tree."""
    return {".journal", ".journal_info_block"} if case.options.journaled else set()


def message_matches(case: FailCase, text: str) -> bool:
    return re.search(case.message, text) is not None
