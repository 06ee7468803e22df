"""tools/mutation.py, the mutation-testing harness, on a toy package: so that it does not rot.

The harness is not part of the default run (it takes minutes per module); this checks that its
mutation kinds apply where they should and nowhere else, that its sample is reproducible, and
that one real run tells a killed mutant from a surviving, a timed-out and a known-equivalent one.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("mutation_harness", ROOT / "tools" / "mutation.py")
mutation = importlib.util.module_from_spec(_spec)
sys.modules["mutation_harness"] = mutation  # dataclasses look their module up while the class is made
_spec.loader.exec_module(mutation)

TOY = textwrap.dedent('''\
    from __future__ import annotations

    LIMIT: int = 10
    __all__ = ["check", "pick", "count"]


    def check(n: int = 3) -> int:
        """Refuse n above LIMIT."""
        if n > LIMIT and n != 99:
            raise ValueError(f"{n:04d} too big")
        return n * 2


    def pick(a, b):
        return a or b  # pragma: no mutate


    def count(n):
        i = 0
        while i < n:
            i += 1
        return i
''')

TOY_TESTS = textwrap.dedent('''\
    import pytest
    from toy.calc import check, count


    def test_check_refuses():
        with pytest.raises(ValueError):
            check(11)


    def test_check_doubles():
        assert check(4) == 8


    def test_count():
        assert count(3) == 3
''')


def mutants_by_kind(source: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for m in mutation.enumerate_mutants(source, mutation.ALL_KINDS):
        found.setdefault(m.kind, []).append(m)
    return found


def test_each_kind_applies_where_it_should_and_nowhere_else():
    found = mutants_by_kind(TOY)
    # comparisons: n > LIMIT, n != 99, i < n; each negated and (the ordered ones) moved
    assert sorted(m.mutated for m in found["cmp"]) == ["<=", "==", ">="]
    assert sorted(m.mutated for m in found["boundary"]) == ["<=", ">="]
    # ints: the default 3, 10, 99, 2, 0 and 1; never the annotation, the format spec or a bool
    assert sorted(m.original.split()[0] for m in found["const"]) == sorted(["10", "10", "3", "3", "99", "99", "2", "2", "0", "0", "1", "1"])
    # A constant is named with the statement it is in (the first line of it).
    assert {m.original for m in found["const"] if m.original.startswith("99")} == {"99 in `if n > LIMIT and n != 99:`"}
    assert [m.qualname for m in found["raise"]] == ["check"]
    assert sorted(m.original for m in found["return"]) == ["return i", "return n * 2"]
    assert len(found["andor"]) == 1 and found["andor"][0].qualname == "check"  # `a or b` is pragma'd
    assert sorted(m.mutated for m in found["arith"]) == ["-=", "//"]
    assert all(m.line > 0 for ms in found.values() for m in ms)


def test_a_mutant_changes_exactly_its_site():
    for m in mutation.enumerate_mutants(TOY, mutation.ALL_KINDS):
        mutated = mutation.mutate(TOY, mutation.ALL_KINDS, m.index)
        assert mutated != mutation.unmutated(TOY)
        ast.parse(mutated)
        before = mutation.unmutated(TOY).splitlines()
        after = mutated.splitlines()
        changed = [i for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y]
        assert len(changed) == 1, (m, changed)
    raise_mutant = next(m for m in mutation.enumerate_mutants(TOY, ("raise",)))
    assert "raise" not in mutation.mutate(TOY, ("raise",), raise_mutant.index)
    with pytest.raises(ValueError):
        mutation.mutate(TOY, ("raise",), 5)


def test_the_sample_is_reproducible_and_depends_on_the_seed():
    everything = mutation.enumerate_mutants(TOY, mutation.ALL_KINDS)
    first = mutation.sample(everything, 6, seed=3)
    assert first == mutation.sample(everything, 6, seed=3)
    assert len(first) == 6 and first == sorted(first, key=lambda m: m.index)
    assert any(mutation.sample(everything, 6, seed=s) != first for s in range(4, 8))
    assert mutation.sample(everything, 0, seed=3) == everything


@pytest.fixture(autouse=True)
def _no_plugins(monkeypatch):
    """The toy's tests need no pytest plugin; not loading hypothesis saves a second per run."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def make_toy(tmp_path: Path, tests: str = TOY_TESTS) -> None:
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "__init__.py").write_text("")
    (tmp_path / "toy" / "calc.py").write_text(TOY)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_calc.py").write_text(tests)


def find(kind: str, original: str, mutated: str):
    return next(m for m in mutation.enumerate_mutants(TOY, mutation.ALL_KINDS)
                if m.kind == kind and m.original.startswith(original) and m.mutated == mutated)


def run_toy(tmp_path: Path, *mutants, extra: tuple[str, ...] = ()) -> dict[int, str]:
    report = tmp_path / "report.json"
    only = ",".join(str(m.index) for m in mutants)
    rc = mutation.main(["toy/calc.py", "--root", str(tmp_path), "--tests", "tests/test_calc.py", "--kinds", "all",
                        "--only", only, "--json", str(report), *extra])
    assert rc == 0
    return {o["index"]: o["status"] for o in json.loads(report.read_text())["outcomes"]}


def test_a_run_tells_killed_survived_and_equivalent_apart(tmp_path, capsys):
    make_toy(tmp_path)
    killed = find("raise", "raise ValueError", "pass")
    survived = find("boundary", "n > LIMIT", ">=")  # no test asks for n == LIMIT
    equivalent = find("const", "99", "100")  # untested too, but listed as equivalent below
    equivalents = tmp_path / "equivalent.txt"
    equivalents.write_text(f"# comment\n{equivalent.key('toy/calc.py')}  # n == 99 is never asked\n")
    outcome = run_toy(tmp_path, killed, survived, equivalent, extra=("--equivalent", str(equivalents)))
    assert outcome == {killed.index: "killed", survived.index: "survived", equivalent.index: "equivalent"}
    out = capsys.readouterr().out
    assert "score toy/calc.py: 1/2 killed = 50.0%" in out
    assert f"SURVIVED   #{survived.index:<4} toy/calc.py:{survived.line}:" in out  # the location, then the line
    assert "if n > LIMIT and n != 99:" in out
    assert not list(tmp_path.glob("toy/__pycache__/*")) and (tmp_path / "toy" / "calc.py").read_text() == TOY


def test_a_mutant_that_hangs_is_killed_by_the_timeout(tmp_path):
    make_toy(tmp_path)
    hangs = find("arith", "i += 1", "-=")  # count() loops for ever
    assert run_toy(tmp_path, hangs, extra=("--timeout", "1")) == {hangs.index: "timeout"}


def test_a_failing_unmutated_run_is_refused(tmp_path):
    make_toy(tmp_path, tests="def test_no():\n    assert False\n")
    with pytest.raises(SystemExit, match="unmutated"):
        mutation.main(["toy/calc.py", "--root", str(tmp_path), "--tests", "tests/test_calc.py", "--sample", "1"])
