"""``atvdisk mkhfs`` and ``atvdisk lshfs`` through click's CliRunner and as a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hfs_cases import CASES_BY_NAME, expected_listing

from atvdisk.cli.main import main

from .judges import diff, listing_pyfshfs, listing_pytsk3

MIB = 1 << 20

LSHFS_ENTRY_KEYS = {"path", "path_stored", "type", "mode", "uid", "gid", "size", "sha256", "target", "cnid", "mtime"}
LSHFS_VOLUME_KEYS = {
    "signature", "version", "name", "block_size", "total_blocks", "free_blocks", "file_count",
    "folder_count", "journaled", "clean", "case_sensitive", "volume_id",
}  # fmt: skip


@pytest.fixture()
def src(tmp_path: Path) -> Path:
    s = tmp_path / "src"
    CASES_BY_NAME["tree"].populate(s)
    return s


def _run(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_mkhfs_then_lshfs(src: Path, tmp_path: Path) -> None:
    img = tmp_path / "v.hfs"
    r = _run("mkhfs", str(img), "--size", "16M", "--from", str(src), "--volume-name", "Tree")
    assert r.exit_code == 0, r.output
    assert f"{img}: HFS+ volume 'Tree', 16.0 MiB" in r.stdout  # the result line, also with -q
    assert os.path.getsize(img) == 16 * MIB
    expected = expected_listing(src)
    assert not diff(expected, listing_pyfshfs(img)[0], "pyfshfs")
    assert not diff(expected, listing_pytsk3(img), "pytsk3")

    r = _run("lshfs", str(img))
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == len(expected)
    tool = next(line for line in lines if line.endswith(" bin/tool") and " -> " not in line)
    digest = hashlib.sha256((src / "bin" / "tool").read_bytes()).hexdigest()
    owner = "1000:1000" if os.geteuid() == 0 else f"{os.getuid()}:{os.getgid()}"
    assert tool.split() == ["-", "-rwxr-xr-x", owner, "10000", digest, "bin/tool"]
    assert any(line.startswith("l ") and line.endswith("rel-link -> bin/tool") for line in lines)
    assert any(line.startswith("d drwxrwxrwt") and line.endswith(" tmp") for line in lines)

    r = _run("lshfs", str(img), "--json")
    doc = json.loads(r.stdout)
    assert doc["format"] == "atvdisk-lshfs/1"
    assert set(doc["volume"]) == LSHFS_VOLUME_KEYS
    assert doc["volume"]["name"] == "Tree" and doc["volume"]["signature"] == "H+"
    assert doc["volume"]["clean"] is True and doc["volume"]["journaled"] is False
    for e in doc["entries"]:
        assert set(e) == LSHFS_ENTRY_KEYS
    by_path = {e["path"]: e for e in doc["entries"]}
    assert set(by_path) == set(expected)
    for path, exp in expected.items():
        e = by_path[path]
        assert (e["type"], e["size"], int(e["mode"], 8), e["uid"], e["gid"]) == (
            exp.kind, exp.size, exp.mode, exp.uid, exp.gid,
        )  # fmt: skip
        assert e["sha256"] == exp.sha256 and e["target"] == exp.target


def test_options(src: Path, tmp_path: Path) -> None:
    img = tmp_path / "v.hfs"
    r = _run("mkhfs", str(img), "--size", "64MiB", "--from", str(src), "--journal", "--case-sensitive",
             "--block-size", "8192", "--owner", "12:34", "--volume-name", "Opt")  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(_run("lshfs", str(img), "--json").stdout)
    v = doc["volume"]
    assert (v["signature"], v["version"], v["journaled"], v["case_sensitive"], v["block_size"]) == ("HX", 5, True, True, 8192)
    users = {(e["uid"], e["gid"]) for e in doc["entries"] if not e["path"].startswith(".journal")}
    assert users == {(12, 34)}
    assert {".journal", ".journal_info_block"} <= {e["path"] for e in doc["entries"]}


def test_into_existing_file_at_offset(src: Path, tmp_path: Path) -> None:
    img = tmp_path / "disk.img"
    img.write_bytes(b"\xee" * MIB)
    r = _run("mkhfs", str(img), "--offset", "512KiB", "--size", "8M", "--from", str(src))
    assert r.exit_code == 3 and "already exists" in r.stderr and "--force" in r.stderr  # as build: only with --force
    assert img.read_bytes() == b"\xee" * MIB
    r = _run("mkhfs", str(img), "--offset", "512KiB", "--size", "8M", "--from", str(src), "--force")
    assert r.exit_code == 0, r.output
    assert os.path.getsize(img) == 512 * 1024 + 8 * MIB
    assert img.read_bytes()[: 512 * 1024] == b"\xee" * (512 * 1024)  # untouched before the region
    assert not diff(expected_listing(src), listing_pyfshfs(img, 512 * 1024)[0], "pyfshfs")
    r = _run("lshfs", str(img), "--offset", "524288", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["volume"]["total_blocks"] == 2048
    # an existing file without --size: the rest of it
    r = _run("mkhfs", str(img), "--offset", "512KiB", "--from", str(src), "--volume-name", "Again", "--force")
    assert r.exit_code == 0, r.output
    assert json.loads(_run("lshfs", str(img), "--offset", "512K", "--json").stdout)["volume"]["name"] == "Again"


def test_errors(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    (big / "f").write_bytes(os.urandom(3 * MIB))
    img = tmp_path / "small.hfs"
    r = _run("mkhfs", str(img), "--size", "2M", "--from", str(big))
    assert r.exit_code == 2
    assert "does not fit" in r.stderr and "bytes more than the 2097152-byte region" in r.stderr
    assert not img.exists()  # nothing left behind

    r = _run("mkhfs", str(img), "--from", str(big))
    assert r.exit_code == 2 and "needs --size" in r.stderr

    r = _run("mkhfs", str(img), "--size", "lots")
    assert r.exit_code == 2 and "not a size" in r.stderr

    r = _run("mkhfs", str(img), "--size", "8M", "--owner", "root")
    assert r.exit_code == 2 and "UID:GID" in r.stderr

    odd = tmp_path / "odd"
    odd.mkdir()
    os.mkfifo(odd / "fifo")
    r = _run("mkhfs", str(img), "--size", "8M", "--from", str(odd))
    assert r.exit_code == 2 and f"{odd}/fifo: a FIFO cannot be stored" in r.stderr
    assert not img.exists()

    dup = tmp_path / "dup"
    dup.mkdir()
    (dup / "A").write_bytes(b"1")
    (dup / "a").write_bytes(b"2")
    r = _run("mkhfs", str(img), "--size", "8M", "--from", str(dup))
    assert r.exit_code == 2 and "are equal on a case-insensitive" in r.stderr and "--case-sensitive" in r.stderr
    assert _run("mkhfs", str(img), "--size", "8M", "--from", str(dup), "--case-sensitive").exit_code == 0

    junk = tmp_path / "junk"
    junk.write_bytes(bytes(MIB))
    r = _run("lshfs", str(junk))
    assert r.exit_code == 5 and "no HFS+ volume header" in r.stderr


def test_reproducible_with_source_date_epoch(src: Path, tmp_path: Path) -> None:
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    a, b = tmp_path / "a.hfs", tmp_path / "b.hfs"
    assert _run("mkhfs", str(a), "--size", "16M", "--from", str(src), env=env).exit_code == 0
    assert _run("mkhfs", str(b), "--size", "16M", "--from", str(src), env=env).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    doc = json.loads(_run("lshfs", str(a), "--json").stdout)
    assert doc["volume"]["volume_id"] != "0000000000000000"


def test_subprocess(src: Path, tmp_path: Path) -> None:
    img = tmp_path / "p.hfs"
    cmd = [sys.executable, "-m", "atvdisk"]
    p = subprocess.run(cmd + ["mkhfs", str(img), "--size", "16M", "--from", str(src)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(cmd + ["lshfs", str(img), "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert {e["path"] for e in doc["entries"]} == set(expected_listing(src))
    small = tmp_path / "small.hfs"
    p = subprocess.run(cmd + ["mkhfs", str(small), "--size", "48K", "--from", str(src)], capture_output=True, text=True)
    assert p.returncode == 2 and "atvdisk: error:" in p.stderr and "Traceback" not in p.stderr
    assert "does not fit" in p.stderr and not small.exists()


def test_refusal_leaves_an_existing_file_alone(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    (big / "f").write_bytes(os.urandom(2 * MIB))
    img = tmp_path / "disk.img"
    img.write_bytes(b"\x11" * 4096)
    r = _run("mkhfs", str(img), "--offset", "4096", "--size", "1M", "--from", str(big), "--force")
    assert r.exit_code == 2 and "does not fit" in r.stderr
    assert img.read_bytes() == b"\x11" * 4096  # not even extended
