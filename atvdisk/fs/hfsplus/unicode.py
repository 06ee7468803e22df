"""HFS+ names: canonical decomposition, the stored form, and Apple's case-insensitive order.

Everything here follows TN1150 ("HFS Plus Names", "Unicode Subtleties", "HFSX"). Two parts of
it are not spelled out there and are derived below from frozen data plus a short list of
documented exceptions, never from a pasted table.

Canonical decomposition (:func:`hfs_decompose`)
===============================================
Mac OS X 10.3 and later store names fully decomposed with the Unicode 3.2 data, in canonical
order (TN1150 "Canonical Decomposition"; xnu's ``utf8_decodestr``). The rule implemented:

* every character is replaced by its full canonical decomposition from the frozen Unicode 3.2
  database (:data:`unicodedata.ucd_3_2_0`, never the moving current version); Hangul syllables
  U+AC00-U+D7A3 become conjoining jamo (the algorithmic decomposition, which 3.2 includes);
* except the characters TN1150 keeps as they are: U+2000-U+2FFF (punctuation, symbols, the
  OHM/KELVIN/ANGSTROM signs...) and U+F900-U+FAFF (CJK compatibility ideographs); and every
  character outside the BMP. TN1150 names U+2F800-U+2FAFF; Apple's implementation (xnu) works
  on 16-bit units and never decomposes a surrogate pair, so the 3.2 decompositions of the
  musical symbols U+1D15E-U+1D164 and U+1D1BB-U+1D1C0 are not applied either;
* then runs of combining characters (canonical combining class != 0 in Unicode 3.2) are sorted
  by class, stably (the canonical ordering algorithm). Characters outside the BMP count as
  class 0, as in xnu, so a run never crosses them; so do marks added after 3.2 (U+0350...),
  which is why we decompose character by character and order with ``ucd_3_2_0.combining``:
  CPython's ``ucd_3_2_0.normalize`` orders a string with the *current* classes;
* characters assigned after Unicode 3.2 are left alone (3.2 knows nothing about them), e.g.
  U+1B06 BALINESE LETTER AKARA TEDUNG, which current NFD would decompose.

Nothing is ever recomposed.

The stored form (:func:`encode_name`, :func:`decode_name`)
==========================================================
On disk the separator of the Carbon API, ``:``, cannot occur, and ``/`` can. Mac OS X and
Linux's hfsplus driver both exchange them at the POSIX boundary: a POSIX ``:`` is stored as
U+002F ``/`` and a stored ``/`` is shown as ``:``. Both also map U+2400 SYMBOL FOR NULL to a
stored U+0000 (the NUL of the "HFS+ Private Data" folder name) and back. Names are then
UTF-16BE, at most 255 units. Refused, with the name and a hint (:class:`HfsNameError`): empty
names, NUL or ``/`` (impossible in a POSIX component), lone surrogates (names that were not
valid UTF-8), U+FFFE/U+FFFF (xnu rejects them; U+FFFF would also equal NUL under the
case-insensitive order) and names longer than 255 units once decomposed.

The case-folding table (:func:`case_fold_unit`): Apple's gLowerCaseTable, derived
==================================================================================
TN1150 prints FastUnicodeCompare but omits its table. The table's structure (a 256-entry
high-byte index, then 256-entry pages; 0 means "ignore this unit") says which pages it covers;
its contents are Unicode 2.x-era lower-case mappings, which we derive as follows:

1. U+0000 folds to 0xFFFF, so NUL is not mistaken for end-of-string and sorts after
   everything (TN1150, "HFS+ Private Data").
2. The ignorable units fold to 0 and are skipped: U+200C-U+200F (ZWNJ, ZWJ, LRM, RLM),
   U+202A-U+202E (bidi embeddings/overrides), U+206A-U+206F (deprecated format characters),
   U+FEFF (ZERO WIDTH NO-BREAK SPACE / BOM).
3. Only the pages Apple's table has subtables for can fold: high bytes 00, 01, 03, 04, 05
   (Latin, Greek/Coptic, Cyrillic, Armenian), 10 (Georgian), 20 (ignorables only), 21 (Roman
   numerals), FE (U+FEFF only) and FF (fullwidth Latin). Every other unit folds to itself.
4. In those pages a unit folds to its simple lower-case mapping when the unit and its mapping
   are both assigned in Unicode 3.2, the unit has no canonical decomposition in Unicode 3.2
   (decomposable characters never occur in a stored name, so Apple leaves them alone, e.g.
   U+00C0) and the mapping is a single different character (this excludes U+0130).
   Python's ``str.lower`` supplies the mapping (``ucd_3_2_0`` has no case data). Only
   characters assigned in 3.2 are considered, and Unicode's case-folding stability makes a
   changed mapping for them unlikely; the rule-example tests and the kernel test would catch
   one.
5. Exceptions, all visible in Apple's table and all explained by its Unicode 2.x vintage:

   * not folded because Unicode added the character, or its lower-case partner, after 2.1
     (:data:`_LATER_THAN_APPLE_TABLE`): U+01F6, U+01F7 (3.0); U+03D8 (3.2); U+03DA, U+03DC,
     U+03DE, U+03E0 (their lower cases arrived in 3.0); U+03F4 (3.1); U+048A, U+048C,
     U+048E, U+04C5, U+04C9, U+04CD, U+0500-U+050E (3.2); and U+01A6 LATIN LETTER YR, which
     Apple's table simply does not map;
   * not folded because Unicode 2.x listed them as canonically equivalent to Latin letters
     (Cyrillic AE ligature, schwa, Abkhasian dze, barred o; the decompositions were removed
     in 3.0), so Apple treated them as decomposable (:data:`_DECOMPOSABLE_IN_UNICODE_2`):
     U+04D4, U+04D8, U+04E0, U+04E8;
   * folded although Unicode 3.2 has no mapping: Georgian capitals U+10A0-U+10C5 fold to the
     letters U+10D0-U+10F5 (Unicode 1.1 paired them as capital/small).

   Step 3 removes exactly two groups that step 4 would otherwise fold: U+021C-U+0224 (added in
   3.0/3.2) and the circled letters U+24B6-U+24CF (Apple does not fold enclosed
   alphanumerics).

The result has 313 non-identity, non-zero entries (including NUL) and 16 ignorables.

Comparisons and sort keys
=========================
:func:`compare_names_ci` is FastUnicodeCompare (TN1150) on stored UTF-16BE names: fold each
unit, skip the zeros, compare the first difference as unsigned 16-bit values, end of string
lowest. :func:`compare_names_binary` is HFSX's binary order (unsigned 16-bit units, no
ignorables, shorter prefix first). :func:`sort_key_ci` / :func:`sort_key_binary` return bytes
whose plain byte order is exactly those orders (big-endian 16-bit values; a prefix sorts
first), fast enough to sort tens of thousands of names.

Where others differ (see tests/hfs_unicode_cases.py, which the kernel test checks)
=================================================================================
* Linux's hfsplus (Debian 12's 6.1 included) decomposes with Apple's older Unicode 2.1-based
  table and never reorders combining marks across characters. So, looking up a precomposed
  name, it disagrees with TN1150/3.2 for 143 BMP characters: the 3.2 additions (U+01F8/9,
  U+0218-U+0233, U+0400, U+040D, U+0450, U+045D, U+04EC/D, Arabic hamza forms U+0622-U+0626,
  U+06C0, U+06C2, U+06D3, Gurmukhi U+0A33/U+0A36, Sinhala U+0DDA-U+0DDE, Myanmar U+1026,
  Hebrew U+FB1D) are not decomposed; Greek tonos decomposes to U+030D instead of U+0301;
  U+0310, U+09B0, U+0A5C, U+0B5F, U+0E33, U+0EB3, U+0F77, U+0F79 and the four Cyrillic letters
  above are decomposed although 3.2 keeps them; Tibetan U+0F73/U+0F75/U+0F81 and Greek
  letters with ypogegrammeni come out in Unicode 2.1 order; four-unit decompositions
  (U+1F82...) are not applied; U+1FF4 decomposes to omicron. Hangul is decomposed
  algorithmically, as here. The kernel's case-folding table is Apple's (from TN1150's
  download), which is what the kernel test proves ours equals.
* The kernel's UTF-8 NLS cannot represent characters outside the BMP: such names are listed
  with ``?`` and cannot be opened from Linux.
* libfshfs (pyfshfs) decomposes exactly as here for the BMP, but only two Hangul syllables,
  and folds with current Unicode case folding, without Apple's ignorables.
* xnu sorts a whole run of "combinable" characters (which includes class-0 marks and jamo)
  by combining class; for a class-0 mark following a non-zero one inside such a run (rare
  Indic sequences such as U+0915 U+093C U+093E) its order may differ from the canonical
  ordering used here. Not verified.
"""

