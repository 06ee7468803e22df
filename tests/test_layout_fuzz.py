"""Fuzzing the layout parser with tomllib as the oracle (issue 11, item 2).

Two generators:

- text mutations of the bundled layouts (bytes inserted, deleted, replaced, lines repeated,
  brackets nested deeply): parse_layout calls the text invalid TOML exactly when tomllib does,
  and otherwise returns a Layout or a LayoutError -- never another exception;
- layout-shaped documents with hostile values (wrong types, huge numbers, NULs, emoji, control
  characters, nested arrays), written as TOML by a small emitter that tomllib reads back to the
  same document: parse_layout gives a Layout or a LayoutError naming the file, with a hint; a
  Layout resolves for disks of several sizes into a plan or a PlanError, and the plan renders.

Every run is bounded in time (an alarm fails the test). ATVDISK_FUZZ_EXAMPLES=N runs longer.
"""

from __future__ import annotations

import json
import math
import os
import signal
import tomllib
from contextlib import contextmanager

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from atvdisk.errors import LayoutError
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import Layout, bundled_layouts, parse_layout

EXAMPLES = int(os.environ.get("ATVDISK_FUZZ_EXAMPLES", "150"))
BUNDLED = {name: path.read_text() for name, path in bundled_layouts().items()}
DISKS = (1 << 20, 4 << 30, 40 * 10**9, 3 * 10**12)


@contextmanager
def deadline(seconds: float):
    def expired(signum, frame):  # noqa: ANN001
        raise AssertionError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check(text: str) -> Layout | LayoutError:
    try:
        tomllib.loads(text)
        toml_ok = True
    except tomllib.TOMLDecodeError:
        toml_ok = False
    except RecursionError:
        toml_ok = None  # tomllib itself cannot read it: atvdisk must say so cleanly
    with deadline(10):
        try:
            layout = parse_layout(text, source="fuzz.toml")
        except LayoutError as e:
            assert str(e).startswith("fuzz.toml: "), str(e)
            assert e.hint, f"no hint: {e}"
            if toml_ok is not None:
                assert ("not valid TOML" in str(e)) == (not toml_ok), str(e)
            return e
        assert toml_ok, "atvdisk accepted what tomllib refuses"
        for size in DISKS:
            for sector in (512, 4096):
                try:
                    plan = resolve(layout, size, sector)
                except LayoutError as e:
                    assert e.hint, f"no hint: {e}"
                    continue
                plan.render()
                json.loads(plan.to_json())
    return layout


# -- text mutations ---------------------------------------------------------------------------


@st.composite
def mutated(draw) -> str:
    text = BUNDLED[draw(st.sampled_from(sorted(BUNDLED)))]
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "repeat", "nest"]))
        pos = draw(st.integers(0, len(text)))
        if op == "insert":
            text = text[:pos] + draw(st.text(min_size=1, max_size=8)) + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 40)) :]
        elif op == "replace":
            piece = draw(st.sampled_from(['"', "'", "[", "]", "{", "}", "=", "\n", "#", "\0", "\x7f", "\ufeff", "-1", "1e999", "nan", "0x1", "😀" * 18, "é" * 40]))
            text = text[:pos] + piece + text[pos + 1 :]
        elif op == "repeat":
            lines = text.splitlines(keepends=True)
            i = draw(st.integers(0, len(lines) - 1))
            text = "".join(lines[: i + 1] + [lines[i]] * draw(st.integers(1, 50)) + lines[i + 1 :])
        else:
            depth = draw(st.sampled_from([2, 50, 400, 5000]))
            text = text[:pos] + "\nx = " + "[" * depth + "]" * depth + "\n" + text[pos:]
    return text


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=mutated())
@example(text="description = " + "[" * 5000 + "]" * 5000)
@example(text="a = " + "{b=" * 800 + "1" + "}" * 800)
def test_mutated_layouts(text):
    check(text)


def test_bundled_layouts_parse():
    for text in BUNDLED.values():
        assert isinstance(check(text), Layout)


# -- structured documents with hostile values -------------------------------------------------


