#!/usr/bin/env python3
"""Mutation testing for atvdisk: does a module's test suite notice when its code is broken?

    .venv/bin/python tools/mutation.py atvdisk/layout/units.py            # 40 mutants, seed 0
    .venv/bin/python tools/mutation.py atvdisk/fs/gpt.py --sample 0       # every mutant
    .venv/bin/python tools/mutation.py atvdisk/fs/gpt.py --only 12,40 --show

The module's source is parsed, every place where one of the mutation kinds applies is numbered
(in source order, so the numbering is stable while the file does not change), a sample is drawn
with a seeded random generator, and each sampled mutant is written into a private copy of the
package (the checkout is never touched) and judged by the module's fast tests, run by pytest in a
subprocess with a timeout. A mutant is *killed* when the tests fail (or time out, or the mutant
cannot even be imported), *survived* when they pass. The score is killed / (sampled - known
equivalent); surviving mutants are printed with their location and the line they changed.

Mutation kinds (``--kinds``; default: the first five, the set issue 15 measured):

    cmp       a comparison negated: < >=, <= >, == !=, is / is not, in / not in
    const     an integer constant + 1 and - 1 (booleans and annotations left alone)
    andor     ``and`` <-> ``or``
    raise     ``raise X`` -> ``pass``
    return    ``return X`` -> ``return None``
    boundary  a comparison's boundary moved: < <=, > >=
    arith     + <-> -, * <-> //, << <-> >>, & <-> | (also in augmented assignments)

A line ending in ``# pragma: no mutate`` is never mutated. Mutants known to be equivalent (no
test can tell them from the original because no behaviour differs) are listed in
tools/mutation-equivalent.txt, one a line: ``MODULE QUALNAME KIND ORIGINAL -> MUTATED  # why``
(ORIGINAL and MUTATED as this tool prints them); they are still sampled, reported as
``equivalent`` and left out of the score's denominator.

Every module the project measures has its fast tests in DEFAULT_TESTS below; ``--tests`` names
others. The unmutated copy is run first and must pass, and the subprocess is checked to import
the copy, not the checkout, so a score never comes from tests that did not see the mutant.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import dataclasses
import difflib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_KINDS = ("cmp", "const", "andor", "raise", "return")
ALL_KINDS = DEFAULT_KINDS + ("boundary", "arith")

# Each module's fast tests: what a mutant of it is judged by. Paths are relative to the root.
DEFAULT_TESTS: dict[str, tuple[str, ...]] = {
    "atvdisk/layout/units.py": ("tests/test_units.py",),
    "atvdisk/layout/schema.py": ("tests/test_schema.py", "tests/test_layouts_fail.py", "tests/test_plan.py", "tests/test_resolver.py", "tests/test_validations.py"),
    "atvdisk/layout/resolver.py": ("tests/test_layouts_fail.py", "tests/test_plan.py", "tests/test_resolver.py", "tests/test_validations.py"),
    "atvdisk/layout/plan.py": ("tests/test_plan.py", "tests/test_resolver.py", "tests/test_layouts_fail.py", "tests/test_validations.py"),
    "atvdisk/fs/gpt.py": ("tests/test_gpt.py", "tests/test_realsize.py"),
    "atvdisk/bootscript.py": ("tests/test_bootscript.py", "tests/test_boot_injection.py"),
    "atvdisk/bootplist.py": ("tests/test_bootplist.py",),
    "atvdisk/layout/atv.py": ("tests/test_atv_values.py", "tests/test_layouts_fail.py", "tests/test_bootplist.py"),
    "atvdisk/inputs/tarstream.py": ("tests/test_tar_edges.py", "tests/test_tarsafe.py", "tests/test_tar_hostile.py", "tests/test_tar_streaming.py", "tests/test_tar_fuzz.py", "tests/test_tarstream.py"),
    "atvdisk/inputs/tarsafe.py": ("tests/test_tar_edges.py", "tests/test_tarsafe.py", "tests/test_tar_hostile.py", "tests/test_tar_streaming.py", "tests/test_tar_fuzz.py"),
    "atvdisk/fs/hfsplus/records.py": ("tests/hfsplus/test_records.py",),
    "atvdisk/fs/hfsplus/btree.py": ("tests/hfsplus/test_btree.py",),
    "atvdisk/fs/hfsplus/unicode.py": ("tests/test_hfs_unicode.py",),
    "atvdisk/fs/hfsplus/layout.py": ("tests/hfsplus/test_tree_and_layout.py", "tests/hfsplus/test_layout_phases.py", "tests/hfsplus/test_small_volumes.py"),
    "atvdisk/fs/hfsplus/sizing.py": ("tests/hfsplus/test_sizing.py", "tests/hfsplus/test_tree_and_layout.py", "tests/hfsplus/test_layout_phases.py", "tests/hfsplus/test_small_volumes.py"),
}
DEFAULT_MARKERS = "not kernel and not root and not slow"
EQUIVALENT_FILE = ROOT / "tools" / "mutation-equivalent.txt"

_NEGATE = {
    ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.LtE: ast.Gt, ast.Gt: ast.LtE,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.In: ast.NotIn, ast.NotIn: ast.In,
}
_BOUNDARY = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
_ARITH = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
    ast.LShift: ast.RShift, ast.RShift: ast.LShift, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
}
_SYMBOL = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.LShift: "<<",
    ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|", ast.And: "and", ast.Or: "or",
}


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One mutation site: the index is its place in the module's source-order enumeration."""

    index: int
    kind: str
    line: int
    col: int
    qualname: str
    original: str
    mutated: str

    def key(self, module: str) -> str:
        return f"{module} {self.qualname} {self.kind} {self.original} -> {self.mutated}"