from __future__ import annotations

import re
import unicodedata

from atvdisk.fs.hfsplus.errors import HfsNameError

#: The Unicode 3.2 database HFS+ decomposition is defined with (frozen in Python).
UCD = unicodedata.ucd_3_2_0

#: Maximum length of a name, in UTF-16 units (HFSUniStr255).
HFS_MAX_NAME_UNITS = 255

#: Ranges TN1150 keeps undecomposed (plus everything above U+FFFF, see the module docstring).
NO_DECOMPOSE_RANGES: tuple[tuple[int, int], ...] = ((0x2000, 0x2FFF), (0xF900, 0xFAFF))

#: Units Apple's table folds to 0 (ignored by the case-insensitive comparison).
IGNORABLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x200C, 0x200F),
    (0x202A, 0x202E),
    (0x206A, 0x206F),
    (0xFEFF, 0xFEFF),
)
IGNORABLE_UNITS: frozenset[int] = frozenset(
    u for lo, hi in IGNORABLE_RANGES for u in range(lo, hi + 1)
)

#: High bytes for which Apple's gLowerCaseTable has a subtable.
FOLD_PAGES: frozenset[int] = frozenset({0x00, 0x01, 0x03, 0x04, 0x05, 0x10, 0x20, 0x21, 0xFE, 0xFF})

