"""Start-up cost: every atvdisk process pays for what it imports (issue 12: ~0.35 s of a 2 s
build was the interpreter and imports). Commands are imported when run, and nothing on the way
to a build imports asyncio (the `sh` library did) or the HFS+ reader (only lshfs and verify use it)."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"], check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_the_command_line_imports_commands_only_when_they_run() -> None:
    mods = _modules_after("import atvdisk.cli.main")
    assert not {"atvdisk.cli.build", "atvdisk.cli.hfs", "atvdisk.cli.devices", "atvdisk.build"} & mods
    assert "asyncio" not in mods


def test_a_build_imports_no_asyncio_and_no_hfs_reader() -> None:
    mods = _modules_after("from atvdisk.cli.main import main\nmain.get_command(None, 'build')")
    assert "atvdisk.cli.build" in mods and "atvdisk.build" in mods
    assert "asyncio" not in mods and "sh" not in mods
    assert "atvdisk.fs.hfsplus.reader" not in mods and "atvdisk.cli.hfs" not in mods


def test_every_command_is_listed_and_runs_its_help() -> None:
    out = subprocess.run([sys.executable, "-m", "atvdisk", "--help"], check=True, capture_output=True, text=True).stdout
    for name in ("build", "verify", "devices", "mkhfs", "lshfs", "extract", "layouts", "plan"):
        assert f"  {name} " in out
        sub = subprocess.run([sys.executable, "-m", "atvdisk", name, "--help"], check=True, capture_output=True, text=True).stdout
        assert f"atvdisk {name}" in sub or "Usage:" in sub
