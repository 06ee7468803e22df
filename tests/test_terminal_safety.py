"""Names from a disk, an archive or a manifest reach the user's terminal only as text: whatever a
terminal would act on (ESC sequences that recolour, move the cursor, retitle or answer back; CR,
BS; C1 controls such as the one-character CSI U+009B; bidi overrides; line separators) is shown
as an escape on every line atvdisk prints, and JSON output carries the same data, parseable and
inert."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atvdisk.cli.console import Console
from atvdisk.cli.display import PlainDisplay
from atvdisk.cli.text import json_text, printable
from atvdisk.progress import Progress

# What a terminal acts on, by definition (Unicode's own categories, not the module's table):
# Cc (C0, DEL, C1) and the bidi/line-separation format characters.
BIDI_AND_SEPARATORS = set("\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def acts_on_terminal(c: str, *, keep: str = "\n\t") -> bool:
    return (unicodedata.category(c) == "Cc" and c not in keep) or c in BIDI_AND_SEPARATORS


def unsafe(text: str, keep: str = "\n\t") -> list[str]:
    return [c for c in text if acts_on_terminal(c, keep=keep)]


HOSTILE = [
    "title\x1b]0;owned\x07",  # retitle the terminal
    "red\x1b[31mtext\x1b[0m",
    "clear\x1b[2J\x1b[H",
    "csi\x9b31m",  # C1 CSI, one character
    "over\rwrite",
    "back\x08\x08space",
    "del\x7f",
    "rlo\u202egnp.exe",
    "line\u2028sep",
    "new\nline",
    "tab\there",
]


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_printable_leaves_nothing_a_terminal_acts_on(text):
    shown = printable(text)
    assert unsafe(shown) == []
    assert unsafe(printable(text, one_line=True), keep="") == []
    if not unsafe(text):
        assert shown == text  # ordinary text (accents, CJK, emoji with joiners) is untouched
    assert printable(shown) == shown  # idempotent: printing twice changes nothing


def test_every_code_point_a_terminal_acts_on_is_escaped():
    for cp in range(0x3000):
        c = chr(cp)
        if acts_on_terminal(c):
            assert printable(c) in (f"\\x{cp:02x}", f"\\u{cp:04x}"), hex(cp)
        elif c not in "\n\t":
            assert printable(c) == c, hex(cp)


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=15))
def test_json_output_is_the_same_data_and_inert(document):
    text = json_text(document, indent=2)
    assert json.loads(text) == document
    assert unsafe(text) == []


def test_every_console_line_is_inert():
    out, err = io.StringIO(), io.StringIO()
    console = Console(verbosity=2, environ={})
    sys_out, sys_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        for name in HOSTILE:
            console.out(name)
            console.result(name)
            console.info(name)
            console.note(name)
            console.detail(name)
            console.output(name)
            console.warn(name)
            console.error(name, hint=name, more=[name])
            console.out_json({"name": name})
            console.ask(name, stdin=io.StringIO("y\n"))
    finally:
        sys.stdout, sys.stderr = sys_out, sys_err
    assert unsafe(out.getvalue()) == [] and unsafe(err.getvalue()) == []
    assert "title\\x1b]0;owned\\x07" in out.getvalue() and "csi\\x9b31m" in err.getvalue()
    docs = [line for line in out.getvalue().split("\n{") if '"name"' in line]
    assert len(docs) == len(HOSTILE)


def test_progress_steps_named_after_files_are_inert():
    lines: list[str] = []
    progress = Progress()
    display = PlainDisplay(progress, lines.append)
    progress.listener = display
    for name in HOSTILE:
        with progress.step(f"copy {name}"):
            pass
    assert lines and all(unsafe(line, keep="") == [] for line in lines)


def test_lshfs_of_a_volume_with_hostile_names(tmp_path):
    """A volume whose names would drive the terminal (written by mkhfs from a directory, as an old
    disk might carry them) lists one row per entry, escaped; --json gives the names back exactly."""
    src = tmp_path / "src"
    src.mkdir()
    names = [n for n in HOSTILE if "/" not in n]
    for i, name in enumerate(names):
        (src / name).write_bytes(b"%d" % i)
    os.symlink("target\x1b[2Jx", src / "link")
    vol = tmp_path / "v.hfs"
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "atvdisk", *a], capture_output=True, env=env)  # noqa: E731
    r = run("mkhfs", str(vol), "--size", "8M", "--from", str(src))
    assert r.returncode == 0, r.stderr
    r = run("lshfs", str(vol))
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert unsafe(text, keep="\n") == [] and unsafe(r.stderr.decode()) == []
    rows = text.splitlines()
    assert len(rows) == len(names) + 1  # one row per file and the symlink: no name split a row
    assert any(row.endswith("link -> target\\x1b[2Jx") for row in rows)
    assert any(row.endswith("new\\x0aline") for row in rows)
    r = run("lshfs", str(vol), "--json")
    assert r.returncode == 0 and unsafe(r.stdout.decode()) == []
    listed = {e["path"] for e in json.loads(r.stdout)["entries"]}
    assert listed == {unicodedata.normalize("NFC", n) for n in names} | {"link"}


@pytest.mark.parametrize("name", ["red\x1b[31mtext", "csi\x9b31m", "rlo\u202ex"])
def test_an_error_naming_a_hostile_path_is_inert(tmp_path, name):
    r = subprocess.run([sys.executable, "-m", "atvdisk", "lshfs", str(tmp_path / name)], capture_output=True)
    assert r.returncode == 2 and b"does not exist" in r.stderr
    assert unsafe(r.stderr.decode()) == []
    r = subprocess.run([sys.executable, "-m", "atvdisk", "lshfs", str(tmp_path / name), "--json"], capture_output=True)
    assert unsafe(r.stdout.decode() + r.stderr.decode()) == []
