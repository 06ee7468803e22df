"""Everything an HFS+ partition cannot hold is refused by build.prepare, before the first write
(issue 11, item 3): names equal under HFS+'s rules (decomposed, and on HFS+ case-folded with
Apple's table and ignorable code points dropped), names too long once decomposed, names made
only of ignorable code points, the journal's own names, symlink targets that are not UTF-8, data
that does not fit.

Each must-fail input is built into an image file (exit 2, no file left at the target path) and,
as root, onto a loop device full of random bytes whose content, read back with O_DIRECT, must be
unchanged. The HFSX counterparts of the case and ignorable pairs are built and read back by
pyfshfs and pytsk3: the check refuses what the volume cannot hold, not more.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from blockdev_check import device_digest, filled_loop_device
from click.testing import CliRunner
from hfs_cases import nfc_path
from hfsplus.judges import listing_pyfshfs, listing_pytsk3

from atvdisk.cli.main import main
from atvdisk.fs.hfs_adapter import refuse_equal_names
from atvdisk.fs.hfsplus.errors import HfsDuplicateNameError
from atvdisk.inputs.tree import FileTree, Inline
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import load_layout

DISK = "64M"
NFD = "NFD"


def nfd(text: str) -> str:
    return unicodedata.normalize(NFD, text)


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes = b"x"
    link: str | None = None  # a symlink to this target


@dataclass(frozen=True)
class Case:
    """A partition's inputs: tarballs (each a list of members) and extra layout contents."""

    name: str
    tarballs: tuple[tuple[Member, ...], ...]
    message: str  # regular expression the refusal must match
    contents: tuple[str, ...] = ()  # TOML inline tables added before the tarballs
    journal: bool = False
    hfsx_ok: bool = False  # an HFSX volume holds it (then HFSX is built and read back)
    hfsx_message: str | None = None  # the refusal on HFSX, if it differs
    kinds: tuple[str, ...] = field(default=("hfsplus", "hfsx"))


SAME = r"are the same name on this {vol} volume \(they differ only in Unicode normalization"
CASES = [
    Case("nfc-nfd-files", ((Member("d/café", b"nfc"), Member(nfd("d/café"), b"nfd!")),), SAME),
    Case("nfc-dir-nfd-file", ((Member("é/x"), Member(nfd("é"))),), SAME),
    Case("text-and-tarball", ((Member(nfd("café.txt")),),), SAME,
         contents=('{ kind = "text", path = "café.txt", text = "nfc" }',)),
    Case("two-tarballs", ((Member("Ω/Å"),), (Member(nfd("Ω/Å")),)), SAME),
    Case("case-pair", ((Member("sub/README"), Member("sub/readme")),),
         r"'sub/(README|readme)' and 'sub/(README|readme)' are the same name on this HFS\+ volume \(HFS\+ ignores case",
         hfsx_ok=True),
    Case("case-dirs-across-tarballs", ((Member("Lib/a"),), (Member("lib/b"),)),
         r"'(Lib|lib)' and '(Lib|lib)' are the same name .*HFS\+ ignores case", hfsx_ok=True),
    Case("ignorable-pair", ((Member("ab"), Member("a\u200db")),),
         r"are the same name on this HFS\+ volume \(HFS\+ ignores some characters", hfsx_ok=True),
    Case("ignorable-only-name", ((Member("\u200c\u200d"),),), r"consists only of characters HFS\+ ignores",
         hfsx_ok=True),
    Case("name-too-long-decomposed", ((Member("\u01d6" * 86),),), r"file name too long for HFS\+: 258 UTF-16 units"),
    Case("journal-name", ((Member(".journal"),),), r"'\.journal' in the root directory is reserved for the journal",
         journal=True),
    Case("journal-name-case", ((Member(".Journal_Info_Block"),),),
         r"'\.(journal_info_block|Journal_Info_Block)' and .* are equal on a case-insensitive", journal=True,
         hfsx_ok=True),
    Case("symlink-target-not-utf8", ((Member("link", link="bad-\udcff"),),), r"not valid UTF-8"),
    Case("does-not-fit", ((Member("big", bytes(60 << 20)),),), r"does not fit: .* need a volume of at least"),
]  # fmt: skip


def _tarball(path: Path, members: tuple[Member, ...]) -> None:
    with tarfile.open(path, "w:gz", compresslevel=1, format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape") as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.mtime = 1_300_000_000
            if m.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, m.link
                tar.addfile(info)
            else:
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))


def _layout(tmp: Path, case: Case, kind: str) -> Path:
    contents = list(case.contents)
    for i, members in enumerate(case.tarballs):
        _tarball(tmp / f"t{i}.tar.gz", members)
        contents.append(f'{{ kind = "tarball", source = "{{layout_dir}}/t{i}.tar.gz" }}')
    journal = "true" if case.journal else "false"
    layout = tmp / "layout.toml"
    layout.write_text(
        f"""
[disk]
seed = "refusals"
[[partition]]
name = "First"
type = "linux"
start = "1MiB"
size = "12MiB"
fs = {{ kind = "ext4", label = "First" }}
contents = [ {{ kind = "text", path = "hello", text = "written first" }} ]
[[partition]]
name = "Data"
type = "hfsplus"
size = "rest"
fs = {{ kind = "{kind}", label = "Data", journal = {journal} }}
contents = [ {", ".join(contents)} ]
""",
        encoding="utf-8",
    )
    return layout


