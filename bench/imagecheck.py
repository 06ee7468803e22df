"""Read a disk image back with tools atvdisk does not contain, to show that images made by
different tools hold the same things: ``sfdisk --json`` (partition table), ``blkid -p -O``
(filesystem signatures and labels), ``e2fsck -fn`` and ``debugfs`` (ext4: every entry's type,
mode, owner and size from ``ls -p``, every file's sha256 from an ``rdump`` of the tree), ``mdir``
(FAT listing).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

from common import remove, run


def partition_table(image: Path) -> dict:
    t = json.loads(run(["sfdisk", "--json", str(image)]).stdout)["partitiontable"]
    return {
        "label": t.get("label"),
        "firstlba": t.get("firstlba"),
        "lastlba": t.get("lastlba"),
        "partitions": [{"start": p["start"], "size": p["size"], "type": p["type"].upper(), "name": p.get("name", "")} for p in t.get("partitions", [])],
    }


def blkid_at(image: Path, offset: int) -> dict[str, str]:
    out = run(["blkid", "-p", "-o", "export", "-O", str(offset), str(image)], ok=(0, 2)).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {k: v for k, v in values.items() if k in ("TYPE", "LABEL", "VERSION", "USAGE")}


def _debugfs(spec: str, commands: list[str], scratch: Path) -> str:
    script = scratch / "debugfs.cmds"
    script.write_text("\n".join(commands) + "\n")
    return run(["debugfs", "-f", str(script), spec]).stdout


def ext4_listing(image: Path, offset: int, scratch: Path) -> tuple[dict[str, tuple], str]:
    """{path: (kind, mode, uid, gid, size, sha256 or link target)} and e2fsck's verdict."""
    spec = f"{image}?offset={offset}"
    fsck = run(["e2fsck", "-fn", spec], ok=(0, 1, 2, 4, 8))
    fsck_verdict = "clean" if fsck.returncode == 0 else f"e2fsck -fn exit {fsck.returncode}: {fsck.stdout.strip()[-200:]}"
    entries: dict[str, tuple] = {}
    level = [""]
    while level:
        out = _debugfs(spec, [f'ls -p "/{d}"' for d in level], scratch)
        nxt = []
        current = None
        for line in out.splitlines():
            if line.startswith("debugfs:"):
                current = line.split('ls -p "/', 1)[1].rstrip('"')
                continue
            fields = line.split("/")
            if current is None or len(fields) != 8 or fields[0]:
                continue
            _, _ino, mode, uid, gid, name, size, _ = fields
            if name == ".." or (name == "." and current):
                continue
            path = current if name == "." else f"{current}/{name}" if current else name
            m = int(mode, 8)
            kind = "dir" if stat.S_ISDIR(m) else "file" if stat.S_ISREG(m) else "symlink" if stat.S_ISLNK(m) else f"other {m:o}"
            entries[path] = (kind, stat.S_IMODE(m), int(uid), int(gid), int(size) if size else 0)
            if kind == "dir" and name != ".":
                nxt.append(path)
        level = nxt
    with tempfile.TemporaryDirectory(prefix="rdump-", dir=scratch) as tmp:
        run(["debugfs", "-R", f"rdump / {tmp}", spec])
        for path, e in list(entries.items()):
            full = os.path.join(tmp, path)
            if e[0] == "file":
                h = hashlib.sha256()
                with open(full, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                entries[path] = e + (h.hexdigest(),)
            elif e[0] == "symlink":
                entries[path] = e + (os.readlink(full),)
            else:
                entries[path] = e + (None,)
    return entries, fsck_verdict


def fat_listing(image: Path, offset: int) -> list[str]:
    out = run(["mdir", "-i", f"{image}@@{offset}", "-b", "-/", "::/"], env={"MTOOLS_SKIP_CHECK": "1"}, ok=(0, 1)).stdout
    return sorted(line.strip() for line in out.splitlines() if line.strip())


# atvdisk's own record of the build at the root of the first FAT32 (else ext4) partition: like
# the GUIDs, something only atvdisk writes, not part of the contents the three tools are given.
ATVDISK_MANIFEST = "atvdisk-manifest.json"


def describe(image: Path, scratch: Path, *, without: tuple[str, ...] = ()) -> dict:
    """Everything compared between the peers' images, partition by partition. ``without``:
    root-level file names to leave out (atvdisk's manifest, for atvdisk's image)."""
    table = partition_table(image)
    parts = []
    for p in table["partitions"]:
        offset = p["start"] * 512
        sig = blkid_at(image, offset)
        item = {"table": p, "blkid": sig}
        if sig.get("TYPE") == "ext4":
            item["files"], item["fsck"] = ext4_listing(image, offset, scratch)
            for name in without:
                item["files"].pop(name, None)
        elif sig.get("TYPE") == "vfat":
            item["files"] = [line for line in fat_listing(image, offset) if line not in {f"::/{n}" for n in without}]
        parts.append(item)
    return {"table": table, "partitions": parts}


def differences(a: dict, b: dict) -> list[str]:
    """What differs between two describe() results, ignoring identifiers (GUIDs, UUIDs)."""
    diffs = []
    pa, pb = a["partitions"], b["partitions"]
    if len(pa) != len(pb):
        return [f"{len(pa)} partitions vs {len(pb)}"]
    for i, (x, y) in enumerate(zip(pa, pb), 1):
        if x["table"] != y["table"]:
            diffs.append(f"partition {i}: table entry {x['table']} vs {y['table']}")
        if x["blkid"] != y["blkid"]:
            diffs.append(f"partition {i}: signature {x['blkid']} vs {y['blkid']}")
        if x.get("fsck", "clean") != "clean" or y.get("fsck", "clean") != "clean":
            diffs.append(f"partition {i}: {x.get('fsck')} / {y.get('fsck')}")
        fx, fy = x.get("files"), y.get("files")
        if fx != fy:
            if isinstance(fx, dict) and isinstance(fy, dict):
                only_x = sorted(set(fx) - set(fy))
                only_y = sorted(set(fy) - set(fx))
                changed = sorted(k for k in set(fx) & set(fy) if fx[k] != fy[k])
                for k in only_x[:3]:
                    diffs.append(f"partition {i}: /{k} only in the first")
                for k in only_y[:3]:
                    diffs.append(f"partition {i}: /{k} only in the second")
                for k in changed[:3]:
                    diffs.append(f"partition {i}: /{k}: {fx[k]} vs {fy[k]}")
            else:
                diffs.append(f"partition {i}: files {fx} vs {fy}")
    return diffs


def file_count(d: dict) -> tuple[int, int]:
    """(files, bytes) in the ext4 partitions of a describe() result."""
    n = size = 0
    for p in d["partitions"]:
        if isinstance(p.get("files"), dict):
            for e in p["files"].values():
                if e[0] == "file":
                    n += 1
                    size += e[4]
    return n, size


__all__ = ["ATVDISK_MANIFEST", "describe", "differences", "file_count", "partition_table", "remove"]
