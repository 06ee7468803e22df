"""Proof data for the HFS+ name rules (atvdisk/fs/hfsplus/unicode.py), for judges we did not write.

:func:`unicode_proof_volumes` returns two volume descriptions, "UNIPROOF" (case-insensitive
HFS+) and "UNIPROOFX" (case-sensitive HFSX). Each lists its files and, per mount phase, the
lookups a guest must make and the listings it must take. Every file has a unique owner id
(``uid``); files with data hold exactly ``b"<uid>\\n"``, so a lookup's answer says *which* file
the judge found. Build them with :func:`build_image` (our HFS+ writer); the kernel test
(tests/kernel/test_hfs_unicode_kernel.py) and the pyfshfs test (tests/test_hfs_unicode.py) use
the same volumes.

Why this proves the case-folding table and the decomposition
==============================================================
Only equality and order of folded names are observable (a lookup never shows a folded value),
and they are all that matters for interoperability. Let R be one stored unit per fold class of
the BMP (every storable unit except surrogates, U+2400 and ':', which the stored form never
holds, and U+FFFE/U+FFFF, refused).

* ``ord/`` holds ``_`` and ``_<r>`` for every r in R (51,015 empty files, one
  directory). The writer stores them in our order; a judge finds a name by binary search with
  *its own* comparison. If every one of them is found (``stat`` of every entry, listed by
  readdir, returns that entry's own uid), the judge's order agrees with ours on all of them:
  a binary search tree whose every key is found from the root is ordered, and two names the
  judge thinks equal would give one of them the other's uid. Mounted with ``nodecompose`` the
  names reach the kernel raw, so this proves, for all of R: no two of our classes merge in the
  kernel's table, and the kernel orders the classes exactly as we do (including end of string
  lowest and NUL after everything).
* ``fold/`` holds one file per class with more than one member (our representative) and the
  queries look up every other member (and every ignorable, alone, first and in the middle):
  each must find its representative. Together with ``ord/`` this is the whole table.
* ``decomp/``: every BMP character we decompose (and all 11,172 Hangul syllables) appears in a
  batch name ``Dnnnn__c1_c2...`` (``_`` keeps the marks of neighbours apart); the query is the
  precomposed name, the file was stored decomposed; a second query spells it decomposed.
  ``stable/``: every BMP character we do *not* decompose (``:`` and U+2400 included), in
  batches that must be found as they are, i.e. that the judge does not decompose either.
* ``special/``: ``:``/``/`` and U+2400/NUL, case and decomposition together, canonical order.
  ``nonbmp/``: names outside the BMP.
* UNIPROOFX's ``cs/`` holds every member of every multi-member class and the ignorables as
  distinct names: listed and looked up, each must be its own file (no folding, no ignorables).

Expectations: :attr:`Query.expect` / :attr:`Listing.expect` are what TN1150 and our rules say
(Mac OS X 10.3+). Debian 12's kernel (6.1) is known to differ in a documented set of cases
(:data:`KERNEL_DECOMPOSES`, :data:`KERNEL_DIFFERS`, no canonical reordering, no characters
outside the BMP); :attr:`Query.kernel` / :attr:`Listing.kernel` say what it must answer, so a
kernel that changes shows up too. :attr:`Query.pyfshfs` is False where libfshfs cannot judge
(it folds with current Unicode case folding, has no ignorables, decomposes only two Hangul
syllables and does not reorder marks); where it is True, pyfshfs must answer ``expect``.

Guest-side protocol (busybox sh; one boot can serve both volumes)
=================================================================
For each volume V on device DEV and each phase P of ``V.phases`` (in order)::

    mount -t hfsplus -o <P.mount_options> DEV /mnt/u        # e.g. "ro" or "ro,nodecompose"
    for each listing L of P (index k):
        (cd "/mnt/u/<L.directory>" && stat -c %u -- *) > V/P/list-k.out     # stderr ignored
    cd /mnt/u && xargs -0 -a "$JOB/<V>/<P>.queries" \\
        sh -c 'for q do IFS= read -r got < "$q" 2>/dev/null || got=-; echo "$got"; done' sh \\
        > V/P/queries.out
    umount /mnt/u

``<V>/<P>.queries`` holds the phase's query paths (UTF-8, relative to the mount point), each
ended by NUL (:func:`guest_job_files`). ``queries.out`` has one line per query, in order: the
line the file holds (its uid) or ``-`` when the lookup failed. A listing's output is one uid per
entry found (stat of a name the judge cannot look up prints nothing). :func:`guest_script`
renders exactly this; :func:`check_guest_results` compares the outputs with the expectations
(``"kernel"`` or ``"expect"``) and returns the mismatches (empty: proven). The kernel's hfsplus
needs the ``nls_utf8`` module loaded for its default ``nls=utf8``.

Cost: 51,653 ``stat`` calls and 2,078 lookups: about 20 s of guest time under TCG (the cold
``stat`` of ``ord/`` dominates), plus the boot. Building both images takes about 7 s; they are
sparse (24 MB used).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from atvdisk.fs.hfsplus.unicode import (
    IGNORABLE_UNITS,
    UCD,
    case_fold_unit,
    hfs_decompose,
    hfs_name_units,
)

#: Prefix of every name in ord/ and fold/ (never composes with a following mark).
P = "_"
UID_BASE = 10_000

# ---------------------------------------------------------------------------------------------
# Documented differences of Linux's hfsplus (6.1; Apple's Unicode 2.1-era decomposition table).

#: Units we store as they are but the kernel decomposes when it converts a name it looks up:
#: Unicode 2.1-era decompositions (Cyrillic letters then equivalent to Latin ones, U+0310, Indic
#: nukta letters, Thai/Lao AM, Tibetan vocalic RR/LL) that Unicode 3.2 does not have.
KERNEL_DECOMPOSES: dict[int, tuple[int, ...]] = {
    0x0310: (0x0306, 0x0307),
    0x04D4: (0x00C6,), 0x04D5: (0x00E6,), 0x04D8: (0x018F,), 0x04D9: (0x0259,),
    0x04E0: (0x01B7,), 0x04E1: (0x0292,), 0x04E8: (0x019F,), 0x04E9: (0x0275,),
    0x09B0: (0x09AC, 0x09BC), 0x0A5C: (0x0A21, 0x0A3C), 0x0B5F: (0x0B2F, 0x0B3C),
    0x0E33: (0x0E4D, 0x0E32), 0x0EB3: (0x0ECD, 0x0EB2),
    0x0F77: (0x0FB2, 0x0F80, 0x0F71), 0x0F79: (0x0FB3, 0x0F80, 0x0F71),
}

#: Characters whose kernel decomposition differs from Unicode 3.2's, by group.
KERNEL_DIFFERS_GROUPS: dict[str, frozenset[int]] = {
    "Unicode 3.2 decompositions missing from the kernel's table": frozenset(
        {0x01F8, 0x01F9, 0x0218, 0x0219, 0x021A, 0x021B, 0x021E, 0x021F}
        | set(range(0x0226, 0x0234))
        | {0x0400, 0x040D, 0x0450, 0x045D, 0x04EC, 0x04ED}
        | {0x0622, 0x0623, 0x0624, 0x0625, 0x0626, 0x06C0, 0x06C2, 0x06D3}
        | {0x0A33, 0x0A36, 0x0DDA, 0x0DDC, 0x0DDD, 0x0DDE, 0x1026, 0xFB1D}
    ),
    "Cyrillic schwa and barred o with diaeresis decomposed through Latin letters": frozenset(
        {0x04DA, 0x04DB, 0x04EA, 0x04EB}
    ),
    "Greek tonos decomposed to U+030D instead of U+0301": frozenset(
        {0x0344, 0x0385, 0x0386, 0x0388, 0x0389, 0x038A, 0x038C, 0x038E, 0x038F, 0x0390}
        | {0x03AC, 0x03AD, 0x03AE, 0x03AF, 0x03B0, 0x03CC, 0x03CD, 0x03CE, 0x03D3}
    ),
    "Unicode 2.1 order of the marks (Tibetan vowels, Greek ypogegrammeni)": frozenset(
        {0x0F73, 0x0F75, 0x0F81}
        | {0x1F80, 0x1F81, 0x1F88, 0x1F89, 0x1F90, 0x1F91, 0x1F98, 0x1F99}
        | {0x1FA0, 0x1FA1, 0x1FA8, 0x1FA9, 0x1FB2, 0x1FB4, 0x1FB7, 0x1FC2, 0x1FC4, 0x1FC7}
        | {0x1FF2, 0x1FF7}
    ),
    "four-unit decompositions the kernel's table cannot hold": frozenset(
        set(range(0x1F82, 0x1F88)) | set(range(0x1F8A, 0x1F90)) | set(range(0x1F92, 0x1F98))
        | set(range(0x1F9A, 0x1FA0)) | set(range(0x1FA2, 0x1FA8)) | set(range(0x1FAA, 0x1FB0))
    ),
    "U+1FF4 decomposed with omicron (a typo in the kernel's table)": frozenset({0x1FF4}),
}
KERNEL_DIFFERS: frozenset[int] = frozenset().union(*KERNEL_DIFFERS_GROUPS.values())


# ---------------------------------------------------------------------------------------------
# Data model


@dataclass(frozen=True)
class ProofFile:
    path: str  # POSIX path on the volume, "/"-separated, relative
    uid: int  # unique per volume: identifies the file
    with_data: bool  # True: holds b"<uid>\n"; False: empty

    @property
    def data(self) -> bytes:
        return f"{self.uid}\n".encode() if self.with_data else b""


@dataclass(frozen=True)
class Query:
    path: str  # what the judge is asked to open (UTF-8 on Linux), relative to the volume root
    expect: int | None  # uid of the file TN1150 / our rules find; None: no such file
    kernel: int | None  # what Linux 6.1 answers (differs from expect only where documented)
    pyfshfs: bool  # whether libfshfs can judge this lookup
    why: str


@dataclass(frozen=True)
class Listing:
    directory: str  # every entry of it is looked up by the name readdir gives
    expect: tuple[int, ...]  # sorted uids found per TN1150
    kernel: tuple[int, ...]  # sorted uids Linux 6.1 finds


@dataclass(frozen=True)
class Phase:
    name: str
    mount_options: str
    listings: tuple[Listing, ...]
    queries: tuple[Query, ...]


@dataclass(frozen=True)
class ProofVolume:
    label: str
    case_sensitive: bool
    size: int  # bytes
    files: tuple[ProofFile, ...]
    phases: tuple[Phase, ...]

    def file(self, path: str) -> ProofFile:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)


# ---------------------------------------------------------------------------------------------
# Helpers


def _posix(unit: int) -> str:
    """The POSIX spelling of a stored unit (what readdir shows and lookups take)."""
    return {0x002F: ":", 0x0000: "\u2400"}.get(unit, chr(unit))


def _storable(unit: int) -> bool:
    """Units a name written by us (or by Mac OS X) can hold as themselves."""
    if 0xD800 <= unit <= 0xDFFF or unit in (0x003A, 0x2400, 0xFFFE, 0xFFFF):
        return False
    ch = _posix(unit)
    return hfs_decompose(ch) == ch


def _ccc(ch: str) -> int:
    return 0 if ord(ch) > 0xFFFF else UCD.combining(ch)


def _batches(chars: Iterable[str], prefix_fmt: str, *, sep_all: bool) -> list[tuple[str, list[str]]]:
    """Pack characters into names ``<prefix><chars>`` of at most 255 UTF-8 bytes and 255 units
    once stored. Marks (class != 0) always get a ``_`` before them so that neither we nor the
    judge reorder them; ``sep_all`` separates every character (precomposed queries)."""
    out: list[tuple[str, list[str]]] = []
    cur: list[str] = []
    body = ""

    def flush() -> None:
        nonlocal cur, body
        if cur:
            out.append((prefix_fmt.format(len(out) + 1) + body, cur))
        cur, body = [], ""

    for ch in chars:
        piece = ("_" + ch) if (sep_all or _ccc(ch) != 0 or any(_ccc(c) for c in hfs_decompose(ch))) else ch
        name = prefix_fmt.format(len(out) + 1) + body + piece
        if len(name.encode()) > 255 or hfs_name_units(name) > 255:
            flush()
        cur.append(ch)
        body += piece
    flush()
    return out


def _uids(files: Iterable[ProofFile]) -> tuple[int, ...]:
    return tuple(sorted(f.uid for f in files))


class _Builder:
    def __init__(self) -> None:
        self.files: list[ProofFile] = []
        self.by_path: dict[str, ProofFile] = {}

    def add(self, path: str, *, with_data: bool = True) -> ProofFile:
        f = ProofFile(path, UID_BASE + len(self.files), with_data)
        assert path not in self.by_path, path
        self.files.append(f)
        self.by_path[path] = f
        return f


# ---------------------------------------------------------------------------------------------
# The fold classes


@lru_cache(maxsize=1)
def fold_classes() -> dict[int, tuple[int, ...]]:
    """Folded value -> the storable BMP units with that value (ignorables: value 0)."""
    classes: dict[int, list[int]] = {}
    for u in range(0x10000):
        if _storable(u) or u in IGNORABLE_UNITS:
            classes.setdefault(case_fold_unit(u), []).append(u)
    return {v: tuple(us) for v, us in classes.items()}


def _representative(value: int, members: tuple[int, ...]) -> int:
    return value if value in members else members[0]


def _casefold_agrees(a: int, b: int) -> bool:
    """Whether current Unicode case folding (what libfshfs implements) also equates a and b."""
    return chr(a).casefold() == chr(b).casefold() and len(chr(a).casefold()) == 1


# ---------------------------------------------------------------------------------------------
# UNIPROOF (case-insensitive HFS+)


def _hfsplus_volume() -> ProofVolume:
    b = _Builder()
    classes = fold_classes()

    # ord/: one name per fold class, empty files.
    ord_files = [b.add(f"ord/{P}", with_data=False)]
    reps: dict[int, int] = {}
    for value, members in sorted(classes.items()):
        if value == 0:
            continue
        r = _representative(value, members)
        reps[value] = r
        ord_files.append(b.add(f"ord/{P}{_posix(r)}", with_data=False))
    ord_all = _uids(ord_files)

    # fold/: one file per multi-member class ("F<n>_<representative>"); the queries look up every
    # other member with the same prefix. The ASCII prefixes keep judges' B-tree walks apart.
    fold_q: list[Query] = []
    bare = b.add("fold/F0000_")
    by_rep: dict[int, ProofFile] = {}
    for value, members in sorted(classes.items()):
        if value == 0 or len(members) < 2:
            continue
        r = reps[value]
        rf = by_rep[r] = b.add(f"fold/F{len(by_rep) + 1:04d}_{_posix(r)}")
        prefix = rf.path[: rf.path.index("_") + 1]
        for m in members:
            if m != r:
                fold_q.append(Query(f"{prefix}{_posix(m)}", rf.uid, rf.uid, _casefold_agrees(m, r),
                                    f"U+{m:04X} folds with U+{r:04X}"))
    a_file = by_rep[ord("a")]
    a_pre = a_file.path[:-1]
    for i in sorted(classes[0]):
        c = chr(i)
        fold_q.append(Query(f"fold/F0000_{c}", bare.uid, bare.uid, False, f"ignorable U+{i:04X} at the end"))
        fold_q.append(Query(f"fold/{c}F0000_", bare.uid, bare.uid, False, f"ignorable U+{i:04X} first"))
        fold_q.append(Query(f"{a_pre}{c}A{c}", a_file.uid, a_file.uid, False, f"ignorable U+{i:04X} around"))
    for m, r, why in ((0x03C2, 0x03C3, "final sigma is not sigma"), (0x00B5, 0x03BC, "micro sign is not mu"),
                      (0x017F, 0x0073, "long s is not s"), (0x0131, 0x0069, "dotless i is not i"),
                      (0x0130, 0x0069, "I with dot above is not i"), (0x24B6, 0x0061, "circled A is not a")):
        pre = by_rep[r].path[: by_rep[r].path.index("_") + 1]
        fold_q.append(Query(f"{pre}{chr(m)}", None, None, not _casefold_agrees(m, r),
                            f"U+{m:04X}: {why} for Apple"))

    # decomp/: every BMP character we decompose, precomposed in the query.
    decomposable = [chr(c) for c in range(0x10000)
                    if not 0xD800 <= c <= 0xDFFF and not 0xAC00 <= c <= 0xD7A3
                    and hfs_decompose(chr(c)) != chr(c)]
    dec_q: list[Query] = []
    plain = [c for c in decomposable if ord(c) not in KERNEL_DIFFERS]
    for name, chars in _batches(plain, "D{:04d}_", sep_all=True):
        f = b.add(f"decomp/{name}")
        dec_q.append(Query(f.path, f.uid, f.uid, True, "precomposed " + " ".join(f"U+{ord(c):04X}" for c in chars)))
        nfd = "decomp/" + hfs_decompose(name)
        kern = None if set(map(ord, nfd)) & KERNEL_DECOMPOSES.keys() else f.uid
        dec_q.append(Query(nfd, f.uid, kern, True, "the same, decomposed"))
    for n, c in enumerate(sorted((c for c in decomposable if ord(c) in KERNEL_DIFFERS), key=ord), 1):
        f = b.add(f"decomp/X{n:04d}_{c}")
        group = next(g for g, s in KERNEL_DIFFERS_GROUPS.items() if ord(c) in s)
        dec_q.append(Query(f.path, f.uid, None, True, f"U+{ord(c):04X}: kernel: {group}"))
        nfd = "decomp/" + hfs_decompose(f.path[7:])
        kern = None if set(map(ord, nfd)) & KERNEL_DECOMPOSES.keys() else f.uid
        dec_q.append(Query(nfd, f.uid, kern, True, f"U+{ord(c):04X} decomposed as TN1150 says"))
    hangul = [chr(c) for c in range(0xAC00, 0xD7A4)]
    for name, chars in _batches(hangul, "H{:04d}_", sep_all=False):
        f = b.add(f"decomp/{name}")
        judge = all(c in "\uac00\ud7a3" for c in chars)
        dec_q.append(Query(f.path, f.uid, f.uid, judge, f"Hangul U+{ord(chars[0]):04X}-U+{ord(chars[-1]):04X}"))
    for c in ("\uac00", "\ud7a3"):  # the two syllables libfshfs decomposes
        f = b.add(f"decomp/G_{c}")
        dec_q.append(Query(f.path, f.uid, f.uid, True, f"Hangul U+{ord(c):04X} alone"))

    # stable/: every BMP character we keep, as it is (POSIX spelling: ':' and U+2400 included).
    stable_chars = [_posix(u) for u in range(0x10000) if u not in (0x0000, 0x002F) and _storable(u)]
    stable_chars += [":", "\u2400"]
    st_q: list[Query] = []
    kept = [c for c in stable_chars if ord(c) not in KERNEL_DECOMPOSES]
    for name, chars in _batches(kept, "S{:04d}_", sep_all=False):
        f = b.add(f"stable/{name}")
        st_q.append(Query(f.path, f.uid, f.uid, True, f"kept U+{ord(chars[0]):04X}..U+{ord(chars[-1]):04X}"))
    for n, c in enumerate(sorted(chr(u) for u in KERNEL_DECOMPOSES), 1):
        f = b.add(f"stable/T{n:04d}_{c}")
        st_q.append(Query(f.path, f.uid, None, True, f"U+{ord(c):04X}: kept by 3.2, decomposed by the kernel"))

    # special/: the stored-form mappings, case with decomposition, canonical order.
    sp_q: list[Query] = []

    def special(name: str, queries: Iterable[tuple[str, bool, bool, str] | tuple[str, bool, bool, str, bool]]) -> None:
        """Entries: (query, found by the kernel, judged by pyfshfs, why[, found per TN1150])."""
        f = b.add(f"special/{name}")
        for q, kernel, judge, why, *tn1150 in queries:
            expect = f.uid if (tn1150[0] if tn1150 else True) else None
            sp_q.append(Query(f"special/{q}", expect, f.uid if kernel else None, judge, why))

    special("a:b", [("a:b", True, True, "':' is stored as '/'"), ("A:B", True, True, "with case")])
    special("n\u2400", [("n\u2400", True, True, "U+2400 is stored as NUL"), ("N\u2400", True, True, "with case")])
    special("caf\u00e9", [("caf\u00e9", True, True, "precomposed"), ("cafe\u0301", True, True, "decomposed"),
                          ("CAF\u00c9", True, True, "precomposed capital"), ("CAFE\u0301", True, True, "decomposed capital")])
    special("a\u0323\u0301", [
        ("a\u0323\u0301", True, True, "canonical order"),
        ("\u1ea1\u0301", True, True, "precomposed a-dot-below + acute"),
        ("a\u0301\u0323", False, False, "non-canonical order: Mac OS X reorders, the kernel does not"),
        ("\u00e1\u0323", False, False, "precomposed a-acute + dot below: needs reordering"),
    ])
    special("\u1112\u1161\u11ab\uae00", [("\ud55c\uae00", True, False, "Hangul precomposed"),
                                          ("\u1112\u1161\u11ab\u1100\u1173\u11af", True, True, "Hangul as jamo")])
    special("\u03c9\u2126\u212a\u212b", [
        ("\u03a9\u2126\u212a\u212b", True, True, "omega folds; OHM/KELVIN/ANGSTROM signs are kept"),
        ("\u03c9\u03c9\u212a\u212b", False, False, "OHM SIGN is not omega for Apple", False),
    ])
    special("\uf900\uf901", [("\uf900\uf901", True, True, "CJK compatibility ideographs kept")])

    # nonbmp/: outside the BMP (the kernel's UTF-8 NLS cannot look them up).
    nb_q: list[Query] = []
    for n, (c, why) in enumerate((("\U0001f600", "emoji"), ("\U00020000", "CJK extension B"),
                                  ("\U0002f800", "CJK compatibility supplement, kept"),
                                  ("\U0001d15e", "musical symbol, kept (xnu decomposes no surrogates)"),
                                  ("\U00010400", "Deseret capital: Apple's table does not fold it")), 1):
        f = b.add(f"nonbmp/N{n:04d}_{c}")
        nb_q.append(Query(f.path, f.uid, None, True, f"U+{ord(c):05X} {why}"))
    nb_q.append(Query("nonbmp/N0005_\U00010428", None, None, False, "Deseret small is another name for Apple"))

    phases = (
        Phase("nodecompose", "ro,nodecompose", (Listing("ord", ord_all, ord_all),), tuple(fold_q)),
        Phase("decompose", "ro", (), tuple(dec_q + st_q + sp_q + nb_q)),
    )
    return ProofVolume("UNIPROOF", False, 96 << 20, tuple(b.files), phases)


# ---------------------------------------------------------------------------------------------
# UNIPROOFX (case-sensitive HFSX)


def _hfsx_volume() -> ProofVolume:
    b = _Builder()
    classes = fold_classes()
    cs_files = [b.add(f"cs/{P}")]
    queries: list[Query] = []
    for value, members in sorted(classes.items()):
        if len(members) < 2 and value != 0xFFFF:
            continue
        for m in members:
            f = b.add(f"cs/{P}{_posix(m)}")
            cs_files.append(f)
            queries.append(Query(f.path, f.uid, f.uid, True, f"U+{m:04X} is its own name"))
    for _c, missing in (("A", "\u00e0"), ("\u03a3", "\u03c2")):
        queries.append(Query(f"cs/{P}{missing}", None, None, True, f"no folding: U+{ord(missing):04X} absent"))
    e = b.add("decomp/\u00e9t\u00e9")
    h = b.add("decomp/\ud55c")
    dq = (
        Query("decomp/\u00e9t\u00e9", e.uid, e.uid, True, "HFSX names are decomposed too"),
        Query("decomp/e\u0301te\u0301", e.uid, e.uid, True, "decomposed query"),
        Query("decomp/\u00c9T\u00c9", None, None, True, "case matters"),
        Query("decomp/\ud55c", h.uid, h.uid, False, "Hangul"),
    )
    all_cs = _uids(cs_files)
    phases = (
        Phase("nodecompose", "ro,nodecompose", (Listing("cs", all_cs, all_cs),), tuple(queries)),
        Phase("decompose", "ro", (), dq),
    )
    return ProofVolume("UNIPROOFX", True, 16 << 20, tuple(b.files), phases)


@lru_cache(maxsize=1)
def unicode_proof_volumes() -> tuple[ProofVolume, ProofVolume]:
    """(UNIPROOF: case-insensitive HFS+, UNIPROOFX: case-sensitive HFSX)."""
    return _hfsplus_volume(), _hfsx_volume()


# ---------------------------------------------------------------------------------------------
# Building and the guest side


def build_tree(volume: ProofVolume):
    """The volume's files as an :class:`atvdisk.fs.hfsplus.tree.HfsTree` (mtime fixed)."""
    from atvdisk.fs.hfsplus.tree import BytesSource, HfsTree

    tree = HfsTree()
    for f in volume.files:
        tree.add_file(f.path, BytesSource(f.data), uid=f.uid, gid=0, mtime=1_000_000_000)
    return tree