#: Letters Unicode 3.2 case-maps that Apple's (Unicode 2.x-era) table leaves alone.
_LATER_THAN_APPLE_TABLE: frozenset[int] = frozenset(
    {0x01A6, 0x01F6, 0x01F7, 0x03D8, 0x03DA, 0x03DC, 0x03DE, 0x03E0, 0x03F4}
    | {0x048A, 0x048C, 0x048E, 0x04C5, 0x04C9, 0x04CD}
    | set(range(0x0500, 0x0510, 2))
)

#: Cyrillic letters Unicode 2.x decomposed to Latin letters (so Apple does not fold them).
_DECOMPOSABLE_IN_UNICODE_2: frozenset[int] = frozenset({0x04D4, 0x04D8, 0x04E0, 0x04E8})

#: Georgian capitals Apple folds to the Mkhedruli letters (no mapping in Unicode 3.2).
_GEORGIAN_CAPITALS = range(0x10A0, 0x10C6)
_GEORGIAN_OFFSET = 0x30


def _has_canonical_decomposition(ch: str) -> bool:
    d = UCD.decomposition(ch)
    return bool(d) and not d.startswith("<")


def _derive_fold() -> dict[int, int]:
    """The non-identity entries of Apple's gLowerCaseTable, from the rule in the docstring."""
    fold: dict[int, int] = {0x0000: 0xFFFF}
    for u in IGNORABLE_UNITS:
        fold[u] = 0
    for page in sorted(FOLD_PAGES):
        for u in range(page << 8, (page + 1) << 8):
            if u in fold or u in _LATER_THAN_APPLE_TABLE or u in _DECOMPOSABLE_IN_UNICODE_2:
                continue
            ch = chr(u)
            if UCD.category(ch) == "Cn" or _has_canonical_decomposition(ch):
                continue
            low = ch.lower()
            if len(low) != 1 or low == ch or UCD.category(low) == "Cn":
                continue
            fold[u] = ord(low)
    for u in _GEORGIAN_CAPITALS:
        fold[u] = u + _GEORGIAN_OFFSET
    return fold


_FOLD: dict[int, int] = _derive_fold()
# str.translate table for the sort key: ignorables are deleted, NUL becomes U+FFFF.
_FOLD_TRANSLATE: dict[int, str | None] = {u: (chr(v) if v else None) for u, v in _FOLD.items()}


