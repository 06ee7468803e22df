"""On-disk records: sizes and constants against TN1150's own text, pack/unpack symmetry."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atvdisk.fs.hfsplus import records as R
from atvdisk.fs.hfsplus.errors import HfsCorruptError

TN1150 = Path(__file__).resolve().parents[3] / "shared" / "reference" / "tn1150-hfs-plus-volume-format.txt"


def _tn1150_constants() -> dict[str, set[int]]:
    text = TN1150.read_text(encoding="utf-8", errors="replace")
    found: dict[str, set[int]] = {}

    def add(name: str, value: str) -> None:
        neg = value.startswith("-")
        v = value.lstrip("-")
        n = int(v, 8) if len(v) > 1 and v[0] == "0" and v[1] in "01234567" else int(v, 0)
        found.setdefault(name, set()).add(-n if neg else n)

    for m in re.finditer(r"\b(k[A-Z]\w+|[A-Z][A-Z_]{3,})\s*=\s*(-?(?:0x[0-9A-Fa-f]+|\d+))", text):
        add(m.group(1), m.group(2))
    for m in re.finditer(r"#define\s+([A-Z_]\w+)\s+(0x[0-9A-Fa-f]+|\d+)\b", text):
        add(m.group(1), m.group(2))
    for m in re.finditer(r"\b(k[A-Z]\w+)\s+\((\d+)\)", text):  # "kHFSPlusCatalogKeyMinimumLength (6)"
        add(m.group(1), m.group(2))
    for m in re.finditer(r"\b(\d+)\s+\((k[A-Z]\w+)\)", text):  # "4 (kHFSPlusVersion)"
        add(m.group(2), m.group(1))
    for m in re.finditer(r"\b(k[A-Z]\w+)\s+(0x[0-9A-Fa-f]+)\s", text):  # the HFSX compare table
        add(m.group(1), m.group(2))
    return found


def test_constants_match_tn1150() -> None:
    spec = _tn1150_constants()
    checked = []
    for name, values in spec.items():
        if hasattr(R, name):
            assert getattr(R, name) in values, f"{name}: ours {getattr(R, name)!r}, TN1150 {values}"
            checked.append(name)
    # the ones this package cannot do without must all have been found in the document
    core = {
        "kHFSVolumeUnmountedBit", "kHFSBootVolumeInconsistentBit", "kHFSVolumeJournaledBit",
        "kHFSRootParentID", "kHFSRootFolderID", "kHFSExtentsFileID", "kHFSCatalogFileID",
        "kHFSAllocationFileID", "kHFSAttributesFileID", "kHFSFirstUserCatalogNodeID",
        "kBTLeafNode", "kBTIndexNode", "kBTHeaderNode", "kBTMapNode", "kBTBigKeysMask",
        "kBTVariableIndexKeysMask", "kHFSPlusFolderRecord", "kHFSPlusFileRecord",
        "kHFSPlusFolderThreadRecord", "kHFSPlusFileThreadRecord", "kHFSThreadExistsMask",
        "kSymLinkFileType", "kSymLinkCreator", "kHFSPlusCreator", "kHFSCaseFolding",
        "kHFSBinaryCompare", "kHFSPlusCatalogKeyMinimumLength", "kHFSPlusCatalogKeyMaximumLength",
        "kHFSPlusExtentKeyMaximumLength", "kJIJournalInFSMask", "kJIJournalNeedInitMask",
        "JOURNAL_HEADER_MAGIC", "ENDIAN_MAGIC", "kHFSPlusVersion", "kHFSPlusCatalogMinNodeSize",
        "S_IFDIR", "S_IFREG", "S_IFLNK", "kHFSBTreeType",
    }  # fmt: skip
    missing = core - set(checked)
    assert not missing, f"not found in TN1150's text: {sorted(missing)}"


def test_signatures() -> None:
    assert R.kHFSPlusSigWord.to_bytes(2, "big") == b"H+"
    assert R.kHFSXSigWord.to_bytes(2, "big") == b"HX"
    assert (R.kHFSPlusVersion, R.kHFSXVersion) == (4, 5)
    assert R.kHFSJMountVersion.to_bytes(4, "big") == b"HFSJ"
    assert R.kHFSPlusMountVersion.to_bytes(4, "big") == b"10.0"
    assert R.kJournalFileType == R.fourcc("jrnl")


@pytest.mark.parametrize(
    "cls, size",
    [
        (R.HFSPlusExtentDescriptor, 8), (R.HFSPlusExtentRecord, 64), (R.HFSPlusForkData, 80),
        (R.HFSPlusBSDInfo, 16), (R.FileInfo, 16), (R.FolderInfo, 16), (R.ExtendedFileInfo, 16),
        (R.ExtendedFolderInfo, 16), (R.HFSPlusVolumeHeader, 512), (R.BTNodeDescriptor, 14),
        (R.BTHeaderRec, 106), (R.HFSPlusCatalogFolder, 88), (R.HFSPlusCatalogFile, 248),
        (R.HFSPlusExtentKey, 12), (R.JournalInfoBlock, 180), (R.JournalHeader, 44),
    ],
)  # fmt: skip
def test_sizes(cls, size: int) -> None:
    assert cls.SIZE == size
    assert len(cls().pack()) == size


FIXED = [
    R.HFSPlusExtentDescriptor, R.HFSPlusExtentRecord, R.HFSPlusForkData, R.HFSPlusBSDInfo,
    R.FileInfo, R.FolderInfo, R.ExtendedFileInfo, R.ExtendedFolderInfo, R.HFSPlusVolumeHeader,
    R.BTNodeDescriptor, R.BTHeaderRec, R.HFSPlusCatalogFolder, R.HFSPlusCatalogFile,
    R.JournalInfoBlock, R.JournalHeader,
]  # fmt: skip


@pytest.mark.parametrize("cls", FIXED, ids=lambda c: c.__name__)
@settings(max_examples=60)
@given(data=st.data())
def test_fixed_records_are_symmetric(cls, data) -> None:
    raw = data.draw(st.binary(min_size=cls.SIZE, max_size=cls.SIZE))
    rec = cls.unpack(raw)
    assert rec.pack() == raw  # every byte lands in the field it came from
    assert cls.unpack(rec.pack()) == rec
    pad = data.draw(st.binary(max_size=9))
    assert cls.unpack(pad + raw, len(pad)) == rec


@pytest.mark.parametrize("cls", FIXED + [R.HFSPlusExtentKey], ids=lambda c: c.__name__)
def test_truncated_input_is_refused(cls) -> None:
    with pytest.raises(HfsCorruptError):
        cls.unpack(bytes(cls.SIZE - 1))


@given(
    fork=st.sampled_from([0, 0xFF]),
    pad=st.integers(0, 255),
    fid=st.integers(0, 2**32 - 1),
    start=st.integers(0, 2**32 - 1),
)
def test_extent_key(fork: int, pad: int, fid: int, start: int) -> None:
    k = R.HFSPlusExtentKey(fork, pad, fid, start)
    raw = k.pack()
    assert raw[:2] == b"\x00\x0a"
    assert R.HFSPlusExtentKey.unpack(raw) == k
    with pytest.raises(HfsCorruptError):
        R.HFSPlusExtentKey.unpack(b"\x00\x0b" + raw[2:])


names = st.binary(max_size=510).filter(lambda b: len(b) % 2 == 0)


@given(parent=st.integers(0, 2**32 - 1), name=names)
def test_catalog_key(parent: int, name: bytes) -> None:
    k = R.HFSPlusCatalogKey(parent, R.HFSUniStr255(name))
    raw = k.pack()
    assert len(raw) == k.size == 8 + len(name)
    assert struct.unpack_from(">H", raw)[0] == 6 + len(name) == k.keyLength
    assert R.HFSPlusCatalogKey.unpack(raw) == k


def test_catalog_key_refuses_inconsistent_lengths() -> None:
    raw = R.HFSPlusCatalogKey(5, R.HFSUniStr255("ab".encode("utf-16-be"))).pack()
    with pytest.raises(HfsCorruptError):
        R.HFSPlusCatalogKey.unpack(b"\x00\x0c" + raw[2:])  # says 3 units, holds 2
    with pytest.raises(HfsCorruptError):
        R.HFSPlusCatalogKey.unpack(b"\x02\x06" + raw[2:])  # beyond 516
    with pytest.raises(HfsCorruptError):
        R.HFSUniStr255.unpack(b"\x01\x00" + bytes(600))  # 256 units


@given(rt=st.sampled_from([3, 4]), parent=st.integers(0, 2**32 - 1), name=names)
def test_thread_record(rt: int, parent: int, name: bytes) -> None:
    t = R.HFSPlusCatalogThread(rt, 0, parent, R.HFSUniStr255(name))
    raw = t.pack()
    assert len(raw) == t.size == 10 + len(name)
    assert R.HFSPlusCatalogThread.unpack(raw) == t


def test_uni_str_limits() -> None:
    with pytest.raises(ValueError):
        R.HFSUniStr255(b"x")
    with pytest.raises(ValueError):
        R.HFSUniStr255(bytes(512))


def test_dates() -> None:
    assert R.unix_to_hfs(0) == 2082844800  # 1970-01-01 in seconds since 1904
    assert R.hfs_to_unix(R.unix_to_hfs(1_700_000_000)) == 1_700_000_000
    assert R.unix_to_hfs(-3_000_000_000) == 0  # before 1904: clamped
    assert R.unix_to_hfs(3_000_000_000) == 0xFFFFFFFF  # after 2040-02-06: clamped


def test_journal_checksum() -> None:
    assert R.calc_checksum(b"") == 0xFFFFFFFF
    assert R.calc_checksum(b"\x01") == 0xFFFFFFFE
    h = R.JournalHeader(start=512, end=512, size=1 << 20, blhdr_size=4096, jhdr_size=512).with_checksum()
    raw = bytearray(h.pack())
    raw[36:40] = bytes(4)
    assert R.calc_checksum(bytes(raw)) == h.checksum


def test_volume_id_words() -> None:
    vh = R.HFSPlusVolumeHeader(finderInfo=(0, 0, 0, 0, 0, 0, 0x01234567, 0x89ABCDEF))
    assert vh.volume_id == 0x0123456789ABCDEF
    assert vh.pack()[80 + 24 : 80 + 32] == bytes.fromhex("0123456789abcdef")


def test_volume_header_field_offsets() -> None:
    """Spot-check offsets that other tools read directly (hfs_format.h / blkid)."""
    vh = R.HFSPlusVolumeHeader(
        signature=R.kHFSPlusSigWord, blockSize=4096, totalBlocks=1234, nextCatalogID=99,
        catalogFile=R.HFSPlusForkData(8192, 0, 2, (R.HFSPlusExtentDescriptor(77, 2),)),
    )  # fmt: skip
    raw = vh.pack()
    assert raw[0:2] == b"H+"
    assert struct.unpack_from(">I", raw, 40)[0] == 4096  # blockSize
    assert struct.unpack_from(">I", raw, 44)[0] == 1234  # totalBlocks
    assert struct.unpack_from(">I", raw, 64)[0] == 99  # nextCatalogID
    assert struct.unpack_from(">Q", raw, 272)[0] == 8192  # catalogFile.logicalSize
    assert struct.unpack_from(">II", raw, 288) == (77, 2)  # catalogFile.extents[0]


def _tn1150_number(pattern: str) -> int:
    """A number TN1150's prose states (whitespace in the pattern matches line breaks)."""
    text = " ".join(TN1150.read_text(encoding="utf-8", errors="replace").split())
    m = re.search(pattern, text)
    assert m, f"not in TN1150: {pattern}"
    return int(m.group(1))