def cli(*args: object) -> tuple[int, str]:
    """The CLI in this process (no interpreter start-up): exit code and stderr."""
    r = CliRunner().invoke(main, [str(a) for a in args], env={"SOURCE_DATE_EPOCH": "1300000000"})
    return r.exit_code, r.stderr


def _refusals() -> list:
    out = []
    for c in CASES:
        for kind in c.kinds:
            if kind == "hfsx" and c.hfsx_ok:
                continue
            out.append(pytest.param(c, kind, id=f"{c.name}-{kind}"))
    return out


def _expected(case: Case, kind: str) -> str:
    message = case.hfsx_message if kind == "hfsx" and case.hfsx_message else case.message
    return message.format(vol="HFSX" if kind == "hfsx" else r"HFS\+")


@pytest.mark.parametrize("case, kind", _refusals())
def test_refused_before_an_image_exists(case: Case, kind: str, tmp_path: Path) -> None:
    layout = _layout(tmp_path, case, kind)
    img = tmp_path / "disk.img"
    code, err = cli("build", img, "--size", DISK, "--layout", layout)
    assert code == 2, err
    assert re.search(_expected(case, kind), err), err
    assert "Traceback" not in err
    assert not img.exists() and not list(tmp_path.glob("*disk.img*"))
    code, err = cli("build", img, "--size", DISK, "--layout", layout, "--dry-run")
    assert code == 2 and re.search(_expected(case, kind), err), err


@pytest.fixture(scope="module")
def random_disk(tmp_path_factory):
    """One 64 MiB loop device full of random bytes for the module (refusals write nothing)."""
    with filled_loop_device(tmp_path_factory.mktemp("blockdev"), 64 << 20) as dev:
        yield dev


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root")
@pytest.mark.parametrize("case, kind", _refusals())
def test_refused_on_a_block_device_leaves_it_unchanged(case: Case, kind: str, tmp_path: Path, random_disk: str) -> None:
    layout = _layout(tmp_path, case, kind)
    before = device_digest(random_disk)
    code, err = cli("build", random_disk, "--yes", "--layout", layout)
    assert code == 2, err
    assert re.search(_expected(case, kind), err), err
    assert device_digest(random_disk) == before


@pytest.mark.parametrize("case", [c for c in CASES if c.hfsx_ok], ids=lambda c: c.name)
def test_hfsx_keeps_what_only_hfs_plus_folds(case: Case, tmp_path: Path) -> None:
    layout = _layout(tmp_path, case, "hfsx")
    img = tmp_path / "disk.img"
    code, err = cli("build", img, "--size", DISK, "--layout", layout)
    assert code == 0, err
    part = resolve(load_layout(str(layout)), 64 << 20, 512).partitions[1]
    names = {m.name for t in case.tarballs for m in t}
    got_fshfs, _ = listing_pyfshfs(img, part.offset)
    got_tsk = listing_pytsk3(img, part.offset)
    for listing in (got_fshfs, got_tsk):
        assert {nfc_path(n) for n in names} <= set(listing)


def _tree(*paths: str) -> FileTree:
    t = FileTree(default_mtime=0)
    for p in paths:
        t.add_file(p, Inline(b"x"), 1, origin=f"test {p!r}")
    return t


@pytest.mark.parametrize(
    "paths, hfs_plus, hfsx",
    [
        (("café", nfd("café")), True, True),
        (("a/café/x", nfd("a/café") + "/y"), True, True),  # directories
        (("Straße", "STRASSE"), False, False),  # HFS+ folds case, it does not expand ß
        (("Straße", "straße"), True, False),
        (("Ǆ", "ǆ"), True, False),
        (("ab", "a\u200db"), True, False),
        (("ab", "a\u00adb"), False, False),  # a soft hyphen is not ignorable in Apple's table
        (("x/ab", "y/AB"), False, False),  # different directories
        (("Å", "\u212b"), False, False),  # the Angstrom sign: HFS+ leaves 2000-2FFF alone
        (("Ω", "\u2126"), False, False),  # U+2126 is left alone by HFS+ (2000-2FFF)
        (("한", nfd("한")), True, True),  # Hangul syllable and its jamo
    ],
)
def test_equal_names_by_hfs_rules(paths: tuple[str, str], hfs_plus: bool, hfsx: bool) -> None:
    for case_sensitive, refused in ((False, hfs_plus), (True, hfsx)):
        tree = _tree(*paths)
        if refused:
            with pytest.raises(HfsDuplicateNameError) as info:
                refuse_equal_names(tree, case_sensitive=case_sensitive, where="p")
            assert {info.value.first, info.value.second} == _colliding(paths)
            assert "from test" in str(info.value)
        else:
            refuse_equal_names(tree, case_sensitive=case_sensitive, where="p")


def _colliding(paths: tuple[str, str]) -> set[str]:
    """The two tree paths that collide: the given paths, or their first differing parents."""
    a, b = (p.split("/") for p in paths)
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return {"/".join(a[: i + 1]), "/".join(b[: i + 1])}
    raise AssertionError("no difference")