def fold_table() -> dict[int, int]:
    """A copy of every non-identity entry of the case-folding table (``unit -> folded``)."""
    return dict(_FOLD)


def lower_case_table() -> list[int]:
    """The table in gLowerCaseTable's layout: a 256-entry high-byte index, then the pages.

    Entry ``[hi]`` of the index is 0 for a page without case mappings or ignorables, otherwise
    the index of that page's 256-entry subtable (TN1150's pseudocode).
    """
    pages = sorted({u >> 8 for u in _FOLD})
    table = [0] * 256
    for n, page in enumerate(pages, start=1):
        table[page] = n * 256
    for page in pages:
        table.extend(_FOLD.get(u, u) for u in range(page << 8, (page + 1) << 8))
    return table


def case_fold_unit(u: int) -> int:
    """Apple's gLowerCaseTable lookup for one UTF-16 unit; 0 means ignorable, U+0000 -> 0xFFFF."""
    if not 0 <= u <= 0xFFFF:
        raise ValueError(f"not a UTF-16 code unit: {u!r}")
    return _FOLD.get(u, u)


# --------------------------------------------------------------------------------------------
# Decomposition


def _keeps(cp: int) -> bool:
    """True for characters HFS+ stores as they are (never decomposed)."""
    return cp > 0xFFFF or 0x2000 <= cp <= 0x2FFF or 0xF900 <= cp <= 0xFAFF


def _ccc(ch: str) -> int:
    return 0 if ord(ch) > 0xFFFF else UCD.combining(ch)


_DECOMPOSED: dict[str, str] = {}  # per-character cache of the full 3.2 decomposition


def _decompose_char(ch: str) -> str:
    d = _DECOMPOSED.get(ch)
    if d is None:
        # Per character: ucd_3_2_0.normalize() of a whole string would reorder marks with the
        # *current* combining classes (a CPython quirk), moving marks added after 3.2.
        d = _DECOMPOSED[ch] = ch if _keeps(ord(ch)) else UCD.normalize("NFD", ch)
    return d


def hfs_decompose(name: str) -> str:
    """``name`` fully decomposed and canonically ordered as HFS+ stores it (see the docstring)."""
    if name.isascii():
        return name
    if UCD.is_normalized("NFD", name):
        # Nothing decomposes and the marks are in order (is_normalized may also say False for
        # marks added after 3.2, which only sends us down the exact path below).
        return name
    chars = [c for ch in name for c in _decompose_char(ch)]
    comb = UCD.combining
    classes = [0 if c > "\uffff" else comb(c) for c in chars]
    i, n = 0, len(chars)
    while i < n:
        if classes[i] == 0:
            i += 1
            continue
        j = i + 1
        while j < n and classes[j] != 0:
            j += 1
        if j - i > 1:  # a run of marks: stable sort by class (canonical ordering)
            run = sorted(range(i, j), key=classes.__getitem__)
            chars[i:j] = [chars[k] for k in run]
        i = j
    return "".join(chars)


def hfs_name_units(name: str) -> int:
    """Number of UTF-16 code units ``name`` occupies once stored (decomposed) in HFS+."""
    return len(hfs_decompose(name).encode("utf-16-be", "surrogatepass")) // 2


# --------------------------------------------------------------------------------------------
# Stored form

_TO_DISK = {ord(":"): "/", 0x2400: "\0"}
_NONCHAR_RE = re.compile("[\ufffe\uffff]")
_FROM_DISK = {ord("/"): ":", 0: "\u2400"}


def _char_desc(ch: str) -> str:
    cp = ord(ch)
    return f"U+{cp:04X}" + (f" {unicodedata.name(ch)}" if unicodedata.name(ch, "") else "")


