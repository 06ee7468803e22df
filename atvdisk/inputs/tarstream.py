"""A fast, forward-only reader of tar archives (plain, gzip, bzip2, xz), for streaming.

Python's ``tarfile`` in stream mode (``r|*``) costs twice the decompression itself (its buffer
joins); this reader decompresses in large bounded chunks and parses the headers with
``tarfile.TarInfo.frombuf`` (ustar, GNU and pax). It keeps nothing but the current chunk in
memory, checks every header's checksum, and reports a truncated or corrupt archive (a header or
member cut short, a bad gzip CRC, data after the end that is not zeros) as :class:`TarStreamError`.

Supported member kinds are those of POSIX tar; GNU sparse members and multi-volume archives are
refused. pax ``path``, ``linkpath``, ``size``, ``mtime``, ``uid`` and ``gid`` records override the
header fields, as do GNU long names and long link names.

Bounded on any input: the read position only moves forward (a size is never negative); numbers
are plain decimal (pax) or octal/base-256 (headers) within the range a file system can hold
(:data:`MAX_SIZE`, :data:`MAX_ID`, :data:`MAX_TIME`), anything else is a :class:`TarStreamError`;
metadata records (pax headers, GNU long names) larger than :data:`METADATA_LIMIT` are refused
before they are read, and only the pax keys used here are kept. Members of unknown types have
their data skipped, as tarfile and GNU tar do.
"""

from __future__ import annotations

import bz2
import lzma
import os
import queue
import re
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

try:  # ISA-L's inflate (python-isal): the same API and checks as zlib's, about twice as fast
    from isal import isal_zlib as gzip_inflate

    _INFLATE_ERRORS: tuple[type[BaseException], ...] = (zlib.error, gzip_inflate.error)
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    gzip_inflate = zlib  # type: ignore[assignment]
    _INFLATE_ERRORS = (zlib.error,)

BLOCK = 512
CHUNK = 2 << 20  # compressed bytes read at a time, and the most output kept at once

# Bounds (see the module docstring). A pax header or GNU long name is read into memory whole:
# nothing legitimate comes near 1 MiB (a path is at most 4 KiB on Linux).
METADATA_LIMIT = 1 << 20
MAX_SIZE = (1 << 63) - 1  # off_t
MAX_ID = (1 << 32) - 1  # uid_t, gid_t
MAX_TIME = 1 << 53  # seconds either side of 1970: beyond it no float (tarfile's pax mtime) is exact
PAX_KEYS = frozenset({"path", "linkpath", "size", "mtime", "uid", "gid"})
_DECIMAL = re.compile(rb"[0-9]+")
_PAX_TIME = re.compile(r"(-?[0-9]+)(?:\.[0-9]*)?")


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
            self.d = gzip_inflate.decompressobj(31)  # gzip: its CRC and length are checked at the end
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
        except (*_INFLATE_ERRORS, OSError, EOFError, lzma.LZMAError) as e:
            raise TarStreamError(f"corrupt compressed data ({e})") from None

    def skip(self, n: int) -> int:
        """Move up to ``n`` bytes forward without reading them (plain archives only: a seek,
        never past the end of the file, so a truncated archive is still found); how many."""
        if self.d is not None:
            return 0
        here = self.f.tell()
        step = max(0, min(n, os.fstat(self.f.fileno()).st_size - here))
        self.f.seek(here + step)
        return step

    def _after_eof(self, unused: bytes) -> None:
        rest = unused + self.f.read(CHUNK)
        if rest.strip(b"\0"):
            # A second gzip member or garbage: no tool makes tarballs that way; refuse.
            raise TarStreamError("unexpected data after the end of the compressed stream")


class _ReadAhead:
    """Runs a :class:`_Source` in a thread, a few chunks ahead of the reader: decompression
    (isal/zlib, bz2 and lzma release the GIL) then overlaps with writing and hashing the data."""

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


class _Tee:
    """Hands every chunk of decompressed data to ``tee`` as the reader takes it (in the reader's
    thread: with read-ahead, beside the decompression)."""

    def __init__(self, src: _Source | _ReadAhead, tee: Callable[[bytes], object]) -> None:
        self._src = src
        self._tee = tee

    def read_chunk(self) -> bytes:
        chunk = self._src.read_chunk()
        if chunk:
            self._tee(chunk)
        return chunk


