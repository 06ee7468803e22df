"""A fast, forward-only reader of tar archives (plain, gzip, bzip2, xz), for streaming.

Python's ``tarfile`` in stream mode (``r|*``) costs twice the decompression itself (its buffer
joins); this reader decompresses in large bounded chunks and parses the headers with
``tarfile.TarInfo.frombuf`` (ustar, GNU and pax). It keeps nothing but the current chunk in
memory, checks every header's checksum, and reports a truncated or corrupt archive (a header or
member cut short, a bad gzip CRC, data after the end that is not zeros) as :class:`TarStreamError`.

Supported member kinds are those of POSIX tar; GNU sparse members and multi-volume archives are
refused. pax ``path``, ``linkpath``, ``size``, ``mtime``, ``uid`` and ``gid`` records override the
header fields, as do GNU long names and long link names.
"""

from __future__ import annotations

import bz2
import lzma
import queue
import tarfile
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

BLOCK = 512
CHUNK = 2 << 20  # compressed bytes read at a time, and the most output kept at once


class TarStreamError(Exception):
    """The archive is not a readable tar stream (truncated, corrupt, unsupported)."""


@dataclass
class Member:
    name: str
    type: bytes  # tarfile's type codes: REGTYPE, DIRTYPE, SYMTYPE, LNKTYPE, CHRTYPE, ...
    size: int
    mode: int
    uid: int
    gid: int
    mtime: int
    linkname: str

    def isreg(self) -> bool:
        return self.type in tarfile.REGULAR_TYPES

    def isdir(self) -> bool:
        return self.type == tarfile.DIRTYPE

    def issym(self) -> bool:
        return self.type == tarfile.SYMTYPE

    def islnk(self) -> bool:
        return self.type == tarfile.LNKTYPE

    def ischr(self) -> bool:
        return self.type == tarfile.CHRTYPE

    def isblk(self) -> bool:
        return self.type == tarfile.BLKTYPE

    def isfifo(self) -> bool:
        return self.type == tarfile.FIFOTYPE


class _Source:
    """Decompressed bytes of the archive file, in bounded chunks."""

    def __init__(self, f) -> None:  # noqa: ANN001 - a binary file
        self.f = f
        head = f.read(6)
        f.seek(0)
        self.zlib = head[:2] == b"\x1f\x8b"
        if self.zlib:
            self.d = zlib.decompressobj(31)  # gzip: its CRC and length are checked at the end
        elif head[:3] == b"BZh":
            self.d = bz2.BZ2Decompressor()
        elif head == b"\xfd7zXZ\x00":
            self.d = lzma.LZMADecompressor()
        else:
            self.d = None
        self.pending = b""  # compressed input not consumed yet

    def read_chunk(self) -> bytes:
        """The next piece of decompressed data (at most CHUNK bytes); b"" at the end."""
        if self.d is None:
            return self.f.read(CHUNK)
        try:
            while True:
                if self.d.eof:
                    self._after_eof(self.d.unused_data)
                    return b""
                if self.zlib:
                    data = self.d.decompress(self.pending, CHUNK)
                    self.pending = self.d.unconsumed_tail
                else:  # bz2/lzma keep unconsumed input themselves
                    data = self.d.decompress(self.pending, CHUNK)
                    self.pending = b""
                if data:
                    return data
                if self.d.eof:
                    continue
                if not self.zlib and not self.d.needs_input:
                    continue
                if not self.pending:
                    self.pending = self.f.read(CHUNK)
                    if not self.pending:
                        raise TarStreamError("the compressed stream ends early (truncated)")
        except (zlib.error, OSError, EOFError, lzma.LZMAError) as e:
            raise TarStreamError(f"corrupt compressed data ({e})") from None

    def _after_eof(self, unused: bytes) -> None:
        rest = unused + self.f.read(CHUNK)
        if rest.strip(b"\0"):
            # A second gzip member or garbage: no tool makes tarballs that way; refuse.
            raise TarStreamError("unexpected data after the end of the compressed stream")