def encode_name(name: str) -> bytes:
    """``name`` (one POSIX path component) as HFS+ stores it: decomposed, ``:`` -> ``/``,
    U+2400 -> U+0000, UTF-16BE. Raises :class:`HfsNameError` for names HFS+ cannot hold."""
    if not isinstance(name, str):
        raise HfsNameError(
            f"file name must be text, not {type(name).__name__}: {name!r}",
            name=name,
            hint="decode the name first (os.fsdecode)",
        )
    if not name:
        raise HfsNameError("empty file name", name=name, hint="give the entry a name")
    if "/" in name:
        raise HfsNameError(
            f"file name {name!r} contains '/', the POSIX path separator",
            name=name,
            hint="pass one path component at a time; a ':' in a name is stored as '/' on HFS+",
        )
    if "\0" in name:
        raise HfsNameError(
            f"file name {name!r} contains a NUL character",
            name=name,
            hint="POSIX names cannot contain NUL; write U+2400 (\u2400) to store a NUL in HFS+",
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = name[e.start]
        raise HfsNameError(
            f"file name {name!r} is not valid Unicode: lone surrogate U+{ord(bad):04X} at "
            f"position {e.start} (the name was probably not valid UTF-8)",
            name=name,
            hint="rename the file so that its name is valid UTF-8",
        ) from None
    nonchar = _NONCHAR_RE.search(name)
    if nonchar:
        raise HfsNameError(
            f"file name {name!r} contains the noncharacter U+{ord(nonchar.group()):04X} at "
            f"position {nonchar.start()}",
            name=name,
            hint="Mac OS X refuses U+FFFE/U+FFFF in file names; rename the file",
        )
    data = hfs_decompose(name).translate(_TO_DISK).encode("utf-16-be", "surrogatepass")
    units = len(data) // 2
    if units > HFS_MAX_NAME_UNITS:
        raise HfsNameError(
            f"file name too long for HFS+: {units} UTF-16 units once decomposed "
            f"(maximum {HFS_MAX_NAME_UNITS}): {name!r}",
            name=name,
            hint="shorten the name; accented letters take 2 units and Hangul syllables 2-3 "
            "once decomposed, characters outside the BMP take 2",
        )
    return data


def _check_even(data: bytes, what: str = "name") -> None:
    if len(data) % 2:
        raise HfsNameError(
            f"stored {what} has an odd number of bytes ({len(data)}): {bytes(data)!r}",
            name=bytes(data),
            hint="HFS+ names are UTF-16BE (two bytes per unit); the data is corrupt or cut",
        )


def decode_name(data: bytes) -> str:
    """Inverse of :func:`encode_name` (no recomposition): ``/`` -> ``:``, U+0000 -> U+2400.

    Lone surrogates found on disk are kept as such (``surrogatepass``), so nothing is lost.
    """
    _check_even(data)
    return bytes(data).decode("utf-16-be", "surrogatepass").translate(_FROM_DISK)


# --------------------------------------------------------------------------------------------
# Comparisons


def compare_names_ci(a: bytes, b: bytes) -> int:
    """FastUnicodeCompare (TN1150) on two stored UTF-16BE names: -1, 0 or 1."""
    _check_even(a)
    _check_even(b)
    ua = bytes(a)
    ub = bytes(b)
    la, lb = len(ua), len(ub)
    i = j = 0
    fold = _FOLD
    while True:
        c1 = c2 = 0
        while i < la and c1 == 0:
            u = (ua[i] << 8) | ua[i + 1]
            c1 = fold.get(u, u)
            i += 2
        while j < lb and c2 == 0:
            u = (ub[j] << 8) | ub[j + 1]
            c2 = fold.get(u, u)
            j += 2
        if c1 != c2:
            return -1 if c1 < c2 else 1
        if c1 == 0:
            return 0


def compare_names_binary(a: bytes, b: bytes) -> int:
    """Case-sensitive HFSX order: unsigned 16-bit units, a prefix first. -1, 0 or 1."""
    _check_even(a)
    _check_even(b)
    a, b = bytes(a), bytes(b)
    return (a > b) - (a < b)


def sort_key_ci(a: bytes) -> bytes:
    """A key whose byte order is :func:`compare_names_ci`'s order (equal keys <=> equal names)."""
    _check_even(a)
    s = bytes(a).decode("utf-16-be", "surrogatepass")
    if s.isascii() and "\0" not in s:
        return s.lower().encode("utf-16-be")  # the table folds ASCII exactly like str.lower
    return s.translate(_FOLD_TRANSLATE).encode("utf-16-be", "surrogatepass")


def sort_key_binary(a: bytes) -> bytes:
    """A key whose byte order is :func:`compare_names_binary`'s order: the name itself."""
    _check_even(a)
    return bytes(a)
