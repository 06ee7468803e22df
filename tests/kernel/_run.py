"""The one subprocess wrapper of the harness: logs the command, raises :class:`ToolError`."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .errors import ToolError

log = logging.getLogger("atvdisk.tests.kernel")


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    hint: str | None = None,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv``, capture its output, raise :class:`ToolError` if it exits non-zero."""
    args = [str(a) for a in argv]
    log.info("$ %s%s", shlex.join(args), f"  (in {cwd})" if cwd else "")
    try:
        proc = subprocess.run(args, cwd=cwd, input=input, capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise ToolError(args, 127, str(exc), hint=hint) from exc
    if proc.returncode != 0:
        raise ToolError(args, proc.returncode, proc.stderr.decode(errors="replace"), hint=hint)
    return proc


def popen(argv: Sequence[str | Path], **kwargs: object) -> subprocess.Popen[bytes]:
    """Start a long-running process (qemu), logged the same way."""
    args = [str(a) for a in argv]
    log.info("$ %s &", shlex.join(args))
    return subprocess.Popen(args, **kwargs)  # type: ignore[call-overload]
