"""Hand-made tar archives for the hostile-input tests: raw headers with any field value, pax
records with any text, GNU long names of any size, and a sparse way to describe a member larger
than memory (only its header is written; the size field says what it claims).

Everything returns bytes; :func:`archive` joins blocks and adds the end-of-archive marker.
"""

from __future__ import annotations

import gzip

BLOCK = 512


def _octal(value: int, width: int) -> bytes:
    return (b"%0*o" % (width - 1, value)) + b"\0"


def _base256(value: int, width: int) -> bytes:
    """GNU base-256 encoding (negative numbers too): the top bit of the first byte set."""
    raw = (value % (1 << (8 * width - 1))).to_bytes(width, "big") if value >= 0 else (value % (1 << (8 * width))).to_bytes(width, "big")
    return bytes([raw[0] | 0x80]) + raw[1:]


def header(
    name: str | bytes,
    *,
    size: int | bytes = 0,
    typeflag: bytes = b"0",
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    mtime: int | bytes = 1_300_000_000,
    linkname: str | bytes = b"",
    magic: bytes = b"ustar\x0000",
    base256_size: bool = False,
) -> bytes:
    """One 512-byte ustar header with a correct checksum. ``size``/``mtime`` may be raw field
    bytes (12 bytes) to write what a number field cannot say."""
    name_b = name.encode() if isinstance(name, str) else name
    link_b = linkname.encode() if isinstance(linkname, str) else linkname
    if isinstance(size, bytes):
        size_field = size.ljust(12, b"\0")[:12]
    elif base256_size or size < 0 or size >= 8**11:
        size_field = _base256(size, 12)
    else:
        size_field = _octal(size, 12)
    mtime_field = mtime.ljust(12, b"\0")[:12] if isinstance(mtime, bytes) else _octal(mtime, 12)
    block = bytearray(BLOCK)
    block[0:100] = name_b[:100].ljust(100, b"\0")
    block[100:108] = _octal(mode, 8)
    block[108:116] = _octal(uid, 8)
    block[116:124] = _octal(gid, 8)
    block[124:136] = size_field
    block[136:148] = mtime_field
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[157:257] = link_b[:100].ljust(100, b"\0")
    block[257:265] = magic
    chksum = sum(block)
    block[148:156] = b"%06o\0 " % chksum
    return bytes(block)


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def pax_record(key: str, value: str | bytes) -> bytes:
    """One well-formed ``"%d key=value\\n"`` record (the length counts itself)."""
    body = key.encode() + b"=" + (value.encode() if isinstance(value, str) else value) + b"\n"
    n = len(body) + 2
    while len(str(n)) + 1 + len(body) != n:
        n += 1
    return str(n).encode() + b" " + body


def pax(records: bytes, *, global_: bool = False, size: int | None = None) -> bytes:
    """A pax extended (or global) header block followed by its records. ``size`` overrides
    the size field (to lie about it)."""
    flag = b"g" if global_ else b"x"
    return header("././@PaxHeader", size=len(records) if size is None else size, typeflag=flag) + pad(records)


def gnu_long(name: bytes, *, link: bool = False, size: int | None = None) -> bytes:
    flag = b"K" if link else b"L"
    return header("././@LongLink", size=len(name) if size is None else size, typeflag=flag, magic=b"ustar  \0") + pad(name)


def member(name: str, data: bytes = b"", **kw) -> bytes:
    return header(name, size=len(data), **kw) + pad(data)


def archive(*parts: bytes, end: bool = True) -> bytes:
    return b"".join(parts) + (b"\0" * (2 * BLOCK) if end else b"")


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def gz_stream(*parts) -> bytes:  # noqa: ANN002 - bytes, or (bytes, repeat) pairs
    """gzip of the concatenation of ``parts``, where a part may be ``(chunk, count)`` to repeat a
    chunk many times without holding the whole uncompressed archive in memory (a 300 MB pax header
    compresses to a few hundred KB)."""
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = []
    for part in parts:
        chunk, count = part if isinstance(part, tuple) else (part, 1)
        for _ in range(count):
            out.append(c.compress(chunk))
    out.append(c.flush())
    return b"".join(out)