class _ReadAhead:
    """Runs a :class:`_Source` in a thread, a few chunks ahead of the reader: decompression
    (zlib, bz2 and lzma release the GIL) then overlaps with writing and hashing the data."""

    def __init__(self, src: _Source, depth: int = 2) -> None:
        self._q: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(src,), name="atvdisk-tar-readahead", daemon=True)
        self._thread.start()
        self._ended = False

    def _run(self, src: _Source) -> None:
        try:
            while not self._stop.is_set():
                chunk = src.read_chunk()
                self._put(chunk)
                if not chunk:
                    return
        except BaseException as e:  # handed to the reader, raised there
            self._put(e)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read_chunk(self) -> bytes:
        if self._ended:
            return b""
        item = self._q.get()
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        if not item:
            self._ended = True
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class TarStream:
    """Iterate an archive's members in order; read each regular member's data as it comes.

    ``readahead``: decompress in a background thread, a few chunks ahead (memory stays bounded:
    at most ``depth`` chunks of 2 MiB).
    """

    def __init__(self, path: str, *, readahead: bool = False) -> None:
        self.path = path
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._ahead: _ReadAhead | None = None
        try:
            src = _Source(self._file)
            if readahead:
                self._ahead = _ReadAhead(src)
            self._src = self._ahead or src
        except BaseException:
            self._file.close()
            raise
        self._buf = b""
        self._pos = 0
        self._left = 0  # data bytes of the current member not consumed yet
        self._pad = 0  # padding after the current member's data

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.close()
        self._file.close()

    def __enter__(self) -> TarStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- buffer ---------------------------------------------------------------------------

    def _take(self, n: int, what: str) -> bytes:
        """Exactly n bytes (small: headers)."""
        out = []
        need = n
        while need:
            if self._pos == len(self._buf):
                self._buf, self._pos = self._src.read_chunk(), 0
                if not self._buf:
                    raise TarStreamError(f"the archive ends in the middle of {what} (truncated)")
            piece = self._buf[self._pos : self._pos + need]
            self._pos += len(piece)
            need -= len(piece)
            out.append(piece)
        return b"".join(out) if len(out) > 1 else out[0]

    def _skip(self, n: int, what: str) -> None:
        while n:
            if self._pos == len(self._buf):
                self._buf, self._pos = self._src.read_chunk(), 0
                if not self._buf:
                    raise TarStreamError(f"the archive ends in the middle of {what} (truncated)")
            step = min(n, len(self._buf) - self._pos)
            self._pos += step
            n -= step

    def read(self, n: int = -1) -> bytes:
        """Data of the current member (at most ``n`` bytes; b"" at its end)."""
        if self._left == 0:
            return b""
        if n < 0 or n > self._left:
            n = self._left
        if self._pos == len(self._buf):
            self._buf, self._pos = self._src.read_chunk(), 0
            if not self._buf:
                raise TarStreamError("the archive ends in the middle of a member's data (truncated)")
        piece = self._buf[self._pos : self._pos + n]
        self._pos += len(piece)
        self._left -= len(piece)
        return piece

    # -- members ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Member]:
        pax: dict[str, str] = {}
        glob: dict[str, str] = {}
        long_name: str | None = None
        long_link: str | None = None
        while True:
            # Whatever the consumer left of the previous member.
            self._skip(self._left + self._pad, "a member's data")
            self._left = self._pad = 0
            header = self._take_header()
            if header is None:
                return
            try:
                info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
            except tarfile.HeaderError as e:
                raise TarStreamError(f"a corrupt header ({e})") from None
            kind = info.type
            size = info.size
            if kind in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE):
                records = self._parse_pax(self._take(size, "a pax header"), kind)
                self._skip(_padding(size), "a pax header")
                (glob if kind == tarfile.XGLTYPE else pax).update(records)
                continue
            if kind in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
                text = self._take(size, "a long name").split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                self._skip(_padding(size), "a long name")
                if kind == tarfile.GNUTYPE_LONGNAME:
                    long_name = text
                else:
                    long_link = text
                continue
            fields = {**glob, **pax}
            if kind == tarfile.GNUTYPE_SPARSE or any(k.startswith("GNU.sparse.") for k in fields):
                raise TarStreamError(f"member {info.name!r} is a GNU sparse file, which atvdisk does not read")
            if kind == b"M":  # GNU multi-volume continuation
                raise TarStreamError("multi-volume archives are not supported")
            name = fields.get("path", long_name if long_name is not None else info.name)
            if info.type == tarfile.DIRTYPE or name.endswith("/"):
                name = name.rstrip("/") or name
            linkname = fields.get("linkpath", long_link if long_link is not None else info.linkname)
            try:
                size = int(fields.get("size", size))
                mtime = int(float(fields.get("mtime", info.mtime)))
                uid = int(fields.get("uid", info.uid))
                gid = int(fields.get("gid", info.gid))
            except ValueError as e:
                raise TarStreamError(f"member {name!r} has a bad pax record ({e})") from None
            pax, long_name, long_link = {}, None, None
            member = Member(name, kind, size if kind in tarfile.REGULAR_TYPES else 0, info.mode, uid, gid, mtime, linkname)
            # Only regular files carry data here; a hard link's size field is ignored, as tar does.
            data = size if kind in tarfile.REGULAR_TYPES else 0
            self._left, self._pad = data, _padding(data)
            yield member

    def _take_header(self) -> bytes | None:
        """The next header block, or None at the end of the archive."""
        if self._pos == len(self._buf):
            self._buf, self._pos = self._src.read_chunk(), 0
            if not self._buf:
                raise TarStreamError("the archive ends without its end-of-archive marker (truncated)")
        block = self._take(BLOCK, "a header")
        if block.count(0) == BLOCK:
            # The end: one or two zero blocks, then zeros to the end of the record.
            while True:
                chunk = self._buf[self._pos :]
                if chunk.strip(b"\0"):
                    raise TarStreamError("data after the end-of-archive marker")
                self._buf, self._pos = self._src.read_chunk(), 0
                if not self._buf:
                    return None
        return block

    @staticmethod
    def _parse_pax(data: bytes, kind: bytes) -> dict[str, str]:
        records: dict[str, str] = {}
        pos = 0
        while pos < len(data):
            if data[pos] == 0:
                break
            space = data.find(b" ", pos)
            if space < 0:
                raise TarStreamError("a corrupt pax header")
            try:
                length = int(data[pos:space])
            except ValueError:
                raise TarStreamError("a corrupt pax header") from None
            if length <= 0 or pos + length > len(data):
                raise TarStreamError("a corrupt pax header")
            record = data[space + 1 : pos + length - 1]
            key, sep, value = record.partition(b"=")
            if not sep:
                raise TarStreamError("a corrupt pax header")
            records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
            pos += length
        return records


def _padding(size: int) -> int:
    return -size % BLOCK
