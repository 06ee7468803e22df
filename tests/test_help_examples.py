"""The examples in every command's --help are true (issue 14): each names only options the
command has and the right number of arguments, and every example that touches no disk is run,
in the order a user would (build before verify, mkhfs before lshfs), in one directory holding
the sample payload under the names the examples use. Those naming /dev/... are run by no test
here: the README's (tests/test_readme.py, root, loop devices) cover each such command."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import click
from test_readme import _strip_comment

from atvdisk.cli.main import main

ORDER = ["build", "verify", "mkhfs", "lshfs", "extract", "backup", "write", "plan", "devices", "layouts"]
INPUT_FILES = {"--openelec": "OpenELEC-ATV.i386-3.2.4.tar", "--restore": "atv_restore.tar.gz", "--recovery": "atv_recovery.tar.gz"}


def examples() -> list[tuple[str, click.Command, str]]:
    """(command name, command, example line) for every example of every command's help."""
    ctx = click.Context(main, info_name="atvdisk")
    names = main.list_commands(ctx)
    assert set(names) <= set(ORDER), set(names) - set(ORDER)
    out = []
    for name in ORDER:
        if name not in names:
            continue
        command = main.get_command(ctx, name)
        text = (command.help or "").replace("\\\n", " ")
        block = re.search(r"\n\s*Examples?:\n((?:[ \t]+.*\n?)+)", text)
        if block is None:
            continue
        for line in block.group(1).splitlines():
            line = _strip_comment(line)
            if line.startswith("atvdisk "):
                used = main.get_command(ctx, line.split()[1])  # an example may show another command first
                assert used is not None, f"atvdisk {name} --help example {line!r}: no such command"
                out.append((name, used, line))
    return out


def _check_syntax(name: str, command: click.Command, line: str) -> None:
    """Every option token is the command's (the one the example runs), with its value; as many
    arguments as it takes."""
    tokens = shlex.split(line)[2:]
    options = {opt: p for p in command.params if isinstance(p, click.Option) for opt in p.opts + p.secondary_opts}
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    positional = 0
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "...":
            i += 1  # "more options"
            continue
        if token.startswith("-"):
            assert token in options, f"atvdisk {name} --help example {line!r}: {token} is not an option of {name}"
            option = options[token]
            i += 1 if (option.is_flag or option.count) else 2
            continue
        positional += 1
        i += 1
    required = sum(1 for a in arguments if a.required)
    assert required <= positional <= len(arguments), f"atvdisk {name} --help example {line!r}: {positional} arguments, the command takes {required}-{len(arguments)}"


def test_every_help_example_is_a_valid_command_line() -> None:
    found = examples()
    assert {name for name, _, _ in found} >= {"build", "verify", "mkhfs", "lshfs", "extract", "backup", "write", "plan", "devices"}
    for name, command, line in found:
        _check_syntax(name, command, line)


def test_every_help_example_that_touches_no_disk_runs(tmp_path: Path) -> None:
    from atvdisk.inputs.sample import write_sample

    sample = write_sample(str(tmp_path / "sample"))
    with tarfile.open(tmp_path / INPUT_FILES["--openelec"], "w") as tar:
        for f in sorted(Path(sample.openelec).iterdir()):
            tar.add(f, arcname=f"OpenELEC-ATV.i386-3.2.4/target/{f.name}")
    shutil.copy(sample.restore, tmp_path / INPUT_FILES["--restore"])
    shutil.copy(sample.recovery, tmp_path / INPUT_FILES["--recovery"])
    for d in ("boot", "recovery"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "file.txt").write_text(f"a file in ./{d}\n")
    ran = []
    for name, _, line in examples():
        if "/dev/" in line or re.search(r"(^| )\.\.\.( |$)", line.replace("--openelec ...", "").replace("--restore ...", "").replace("--recovery ...", "")):
            continue
        line = re.sub(r"(--openelec|--restore|--recovery) \.\.\.", lambda m: f"{m.group(1)} {INPUT_FILES[m.group(1)]}", line)
        if name == "extract" and not (tmp_path / "old-atv.img").exists():
            (tmp_path / "old-atv.img").symlink_to(tmp_path / "demo.img")  # an old disk's image: the demo's
        r = subprocess.run([sys.executable, "-m", "atvdisk", *shlex.split(line)[1:]], capture_output=True, text=True, cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=300, env={**os.environ, "NO_COLOR": "1"})
        assert r.returncode == 0, f"atvdisk {name} --help example {line!r} failed ({r.returncode}):\n{r.stderr}"
        ran.append(line)
    assert len(ran) >= 10, ran
    assert {"atvdisk mkhfs boot.hfs", "atvdisk lshfs boot.hfs", "atvdisk build demo.img"} <= {" ".join(r.split()[:3]) for r in ran}