class _Mutator(ast.NodeTransformer):
    """Walks a module in source order numbering mutation sites; applies site ``target`` if given."""

    def __init__(self, source: str, kinds: tuple[str, ...], target: int | None = None) -> None:
        self.lines = source.splitlines()
        self.kinds = kinds
        self.target = target
        self.found: list[Mutant] = []
        self.scope: list[str] = []
        self.statement = ""  # the first line of the statement being visited (names a constant)
        self.applied = False

    def visit(self, node: ast.AST) -> ast.AST:
        if not isinstance(node, ast.stmt):
            return super().visit(node)
        outer, self.statement = self.statement, ast.unparse(node).split("\n", 1)[0]
        try:
            return super().visit(node)
        finally:
            self.statement = outer

    # -- bookkeeping ------------------------------------------------------------------------
    def _site(self, node: ast.AST, kind: str, original: str, mutated: str) -> bool:
        """Record a site; True when it is the one to apply."""
        if kind not in self.kinds:
            return False
        line = getattr(node, "lineno", 0)
        if 0 < line <= len(self.lines) and self.lines[line - 1].rstrip().endswith("# pragma: no mutate"):
            return False
        index = len(self.found)
        qualname = ".".join(self.scope) or "<module>"
        self.found.append(Mutant(index, kind, line, getattr(node, "col_offset", 0), qualname, original, mutated))
        if index == self.target:
            self.applied = True
            return True
        return False

    def _segment(self, node: ast.AST) -> str:
        text = ast.unparse(node)
        return text if len(text) <= 60 else text[:57] + "..."

    # -- scopes and what is never mutated -----------------------------------------------------
    def _scoped(self, node: ast.AST, name: str) -> ast.AST:
        self.scope.append(name)
        try:
            for field in ("decorator_list", "bases", "keywords", "args", "body"):
                value = getattr(node, field, None)
                if isinstance(value, list):
                    setattr(node, field, self._visit_list(value))
                elif isinstance(value, ast.AST):
                    setattr(node, field, self.visit(value))
            return node
        finally:
            self.scope.pop()

    def _visit_list(self, items: list) -> list:
        out = []
        for item in items:
            new = self.visit(item) if isinstance(item, ast.AST) else item
            if new is None:
                continue
            out.extend(new if isinstance(new, list) else [new])
        return out

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:  # noqa: N802 - ast API
        return self._scoped(node, node.name)  # node.returns (an annotation) is not visited

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815 - ast API

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:  # noqa: N802
        return self._scoped(node, node.name)

    def visit_arguments(self, node: ast.arguments) -> ast.AST:  # noqa: N802 - defaults only
        node.defaults = self._visit_list(node.defaults)
        node.kw_defaults = [self.visit(d) if d is not None else None for d in node.kw_defaults]
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:  # noqa: N802 - not the annotation
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_If(self, node: ast.If) -> ast.AST:  # noqa: N802
        test = ast.unparse(node.test)
        if test in ("TYPE_CHECKING", "typing.TYPE_CHECKING", "__name__ == '__main__'"):
            return node
        return self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> ast.AST:  # noqa: N802
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return node
        return self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:  # noqa: N802 - not format specs
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                value.value = self.visit(value.value)
        return node

    # -- the mutation kinds -------------------------------------------------------------------
    def visit_Compare(self, node: ast.Compare) -> ast.AST:  # noqa: N802
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            for kind, table in (("cmp", _NEGATE), ("boundary", _BOUNDARY)):
                new = table.get(type(op))
                if new and self._site(node, kind, f"{self._segment(node)} [{_SYMBOL[type(op)]}]", _SYMBOL[new]):
                    node.ops[i] = new()
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:  # noqa: N802
        self.generic_visit(node)
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        if self._site(node, "andor", f"{self._segment(node)} [{_SYMBOL[type(node.op)]}]", _SYMBOL[new]):
            node.op = new()
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:  # noqa: N802
        self.generic_visit(node)
        new = _ARITH.get(type(node.op))
        if new and self._site(node, "arith", f"{self._segment(node)} [{_SYMBOL[type(node.op)]}]", _SYMBOL[new]):
            node.op = new()
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:  # noqa: N802
        node.value = self.visit(node.value)
        new = _ARITH.get(type(node.op))
        if new and self._site(node, "arith", f"{self._segment(node)} [{_SYMBOL[type(node.op)]}=]", _SYMBOL[new] + "="):
            node.op = new()
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:  # noqa: N802
        value = node.value
        if type(value) is not int:
            return node
        where = self.statement if len(self.statement) <= 70 else self.statement[:67] + "..."
        for delta in (1, -1):
            if self._site(node, "const", f"{value!r} in `{where}`", repr(value + delta)):
                return ast.copy_location(ast.Constant(value + delta), node)
        return node

    def visit_Raise(self, node: ast.Raise) -> ast.AST:  # noqa: N802
        self.generic_visit(node)
        if self._site(node, "raise", self._segment(node), "pass"):
            return ast.copy_location(ast.Pass(), node)
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:  # noqa: N802
        self.generic_visit(node)
        if node.value is None or (isinstance(node.value, ast.Constant) and node.value.value is None):
            return node
        if self._site(node, "return", self._segment(node), "return None"):
            return ast.copy_location(ast.Return(ast.Constant(None)), node)
        return node