def build_image(volume: ProofVolume, path) -> None:
    """Write ``volume`` with our HFS+ writer into a new sparse image file at ``path``."""
    from atvdisk.fs.hfsplus.layout import VolumeOptions
    from atvdisk.fs.hfsplus.writer import write_volume
    from atvdisk.fs.region import Region

    options = VolumeOptions(
        volume_name=volume.label,
        case_sensitive=volume.case_sensitive,
        create_time=1_000_000_000,
        volume_id=0x554E4950524F4F46,
    )
    with Region.open(path, 0, volume.size, create=True) as region:
        write_volume(build_tree(volume), options, region)


def mount_record(volume: ProofVolume, phase: Phase) -> str:
    """The ``guest_mount`` record name :func:`guest_script` uses for ``phase``."""
    return f"uproof-{_safe(volume.label)}-{phase.name}"


def _safe(label: str) -> str:
    return label.lower()


def guest_job_files(volume: ProofVolume) -> dict[str, bytes]:
    """Files to put under ``$JOB``: ``<label>/<phase>.queries`` (NUL-terminated UTF-8 paths)."""
    return {
        f"{_safe(volume.label)}/{ph.name}.queries": b"".join(q.path.encode() + b"\0" for q in ph.queries)
        for ph in volume.phases
    }


