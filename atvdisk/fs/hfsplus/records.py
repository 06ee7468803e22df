"""On-disk records of HFS+ / HFSX, one class per structure of TN1150, with their constants.

Every record is a frozen dataclass with ``SIZE`` (bytes on disk, where fixed), ``pack()`` and
``unpack(data, offset=0)``; ``unpack(pack(r)) == r`` for every record. Integers are big-endian
as TN1150 requires. Constants keep the spec's names (``kHFSPlusSigWord``...) so they can be
checked against the document line by line.

``unpack`` raises :class:`~atvdisk.fs.hfsplus.errors.HfsCorruptError` when the bytes are too
short or a field is out of range, never ``struct.error``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

from atvdisk.fs.hfsplus.errors import HfsCorruptError

# --- Volume header ---------------------------------------------------------------------------
kHFSPlusSigWord = 0x482B  # 'H+'
kHFSXSigWord = 0x4858  # 'HX'
kHFSPlusVersion = 4
kHFSXVersion = 5

kHFSVolumeHardwareLockBit = 7
kHFSVolumeUnmountedBit = 8
kHFSVolumeSparedBlocksBit = 9
kHFSVolumeNoCacheRequiredBit = 10
kHFSBootVolumeInconsistentBit = 11
kHFSCatalogNodeIDsReusedBit = 12
kHFSVolumeJournaledBit = 13
kHFSVolumeSoftwareLockBit = 15
kHFSUnusedNodeFixBit = 31  # hfs_format.h: unused B-tree nodes are zero-filled

kHFSVolumeUnmountedMask = 1 << kHFSVolumeUnmountedBit
kHFSBootVolumeInconsistentMask = 1 << kHFSBootVolumeInconsistentBit
kHFSVolumeJournaledMask = 1 << kHFSVolumeJournaledBit
kHFSVolumeSoftwareLockMask = 1 << kHFSVolumeSoftwareLockBit
kHFSUnusedNodeFixMask = 1 << kHFSUnusedNodeFixBit

# lastMountedVersion values (TN1150 "lastMountedVersion")
kHFSPlusMountVersion = 0x31302E30  # '10.0' (Mac OS X; what newfs_hfs writes)
kHFSJMountVersion = 0x4846534A  # 'HFSJ' (journaled volume on Mac OS X)

kHFSVolumeHeaderOffset = 1024  # bytes from the start of the volume
kHFSAlternateVolumeHeaderBack = 1024  # alternate header starts 1024 bytes before the end

# --- Catalog node IDs ------------------------------------------------------------------------
kHFSRootParentID = 1
kHFSRootFolderID = 2
kHFSExtentsFileID = 3
kHFSCatalogFileID = 4
kHFSBadBlockFileID = 5
kHFSAllocationFileID = 6
kHFSStartupFileID = 7
kHFSAttributesFileID = 8
kHFSRepairCatalogFileID = 14
kHFSBogusExtentFileID = 15
kHFSFirstUserCatalogNodeID = 16

# --- B-trees ---------------------------------------------------------------------------------
kBTLeafNode = -1
kBTIndexNode = 0
kBTHeaderNode = 1
kBTMapNode = 2

kBTBadCloseMask = 0x00000001
kBTBigKeysMask = 0x00000002
kBTVariableIndexKeysMask = 0x00000004

kHFSBTreeType = 0
kUserBTreeType = 128
kReservedBTreeType = 255

kHFSCaseFolding = 0xCF
kHFSBinaryCompare = 0xBC

kHFSPlusCatalogMinNodeSize = 4096
kHFSPlusAttrMinNodeSize = 4096
kHFSPlusCatalogKeyMinimumLength = 6
kHFSPlusCatalogKeyMaximumLength = 516
kHFSPlusExtentKeyMaximumLength = 10
kHFSPlusAttrKeyMaximumLength = 266  # sizeof(HFSPlusAttrKey) - sizeof(UInt16), hfs_format.h
kBTreeHeaderUserBytes = 128

# --- Catalog records -------------------------------------------------------------------------
kHFSPlusFolderRecord = 0x0001
kHFSPlusFileRecord = 0x0002
kHFSPlusFolderThreadRecord = 0x0003
kHFSPlusFileThreadRecord = 0x0004

kHFSFileLockedBit = 0x0000
kHFSFileLockedMask = 0x0001
kHFSThreadExistsBit = 0x0001
kHFSThreadExistsMask = 0x0002
kHFSHasFolderCountBit = 0x0004  # hfs_format.h: folder record keeps a sub-folder count (HFSX)
kHFSHasFolderCountMask = 0x0010

kSymLinkFileType = 0x736C6E6B  # 'slnk'
kSymLinkCreator = 0x72686170  # 'rhap'
kHardLinkFileType = 0x686C6E6B  # 'hlnk'
kHFSPlusCreator = 0x6866732B  # 'hfs+'
kJournalFileType = 0x6A726E6C  # 'jrnl' (newfs_hfs)

# Finder flags
kIsOnDesk = 0x0001
kColor = 0x000E
kIsShared = 0x0040
kHasNoINITs = 0x0080
kHasBeenInited = 0x0100
kHasCustomIcon = 0x0400
kIsStationery = 0x0800
kNameLocked = 0x1000
kHasBundle = 0x2000
kIsInvisible = 0x4000
kIsAlias = 0x8000

# Text encodings (TN1150 Table 2, plus kTextEncodingMacUnicode used by newfs_hfs for the root)
kTextEncodingMacRoman = 0
kTextEncodingMacUnicode = 0x7E

# BSD
S_IFMT = 0o170000
S_IFIFO = 0o010000
S_IFCHR = 0o020000
S_IFDIR = 0o040000
S_IFBLK = 0o060000
S_IFREG = 0o100000
S_IFLNK = 0o120000
S_IFSOCK = 0o140000
S_IFWHT = 0o160000
UF_NODUMP = 0x01

# --- Extents overflow ------------------------------------------------------------------------
kHFSDataForkType = 0x00
kHFSResourceForkType = 0xFF

# --- Journal ---------------------------------------------------------------------------------
kJIJournalInFSMask = 0x00000001
kJIJournalOnOtherDeviceMask = 0x00000002
kJIJournalNeedInitMask = 0x00000004
JOURNAL_HEADER_MAGIC = 0x4A4E4C78
ENDIAN_MAGIC = 0x12345678

# Seconds between the HFS+ epoch (1904-01-01 00:00 GMT) and the Unix epoch.
MAC_EPOCH_OFFSET = 2082844800
HFS_DATE_MAX = 0xFFFFFFFF


def unix_to_hfs(t: float | int | None) -> int:
    """Unix seconds to an HFS+ date, clamped to the representable range (1904..2040)."""
    if t is None:
        return 0
    v = int(t) + MAC_EPOCH_OFFSET
    return min(max(v, 0), HFS_DATE_MAX)


def hfs_to_unix(d: int) -> int:
    return d - MAC_EPOCH_OFFSET


def fourcc(text: str) -> int:
    return int.from_bytes(text.encode("latin-1"), "big")


def _need(data: bytes, offset: int, size: int, what: str) -> None:
    if offset < 0 or offset + size > len(data):
        raise HfsCorruptError(
            f"truncated {what}: need {size} bytes at offset {offset}, have {max(0, len(data) - offset)}"
        )


# --- Primitive structures --------------------------------------------------------------------


@dataclass(frozen=True)
class HFSPlusExtentDescriptor:
    startBlock: int = 0
    blockCount: int = 0

    SIZE: ClassVar[int] = 8
    _S: ClassVar[struct.Struct] = struct.Struct(">II")

    def pack(self) -> bytes:
        return self._S.pack(self.startBlock, self.blockCount)

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> HFSPlusExtentDescriptor:
        _need(data, offset, cls.SIZE, "extent descriptor")
        return cls(*cls._S.unpack_from(data, offset))


def _pack_extents(extents: tuple[HFSPlusExtentDescriptor, ...]) -> bytes:
    if len(extents) > 8:
        raise ValueError("an extent record holds at most 8 extents")
    out = b"".join(e.pack() for e in extents)
    return out + bytes(8 * (8 - len(extents)))


def _unpack_extents(data: bytes, offset: int) -> tuple[HFSPlusExtentDescriptor, ...]:
    _need(data, offset, 64, "extent record")
    return tuple(HFSPlusExtentDescriptor.unpack(data, offset + 8 * i) for i in range(8))


def _norm8(extents: tuple[HFSPlusExtentDescriptor, ...]) -> tuple[HFSPlusExtentDescriptor, ...]:
    extents = tuple(extents)
    return extents + (HFSPlusExtentDescriptor(),) * (8 - len(extents))


@dataclass(frozen=True)
class HFSPlusExtentRecord:
    """Eight extent descriptors (the data of an extents-overflow leaf record)."""

    extents: tuple[HFSPlusExtentDescriptor, ...] = ()

    SIZE: ClassVar[int] = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "extents", _norm8(self.extents))

    def pack(self) -> bytes:
        return _pack_extents(self.extents)

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> HFSPlusExtentRecord:
        return cls(_unpack_extents(data, offset))


@dataclass(frozen=True)
class HFSPlusForkData:
    logicalSize: int = 0
    clumpSize: int = 0
    totalBlocks: int = 0
    extents: tuple[HFSPlusExtentDescriptor, ...] = ()

    SIZE: ClassVar[int] = 80
    _S: ClassVar[struct.Struct] = struct.Struct(">QII")

    def __post_init__(self) -> None:
        object.__setattr__(self, "extents", _norm8(self.extents))

    def pack(self) -> bytes:
        return self._S.pack(self.logicalSize, self.clumpSize, self.totalBlocks) + _pack_extents(
            self.extents
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> HFSPlusForkData:
        _need(data, offset, cls.SIZE, "fork data")
        ls, cs, tb = cls._S.unpack_from(data, offset)
        return cls(ls, cs, tb, _unpack_extents(data, offset + 16))


def _fork_fields(fork: HFSPlusForkData) -> list[int]:
    out = [fork.logicalSize, fork.clumpSize, fork.totalBlocks]
    for d in fork.extents:
        out.append(d.startBlock)
        out.append(d.blockCount)
    return out


@dataclass(frozen=True)
class HFSPlusBSDInfo:
    ownerID: int = 0
    groupID: int = 0
    adminFlags: int = 0
    ownerFlags: int = 0
    fileMode: int = 0
    special: int = 0  # iNodeNum / linkCount / rawDevice

    SIZE: ClassVar[int] = 16
    _S: ClassVar[struct.Struct] = struct.Struct(">IIBBHI")

    def pack(self) -> bytes:
        return self._S.pack(
            self.ownerID, self.groupID, self.adminFlags, self.ownerFlags, self.fileMode, self.special
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> HFSPlusBSDInfo:
        _need(data, offset, cls.SIZE, "BSD info")
        return cls(*cls._S.unpack_from(data, offset))


@dataclass(frozen=True)
class FileInfo:
    fileType: int = 0
    fileCreator: int = 0
    finderFlags: int = 0
    location_v: int = 0
    location_h: int = 0
    reservedField: int = 0

    SIZE: ClassVar[int] = 16
    _S: ClassVar[struct.Struct] = struct.Struct(">IIHhhH")

    def pack(self) -> bytes:
        return self._S.pack(
            self.fileType,
            self.fileCreator,
            self.finderFlags,
            self.location_v,
            self.location_h,
            self.reservedField,
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> FileInfo:
        _need(data, offset, cls.SIZE, "FileInfo")
        return cls(*cls._S.unpack_from(data, offset))


@dataclass(frozen=True)
class FolderInfo:
    windowBounds: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    finderFlags: int = 0
    location_v: int = 0
    location_h: int = 0
    reservedField: int = 0

    SIZE: ClassVar[int] = 16
    _S: ClassVar[struct.Struct] = struct.Struct(">hhhhHhhH")

    def pack(self) -> bytes:
        return self._S.pack(
            *self.windowBounds, self.finderFlags, self.location_v, self.location_h, self.reservedField
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> FolderInfo:
        _need(data, offset, cls.SIZE, "FolderInfo")
        v = cls._S.unpack_from(data, offset)
        return cls(tuple(v[0:4]), v[4], v[5], v[6], v[7])


@dataclass(frozen=True)
class ExtendedFileInfo:
    reserved1: tuple[int, int, int, int] = (0, 0, 0, 0)
    extendedFinderFlags: int = 0
    reserved2: int = 0
    putAwayFolderID: int = 0

    SIZE: ClassVar[int] = 16
    _S: ClassVar[struct.Struct] = struct.Struct(">hhhhHhi")

    def pack(self) -> bytes:
        return self._S.pack(
            *self.reserved1, self.extendedFinderFlags, self.reserved2, self.putAwayFolderID
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> ExtendedFileInfo:
        _need(data, offset, cls.SIZE, "ExtendedFileInfo")
        v = cls._S.unpack_from(data, offset)
        return cls(tuple(v[0:4]), v[4], v[5], v[6])


@dataclass(frozen=True)
class ExtendedFolderInfo:
    scrollPosition_v: int = 0
    scrollPosition_h: int = 0
    reserved1: int = 0
    extendedFinderFlags: int = 0
    reserved2: int = 0
    putAwayFolderID: int = 0

    SIZE: ClassVar[int] = 16
    _S: ClassVar[struct.Struct] = struct.Struct(">hhiHhi")

    def pack(self) -> bytes:
        return self._S.pack(
            self.scrollPosition_v,
            self.scrollPosition_h,
            self.reserved1,
            self.extendedFinderFlags,
            self.reserved2,
            self.putAwayFolderID,
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> ExtendedFolderInfo:
        _need(data, offset, cls.SIZE, "ExtendedFolderInfo")
        return cls(*cls._S.unpack_from(data, offset))


# --- Volume header ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HFSPlusVolumeHeader:
    signature: int = kHFSPlusSigWord
    version: int = kHFSPlusVersion
    attributes: int = 0
    lastMountedVersion: int = 0
    journalInfoBlock: int = 0
    createDate: int = 0
    modifyDate: int = 0
    backupDate: int = 0
    checkedDate: int = 0
    fileCount: int = 0
    folderCount: int = 0
    blockSize: int = 0
    totalBlocks: int = 0
    freeBlocks: int = 0
    nextAllocation: int = 0
    rsrcClumpSize: int = 0
    dataClumpSize: int = 0
    nextCatalogID: int = 0
    writeCount: int = 0
    encodingsBitmap: int = 0
    finderInfo: tuple[int, ...] = (0,) * 8
    allocationFile: HFSPlusForkData = field(default_factory=HFSPlusForkData)
    extentsFile: HFSPlusForkData = field(default_factory=HFSPlusForkData)
    catalogFile: HFSPlusForkData = field(default_factory=HFSPlusForkData)
    attributesFile: HFSPlusForkData = field(default_factory=HFSPlusForkData)
    startupFile: HFSPlusForkData = field(default_factory=HFSPlusForkData)

    SIZE: ClassVar[int] = 512
    _S: ClassVar[struct.Struct] = struct.Struct(">HHIII" "IIII" "II" "III" "IIII" "I" "Q" "8I")

    def pack(self) -> bytes:
        head = self._S.pack(
            self.signature,
            self.version,
            self.attributes,
            self.lastMountedVersion,
            self.journalInfoBlock,
            self.createDate,
            self.modifyDate,
            self.backupDate,
            self.checkedDate,
            self.fileCount,
            self.folderCount,
            self.blockSize,
            self.totalBlocks,
            self.freeBlocks,
            self.nextAllocation,
            self.rsrcClumpSize,
            self.dataClumpSize,
            self.nextCatalogID,
            self.writeCount,
            self.encodingsBitmap,
            *self.finderInfo,
        )
        forks = (
            self.allocationFile,
            self.extentsFile,
            self.catalogFile,
            self.attributesFile,
            self.startupFile,
        )
        return head + b"".join(f.pack() for f in forks)

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> HFSPlusVolumeHeader:
        _need(data, offset, cls.SIZE, "volume header")
        v = cls._S.unpack_from(data, offset)
        base = offset + cls._S.size
        forks = [HFSPlusForkData.unpack(data, base + 80 * i) for i in range(5)]
        return cls(*v[:20], tuple(v[20:28]), *forks)

    @property
    def volume_id(self) -> int:
        """The 64-bit volume identifier in finderInfo[6..7] (blkid's UUID)."""
        return (self.finderInfo[6] << 32) | self.finderInfo[7]


# --- B-tree structures -----------------------------------------------------------------------


@dataclass(frozen=True)
class BTNodeDescriptor:
    fLink: int = 0
    bLink: int = 0
    kind: int = 0
    height: int = 0
    numRecords: int = 0
    reserved: int = 0

    SIZE: ClassVar[int] = 14
    _S: ClassVar[struct.Struct] = struct.Struct(">IIbBHH")

    def pack(self) -> bytes:
        return self._S.pack(
            self.fLink, self.bLink, self.kind, self.height, self.numRecords, self.reserved
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> BTNodeDescriptor:
        _need(data, offset, cls.SIZE, "node descriptor")
        return cls(*cls._S.unpack_from(data, offset))


@dataclass(frozen=True)
class BTHeaderRec:
    treeDepth: int = 0
    rootNode: int = 0
    leafRecords: int = 0
    firstLeafNode: int = 0
    lastLeafNode: int = 0
    nodeSize: int = 0
    maxKeyLength: int = 0
    totalNodes: int = 0
    freeNodes: int = 0
    reserved1: int = 0
    clumpSize: int = 0
    btreeType: int = kHFSBTreeType
    keyCompareType: int = 0
    attributes: int = 0
    reserved3: tuple[int, ...] = (0,) * 16

    SIZE: ClassVar[int] = 106
    _S: ClassVar[struct.Struct] = struct.Struct(">HIIIIHHIIHIBBI16I")

    def pack(self) -> bytes:
        return self._S.pack(
            self.treeDepth,
            self.rootNode,
            self.leafRecords,
            self.firstLeafNode,
            self.lastLeafNode,
            self.nodeSize,
            self.maxKeyLength,
            self.totalNodes,
            self.freeNodes,
            self.reserved1,
            self.clumpSize,
            self.btreeType,
            self.keyCompareType,
            self.attributes,
            *self.reserved3,
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> BTHeaderRec:
        _need(data, offset, cls.SIZE, "B-tree header record")
        v = cls._S.unpack_from(data, offset)
        return cls(*v[:14], tuple(v[14:]))


# --- Catalog ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HFSUniStr255:
    """A name as stored: ``unicode`` is the UTF-16BE bytes (at most 255 units)."""

    unicode: bytes = b""

    def __post_init__(self) -> None:
        if len(self.unicode) % 2 or len(self.unicode) > 510:
            raise ValueError(f"HFSUniStr255 holds 0..255 UTF-16 units, got {len(self.unicode)} bytes")

    @property
    def length(self) -> int:
        return len(self.unicode) // 2

    @property
    def size(self) -> int:
        return 2 + len(self.unicode)

    def pack(self) -> bytes:
        return struct.pack(">H", self.length) + self.unicode

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> HFSUniStr255:
        _need(data, offset, 2, "name length")
        (n,) = struct.unpack_from(">H", data, offset)
        if n > 255:
            raise HfsCorruptError(f"name length {n} exceeds 255 UTF-16 units")
        _need(data, offset + 2, 2 * n, "name")
        return cls(bytes(data[offset + 2 : offset + 2 + 2 * n]))


@dataclass(frozen=True)
class HFSPlusCatalogKey:
    """keyLength is derived: 6 + 2 * name length."""

    parentID: int = 0
    nodeName: HFSUniStr255 = field(default_factory=HFSUniStr255)

    @property
    def keyLength(self) -> int:
        return kHFSPlusCatalogKeyMinimumLength + len(self.nodeName.unicode)

    @property
    def size(self) -> int:
        return 2 + self.keyLength

    def pack(self) -> bytes:
        return struct.pack(">HI", self.keyLength, self.parentID) + self.nodeName.pack()

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> HFSPlusCatalogKey:
        _need(data, offset, 8, "catalog key")
        kl, parent = struct.unpack_from(">HI", data, offset)
        if kl < kHFSPlusCatalogKeyMinimumLength or kl > kHFSPlusCatalogKeyMaximumLength:
            raise HfsCorruptError(f"catalog key length {kl} out of range 6..516")
        name = HFSUniStr255.unpack(data, offset + 6)
        if kl != kHFSPlusCatalogKeyMinimumLength + len(name.unicode):
            raise HfsCorruptError(
                f"catalog key length {kl} does not match its name ({name.length} units)"
            )
        return cls(parent, name)


@dataclass(frozen=True)
class HFSPlusCatalogFolder:
    recordType: int = kHFSPlusFolderRecord
    flags: int = 0
    valence: int = 0
    folderID: int = 0
    createDate: int = 0
    contentModDate: int = 0
    attributeModDate: int = 0
    accessDate: int = 0
    backupDate: int = 0
    permissions: HFSPlusBSDInfo = field(default_factory=HFSPlusBSDInfo)
    userInfo: FolderInfo = field(default_factory=FolderInfo)
    finderInfo: ExtendedFolderInfo = field(default_factory=ExtendedFolderInfo)
    textEncoding: int = 0
    reserved: int = 0  # folderCount when kHFSHasFolderCountMask is set (HFSX)

    SIZE: ClassVar[int] = 88
    _S: ClassVar[struct.Struct] = struct.Struct(">hHIIIIIII")
    _FULL: ClassVar[struct.Struct] = struct.Struct(">hHIIIIIII" "IIBBHI" "hhhhHhhH" "hhiHhi" "II")

    def pack(self) -> bytes:
        p, u, f = self.permissions, self.userInfo, self.finderInfo
        return self._FULL.pack(
            self.recordType, self.flags, self.valence, self.folderID, self.createDate,
            self.contentModDate, self.attributeModDate, self.accessDate, self.backupDate,
            p.ownerID, p.groupID, p.adminFlags, p.ownerFlags, p.fileMode, p.special,
            *u.windowBounds, u.finderFlags, u.location_v, u.location_h, u.reservedField,
            f.scrollPosition_v, f.scrollPosition_h, f.reserved1, f.extendedFinderFlags,
            f.reserved2, f.putAwayFolderID,
            self.textEncoding, self.reserved,
        )  # fmt: skip

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> HFSPlusCatalogFolder:
        _need(data, offset, cls.SIZE, "folder record")
        v = cls._S.unpack_from(data, offset)
        o = offset + 32
        te, res = struct.unpack_from(">II", data, o + 48)
        return cls(
            *v,
            HFSPlusBSDInfo.unpack(data, o),
            FolderInfo.unpack(data, o + 16),
            ExtendedFolderInfo.unpack(data, o + 32),
            te,
            res,
        )


@dataclass(frozen=True)
class HFSPlusCatalogFile:
    recordType: int = kHFSPlusFileRecord
    flags: int = 0
    reserved1: int = 0
    fileID: int = 0
    createDate: int = 0
    contentModDate: int = 0
    attributeModDate: int = 0
    accessDate: int = 0
    backupDate: int = 0
    permissions: HFSPlusBSDInfo = field(default_factory=HFSPlusBSDInfo)
    userInfo: FileInfo = field(default_factory=FileInfo)
    finderInfo: ExtendedFileInfo = field(default_factory=ExtendedFileInfo)
    textEncoding: int = 0
    reserved2: int = 0
    dataFork: HFSPlusForkData = field(default_factory=HFSPlusForkData)
    resourceFork: HFSPlusForkData = field(default_factory=HFSPlusForkData)

    SIZE: ClassVar[int] = 248
    _S: ClassVar[struct.Struct] = struct.Struct(">hHIIIIIII")
    _FULL: ClassVar[struct.Struct] = struct.Struct(
        ">hHIIIIIII" "IIBBHI" "IIHhhH" "hhhhHhi" "II" "QII16I" "QII16I"
    )

    def pack(self) -> bytes:
        p, u, f = self.permissions, self.userInfo, self.finderInfo
        return self._FULL.pack(
            self.recordType, self.flags, self.reserved1, self.fileID, self.createDate,
            self.contentModDate, self.attributeModDate, self.accessDate, self.backupDate,
            p.ownerID, p.groupID, p.adminFlags, p.ownerFlags, p.fileMode, p.special,
            u.fileType, u.fileCreator, u.finderFlags, u.location_v, u.location_h, u.reservedField,
            *f.reserved1, f.extendedFinderFlags, f.reserved2, f.putAwayFolderID,
            self.textEncoding, self.reserved2,
            *_fork_fields(self.dataFork), *_fork_fields(self.resourceFork),
        )  # fmt: skip

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> HFSPlusCatalogFile:
        _need(data, offset, cls.SIZE, "file record")
        v = cls._S.unpack_from(data, offset)
        o = offset + 32
        te, res = struct.unpack_from(">II", data, o + 48)
        return cls(
            *v,
            HFSPlusBSDInfo.unpack(data, o),
            FileInfo.unpack(data, o + 16),
            ExtendedFileInfo.unpack(data, o + 32),
            te,
            res,
            HFSPlusForkData.unpack(data, o + 56),
            HFSPlusForkData.unpack(data, o + 136),
        )


@dataclass(frozen=True)
class HFSPlusCatalogThread:
    recordType: int = kHFSPlusFolderThreadRecord
    reserved: int = 0
    parentID: int = 0
    nodeName: HFSUniStr255 = field(default_factory=HFSUniStr255)

    @property
    def size(self) -> int:
        return 8 + self.nodeName.size

    def pack(self) -> bytes:
        return struct.pack(">hhI", self.recordType, self.reserved, self.parentID) + self.nodeName.pack()

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> HFSPlusCatalogThread:
        _need(data, offset, 10, "thread record")
        rt, res, parent = struct.unpack_from(">hhI", data, offset)
        return cls(rt, res, parent, HFSUniStr255.unpack(data, offset + 8))


# --- Extents overflow ------------------------------------------------------------------------


@dataclass(frozen=True)
class HFSPlusExtentKey:
    forkType: int = kHFSDataForkType
    pad: int = 0
    fileID: int = 0
    startBlock: int = 0

    keyLength: ClassVar[int] = kHFSPlusExtentKeyMaximumLength
    SIZE: ClassVar[int] = 12
    _S: ClassVar[struct.Struct] = struct.Struct(">HBBII")

    def pack(self) -> bytes:
        return self._S.pack(self.keyLength, self.forkType, self.pad, self.fileID, self.startBlock)

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> HFSPlusExtentKey:
        _need(data, offset, cls.SIZE, "extent key")
        kl, ft, pad, fid, sb = cls._S.unpack_from(data, offset)
        if kl != kHFSPlusExtentKeyMaximumLength:
            raise HfsCorruptError(f"extent key length {kl}, expected 10")
        return cls(ft, pad, fid, sb)

    def order(self) -> tuple[int, int, int]:
        """Sort order of TN1150: fileID, forkType, startBlock."""
        return (self.fileID, self.forkType, self.startBlock)


# --- Journal ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalInfoBlock:
    flags: int = 0
    device_signature: tuple[int, ...] = (0,) * 8
    offset: int = 0
    size: int = 0
    reserved: tuple[int, ...] = (0,) * 32

    SIZE: ClassVar[int] = 180
    _S: ClassVar[struct.Struct] = struct.Struct(">I8IQQ32I")

    def pack(self) -> bytes:
        return self._S.pack(self.flags, *self.device_signature, self.offset, self.size, *self.reserved)

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> JournalInfoBlock:
        _need(data, offset, cls.SIZE, "journal info block")
        v = cls._S.unpack_from(data, offset)
        return cls(v[0], tuple(v[1:9]), v[9], v[10], tuple(v[11:]))


def calc_checksum(data: bytes) -> int:
    """TN1150 ``calc_checksum`` (32-bit, as the C code computes it with int arithmetic)."""
    cksum = 0
    for b in data:
        cksum = ((cksum << 8) ^ (cksum + b)) & 0xFFFFFFFF
    return (~cksum) & 0xFFFFFFFF


@dataclass(frozen=True)
class JournalHeader:
    """``journal_header`` (big-endian here); ``checksum`` covers the first 44 bytes."""

    magic: int = JOURNAL_HEADER_MAGIC
    endian: int = ENDIAN_MAGIC
    start: int = 0
    end: int = 0
    size: int = 0
    blhdr_size: int = 0
    checksum: int = 0
    jhdr_size: int = 0

    SIZE: ClassVar[int] = 44
    _S: ClassVar[struct.Struct] = struct.Struct(">IIQQQIII")

    def pack(self) -> bytes:
        return self._S.pack(
            self.magic,
            self.endian,
            self.start,
            self.end,
            self.size,
            self.blhdr_size,
            self.checksum,
            self.jhdr_size,
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> JournalHeader:
        _need(data, offset, cls.SIZE, "journal header")
        return cls(*cls._S.unpack_from(data, offset))

    def with_checksum(self) -> JournalHeader:
        from dataclasses import replace

        zeroed = replace(self, checksum=0).pack()
        return replace(self, checksum=calc_checksum(zeroed))
