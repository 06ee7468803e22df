"""Listings of an HFS+ image by tools we did not write (pyfshfs, pytsk3), and by our reader,
in the form of :class:`tests.hfs_cases.Expected` so tests can compare them with the source.

Every listing hashes file contents by reading them through that tool.
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pyfshfs
import pytsk3
from hfs_cases import Expected, nfc_path

from atvdisk.fs.hfsplus.reader import HfsVolume

READ = 16 << 20


class _Offset:
    """A file object seen from ``offset`` (pyfshfs.open_file_object has no offset argument)."""

    def __init__(self, path: Path, offset: int) -> None:
        self.f = open(path, "rb")
        self.offset = offset
        self.f.seek(offset)

    def read(self, n: int = -1) -> bytes:
        return self.f.read(n)

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0:
            return self.f.seek(pos + self.offset) - self.offset
        return self.f.seek(pos, whence) - self.offset

    def tell(self) -> int:
        return self.f.tell() - self.offset

    def get_size(self) -> int:
        end = self.f.seek(0, 2)
        return end - self.offset

    def close(self) -> None:
        self.f.close()


def _kind_from_mode(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISREG(mode):
        return "file"
    return "special"


def listing_pyfshfs(image: Path, offset: int = 0) -> tuple[dict[str, Expected], str]:
    """(listing, volume name) as libfshfs sees the volume."""
    vol = pyfshfs.volume()
    fobj = None
    if offset:
        fobj = _Offset(image, offset)
        vol.open_file_object(fobj)
    else:
        vol.open(str(image))
    out: dict[str, Expected] = {}
    try:
        stack = [(vol.get_root_directory(), "")]
        while stack:
            d, prefix = stack.pop()
            for i in range(d.get_number_of_sub_file_entries()):
                e = d.get_sub_file_entry(i)
                path = f"{prefix}/{e.name}" if prefix else e.name
                mode = e.file_mode
                kind = _kind_from_mode(mode)
                digest = target = None
                size = e.size if kind != "dir" else 0
                if kind == "file":
                    h = hashlib.sha256()
                    left = size
                    e.seek_offset(0, 0)
                    while left:
                        b = e.read_buffer(min(READ, left))
                        if not b:
                            raise AssertionError(f"pyfshfs: short read of {path}")
                        h.update(b)
                        left -= len(b)
                    digest = h.hexdigest()
                elif kind == "symlink":
                    target = e.symbolic_link_target
                elif kind == "dir":
                    stack.append((e, path))
                key = nfc_path(path)
                out[key] = Expected(key, kind, size, mode & 0o7777, e.owner_identifier, e.group_identifier,
                                    digest, target)  # fmt: skip
        name = vol.get_name()
    finally:
        vol.close()
        if fobj is not None:
            fobj.close()
    return out, name


_TSK_KIND = {
    int(pytsk3.TSK_FS_META_TYPE_REG): "file",
    int(pytsk3.TSK_FS_META_TYPE_DIR): "dir",
    int(pytsk3.TSK_FS_META_TYPE_LNK): "symlink",
}


def listing_pytsk3(image: Path, offset: int = 0) -> dict[str, Expected]:
    """Listing as The Sleuth Kit sees the volume (its virtual $-files skipped)."""
    fs = pytsk3.FS_Info(pytsk3.Img_Info(str(image)), offset=offset)
    out: dict[str, Expected] = {}
    stack = [("/", "")]
    while stack:
        dpath, prefix = stack.pop()
        for f in fs.open_dir(dpath):
            raw = f.info.name.name
            if raw in (b".", b".."):
                continue
            m = f.info.meta
            if m is None or (prefix == "" and m.addr < 16):
                continue  # $ExtentsFile, $CatalogFile... (CNIDs below 16)
            name = raw.decode("utf-8")
            path = f"{prefix}/{name}" if prefix else name
            kind = _TSK_KIND.get(int(m.type), "special")
            digest = target = None
            size = m.size if kind != "dir" else 0
            if kind == "file":
                h = hashlib.sha256()
                off = 0
                while off < size:
                    b = f.read_random(off, min(READ, size - off))
                    if not b:
                        raise AssertionError(f"pytsk3: short read of {path}")
                    h.update(b)
                    off += len(b)
                digest = h.hexdigest()
            elif kind == "symlink":
                target = m.link.decode("utf-8") if isinstance(m.link, bytes) else m.link
            elif kind == "dir":
                stack.append((f"{dpath.rstrip('/')}/{name}", path))
            key = nfc_path(path)
            out[key] = Expected(key, kind, size, int(m.mode) & 0o7777, m.uid, m.gid, digest, target)
    return out


def listing_reader(image: Path, offset: int = 0, *, scan: bool = False) -> tuple[dict[str, Expected], HfsVolume]:
    """The reader's listing: by :meth:`HfsVolume.walk` (depth first), or with ``scan`` by
    :meth:`HfsVolume.scan` (catalog order, what verification uses)."""
    vol = HfsVolume.open(image, offset)
    out: dict[str, Expected] = {}
    for e in vol.scan() if scan else vol.walk():
        out[e.path_nfc] = Expected(
            e.path_nfc, e.kind, e.size, e.mode & 0o7777, e.uid, e.gid,
            vol.sha256(e) if e.kind == "file" else None, e.link_target,
        )  # fmt: skip
    return out, vol


def diff(expected: dict[str, Expected], got: dict[str, Expected], who: str) -> list[str]:
    """Human-readable differences (empty when equal)."""
    out = []
    for k in sorted(set(expected) | set(got)):
        a, b = expected.get(k), got.get(k)
        if a is None:
            out.append(f"{who}: unexpected {k!r}: {b}")
        elif b is None:
            out.append(f"{who}: missing {k!r}")
        elif a != b:
            out.append(f"{who}: {k!r}: expected {a}, got {b}")
    return out