def guest_script(volume: ProofVolume, device: str) -> str:
    """The busybox sh commands for ``volume`` on ``device`` (protocol in the module docstring).

    Outputs go to ``$RESULTS/uproof/<label>/<phase>/``; mounts use the harness's
    ``guest_mount``/``guest_umount`` (records ``uproof-<label>-<phase>``)."""
    v = _safe(volume.label)
    lines = []
    for ph in volume.phases:
        out = f"$RESULTS/uproof/{v}/{ph.name}"
        rec = mount_record(volume, ph)
        lines.append(f'mkdir -p "{out}"')
        lines.append(f"guest_mount {rec} {device} hfsplus {ph.mount_options} /mnt/uproof && {{")
        for k, lst in enumerate(ph.listings):
            lines.append(f'  (cd "/mnt/uproof/{lst.directory}" && stat -c %u -- *) > "{out}/list-{k}.out" 2>/dev/null')
        if ph.queries:
            lines.append(
                f'  (cd /mnt/uproof && xargs -0 -a "$JOB/{v}/{ph.name}.queries" sh -c '
                "'for q do IFS= read -r got < \"$q\" 2>/dev/null || got=-; echo \"$got\"; done' sh)"
                f' > "{out}/queries.out"'
            )
        lines.append(f"  guest_umount {rec}")
        lines.append("}")
    return "\n".join(lines) + "\n"