def test_placements_stated_in_tn1150() -> None:
    assert R.kHFSVolumeHeaderOffset == _tn1150_number(r"volume header is always located at (\d+) bytes from the start")
    assert R.kHFSAlternateVolumeHeaderBack == _tn1150_number(
        r"alternate volume header, is stored starting at (\d+) bytes before the end"
    )
    assert R.kBTreeHeaderUserBytes == _tn1150_number(r"user data record and is always (\d+) bytes long")


def test_attributes_key_maximum_length() -> None:
    """hfs_format.h: sizeof(HFSPlusAttrKey) - sizeof(keyLength), the key being keyLength, pad
    (UInt16 each), fileID, startBlock (UInt32 each), attrNameLen (UInt16) and 127 UniChars."""
    assert R.kHFSPlusAttrKeyMaximumLength == 2 + 4 + 4 + 2 + 2 * 127


# Fields whose default is not zero: the record's own type, signature or magic.
NONZERO_DEFAULTS = {
    R.HFSPlusVolumeHeader: {0: b"H+", 2: b"\x00\x04"},
    R.HFSPlusCatalogFolder: {0: b"\x00\x01"},
    R.HFSPlusCatalogFile: {0: b"\x00\x02"},
    R.HFSPlusCatalogThread: {0: b"\x00\x03"},
    R.HFSPlusExtentKey: {0: b"\x00\x0a"},  # keyLength
    R.JournalHeader: {0: b"JNLx", 4: b"\x12\x34\x56\x78"},
}


