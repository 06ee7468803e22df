"""Parse the records the guest's shell library (guest/guest.sh) writes, and list host trees alike.

Paths in listings are the guest's names as ``str`` (decoded UTF-8 with ``surrogateescape``, so
no byte is lost), relative to the listed directory, without a leading ``./``; the root is ``.``.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import RecordError

_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\] ?")


def _get(files: Mapping[str, bytes], name: str) -> bytes:
    try:
        return files[name]
    except KeyError:
        near = sorted(k for k in files if k.split("/")[:2] == name.split("/")[:2])
        raise RecordError(
            f"the guest wrote no record {name!r}" + (f" (it wrote {near})" if near else ""),
            hint="did the script call the guest_* function that writes it?",
        ) from None


def _text(files: Mapping[str, bytes], name: str) -> str:
    return _get(files, name).decode("utf-8", "surrogateescape")


def _int(files: Mapping[str, bytes], name: str) -> int:
    value = _text(files, name).strip()
    try:
        return int(value)
    except ValueError:
        raise RecordError(f"record {name!r} is not a number: {value!r}") from None


def dmesg_lines(text: str) -> list[str]:
    """Kernel log lines with their ``[   1.234]`` timestamps removed."""
    return [_TIMESTAMP.sub("", line) for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------- blkid


def parse_blkid_export(text: str) -> dict[str, str]:
    """``blkid -o export`` output as a dict (values unescaped: blkid backslash-escapes them)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if "=" not in line:
            continue
        key, _, raw = line.partition("=")
        values[key] = re.sub(r"\\(.)", r"\1", raw)
    return values


def blkid(files: Mapping[str, bytes]) -> dict[str, dict[str, str]]:
    """{"/dev/sda1": {"TYPE": "vfat", "PART_ENTRY_TYPE": "c12a7328-...", ...}, ...}.

    A device blkid found nothing on (exit status 2) maps to {}.
    """
    out: dict[str, dict[str, str]] = {}
    for key in files:
        if key.startswith("blkid/") and key.endswith(".rc"):
            name = key[len("blkid/") : -len(".rc")]
            rc = _int(files, key)
            if rc not in (0, 2):
                raise RecordError(f"blkid -p /dev/{name} failed (exit {rc}): {_text(files, f'blkid/{name}.err')}")
            out[f"/dev/{name}"] = parse_blkid_export(_text(files, f"blkid/{name}"))
    if not out:
        raise RecordError("no blkid records", hint="call guest_blkid in the script")
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------------------------- mounts


@dataclass(frozen=True)
class MountRecord:
    """What ``guest_mount NAME ...`` saw."""

    name: str
    dev: str
    dir: str
    rc: int
    stderr: str
    dmesg: tuple[str, ...]  # kernel lines the mount produced (timestamps removed)
    fstype: str | None  # from /proc/mounts; None if not mounted
    options: tuple[str, ...]  # effective options from /proc/mounts

    @property
    def mounted(self) -> bool:
        return self.fstype is not None

    @property
    def read_only(self) -> bool:
        return "ro" in self.options

    def dmesg_text(self) -> str:
        return "\n".join(self.dmesg)


def mount(files: Mapping[str, bytes], name: str) -> MountRecord:
    base = f"mount/{name}"
    mounts = _text(files, f"{base}/mounts").split()
    # /proc/mounts: dev dir fstype options 0 0 (last mount on the dir wins)
    fstype, options = (mounts[-4], tuple(mounts[-3].split(","))) if len(mounts) >= 6 else (None, ())
    return MountRecord(
        name=name,
        dev=_text(files, f"{base}/dev").strip(),
        dir=_text(files, f"{base}/dir").strip(),
        rc=_int(files, f"{base}/rc"),
        stderr=_text(files, f"{base}/stderr"),
        dmesg=tuple(line for line in dmesg_lines(_text(files, f"{base}/dmesg")) if "atvdisk-mark-" not in line),
        fstype=fstype,
        options=options,
    )


@dataclass(frozen=True)
class CommandRecord:
    """A command's status, stderr and the kernel lines it produced (guest_umount)."""

    rc: int
    stderr: str
    dmesg: tuple[str, ...]


