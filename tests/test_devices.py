"""`atvdisk devices`: checked against lsblk's own view and blkid's probe."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_target_helpers import loop_disks, root_only, sh

from atvdisk.cli.main import main

pytestmark = root_only


@pytest.fixture
def loops(tmp_path):
    yield from loop_disks(tmp_path)


def _devices(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["devices", *args], catch_exceptions=False)
    return r.exit_code, r.output


def _lsblk() -> dict[str, dict]:
    out = sh(
        "lsblk",
        "--json",
        "--bytes",
        "--output",
        "PATH,NAME,TYPE,SIZE,RO,RM,MODEL,SERIAL,LOG-SEC,MOUNTPOINTS",
    ).stdout
    return {d["path"]: d for d in json.loads(out)["blockdevices"]}


def test_devices_json_matches_lsblk(loops):
    mounted = loops.make()
    mnt = loops.mount_ext4(mounted.part(1))
    big = loops.make(
        size=2 * 10**9 + 2**20
    )  # sparse; just over the default layout's 2 GB minimum
    code, output = _devices("--json")
    assert code == 0
    doc = json.loads(output)
    assert doc["format"] == "atvdisk-devices/1" and doc["layout"] == "atv1-openelec"
    ours = {d["path"]: d for d in doc["devices"]}

    theirs = {
        p: d
        for p, d in _lsblk().items()
        if d["type"] in ("disk", "loop") and d["size"] > 0
    }
    # Other loop devices may come and go between the two lsblk runs (other tests, other users).
    assert all(ours[p]["type"] == "loop" for p in set(ours) - set(theirs))
    assert all(theirs[p]["type"] == "loop" for p in set(theirs) - set(ours))
    assert {mounted.path, big.path} <= set(ours) & set(theirs)
    for path in set(ours) & set(theirs):
        o, d = ours[path], theirs[path]
        assert (o["name"], o["type"], o["size"], o["read_only"], o["removable"], o["model"], o["sector_size"]) == (
            d["name"], d["type"], d["size"], d["ro"], d["rm"], d["model"], d["log-sec"],
        )  # fmt: skip
        assert [p["path"] for p in o["partitions"]] == [
            c["path"] for c in d.get("children", []) if c["type"] == "part"
        ]
        for p, c in zip(
            o["partitions"],
            [c for c in d.get("children", []) if c["type"] == "part"],
            strict=True,
        ):
            assert (p["size"], p["mountpoints"]) == (
                c["size"],
                [m for m in c["mountpoints"] if m],
            )

    m = ours[mounted.path]
    assert m["backing_file"] == str(mounted.image) and m["transport"] == "loop"
    assert not m["usable"]
    assert [r["kind"] for r in m["refusals"]] == ["too-small", "mounted"]
    assert str(mnt) in m["refusals"][1]["message"]
    assert "short by" in m["refusals"][0]["message"]
    # labels and types as blkid's low-level probe reads them from the disk
    for p in m["partitions"]:
        probe = dict(
            line.split("=", 1)
            for line in sh(
                "blkid", "-p", "-o", "export", p["path"], check=False
            ).stdout.splitlines()
        )
        assert p["partlabel"] == probe["PART_ENTRY_NAME"]
        assert p["parttype"] == probe["PART_ENTRY_TYPE"].lower()
        assert p["fstype"] == probe.get("TYPE")
        assert p["label"] == probe.get("LABEL")
    assert (
        m["partitions"][0]["fstype"] == "ext4"
        and m["partitions"][0]["label"] == "tdata"
    )

    b = ours[big.path]
    assert b["usable"] and b["refusals"] == []

    root_source = sh(
        "findmnt", "--noheadings", "--output", "SOURCE", "--mountpoint", "/"
    ).stdout.strip()
    root_disks = [line.split()[0] for line in sh("lsblk", "--inverse", "--raw", "--noheadings", "--output", "PATH,TYPE", root_source).stdout.splitlines() if line.split()[1] == "disk"]  # fmt: skip
    assert root_disks
    for disk in root_disks:
        assert not ours[disk]["usable"]
        assert [r["kind"] for r in ours[disk]["refusals"]] == ["system"]


def test_devices_human_output(loops):
    mounted = loops.make()
    mnt = loops.mount_ext4(mounted.part(1))
    code, output = _devices()
    assert code == 0
    block = output.split(f"{mounted.path}  ", 1)[1].split("\n\n", 1)[0]
    assert "[REFUSED]" in block.splitlines()[0]
    assert str(mounted.image) in block  # a loop device shows its backing file
    assert f"mounted at {mnt}" in block
    assert 'label "tdata"' in block and 'name "data"' in block
    assert "refused: disk too small" in block