def enumerate_mutants(source: str, kinds: tuple[str, ...]) -> list[Mutant]:
    mutator = _Mutator(source, kinds)
    mutator.visit(ast.parse(source))
    return mutator.found


def mutate(source: str, kinds: tuple[str, ...], index: int) -> str:
    """The module's source with mutant ``index`` applied (unparsed: comments are lost)."""
    mutator = _Mutator(source, kinds, target=index)
    tree = ast.fix_missing_locations(mutator.visit(ast.parse(source)))
    if not mutator.applied:
        raise ValueError(f"no mutant {index}")
    return ast.unparse(tree) + "\n"


def unmutated(source: str) -> str:
    return ast.unparse(ast.parse(source)) + "\n"


def sample(mutants: list[Mutant], size: int, seed: int) -> list[Mutant]:
    if size <= 0 or size >= len(mutants):
        return list(mutants)
    picked = random.Random(seed).sample(range(len(mutants)), size)
    return [mutants[i] for i in sorted(picked)]


def load_equivalents(path: Path) -> set[str]:
    if not path.exists():
        return set()
    keys = set()
    for raw in path.read_text().splitlines():
        line = raw.split("  #", 1)[0].strip()
        if line and not line.startswith("#"):
            keys.add(" ".join(line.split()))
    return keys


# -- running --------------------------------------------------------------------------------
@dataclasses.dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed | survived | timeout | equivalent
    seconds: float
    detail: str = ""


# Loaded into every test run (-p): Hypothesis without shrinking (a mutant that fails a property
# fails it fast), without its example database (no mutant's failures leak into .hypothesis/) and
# derandomised (the same examples for the unmutated run and every mutant: a reproducible score).
PLUGIN = "_mutation_plugin"
PLUGIN_SOURCE = """\
try:
    from hypothesis import Phase, settings
except ImportError:
    pass
else:
    settings.register_profile("mutation", database=None, derandomize=True, deadline=None,
                              phases=(Phase.explicit, Phase.reuse, Phase.generate))
    settings.load_profile("mutation")
"""


