"""The one way atvdisk runs external tools: logged, checked, turned into :class:`ToolError`.

Built on the ``sh`` library. Every command is logged (``-v`` shows it, ``--debug`` its output too),
missing tools are reported with the Debian package that provides them, and failures carry the
tool's stderr.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from dataclasses import dataclass

import sh

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
    try:
        proc = sh.Command(exe)(
            *command[1:],
            _env=full_env,
            _in=input,
            _ok_code=list(ok_codes),
            _return_cmd=True,
            _tty_out=False,  # a pipe, not a pseudo-terminal: no pagers, no colours, no prompts
            _decode_errors="replace",
        )
        result = Result(tuple(command), proc.exit_code, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
    except sh.ErrorReturnCode as e:
        stderr = e.stderr.decode(errors="replace")
        log.debug("  exit %s\n%s", e.exit_code, stderr)
        raise ToolError(list(command), e.exit_code, stderr or e.stdout.decode(errors="replace"), hint=hint) from None
    except sh.SignalException as e:
        raise ToolError(list(command), -abs(e.exit_code), e.stderr.decode(errors="replace"), hint=hint) from None
    if result.stderr.strip():
        log.debug("  stderr: %s", result.stderr.strip())
    return result


def capture(command: list[str | os.PathLike[str]], *, limit: int, env: dict[str, str] | None = None, ok_codes: tuple[int, ...] = (0,)) -> tuple[int, bytes, str] | None:
    """Run ``command`` and return ``(exit code, stdout bytes, stderr)``, reading at most
    ``limit`` bytes of its output: None (the tool is killed) when it would print more.

    For reading files out of untrusted filesystems (``mtype``, ``debugfs -R cat``) in bounded
    memory. Raises :class:`ToolError` for an exit code outside ``ok_codes``.
    """
    import subprocess

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
    if code not in ok_codes:
        raise ToolError(list(command), code, stderr)
    return code, bytes(out), stderr