def check_guest_results(
    volume: ProofVolume,
    files: Mapping[str, bytes],
    *,
    expectation: str = "kernel",
    phases: Iterable[str] | None = None,
) -> list[str]:
    """Compare the guest's outputs (``result.files``) with ``expectation`` ("kernel" or
    "expect") for ``phases`` (default: all); return one message per mismatch (empty: proven)."""
    v = _safe(volume.label)
    problems: list[str] = []
    for ph in volume.phases:
        if phases is not None and ph.name not in phases:
            continue
        base = f"uproof/{v}/{ph.name}"
        for k, lst in enumerate(ph.listings):
            raw = files.get(f"{base}/list-{k}.out")
            if raw is None:
                problems.append(f"{base}: listing {lst.directory!r} produced no output")
                continue
            got = Counter(int(x) for x in raw.split())
            want = Counter(getattr(lst, expectation))
            missing = sorted((want - got).elements())
            extra = sorted((got - want).elements())
            for uid in missing:
                problems.append(f"{base}: {lst.directory}: entry uid {uid} ({_describe(volume, uid)}) was not found by its own name")
            for uid in extra:
                problems.append(f"{base}: {lst.directory}: uid {uid} ({_describe(volume, uid)}) answered for another name")
        if not ph.queries:
            continue
        raw = files.get(f"{base}/queries.out")
        if raw is None:
            problems.append(f"{base}: the queries produced no output")
            continue
        lines = raw.decode("ascii", "replace").splitlines()
        if len(lines) != len(ph.queries):
            problems.append(f"{base}: {len(lines)} answers for {len(ph.queries)} queries")
        for q, line in zip(ph.queries, lines):
            want = getattr(q, expectation)
            got = None if line == "-" else int(line) if line.isdigit() else line
            if got != want:
                problems.append(
                    f"{base}: {q.path!r} ({q.why}): expected {_answer(volume, want)}, got {_answer(volume, got)}"
                )
    return problems


def _describe(volume: ProofVolume, uid: int) -> str:
    i = uid - UID_BASE
    if 0 <= i < len(volume.files):
        path = volume.files[i].path
        return f"{path!r} = " + " ".join(f"U+{ord(c):04X}" for c in path.split("/", 1)[1][:8])
    return "unknown"


def _answer(volume: ProofVolume, got: object) -> str:
    if got is None:
        return "absent"
    if isinstance(got, int):
        return f"uid {got} ({_describe(volume, got)})"
    return repr(got)


def unit_names(s: str) -> str:
    """``U+XXXX NAME`` for each character (messages)."""
    return ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in s)