class Workspace:
    """A private copy of the top-level package where one mutant at a time is written."""

    def __init__(self, root: Path, module: Path) -> None:
        self.root = root
        package = module.parent
        while (package.parent / "__init__.py").exists():
            package = package.parent
        if not (package / "__init__.py").exists():
            raise SystemExit(f"{module} is not inside a package")
        self.package = package
        self.dir = Path(tempfile.mkdtemp(prefix="mutation-"))
        shutil.copytree(package, self.dir / package.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        layouts = root / "layouts"
        if package.name == "atvdisk" and layouts.is_dir() and not (self.dir / "atvdisk" / "layouts").exists():
            shutil.copytree(layouts, self.dir / "atvdisk" / "layouts")  # as installed: package data
        self.target = self.dir / module.relative_to(package.parent)
        (self.dir / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.dir), env.get("PYTHONPATH", "")]))
        env["PYTHONSAFEPATH"] = "1"  # no cwd on sys.path, in child processes too: the copy wins
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # a stale .pyc of another mutant is never loaded
        env.pop("ATVDISK_NO_SKIPS", None)
        return env

    def write(self, text: str) -> None:
        self.target.write_text(text)

    def check_isolated(self, python: str, module_name: str) -> None:
        out = subprocess.run(
            [python, "-c", f"import {module_name} as m; print(m.__file__)"],
            cwd=self.root, env=self.env(), capture_output=True, text=True, check=False,
        )
        loaded = out.stdout.strip()
        if out.returncode or Path(loaded).resolve() != self.target.resolve():
            raise SystemExit(f"the test process imports {loaded or out.stderr.strip()!r}, not the mutated copy {self.target}")

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


_RUNNING: set[subprocess.Popen] = set()


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the test run and anything it started
    except ProcessLookupError:
        pass


def run_tests(ws: Workspace, python: str, tests: list[str], markers: str, timeout: float | None) -> tuple[str, float, str]:
    cmd = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", PLUGIN, "-m", markers, *tests]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ws.root, env=ws.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    _RUNNING.add(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.communicate()
        return "timeout", time.monotonic() - start, ""
    finally:
        _RUNNING.discard(proc)
    seconds = time.monotonic() - start
    if proc.returncode == 0:
        return "survived", seconds, out
    if proc.returncode == 5:
        raise SystemExit(f"pytest collected no tests: {' '.join(cmd)}")
    return "killed", seconds, out