def umount(files: Mapping[str, bytes], name: str) -> CommandRecord:
    base = f"umount/{name}"
    return CommandRecord(
        rc=_int(files, f"{base}/rc"),
        stderr=_text(files, f"{base}/stderr"),
        dmesg=tuple(line for line in dmesg_lines(_text(files, f"{base}/dmesg")) if "atvdisk-mark-" not in line),
    )


# ---------------------------------------------------------------------------------------- swap


@dataclass(frozen=True)
class SwapRecord:
    """What ``guest_swapon NAME DEV`` saw."""

    dev: str
    rc: int
    stderr: str
    dmesg: tuple[str, ...]
    swaps: tuple[dict[str, str], ...]  # /proc/swaps rows while it was on
    swapoff_rc: int | None

    @property
    def active_entry(self) -> dict[str, str] | None:
        for row in self.swaps:
            if row["Filename"] == self.dev:
                return row
        return None


def swap(files: Mapping[str, bytes], name: str) -> SwapRecord:
    base = f"swap/{name}"
    lines = _text(files, f"{base}/swaps").splitlines()
    header = lines[0].split() if lines else []
    rows = tuple(dict(zip(header, line.split(), strict=False)) for line in lines[1:] if line.strip())
    return SwapRecord(
        dev=_text(files, f"{base}/dev").strip(),
        rc=_int(files, f"{base}/rc"),
        stderr=_text(files, f"{base}/stderr"),
        dmesg=tuple(line for line in dmesg_lines(_text(files, f"{base}/dmesg")) if "atvdisk-mark-" not in line),
        swaps=rows,
        swapoff_rc=_int(files, f"{base}/swapoff_rc") if f"{base}/swapoff_rc" in files else None,
    )


# ---------------------------------------------------------------------------------------- listings

_TYPE = {
    stat.S_IFREG: "f",
    stat.S_IFDIR: "d",
    stat.S_IFLNK: "l",
    stat.S_IFCHR: "c",
    stat.S_IFBLK: "b",
    stat.S_IFIFO: "p",
    stat.S_IFSOCK: "s",
}


@dataclass(frozen=True)
class Entry:
    """One file system entry, as the guest kernel (or the host, see :func:`host_listing`) sees it."""

    path: str
    type: str  # f d l c b p s
    mode: int  # permission bits (07777)
    size: int
    uid: int
    gid: int
    nlink: int
    sha256: str | None = None  # regular files
    target: str | None = None  # symlinks
    inode: int = 0
    mtime: int = 0

    def key(self) -> tuple[object, ...]:
        """The fields a content comparison uses: not inode, nlink, mtime, nor the size of a
        directory (it depends on the file system, not on the contents)."""
        size = None if self.type == "d" else self.size
        return (self.path, self.type, self.mode, size, self.uid, self.gid, self.sha256, self.target)


def _decode(raw: bytes) -> str:
    name = raw.decode("utf-8", "surrogateescape")
    if name == ".":
        return "."
    if not name.startswith("./"):
        raise RecordError(f"listing name without ./ prefix: {name!r}")
    return name[2:]


def _split0(data: bytes) -> list[bytes]:
    if not data:
        return []
    if not data.endswith(b"\0"):
        raise RecordError("NUL-separated name list is truncated")
    return data[:-1].split(b"\0")