def is_compressed(path: str) -> bool:
    """Whether the file at ``path`` starts like a gzip, bzip2 or xz stream."""
    with open(path, "rb") as f:
        head = f.read(6)
    return head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head == b"\xfd7zXZ\x00"


class TarStream:
    """Iterate an archive's members in order; read each regular member's data as it comes.

    ``readahead``: decompress in a background thread, a few chunks ahead (memory stays bounded:
    at most ``depth`` chunks of 2 MiB). ``tee``: called with every piece of the decompressed
    archive, in order, as it is read (all of it, once the iteration has ended: the members'
    data, padding and the end-of-archive blocks too), e.g. to keep a plain copy.
    """

    def __init__(self, path: str, *, readahead: bool = False, tee: Callable[[bytes], object] | None = None) -> None:
        self.path = path
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._ahead: _ReadAhead | None = None
        self._teed = tee is not None
        try:
            src = self._plain = _Source(self._file)
            if readahead:
                self._ahead = _ReadAhead(src)
            self._src: _Source | _ReadAhead | _Tee = self._ahead or src
            if tee is not None:
                self._src = _Tee(self._src, tee)
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
        """Exactly n bytes (small: headers and metadata records)."""
        if n < 0:  # the position only moves forward
            raise TarStreamError(f"a negative length ({n}) for {what}")
        out = [b""]
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
        return b"".join(out) if len(out) > 2 else out[-1]

    def _skip(self, n: int, what: str) -> None:
        if n < 0:  # the position only moves forward
            raise TarStreamError(f"a negative length ({n}) for {what}")
        while n:
            if self._pos == len(self._buf):
                if n > CHUNK and self._ahead is None and not self._teed and (jumped := self._plain.skip(n - n % CHUNK)):
                    n -= jumped  # a large member of a plain archive: seek over it
                    continue
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
        # A whole chunk is handed over as it is (no copy: member data is most of an archive).
        piece = self._buf if self._pos == 0 and n >= len(self._buf) else self._buf[self._pos : self._pos + n]
        self._pos += len(piece)
        self._left -= len(piece)
        return piece

    # -- members ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Member]:
        pax: dict[str, str] = {}
        glob: dict[str, str] = {}
        long_name: str | None = None
        long_link: str | None = None
        pending = False  # metadata records read, and no member after them yet
        while True:
            # Whatever the consumer left of the previous member.
            self._skip(self._left + self._pad, "a member's data")
            self._left = self._pad = 0
            header = self._take_header()
            if header is None:
                if pending:
                    raise TarStreamError("the archive ends after a pax header or GNU long name, before the member it belongs to (truncated)")
                return
            try:
                info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
            except tarfile.HeaderError as e:
                raise TarStreamError(f"a corrupt header ({e})") from None
            kind = info.type
            size = _bounded(info.size, 0, MAX_SIZE, f"header of {info.name!r}", "size")
            if kind in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE):
                records = self._parse_pax(self._metadata(size, "a pax header"))
                (glob if kind == tarfile.XGLTYPE else pax).update(records)
                pending = True
                continue
            if kind in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
                text = self._metadata(size, "a GNU long name").split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                pending = True
                if kind == tarfile.GNUTYPE_LONGNAME:
                    long_name = text
                else:
                    long_link = text
                continue
            fields = {**glob, **pax}
            pending = False
            if kind == tarfile.GNUTYPE_SPARSE or "GNU.sparse" in fields:
                raise TarStreamError(f"member {info.name!r} is a GNU sparse file, which atvdisk does not read")
            if kind == b"M":  # GNU multi-volume continuation
                raise TarStreamError("multi-volume archives are not supported")
            # Names as tarfile gives them: a pax path without trailing slashes, a directory's
            # name without them; a file named "x/" stays so (tarsafe refuses it).
            if "path" in fields:
                name = fields["path"].rstrip("/")
            else:
                name = long_name if long_name is not None else info.name
            if kind == tarfile.DIRTYPE:
                name = name.rstrip("/")
            linkname = fields.get("linkpath", long_link if long_link is not None else info.linkname)
            what = f"member {name!r}"
            size = _pax_number(fields, "size", size, MAX_SIZE, what)
            uid = _pax_number(fields, "uid", _bounded(info.uid, 0, MAX_ID, what, "uid"), MAX_ID, what)
            gid = _pax_number(fields, "gid", _bounded(info.gid, 0, MAX_ID, what, "gid"), MAX_ID, what)
            mtime = _bounded(info.mtime, -MAX_TIME, MAX_TIME, what, "mtime")
            if "mtime" in fields:
                mtime = _pax_time(fields["mtime"], what)
            pax, long_name, long_link = {}, None, None
            regular = kind in tarfile.REGULAR_TYPES
            member = Member(name, kind, size if regular else 0, info.mode, uid, gid, mtime, linkname)
            # Regular files carry data; so do members of unknown types, which tarfile and GNU tar
            # skip by their size. A hard link's or a directory's size field is ignored, as tar does.
            data = size if regular or kind not in tarfile.SUPPORTED_TYPES else 0
            self._left, self._pad = (data, _padding(data)) if regular else (0, data + _padding(data))
            yield member

    def _metadata(self, size: int, what: str) -> bytes:
        """The bytes of a metadata record (pax header, long name) and its padding, bounded."""
        if size > METADATA_LIMIT:
            raise TarStreamError(f"{what} of {size} bytes (atvdisk reads at most {METADATA_LIMIT} bytes of metadata per member)")
        data = self._take(size, what)
        self._skip(_padding(size), what)
        return data

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
    def _parse_pax(data: bytes) -> dict[str, str]:
        """The records of a pax header this reader uses (``"%d key=value\\n"``, the length
        counting itself); any GNU.sparse.* key is kept as "GNU.sparse". Strict, as GNU tar is:
        a record must fit, be well formed and end in a newline."""
        records: dict[str, str] = {}
        pos = 0
        while pos < len(data):
            if data[pos] == 0:  # NUL padding after the last record
                break
            space = data.find(b" ", pos, pos + 21)
            if space < 0 or not _DECIMAL.fullmatch(data, pos, space):
                raise TarStreamError(f"a corrupt pax header (a record at byte {pos} does not start with its length)")
            length = int(data[pos:space])
            end = pos + length
            if end <= space + 1 or end > len(data) or data[end - 1] != 0x0A:
                raise TarStreamError(f"a corrupt pax header (the record at byte {pos} claims {length} bytes)")
            key, sep, value = data[space + 1 : end - 1].partition(b"=")
            if not sep or not key:
                raise TarStreamError(f"a corrupt pax header (the record at byte {pos} has no key=value)")
            name = key.decode("utf-8", "surrogateescape")
            if name in PAX_KEYS:
                records[name] = value.decode("utf-8", "surrogateescape")
            elif name.startswith("GNU.sparse."):
                records["GNU.sparse"] = "1"
            pos = end
        return records


def _bounded(value: int, low: int, high: int, what: str, field: str) -> int:
    if not low <= value <= high:
        raise TarStreamError(f"{what} has {field} {value}, outside {low}..{high}")
    return value


def _pax_number(fields: dict[str, str], key: str, default: int, high: int, what: str) -> int:
    """A pax number record: plain decimal digits, at most ``high``; ``default`` when absent."""
    text = fields.get(key)
    if text is None:
        return default
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) > 20 or not _DECIMAL.fullmatch(raw):
        raise TarStreamError(f"{what} has a bad pax record {key}={text!r} (expected decimal digits)")
    return _bounded(int(raw), 0, high, what, key)


def _pax_time(text: str, what: str) -> int:
    """A pax time (``[-]digits[.digits]``) as whole seconds, truncated toward zero as tarfile's
    ``int(float(...))`` does."""
    m = _PAX_TIME.fullmatch(text) if len(text) <= 40 else None
    if m is None:
        raise TarStreamError(f"{what} has a bad pax record mtime={text!r} (expected [-]seconds[.fraction])")
    return _bounded(int(m.group(1)), -MAX_TIME, MAX_TIME, what, "mtime")


def _padding(size: int) -> int:
    return -size % BLOCK