def module_name(root: Path, module: Path) -> str:
    return ".".join(module.relative_to(root).with_suffix("").parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("module", help="the module's file, e.g. atvdisk/layout/units.py")
    parser.add_argument("--tests", nargs="+", help="test files or node ids (default: the module's fast tests, DEFAULT_TESTS)")
    parser.add_argument("--markers", default=DEFAULT_MARKERS, help=f"pytest -m expression (default: {DEFAULT_MARKERS!r})")
    parser.add_argument("--sample", type=int, default=40, help="how many mutants to draw; 0 = all (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    parser.add_argument("--kinds", default="default", help=f"comma list of {', '.join(ALL_KINDS)}; 'default' ({','.join(DEFAULT_KINDS)}) or 'all'")
    parser.add_argument("--only", help="comma list of mutant indices to run instead of a sample")
    parser.add_argument("--timeout", type=float, help="seconds per mutant (default: 3x the unmutated run + 10)")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="mutants judged in parallel (default 1)")
    parser.add_argument("--list", action="store_true", help="list the (sampled) mutants and stop")
    parser.add_argument("--show", action="store_true", help="print each selected mutant's diff and stop")
    parser.add_argument("--json", type=Path, help="write the outcomes to this file")
    parser.add_argument("--equivalent", type=Path, default=EQUIVALENT_FILE, help="known equivalent mutants (default tools/mutation-equivalent.txt)")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--python", default=sys.executable, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    root = args.root.resolve()
    module = (root / args.module).resolve() if not Path(args.module).is_absolute() else Path(args.module)
    if not module.is_file():
        parser.error(f"no such module file: {args.module}")
    rel = module.relative_to(root).as_posix()
    kinds = DEFAULT_KINDS if args.kinds == "default" else ALL_KINDS if args.kinds == "all" else tuple(
        k.strip() for k in args.kinds.split(",") if k.strip())
    if unknown := set(kinds) - set(ALL_KINDS):
        parser.error(f"unknown mutation kinds: {', '.join(sorted(unknown))}")
    tests = args.tests or list(DEFAULT_TESTS.get(rel, ()))
    if not tests and not (args.list or args.show):
        parser.error(f"no default tests for {rel}: name them with --tests")

    source = module.read_text()
    everything = enumerate_mutants(source, kinds)
    if args.only:
        wanted = {int(i) for i in args.only.split(",")}
        chosen = [m for m in everything if m.index in wanted]
    else:
        chosen = sample(everything, args.sample, args.seed)
    equivalents = load_equivalents(args.equivalent)

    def where(m: Mutant) -> str:
        return f"{rel}:{m.line}:{m.col}"

    if args.list or args.show:
        base = unmutated(source).splitlines(keepends=True)
        for m in chosen:
            print(f"#{m.index:<4} {where(m)} [{m.kind}] {m.qualname}: {m.original} -> {m.mutated}")
            if args.show:
                sys.stdout.writelines(difflib.unified_diff(base, mutate(source, kinds, m.index).splitlines(keepends=True), rel, f"{rel} (mutant {m.index})", n=2))
        print(f"{len(chosen)} of {len(everything)} mutants")
        return 0

    def terminate(*_: object) -> None:  # a kill still cleans up, even if a second one follows
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit(143)

    previous = signal.signal(signal.SIGTERM, terminate)
    workers: list[Workspace] = []
    try:
        workers.extend(Workspace(root, module) for _ in range(max(1, args.jobs)))
        name = module_name(workers[0].package.parent, module)
        for ws in workers:
            ws.write(unmutated(source))
            ws.check_isolated(args.python, name)
        status, seconds, out = run_tests(workers[0], args.python, tests, args.markers, None)
        if status != "survived":
            sys.stdout.write(out)
            raise SystemExit("the tests fail on the unmutated module: fix that first")
        timeout = args.timeout or 3 * seconds + 10
        cmdline = " ".join(["tools/mutation.py", *(sys.argv[1:] if argv is None else argv)])
        print(f"{rel}: {len(everything)} mutants ({','.join(kinds)}), {len(chosen)} sampled (seed {args.seed}); "
              f"tests: {' '.join(tests)} [-m {args.markers!r}], {seconds:.1f} s unmutated, timeout {timeout:.0f} s", flush=True)

        def judge(ws: Workspace, m: Mutant) -> Outcome:
            ws.write(mutate(source, kinds, m.index))
            status, secs, _ = run_tests(ws, args.python, tests, args.markers, timeout)
            if status == "survived" and m.key(rel) in equivalents:
                status = "equivalent"
            return Outcome(m, status, secs)

        outcomes: list[Outcome] = []
        queue = list(chosen)
        pool = concurrent.futures.ThreadPoolExecutor(len(workers))
        try:
            free = list(workers)
            pending: dict[concurrent.futures.Future, Workspace] = {}
            while queue or pending:
                while queue and free:
                    ws = free.pop()
                    pending[pool.submit(judge, ws, queue.pop(0))] = ws
                done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for fut in done:
                    free.append(pending.pop(fut))
                    o = fut.result()
                    outcomes.append(o)
                    mark = {"killed": ".", "timeout": "T", "survived": "S", "equivalent": "E"}[o.status]
                    print(mark, end="", flush=True)
        finally:
            for proc in list(_RUNNING):  # interrupted: stop the test runs before waiting for them
                _kill(proc)
            pool.shutdown(wait=True, cancel_futures=True)
        print()
        outcomes.sort(key=lambda o: o.mutant.index)
    finally:
        for ws in workers:
            ws.close()
        signal.signal(signal.SIGTERM, previous)

    killed = sum(o.status in ("killed", "timeout") for o in outcomes)
    equivalent = sum(o.status == "equivalent" for o in outcomes)
    judged = len(outcomes) - equivalent
    score = 100.0 * killed / judged if judged else 100.0
    lines = source.splitlines()
    survivors = [o for o in outcomes if o.status == "survived"]
    for o in survivors + [o for o in outcomes if o.status == "equivalent"]:
        m = o.mutant
        print(f"{o.status.upper():10} #{m.index:<4} {where(m)} [{m.kind}] {m.qualname}: {m.original} -> {m.mutated}")
        print(f"{'':16}| {lines[m.line - 1].strip()}")
    print(f"score {rel}: {killed}/{judged} killed = {score:.1f}% "
          f"({len(survivors)} survived, {equivalent} equivalent, {sum(o.status == 'timeout' for o in outcomes)} by timeout)")
    if args.json:
        args.json.write_text(json.dumps({
            "module": rel, "command": cmdline, "seed": args.seed, "kinds": list(kinds), "tests": tests,
            "total_mutants": len(everything), "sampled": len(outcomes), "killed": killed,
            "equivalent": equivalent, "score": round(score, 1),
            "outcomes": [dict(dataclasses.asdict(o.mutant), status=o.status, seconds=round(o.seconds, 2)) for o in outcomes],
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
