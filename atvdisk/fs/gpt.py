"""GPT and MBR on-disk records (UEFI spec, chapter 5): read, check, patch.

libparted (through pyparted, see :mod:`atvdisk.fs.partition`) writes the partition table; this module
reads it back without trusting it (``verify``), sets the identifiers libparted 3.5 cannot set (disk
and partition GUIDs from the layout seed, raw type GUIDs), and writes the optional hybrid MBR that
Apple firmware reads (what rEFIt's gptsync writes).
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from dataclasses import dataclass, replace
from typing import BinaryIO

from atvdisk.errors import EXIT_VERIFY, AtvdiskError

GPT_SIGNATURE = b"EFI PART"
GPT_REVISION = 0x00010000
GPT_HEADER_SIZE = 92
GPT_ENTRY_SIZE = 128
MBR_SIGNATURE = b"\x55\xaa"
MBR_TYPE_PROTECTIVE = 0xEE
MBR_TYPE_EFI = 0xEF
MBR_TYPE_HFS = 0xAF
MBR_TYPE_LINUX = 0x83
MBR_TYPE_SWAP = 0x82
MBR_TYPE_FAT32_LBA = 0x0C


class GptError(AtvdiskError):
    """The partition table is missing or damaged."""

    exit_code = EXIT_VERIFY


def guid_from_bytes(data: bytes) -> str:
    return str(uuid.UUID(bytes_le=bytes(data))).upper()


def guid_to_bytes(guid: str) -> bytes:
    return uuid.UUID(guid).bytes_le


@dataclass(frozen=True)
class GptHeader:
    """The 92-byte GPT header (UEFI 2.x, table 5-5)."""

    my_lba: int
    alternate_lba: int
    first_usable: int
    last_usable: int
    disk_guid: str
    entries_lba: int
    num_entries: int
    entry_size: int
    entries_crc32: int
    header_crc32: int = 0
    revision: int = GPT_REVISION
    header_size: int = GPT_HEADER_SIZE

    _FORMAT = "<8sIIII QQQQ 16s QIII"

    def pack(self) -> bytes:
        """The header with its CRC computed (``header_crc32`` is the one that was read)."""

        def raw(crc: int) -> bytes:
            return struct.pack(
                self._FORMAT,
                GPT_SIGNATURE,
                self.revision,
                self.header_size,
                crc,
                0,
                self.my_lba,
                self.alternate_lba,
                self.first_usable,
                self.last_usable,
                guid_to_bytes(self.disk_guid),
                self.entries_lba,
                self.num_entries,
                self.entry_size,
                self.entries_crc32,
            )

        return raw(zlib.crc32(raw(0)))

    def with_crc(self) -> GptHeader:
        return replace(self, header_crc32=struct.unpack_from("<I", self.pack(), 16)[0])

    @classmethod
    def unpack(cls, data: bytes, where: str) -> GptHeader:
        if len(data) < GPT_HEADER_SIZE or data[:8] != GPT_SIGNATURE:
            raise GptError(f"{where}: no GPT header signature", hint="the disk has no (or a damaged) GPT")
        (_, rev, hsize, crc, _res, my, alt, first, last, dguid, elba, n, esize, ecrc) = struct.unpack_from(cls._FORMAT, data)
        if hsize < GPT_HEADER_SIZE or hsize > len(data):
            raise GptError(f"{where}: header size {hsize} is invalid", hint="the GPT is damaged")
        check = bytearray(data[:hsize])
        check[16:20] = b"\0\0\0\0"
        if zlib.crc32(check) != crc:
            raise GptError(f"{where}: header CRC mismatch", hint="the GPT is damaged")
        if rev != GPT_REVISION:
            raise GptError(f"{where}: GPT revision {rev >> 16}.{rev & 0xFFFF}, not 1.0", hint="every UEFI version writes revision 1.0: the GPT is damaged")
        return cls(my, alt, first, last, guid_from_bytes(dguid), elba, n, esize, ecrc, crc, rev, hsize)


@dataclass(frozen=True)
class GptEntry:
    """One 128-byte partition entry (UEFI 2.x, table 5-6)."""

    type_guid: str
    unique_guid: str
    first_lba: int
    last_lba: int
    attributes: int
    name: str

    _FORMAT = "<16s16sQQQ72s"

    @property
    def unused(self) -> bool:
        return self.type_guid == "00000000-0000-0000-0000-000000000000"

    def pack(self) -> bytes:
        name = self.name.encode("utf-16-le")
        if len(name) > 72:
            raise ValueError(f"GPT partition name too long: {self.name!r}")
        return struct.pack(
            self._FORMAT,
            guid_to_bytes(self.type_guid),
            guid_to_bytes(self.unique_guid),
            self.first_lba,
            self.last_lba,
            self.attributes,
            name,  # struct pads "72s" with NULs
        )

    @classmethod
    def unpack(cls, data: bytes) -> GptEntry:
        tguid, uguid, first, last, attrs, name = struct.unpack_from(cls._FORMAT, data)
        text = name.decode("utf-16-le", errors="replace").split("\0", 1)[0]
        return cls(guid_from_bytes(tguid), guid_from_bytes(uguid), first, last, attrs, text)


@dataclass(frozen=True)
class MbrEntry:
    """One 16-byte MBR partition record."""

    status: int
    type: int
    first_lba: int
    sectors: int

    def pack(self) -> bytes:
        if self.type == 0:
            return b"\0" * 16
        last = self.first_lba + self.sectors - 1
        return struct.pack("<B3sB3sII", self.status, _chs(self.first_lba), self.type, _chs(last), self.first_lba, self.sectors)

    @classmethod
    def unpack(cls, data: bytes) -> MbrEntry:
        status, _, ptype, _, first, count = struct.unpack("<B3sB3sII", data)
        return cls(status, ptype, first, count)


def _chs(lba: int, heads: int = 255, sectors: int = 63) -> bytes:
    """CHS address in the 255-head, 63-sector geometry; beyond 1023 cylinders the maximum."""
    cylinder = lba // (heads * sectors)
    if cylinder > 1023:
        return bytes((254, 0xFF, 0xFF))
    head = (lba // sectors) % heads
    sector = lba % sectors + 1
    return bytes((head, ((cylinder >> 2) & 0xC0) | sector, cylinder & 0xFF))


@dataclass(frozen=True)
class Mbr:
    entries: tuple[MbrEntry, MbrEntry, MbrEntry, MbrEntry]
    disk_signature: int = 0

    def pack(self, boot_code: bytes = b"") -> bytes:
        head = boot_code[:440].ljust(440, b"\0")
        return head + struct.pack("<IH", self.disk_signature, 0) + b"".join(e.pack() for e in self.entries) + MBR_SIGNATURE

    @classmethod
    def unpack(cls, sector: bytes) -> Mbr:
        if sector[510:512] != MBR_SIGNATURE:
            raise GptError("no MBR signature (55 AA) in sector 0", hint="the disk has no partition table")
        sig = struct.unpack_from("<I", sector, 440)[0]
        entries = tuple(MbrEntry.unpack(sector[446 + 16 * i : 462 + 16 * i]) for i in range(4))
        return cls(entries, sig)  # type: ignore[arg-type]


@dataclass(frozen=True)
class GptTable:
    mbr: Mbr
    primary: GptHeader
    backup: GptHeader
    entries: tuple[GptEntry, ...]  # all num_entries slots, unused ones included

    @property
    def partitions(self) -> list[tuple[int, GptEntry]]:
        """(number, entry) for the used slots, numbered from 1 as Linux numbers them."""
        return [(i, e) for i, e in enumerate(self.entries, 1) if not e.unused]


def read_table(f: BinaryIO, sector_size: int, total_sectors: int) -> GptTable:
    """Read and check both GPT copies and the MBR; raise GptError on any inconsistency."""

    def read(lba: int, count: int = 1) -> bytes:
        f.seek(lba * sector_size)
        data = f.read(count * sector_size)
        if len(data) != count * sector_size:
            raise GptError(f"short read at sector {lba}", hint="the disk or image is truncated")
        return data

    mbr = Mbr.unpack(read(0)[:512])
    primary = GptHeader.unpack(read(1), "primary GPT header (sector 1)")
    if primary.my_lba != 1:
        raise GptError(f"primary GPT header says it is at sector {primary.my_lba}", hint="the GPT is damaged")
    if primary.alternate_lba != total_sectors - 1:
        raise GptError(
            f"the backup GPT header should be at the last sector {total_sectors - 1}, the primary says {primary.alternate_lba}",
            hint="the disk size changed since it was partitioned, or the GPT is damaged",
        )
    backup = GptHeader.unpack(read(total_sectors - 1), f"backup GPT header (sector {total_sectors - 1})")
    if backup.alternate_lba != 1 or backup.my_lba != total_sectors - 1:
        raise GptError("the backup GPT header does not point back at the primary", hint="the GPT is damaged")
    if primary.entry_size != GPT_ENTRY_SIZE or primary.num_entries > 1024:
        raise GptError(f"unusual GPT entry array: {primary.num_entries} x {primary.entry_size} bytes", hint="the GPT is damaged")
    nbytes = primary.num_entries * primary.entry_size
    nsec = -(-nbytes // sector_size)
    parray = read(primary.entries_lba, nsec)[:nbytes]
    barray = read(backup.entries_lba, nsec)[:nbytes]
    if zlib.crc32(parray) != primary.entries_crc32:
        raise GptError("primary GPT entry array CRC mismatch", hint="the GPT is damaged")
    if zlib.crc32(barray) != backup.entries_crc32:
        raise GptError("backup GPT entry array CRC mismatch", hint="the GPT is damaged")
    if parray != barray:
        raise GptError("the primary and backup GPT entry arrays differ", hint="the GPT is damaged")
    for field in ("first_usable", "last_usable", "disk_guid", "num_entries", "entry_size"):
        if getattr(primary, field) != getattr(backup, field):
            raise GptError(f"primary and backup GPT headers differ in {field}", hint="the GPT is damaged")
    entries = tuple(GptEntry.unpack(parray[i : i + GPT_ENTRY_SIZE]) for i in range(0, nbytes, GPT_ENTRY_SIZE))
    return GptTable(mbr, primary, backup, entries)


@dataclass(frozen=True)
class GptPrimary:
    """The primary GPT alone: what a disk's partitions are even when its backup GPT is not at the
    end (an image written to a larger disk) or is damaged."""

    header: GptHeader
    entries: tuple[GptEntry, ...]

    @property
    def partitions(self) -> list[tuple[int, GptEntry]]:
        return [(i, e) for i, e in enumerate(self.entries, 1) if not e.unused]


def read_primary(f: BinaryIO, sector_size: int) -> GptPrimary:
    """Read and check (CRCs, entry array bounds) the primary GPT header and entries only."""
    f.seek(sector_size)
    raw = f.read(sector_size)
    if len(raw) != sector_size:
        raise GptError("short read at sector 1", hint="the disk or image is truncated")
    header = GptHeader.unpack(raw, "primary GPT header (sector 1)")
    if header.my_lba != 1:
        raise GptError(f"primary GPT header says it is at sector {header.my_lba}", hint="the GPT is damaged")
    if header.entry_size != GPT_ENTRY_SIZE or header.num_entries > 1024 or header.entries_lba < 2:
        raise GptError(f"unusual GPT entry array: {header.num_entries} x {header.entry_size} bytes at sector {header.entries_lba}", hint="the GPT is damaged")
    nbytes = header.num_entries * header.entry_size
    f.seek(header.entries_lba * sector_size)
    array = f.read(nbytes)
    if len(array) != nbytes or zlib.crc32(array) != header.entries_crc32:
        raise GptError("primary GPT entry array CRC mismatch", hint="the GPT is damaged")
    entries = tuple(GptEntry.unpack(array[i : i + GPT_ENTRY_SIZE]) for i in range(0, nbytes, GPT_ENTRY_SIZE))
    for number, e in enumerate(entries, 1):
        if not e.unused and not (header.first_usable <= e.first_lba <= e.last_lba <= header.last_usable):
            raise GptError(f"GPT partition {number} (sectors {e.first_lba}-{e.last_lba}) lies outside the usable sectors {header.first_usable}-{header.last_usable}", hint="the GPT is damaged")
    return GptPrimary(header, entries)


def write_relocated(fd: int, primary: GptPrimary, sector_size: int, total_sectors: int, *, mbr_sector: bytes | None = None) -> None:
    """Write ``primary``'s partitions (entries and disk GUID unchanged) as a complete GPT for a
    disk of ``total_sectors``: backup entries and header at the last sectors, the last usable
    sector moved accordingly (what ``sgdisk -e`` does after an image is copied to a larger
    disk), and the MBR: ``mbr_sector`` (the image's own, for a hybrid MBR) or a protective one."""
    h = primary.header
    array = b"".join(e.pack() for e in primary.entries)
    nsec = -(-len(array) // sector_size)
    last_usable = total_sectors - 2 - nsec
    used_end = max((e.last_lba for e in primary.entries if not e.unused), default=0)
    if used_end > last_usable:
        raise GptError(f"partitions end at sector {used_end}, beyond the disk's last usable sector {last_usable}", hint="the disk is too small for this image")
    crc = zlib.crc32(array)
    first = replace(h, my_lba=1, alternate_lba=total_sectors - 1, last_usable=last_usable, entries_crc32=crc).with_crc()
    backup = replace(first, my_lba=total_sectors - 1, alternate_lba=1, entries_lba=total_sectors - 1 - nsec).with_crc()
    padded = array.ljust(nsec * sector_size, b"\0")
    mbr = mbr_sector[:512] if mbr_sector else protective_mbr(total_sectors).pack()
    for data, lba in ((mbr, 0), (first.pack().ljust(sector_size, b"\0"), 1), (padded, first.entries_lba), (padded, backup.entries_lba), (backup.pack().ljust(sector_size, b"\0"), total_sectors - 1)):
        view = memoryview(data)
        pos = lba * sector_size
        while view:
            n = os.pwrite(fd, view, pos)
            view, pos = view[n:], pos + n


def rewrite_table(f: BinaryIO, sector_size: int, table: GptTable, entries: tuple[GptEntry, ...], disk_guid: str, mbr: Mbr | None = None) -> None:
    """Write both GPT copies with new entries/disk GUID (CRCs recomputed) and optionally a new MBR."""
    array = b"".join(e.pack() for e in entries)
    crc = zlib.crc32(array)
    for header in (table.primary, table.backup):
        h = replace(header, disk_guid=disk_guid, entries_crc32=crc).with_crc()
        f.seek(h.entries_lba * sector_size)
        f.write(array)
        f.seek(h.my_lba * sector_size)
        f.write(h.pack().ljust(sector_size, b"\0"))
    if mbr is not None:
        f.seek(0)
        old = f.read(512)
        f.seek(0)
        f.write(mbr.pack(boot_code=old[:440]))


def hybrid_mbr(partitions: list[tuple[int, GptEntry]], total_sectors: int, type_for: dict[str, int]) -> Mbr:
    """A hybrid MBR as gptsync makes it for Apple firmware.

    The first record is the 0xEE protective partition from sector 1 up to the end of the EFI
    system partition (or up to the first partition when the ESP is not first); the next three GPT
    partitions that lie below 2^32 sectors follow with MBR types matching their GPT types.
    """
    limit = 2**32
    ordered = sorted(partitions, key=lambda ne: ne[1].first_lba)
    if not ordered:
        return protective_mbr(total_sectors)
    first = ordered[0][1]
    if type_for.get(first.type_guid) == MBR_TYPE_EFI:
        protective_end = first.last_lba
        rest = ordered[1:]
    else:
        protective_end = first.first_lba - 1
        rest = ordered
    records = [MbrEntry(0, MBR_TYPE_PROTECTIVE, 1, protective_end)]
    for _, e in rest:
        if len(records) == 4:
            break
        if e.last_lba >= limit or e.type_guid not in type_for:
            continue
        records.append(MbrEntry(0, type_for[e.type_guid], e.first_lba, e.last_lba - e.first_lba + 1))
    while len(records) < 4:
        records.append(MbrEntry(0, 0, 0, 0))
    return Mbr(tuple(records))  # type: ignore[arg-type]


def protective_mbr(total_sectors: int) -> Mbr:
    return Mbr((MbrEntry(0, MBR_TYPE_PROTECTIVE, 1, min(total_sectors - 1, 2**32 - 1)),) + (MbrEntry(0, 0, 0, 0),) * 3)  # type: ignore[arg-type]
