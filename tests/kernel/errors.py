"""Exceptions of the kernel-test harness (one family: :class:`HarnessError`).

Each carries the offending value in its message and, where one exists, a ``hint`` saying what
would fix it. Guest failures also carry the tail of the guest's serial console.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .harness import GuestResult


class HarnessError(Exception):
    """Base class. ``str()`` is the message plus the hint."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


class AssetError(HarnessError):
    """The Debian kernel, a host tool or the initramfs could not be prepared."""


class ToolError(AssetError):
    """A host command failed (the command, exit status and stderr are in the message)."""

    def __init__(self, argv: list[str], returncode: int, stderr: str, *, hint: str | None = None):
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        tail = stderr.strip()[-2000:]
        super().__init__(
            f"command failed (exit {returncode}): {' '.join(argv)}" + (f"\n{tail}" if tail else ""),
            hint=hint,
        )


class GuestError(HarnessError):
    """A guest run did not produce a usable result. ``console_tail`` is its last console lines."""

    def __init__(self, message: str, *, console: str = "", hint: str | None = None) -> None:
        self.console = console
        self.console_tail = console_tail(console)
        full = message
        if self.console_tail:
            full += "\n--- guest console (last lines) ---\n" + self.console_tail + "\n--- end ---"
        super().__init__(full, hint=hint)


class GuestTimeout(GuestError):
    """The guest did not power off within the timeout; qemu was killed."""


class GuestSetupFailed(GuestError):
    """The guest's init could not prepare the run (module, disk order, results disk)."""


class GuestNoResult(GuestError):
    """qemu exited but the guest wrote no results (kernel panic, reboot, kexec, ...)."""


class GuestScriptFailed(GuestError):
    """The test script exited non-zero in the guest. ``result`` is the full :class:`GuestResult`."""

    def __init__(self, message: str, *, result: GuestResult, hint: str | None = None) -> None:
        self.result = result
        if result.output.strip():
            message += "\n--- script output (last lines) ---\n" + console_tail(result.output)
        super().__init__(message, console=result.console, hint=hint)


class RecordError(HarnessError):
    """A result record written by the guest is missing or cannot be parsed."""


def console_tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` non-empty-trailing lines of ``text``."""
    return "\n".join(text.rstrip().splitlines()[-lines:])