def listing(files: Mapping[str, bytes], name: str) -> dict[str, Entry]:
    """{path: Entry} of ``guest_list NAME``, checked for consistency record by record."""
    base = f"list/{name}"
    rc = _int(files, f"{base}/rc")
    if rc != 0:
        raise RecordError(f"guest_list {name} failed (exit {rc}): {_text(files, f'{base}/stderr').strip()}")
    names = _split0(_get(files, f"{base}/names0"))
    regular = _split0(_get(files, f"{base}/files0"))
    links = _split0(_get(files, f"{base}/links0"))

    stats: dict[bytes, tuple[int, ...]] = {}
    data = _get(files, f"{base}/stat")
    pos = 0
    for raw in names:
        end = data.index(b" ./", pos) if raw != b"." else data.index(b" .\n", pos)
        fields = data[pos:end].split()
        if len(fields) != 7 or data[end + 1 : end + 1 + len(raw) + 1] != raw + b"\n":
            raise RecordError(f"{base}/stat: record for {raw!r} does not match at byte {pos}")
        stats[raw] = (int(fields[0], 16), *(int(f) for f in fields[1:]))
        pos = end + 1 + len(raw) + 1
    if pos != len(data):
        raise RecordError(f"{base}/stat: {len(data) - pos} unparsed bytes (stat failed on some entry?)")

    hashes: dict[bytes, str] = {}
    data = _get(files, f"{base}/sha256")
    pos = 0
    for raw in regular:
        digest = data[pos : pos + 64].decode()
        rest = data[pos + 64 : pos + 64 + 2 + len(raw) + 1]
        if not re.fullmatch(r"[0-9a-f]{64}", digest) or rest != b"  " + raw + b"\n":
            raise RecordError(f"{base}/sha256: record for {raw!r} does not match at byte {pos}")
        hashes[raw] = digest
        pos += 64 + 2 + len(raw) + 1
    if pos != len(data):
        raise RecordError(f"{base}/sha256: {len(data) - pos} unparsed bytes")

    targets: dict[bytes, str] = {}
    values = _split0(_get(files, f"{base}/links"))
    if len(values) != len(links):
        raise RecordError(f"{base}/links: {len(values)} targets for {len(links)} symlinks")
    for raw, value in zip(links, values, strict=True):
        if not value.endswith(b"\n"):
            raise RecordError(f"{base}/links: readlink failed for {raw!r}")
        targets[raw] = value[:-1].decode("utf-8", "surrogateescape")

    out: dict[str, Entry] = {}
    for raw in names:
        mode, size, uid, gid, nlink, inode, mtime = stats[raw]
        kind = _TYPE.get(stat.S_IFMT(mode), "?")
        if (kind == "f") != (raw in hashes) or (kind == "l") != (raw in targets):
            raise RecordError(f"{base}: {raw!r} is type {kind} but the file/link lists disagree")
        path = _decode(raw)
        out[path] = Entry(
            path=path,
            type=kind,
            mode=stat.S_IMODE(mode),
            size=size,
            uid=uid,
            gid=gid,
            nlink=nlink,
            sha256=hashes.get(raw),
            target=targets.get(raw),
            inode=inode,
            mtime=mtime,
        )
    return out


def host_listing(root: Path) -> dict[str, Entry]:
    """The same records for a host directory (symlinks not followed), for comparisons."""
    out: dict[str, Entry] = {}

    def add(path: Path, rel: str) -> None:
        st = os.lstat(path)
        kind = _TYPE.get(stat.S_IFMT(st.st_mode), "?")
        digest = None
        if kind == "f":
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            digest = h.hexdigest()
        out[rel] = Entry(
            path=rel,
            type=kind,
            mode=stat.S_IMODE(st.st_mode),
            size=st.st_size,
            uid=st.st_uid,
            gid=st.st_gid,
            nlink=st.st_nlink,
            sha256=digest,
            target=os.readlink(path) if kind == "l" else None,
            inode=st.st_ino,
            mtime=int(st.st_mtime),
        )

    add(root, ".")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            add(full, os.fsdecode(os.path.relpath(full, root)))
    return out


# ---------------------------------------------------------------------------------------- calls


def calls(files: Mapping[str, bytes]) -> list[tuple[str, ...]]:
    """Calls recorded by guest_recorders / guest_kexec_wrapper, in order: (command, args...)."""
    fields = _split0(files.get("calls", b""))
    out: list[tuple[str, ...]] = []
    i = 0
    while i < len(fields):
        try:
            count = int(fields[i])
        except ValueError:
            raise RecordError(f"calls: expected an argument count at field {i}, got {fields[i]!r}") from None
        call = fields[i + 1 : i + 2 + count]
        if len(call) != count + 1:
            raise RecordError("calls: the last record is truncated")
        out.append(tuple(f.decode("utf-8", "surrogateescape") for f in call))
        i += 2 + count
    return out


# ---------------------------------------------------------------------------------------- kexec probe


def kexec_probe(console: str) -> dict[str, str] | None:
    """What the kexec probe kernel printed ({"release", "uptime", "cmdline"}), or None."""
    found = dict(re.findall(r"^ATVDISK-KEXEC-PROBE: (\w+) (.*?)\r?$", console, re.M))
    return found or None
