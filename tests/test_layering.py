"""The package's shape: every module imports alone, no import cycles, and the rooms keep to
their layers (README: "How the code is organised").

The import graph is read from the source with ``ast`` (module-level, function-level and
TYPE_CHECKING imports alike), so an import hidden inside a function still counts.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "atvdisk"

# The rooms, bottom to top, and the rooms (plus spine modules) each may import.
SPINE = {"atvdisk", "atvdisk.__main__", "atvdisk.build", "atvdisk.verify", "atvdisk.bootscript", "atvdisk.bootplist", "atvdisk.errors", "atvdisk.run", "atvdisk.progress", "atvdisk.manifest"}
# layout/ is pure; the HFS+ rules it validates names and journal sizes against are pure too.
HFS_RULES = {"atvdisk.fs.hfsplus.unicode", "atvdisk.fs.hfsplus.sizing"}
ALLOWED = {
    "layout": {"layout", "atvdisk.errors"} | HFS_RULES,
    # The generated boot script and boot plist are among the inputs a partition's contents name.
    "inputs": {"inputs", "layout", "atvdisk.errors", "atvdisk.bootscript", "atvdisk.bootplist"},
    "fs": {"fs", "inputs", "layout", "atvdisk.errors", "atvdisk.run", "atvdisk.progress"},
    "target": {"target", "layout", "atvdisk.errors", "atvdisk.run"},
    # write/extract/backup: above the target room (it reaches disks only through it), beside the
    # spine's manifest and verify, which it uses to know and check what an image holds.
    "imaging": {"imaging", "fs", "inputs", "layout", "target", "atvdisk.errors", "atvdisk.run", "atvdisk.progress", "atvdisk.manifest", "atvdisk.verify"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "layouts" not in p.parts}


def _imports(name: str) -> set[str]:
    """The atvdisk modules ``name`` imports (a package import counts as its __init__)."""
    tree = ast.parse(MODULES[name].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if MODULES[name].name == "__init__.py" else name.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    package = package.rsplit(".", 1)[0]
                base = f"{package}.{base}" if base else package
            candidates = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for c in candidates:
            # "from atvdisk.fs import hfs_adapter" imports the submodule, not just the package.
            if c in MODULES and c != name:
                found.add(c)
    # "from atvdisk.fs import x" also names the package; keep only the most specific import.
    return {m for m in found if not any(o.startswith(m + ".") for o in found) or m in SPINE}


GRAPH = {name: _imports(name) for name in MODULES}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and module not in SPINE) else module


def _allowed(room_rules: set[str], target: str) -> bool:
    return target in room_rules or _room(target) in room_rules


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports_alone(module: str) -> None:
    """A cycle shows up when its modules are imported in the wrong order: import each one first."""
    saved = {k: v for k, v in sys.modules.items() if k == "atvdisk" or k.startswith("atvdisk.")}
    for k in saved:
        del sys.modules[k]
    try:
        if module == "atvdisk.__main__":
            return  # running it runs the CLI; its one import is covered by atvdisk.cli.main
        importlib.import_module(module)
    finally:
        for k in [k for k in sys.modules if k == "atvdisk" or k.startswith("atvdisk.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def test_no_import_cycles() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_rooms_import_only_what_is_below_them(room: str) -> None:
    rules = ALLOWED[room]
    wrong = sorted(
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        if _room(m) == room and m not in HFS_RULES
        for t in targets
        if not _allowed(rules, t)
    )
    assert not wrong, "\n".join(wrong)


def test_layout_reaches_nothing_impure() -> None:
    """What layout/ imports, directly or not, stays in layout/, the HFS+ rules and errors."""
    seen: set[str] = set()
    todo = [m for m in GRAPH if _room(m) == "layout"]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(GRAPH[m])
    outside = sorted(m for m in seen if _room(m) not in ("layout", "fs") and m not in ("atvdisk", "atvdisk.errors"))
    outside += sorted(m for m in seen if _room(m) == "fs" and not m.startswith("atvdisk.fs.hfsplus") and m != "atvdisk.fs")
    assert not outside, f"layout/ reaches {outside}"
    assert not any(m.startswith("atvdisk.fs.hfsplus.") and m.endswith(("writer", "reader")) for m in seen)


def test_nothing_below_cli_imports_cli() -> None:
    wrong = sorted(f"{m} imports {t}" for m, ts in GRAPH.items() if _room(m) != "cli" and m != "atvdisk.__main__" for t in ts if _room(t) == "cli")
    assert not wrong, "\n".join(wrong)


# What acquiring a block device takes: device ioctls, exclusive opens without O_CREAT, O_DIRECT,
# flock (udev's lock), and the tools that attach, re-read or settle devices.
DEVICE_TOOLS = {"losetup", "partx", "udevadm", "blockdev", "swapoff", "umount"}


def _device_acquisition(module: str) -> list[str]:
    tree = ast.parse(MODULES[module].read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if "fcntl" in names:
                found.append(f"line {node.lineno}: imports fcntl")
        elif isinstance(node, ast.Attribute) and node.attr in ("ioctl", "flock", "O_DIRECT"):
            found.append(f"line {node.lineno}: uses {node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "open" and len(node.args) >= 2:
            flags = ast.unparse(node.args[1])
            if "O_EXCL" in flags and "O_CREAT" not in flags:
                found.append(f"line {node.lineno}: exclusive open {flags}")
        elif isinstance(node, ast.List) and node.elts and isinstance(node.elts[0], ast.Constant) and node.elts[0].value in DEVICE_TOOLS:
            found.append(f"line {node.lineno}: runs {node.elts[0].value}")
    return found


def test_only_target_acquires_block_devices() -> None:
    wrong = [f"{m}: {what}" for m in sorted(MODULES) if _room(m) != "target" for what in _device_acquisition(m)]
    assert not wrong, "\n".join(wrong)
    # ... and target/ really is where it happens (the scan finds what it looks for).
    assert _device_acquisition("atvdisk.target.blockdev")
