"""The one way atvdisk runs external tools: logged, checked, turned into :class:`ToolError`.

Built on :mod:`subprocess` (the ``sh`` library it used before cost 0.15-0.25 s of start-up in
every atvdisk process, importing asyncio and ssl). Every command is logged (``-v`` shows it,
``--debug`` its output too), missing tools are reported with the Debian package that provides them, and failures carry the
tool's stderr.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass

from atvdisk.errors import ToolError, UsageError

log = logging.getLogger("atvdisk.run")

# Which Debian 12 package provides each tool, for the hint when one is missing.
PACKAGES = {
    "mke2fs": "e2fsprogs",
    "e2fsck": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "mkfs.fat": "dosfstools",
    "fsck.fat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "mattrib": "mtools",
    "mdir": "mtools",
    "mkswap": "util-linux",
    "lsblk": "util-linux",
    "losetup": "mount",
    "partx": "util-linux",
    "blkid": "util-linux",
    "swapoff": "mount",
    "umount": "mount",
    "udevadm": "udev",
    "sfdisk": "fdisk",
    "sgdisk": "gdisk",
}


# What the tools print on every build that looks alarming but is expected. At -vv each such
# line is shown with why it is expected (never raw), and it never becomes a warning.
_SWAP_WHY = "expected: mkswap writes its page into a sparse scratch file, of which atvdisk copies only that page"
EXPECTED_OUTPUT: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("mkswap", re.compile(r"contains holes or other unsupported extents|can be rejected by kernel|Use --verbose for more details"), _SWAP_WHY),
    ("mkfs.fat", re.compile(r"block count mismatch"), "expected: mkfs.fat is given the partition's size inside the whole disk (--offset), not the disk's"),
    ("mdir", re.compile(r'File "::/" not found|No files'), "expected: the FAT root holds no files yet"),
)


def explain(tool: str, line: str) -> str | None:
    """Why ``line`` of ``tool``'s output is expected, if it is one of EXPECTED_OUTPUT."""
    name = os.path.basename(tool)
    for t, pattern, why in EXPECTED_OUTPUT:
        if t == name and pattern.search(line):
            return why
    return None


OUTPUT_LINES = 200  # of each stream of one command, at -vv


def log_output(tool: str, stdout: str, stderr: str) -> None:
    """A command's output, at DEBUG (-vv): each line under the tool's name (tools run in
    parallel), the expected ones explained."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    name = os.path.basename(tool)
    for text in (stdout, stderr):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        for line in lines[:OUTPUT_LINES]:
            line = line.removeprefix(f"{name}: ")
            why = explain(name, line)
            log.debug("  %s: %s%s", name, line, f"  ({why})" if why else "")
        if len(lines) > OUTPUT_LINES:
            log.debug("  %s: ... %d more lines", name, len(lines) - OUTPUT_LINES)


@dataclass(frozen=True)
class Result:
    command: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def which(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        package = PACKAGES.get(tool)
        raise UsageError(
            f"{tool} is not installed",
            hint=f"install it: apt-get install {package}" if package else f"install {tool}",
        )
    return path


def run(
    command: list[str | os.PathLike[str]],
    *,
    env: dict[str, str] | None = None,
    input: bytes | str | None = None,
    ok_codes: tuple[int, ...] = (0,),
    hint: str | None = None,
) -> Result:
    """Run ``command`` (its first element is looked up on PATH and /usr/sbin), return its output.

    Raises :class:`ToolError` (a BuildError) when the exit code is not in ``ok_codes``.
    """
    command = [os.fspath(c) for c in command]
    exe = which(command[0])
    log.info("$ %s", shlex.join(command))
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
        log.debug("  with %s", " ".join(f"{k}={v}" for k, v in env.items()))
    if isinstance(input, str):
        input = input.encode()
    try:
        # Pipes, not a pseudo-terminal: no pagers, no colours, no prompts.
        proc = subprocess.run([exe, *command[1:]], env=full_env, input=input, stdin=subprocess.DEVNULL if input is None else None, capture_output=True, check=False)
    except OSError as e:
        raise ToolError(list(command), 127, f"cannot run {exe}: {e.strerror}", hint=hint) from None
    result = Result(tuple(command), proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
    log_output(command[0], result.stdout, result.stderr)
    if proc.returncode not in ok_codes:
        log.debug("  %s: exit code %s", os.path.basename(command[0]), proc.returncode)
        raise ToolError(list(command), proc.returncode, result.stderr or result.stdout, hint=hint)
    return result


def capture(command: list[str | os.PathLike[str]], *, limit: int, env: dict[str, str] | None = None, ok_codes: tuple[int, ...] = (0,)) -> tuple[int, bytes, str] | None:
    """Run ``command`` and return ``(exit code, stdout bytes, stderr)``, reading at most
    ``limit`` bytes of its output: None (the tool is killed) when it would print more.

    For reading files out of untrusted filesystems (``mtype``, ``debugfs -R cat``) in bounded
    memory. Raises :class:`ToolError` for an exit code outside ``ok_codes``.
    """
    command = [os.fspath(c) for c in command]
    exe = which(command[0])
    log.info("$ %s", shlex.join(command))
    full_env = dict(os.environ)
    full_env.update(env or {})
    with subprocess.Popen([exe, *command[1:]], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        out = bytearray()
        while len(out) <= limit:
            chunk = proc.stdout.read(min(1 << 20, limit + 1 - len(out)))
            if not chunk:
                break
            out += chunk
        if len(out) > limit:
            proc.kill()
            proc.wait()
            log.info("  more than %d bytes of output: stopped", limit)
            return None
        stderr = proc.stderr.read(1 << 20).decode(errors="replace")
        code = proc.wait()
    log_output(command[0], "", stderr)  # stdout is the file's data
    if code not in ok_codes:
        raise ToolError(list(command), code, stderr)
    return code, bytes(out), stderr
