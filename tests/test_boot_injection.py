"""No value ever becomes code in the boot script (issue 11 item 1): property tests.

Hostile labels, options, kernel names, disk names, identifiers and layout names are pushed into
the plan the script is generated from (past the layout parser, which refuses most of them on
its own: this is the second line). For each, either atvdisk refuses with a typed error, or:

- every value that reached the script passed the ATV's grammar (the allow-lists of
  atvdisk/layout/atv.py, written out again here);
- the script parses in dash, bash and busybox sh (``-n``);
- its assignment block, run by each of those shells, gives every variable exactly its value
  and runs nothing (a canary file that the hostile texts try to create never appears);
- the whole script, run by dash in the emulated ATV (tests/atv_sandbox.py) against a real
  atvdisk disk, hands OpenELEC exactly the command line the values make, and nothing else.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path

import pytest
from atv_sandbox import build_image, extract_partitions, run_script
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atvdisk.bootscript import HEADER, generate, sh_quote
from atvdisk.errors import BootFilesError
from atvdisk.inputs.sample import write_sample
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import NameBy, load_layout

CANARY = Path(f"/tmp/atvdisk-injection-canary-{os.getpid()}")
C = str(CANARY)
FRAGMENTS = [
    "'", '"', "\\", "`", "$", "$(touch " + C + ")", "`touch " + C + "`", ";touch " + C + ";#", "&& touch " + C,
    "| touch " + C, "\ntouch " + C + "\n", "'; touch " + C + "; '", '"; touch ' + C + '; "', "\r", "\a", "\x1b[2J",
    "*", "?", "[a-z]", "${IFS}", "$((6*7))", " ", "\t", "#", "~", "!", "{a,b}", "-e", "--", "=", "Ü", "\u202e", "%s%n",
    "/dev/sda", "sdb", "LABEL=", "boot=", "atv-boot=none",
]  # fmt: skip
hostile = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=6).map("".join)
SHELLS = (["dash"], ["bash"], ["busybox", "sh"])

# The ATV's grammar, written out independently of atvdisk/layout/atv.py.
SAFE_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.,:/+@%=-]*")
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
HEX = re.compile(r"[0-9a-f]*")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

BASE = resolve(load_layout("atv1-openelec"), 8_451_072 * 512, 512)


def _no_canary():
    assert not CANARY.exists(), "a value was executed as code"


def _shell_values(text: str, names: list[str], shell: list[str]) -> list[str]:
    """Run ``text`` (assignments) then print each variable NUL-terminated, under ``shell``."""
    probe = text + "printf '%s\\0'" + "".join(f' "${n}"' for n in names) + "\n"
    r = subprocess.run([*shell, "-c", probe], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1]


# ------------------------------------------------------------------------ the quoting function


@settings(max_examples=60, deadline=None)
@given(st.lists(hostile.filter(lambda s: "\0" not in s), min_size=1, max_size=12))
def test_sh_quote_gives_every_shell_exactly_the_text(values):
    names = [f"V{i}" for i in range(len(values))]
    text = "".join(f"{n}={sh_quote(v)}\n" for n, v in zip(names, values, strict=True))
    for shell in SHELLS:
        assert _shell_values(text, names, shell) == values, shell
    _no_canary()


def test_sh_quote_refuses_nul():
    with pytest.raises(BootFilesError, match="NUL"):
        sh_quote("a\0b")


# ------------------------------------------------------------------------ generate


def _inject(field: str, value: str):
    plan = BASE
    boot = plan.boot
    if field == "layout_name":
        return dataclasses.replace(plan, layout_name=value)
    if field == "atv_disk":
        return dataclasses.replace(plan, atv_disk=value)
    if field in ("kernel", "options"):
        return dataclasses.replace(plan, boot=dataclasses.replace(boot, **{field: value}))
    part, attr = field.split(".")
    if attr == "atv_device":
        parts = tuple(dataclasses.replace(p, atv_device=value) if p.name == part else p for p in plan.partitions)
    else:
        parts = tuple(dataclasses.replace(p, fs=dataclasses.replace(p.fs, **{attr: value})) if p.name == part else p for p in plan.partitions)
    return dataclasses.replace(plan, partitions=parts)


FIELDS = ["layout_name", "atv_disk", "kernel", "options", "OSBoot.label", "Media.label", "OSBoot.uuid", "Media.uuid", "OSBoot.atv_device"]


def _check_values(values: dict[str, str]) -> None:
    """Every value the script got passed the ATV's grammar (except the layout's name, which the
    script only holds, quoted, and never uses)."""
    assert re.fullmatch(r"sd[a-h]", values["DISK"])
    assert values["NAME_BY"] in ("device", "label", "uuid") and values["FSCK"] in ("0", "1")
    assert SAFE_NAME.fullmatch(values["KERNEL"])
    assert all(SAFE_WORD.fullmatch(w) for w in values["OPTIONS"].split(" ") if values["OPTIONS"])
    for part in ("BOOT", "STORAGE"):
        assert values[f"{part}_NUM"].isdigit() and values[f"{part}_FS"] in ("hfsplus", "ext4", "vfat")
        assert HEX.fullmatch(values[f"{part}_ID"]) and UUID.fullmatch(values[f"{part}_UUID"])
        assert values[f"{part}_LABEL"] == "" or SAFE_NAME.fullmatch(values[f"{part}_LABEL"])
        for form in ("HFS", "EXT", "FAT"):
            assert HEX.fullmatch(values[f"{part}_LABEL_{form}"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIELDS), hostile, st.sampled_from(list(NameBy)))
def test_hostile_values_are_refused_or_inert(field, value, name_by):
    plan = _inject(field, value)
    try:
        script = generate(plan, name_by)
    except BootFilesError:
        return  # refused before anything is written
    values = dict(script.values)
    _check_values(values)
    if field == "layout_name":
        assert values["LAYOUT"] == value
    for shell in SHELLS:
        r = subprocess.run([*shell, "-n"], input=script.text.encode(), capture_output=True, timeout=30)
        assert r.returncode == 0, (shell, r.stderr)
    block = script.text[: script.text.index("\nexec 1>&2")] + "\n"
    assert block.startswith(HEADER)
    names = [n for n, _ in script.values]
    for shell in SHELLS:
        assert _shell_values(block, names, shell) == [v for _, v in script.values], shell
    _no_canary()


# ------------------------------------------------------------------------ the whole script, run


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("injection")
    sample = write_sample(tmp / "sample")
    img = tmp / "a.img"
    plan = build_image(img, "atv1-openelec", 2 * 10**9, sample, seed="injection")
    return plan, extract_partitions(img, plan, tmp / "parts"), tmp


safe_label = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,15}", fullmatch=True)
safe_word = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.,:/+@%=-]{0,20}", fullmatch=True).filter(lambda w: w.split("=")[0] not in ("boot", "disk"))
# The labels on the disk, by partition, and each filesystem's encoding (what the script compares).
ON_DISK = {"EFI": "fat", "Recovery": "hfs", "OSBoot": "hfs", "Linux": "ext"}


def _clashes(label: str, own: str) -> bool:
    for other, kind in ON_DISK.items():
        if other == own:
            continue
        if kind == "fat" and len(label) <= 11 and label == other:
            return True
        if kind in ("hfs", "ext") and label == other:
            return True
    return False


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(hostile, safe_label, safe_label, st.lists(safe_word, max_size=4), st.sampled_from(list(NameBy)))
def test_whole_script_runs_values_as_data(disk, layout_name, boot_label, storage_label, words, name_by):
    plan, parts, tmp = disk
    plan = dataclasses.replace(plan, layout_name=layout_name.replace("\0", ""), boot=dataclasses.replace(plan.boot, options=" ".join(words)))
    labels = {"OSBoot": boot_label, "Media": storage_label}
    plan = dataclasses.replace(
        plan, partitions=tuple(dataclasses.replace(p, fs=dataclasses.replace(p.fs, label=labels.get(p.name, p.fs.label))) for p in plan.partitions)
    )
    script = generate(plan, name_by)
    run = run_script(script.text, {"sda": parts}, tmp / "atv", runs_from="sda2")
    uuids = dict(script.values)
    if name_by is NameBy.DEVICE:
        spec = ["/dev/sda3", "/dev/sda4"]
    else:
        spec = [f"UUID={uuids['BOOT_UUID']}", f"UUID={uuids['STORAGE_UUID']}"]
        if name_by is NameBy.LABEL:
            # The disk's own labels are OSBoot/Linux; the plan's may clash with another partition's.
            if not _clashes(boot_label, "OSBoot"):
                spec[0] = f"LABEL={boot_label}"
            if not _clashes(storage_label, "Linux"):
                spec[1] = f"LABEL={storage_label}"
    cmdline = " ".join([f"boot={spec[0]}", f"disk={spec[1]}", *words])
    assert run.kexec_load() == ("kexec", "-l", "/boot/KERNEL", f"--command-line={cmdline}"), run.stderr
    assert run.handed_over and run.stdout == ""
    assert [c[0] for c in run.calls] == ["fsck.hfsplus", "mount", "kexec", "umount", "umount", "kexec"]
    _no_canary()