def emit(value) -> str:  # noqa: ANN001
    """TOML for a value: inline tables and arrays, every string escaped as TOML allows."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        out = []
        for c in value:
            if c in '"\\':
                out.append("\\" + c)
            elif ord(c) < 0x20 or ord(c) == 0x7F:
                out.append(f"\\u{ord(c):04x}")
            else:
                out.append(c)
        return '"' + "".join(out) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(emit(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{emit(k)} = {emit(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "\0", "a\0b", "😀" * 18, "😀" * 19, "é" * 36, "x" * 37, "\u202e", "$(reboot)", "../../etc", "/etc/shadow", "{restore}", "{nope}", "{layout_dir}/x"]),
)
any_value = st.recursive(
    st.one_of(st.integers(-(1 << 70), 1 << 70), st.floats(), st.booleans(), hostile_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(hostile_text, inner, max_size=3)),
    max_leaves=6,
)
sizes = st.one_of(
    st.sampled_from(["rest", "1MiB", "69632s", "100MiB", "4GB", "0", "-1MiB", "1e3MiB", "0x10s", "18446744073709551616s", "1.5GiB", "35MiB"]),
    st.integers(-(1 << 65), 1 << 65),
    any_value,
)


def maybe(strategy):  # noqa: ANN001, ANN201
    return st.one_of(strategy, any_value)


@st.composite
def contents(draw) -> dict:
    c = {"kind": draw(maybe(st.sampled_from(["tarball", "directory", "file", "text", "dir", "symlink", "bootscript", "remove"])))}
    for key, strat in (
        ("path", hostile_text),
        ("source", hostile_text),
        ("text", hostile_text),
        ("target", hostile_text),
        ("mode", st.sampled_from(["0644", "4777", "2755", "7777", "0o644", "99999", 420, -1, 1 << 40])),
        ("owner", st.sampled_from(["0:0", "1000:1000", "-1:0", "4294967296:0", "a:b", ""])),
        ("optional", st.booleans()),
    ):
        if draw(st.booleans()):
            c[key] = draw(maybe(strat))
    return c


@st.composite
def partitions(draw) -> dict:
    p = {
        "name": draw(maybe(hostile_text)),
        "type": draw(maybe(st.sampled_from(["efi", "atvrecv", "hfsplus", "linux", "swap", "raw", "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "00000000-0000-0000-0000-000000000000"]))),
        "size": draw(sizes),
    }
    if draw(st.booleans()):
        p["start"] = draw(sizes)
    if draw(st.booleans()):
        fs = {"kind": draw(maybe(st.sampled_from(["fat32", "hfsplus", "hfsx", "ext4", "swap", "none"])))}
        for key, strat in (
            ("label", hostile_text),
            ("journal", st.booleans()),
            ("block_size", st.sampled_from([512, 1024, 4096, 3000, 0, -4096, 1 << 40])),
            ("cluster_size", st.sampled_from([512, 4096, 65536, 100, 0])),
            ("journal_size", st.sampled_from([0, 1 << 20, 1 << 40])),
            ("reserved_percent", st.sampled_from([0, 5, 50, 101, -1])),
        ):
            if draw(st.booleans()):
                fs[key] = draw(maybe(strat))
        p["fs"] = fs
    if draw(st.booleans()):
        p["contents"] = draw(st.lists(contents(), max_size=3))
    return p


@st.composite
def documents(draw) -> dict:
    doc: dict = {"description": draw(maybe(hostile_text))}
    if draw(st.booleans()):
        disk = {}
        for key, strat in (
            ("label", st.sampled_from(["gpt", "msdos", ""])),
            ("sector_size", st.sampled_from([512, 4096, 1024, 0])),
            ("min_size", sizes),
            ("warn_above", sizes),
            ("align", sizes),
            ("atv_disk", st.sampled_from(["/dev/sda", "/dev/sdb", "sda;reboot", "/dev/sda1"])),
            ("hybrid_mbr", st.booleans()),
            ("seed", hostile_text),
        ):
            if draw(st.booleans()):
                disk[key] = draw(maybe(strat))
        doc["disk"] = disk
    doc["partition"] = draw(st.lists(partitions(), max_size=5))
    if draw(st.booleans()):
        doc["boot"] = {k: draw(maybe(hostile_text)) for k in draw(st.lists(st.sampled_from(["boot", "storage", "kernel", "options", "name_by", "fsck"]), unique=True))}
    if draw(st.integers(0, 9)) == 0:
        doc[draw(hostile_text)] = draw(any_value)
    return doc


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(doc=documents())
def test_hostile_documents(doc):
    text = "\n".join(f"{emit(k)} = {emit(v)}" for k, v in doc.items()) + "\n"
    assert tomllib.loads(text) == json.loads(json.dumps(doc)) or _has_nan(doc)  # the emitter is faithful
    check(text)


def _has_nan(value) -> bool:  # noqa: ANN001
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    return False