@pytest.mark.parametrize("cls", FIXED + [R.HFSPlusCatalogThread, R.HFSPlusExtentKey], ids=lambda c: c.__name__)
def test_new_records_are_zero_but_for_their_type(cls) -> None:
    """Reserved fields, Finder info of a new file or folder, dates, counts: zero unless set
    (TN1150 asks reserved fields to be zero; the writer builds records from these defaults)."""
    data = bytearray(cls().pack())
    for offset, expected in NONZERO_DEFAULTS.get(cls, {}).items():
        assert data[offset : offset + len(expected)] == expected
        data[offset : offset + len(expected)] = bytes(len(expected))
    assert not any(data), data.hex()


def test_uni_str_unpack_limits() -> None:
    longest = struct.pack(">H", 255) + b"\x00a" * 255
    assert R.HFSUniStr255.unpack(longest).length == 255
    with pytest.raises(HfsCorruptError, match="256 exceeds 255"):
        R.HFSUniStr255.unpack(struct.pack(">H", 256) + b"\x00a" * 256)
    with pytest.raises(HfsCorruptError):
        R.HFSUniStr255.unpack(struct.pack(">H", 3) + b"\x00a" * 2)  # shorter than it says


def test_every_mask_is_its_bit() -> None:
    """TN1150 numbers the attribute and flag bits; each ...Mask is 1 << its ...Bit."""
    pairs = [(n, n[: -len("Bit")] + "Mask") for n in dir(R) if n.startswith("k") and n.endswith("Bit")]
    pairs = [(b, m) for b, m in pairs if hasattr(R, m)]
    assert len(pairs) >= 7
    for bit, mask in pairs:
        assert getattr(R, mask) == 1 << getattr(R, bit), (bit, mask)
