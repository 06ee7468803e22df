"""The documentation a user reads besides --help (issue 14): the man page, generated from the
click definitions and kept in sync here, rendered by groff without a warning; shell completion
as the README documents it, through a real bash."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ATVDISK = Path(sys.executable).parent / "atvdisk"  # the console script pip installed beside python


def test_the_man_page_is_what_the_code_says() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "manpage.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + "(the man page is generated: run .venv/bin/python tools/manpage.py and commit man/atvdisk.1)"


def test_the_man_page_renders_without_warnings_and_lists_every_command_and_option() -> None:
    from click import Context

    from atvdisk.cli.main import main

    assert shutil.which("groff"), "groff is not installed (.ci/setup installs groff-base)"
    page = ROOT / "man" / "atvdisk.1"
    lint = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True)
    assert lint.returncode == 0 and lint.stderr == "", lint.stderr
    text = subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou", "-rLL=200n", str(page)], capture_output=True, text=True, check=True).stdout
    text = text.replace("\u2010", "-").replace("\u2212", "-")  # hyphens as groff draws them in UTF-8
    ctx = Context(main, info_name="atvdisk")
    commands = main.list_commands(ctx)
    assert {"build", "verify", "write", "backup", "extract", "plan", "devices", "layouts", "mkhfs", "lshfs"} <= set(commands)
    for name in commands:
        command = main.get_command(ctx, name)
        assert re.search(rf"^\s+atvdisk {name} \[OPTIONS\]", text, re.M), name
        for param in command.params:
            for opt in param.opts if param.param_type_name == "option" else ():
                assert re.search(rf"(^|[\s,]){re.escape(opt)}\b", text, re.M), f"{name} {opt}"
    for section in ("EXIT STATUS", "ENVIRONMENT", "NO_COLOR", "130"):
        assert section in text


def _complete(words: list[str]) -> list[str]:
    """What bash offers after `words` (the last one being typed), with atvdisk's completion
    script loaded as the README says: eval "$(_ATVDISK_COMPLETE=bash_source atvdisk)"."""
    assert ATVDISK.exists(), ATVDISK
    script = (
        'eval "$(_ATVDISK_COMPLETE=bash_source atvdisk)"\n'
        f"COMP_WORDS=({' '.join(_quote(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        "_atvdisk_completion atvdisk\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{ATVDISK.parent}:{os.environ.get('PATH', '')}"}
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return r.stdout.split()


def _shell(argv: list[str], script: str) -> str:
    env = {**os.environ, "PATH": f"{ATVDISK.parent}:{os.environ.get('PATH', '')}"}
    r = subprocess.run([*argv, script], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stderr == "", (r.returncode, r.stderr)
    return r.stdout


def test_zsh_completion_registers_and_offers_commands_options_and_layouts() -> None:
    """The README's zsh line in a real zsh with compinit: the script registers itself for
    atvdisk, and its function, given the words typed, hands zsh the right candidates (zsh's
    own _describe/compadd only run inside a completion widget, so here they print what they are
    given; everything else is zsh and atvdisk)."""
    prelude = (
        "autoload -U compinit && compinit -u -D\n"
        'eval "$(_ATVDISK_COMPLETE=zsh_source atvdisk)"\n'
        'print -r -- "registered: $_comps[atvdisk]"\n'
        '_describe() { local name=$3; print -rl -- "${(@)${(P)name}%%:*}"; }\n'
        'compadd() { local name=${@[-1]}; print -rl -- "${(@P)name}"; }\n'
    )

    def complete(words: list[str]) -> list[str]:
        out = _shell(["zsh", "-f", "-c"], prelude + f"words=({' '.join(_quote(w) for w in words)}); CURRENT={len(words)}; _atvdisk_completion\n")
        first, *rest = out.splitlines()
        assert first == "registered: _atvdisk_completion"
        return rest

    assert complete(["atvdisk", "b"]) == ["backup", "build"]
    assert "--openelec" in complete(["atvdisk", "build", "--op"])
    assert complete(["atvdisk", "build", "--layout", "atv1-f"]) == ["atv1-factory"]


def test_fish_completion_offers_commands_options_and_layouts() -> None:
    """The README's fish line, then fish's own `complete -C` (what fish offers at the prompt)."""

    def complete(line: str) -> list[str]:
        out = _shell(["fish", "--no-config", "-c"], f"_ATVDISK_COMPLETE=fish_source atvdisk | source; complete -C {_quote(line)}")
        return [row.split("\t")[0] for row in out.splitlines()]

    assert complete("atvdisk b") == ["backup", "build"]
    assert "--openelec" in complete("atvdisk build --op")
    assert complete("atvdisk build --layout atv1-f") == ["atv1-factory"]


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


def test_bash_completion_offers_commands_options_and_layouts(tmp_path: Path) -> None:
    assert _complete(["atvdisk", "b"]) == ["backup", "build"]
    assert "--openelec" in _complete(["atvdisk", "build", "--op"])
    assert "--no-verify" in _complete(["atvdisk", "write", "--no"])
    from atvdisk.layout.schema import bundled_layouts

    assert _complete(["atvdisk", "build", "--layout", "atv1-f"]) == ["atv1-factory"]
    assert sorted(_complete(["atvdisk", "plan", "--layout", ""])) == sorted(bundled_layouts()) and len(bundled_layouts()) >= 2
