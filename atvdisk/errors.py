"""Exception classes, one family per layer.

Library code raises these with the offending value and, where one exists, a hint that says what
would fix the problem. Only the CLI turns them into messages and exit codes (``exit_code``).
"""

from __future__ import annotations

# Exit codes, documented in the README. Keep them stable: scripts depend on them.
EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug: an unexpected exception (traceback with --debug)
EXIT_USAGE = 2  # bad command line, layout, or inputs: detected before anything was written
EXIT_REFUSED = 3  # the target is unsafe or the user did not confirm: nothing was written
EXIT_BUILD = 4  # writing the disk or image failed part-way
EXIT_VERIFY = 5  # the result does not match the plan or its sources
EXIT_INTERRUPTED = 130


class AtvdiskError(Exception):
    """Base class. ``str()`` is the message; ``hint`` says what would fix it."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(AtvdiskError):
    """Something the user gave us is wrong; nothing has been written."""

    exit_code = EXIT_USAGE


class LayoutError(UsageError):
    """A layout file is invalid. Names the file, the TOML path and the value."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        where: str | None = None,
        value: object = None,
        hint: str | None = None,
    ) -> None:
        self.source = source
        self.where = where
        self.value = value
        prefix = ""
        if source:
            prefix += f"{source}: "
        if where:
            prefix += f"{where}: "
        super().__init__(prefix + message, hint=hint)


class PlanError(LayoutError):
    """The layout is valid on its own but cannot be resolved for this disk."""


class DiskTooSmall(PlanError):
    """The disk (or image size) cannot hold the layout. ``need_bytes`` is the least that would.

    A refused target (exit 3) on every path -- a disk, an image's --size, ``plan --size``, a dry
    run -- as the README's exit codes say: the layout is fine, the disk is not."""

    exit_code = EXIT_REFUSED

    def __init__(self, message: str, *, need_bytes: int, **kwargs: object) -> None:
        self.need_bytes = need_bytes
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class InputError(UsageError):
    """A payload input (OpenELEC release, restore or recovery tarball, directory) is unusable."""


class BootFilesError(UsageError):
    """The boot script or boot plist cannot be made so that the ATV boots (a value the ATV's boot
    software would not take, a recovery plist that cannot be fixed, ...). Nothing was written."""


class TargetRefused(AtvdiskError):
    """The target is unsafe, unsuitable, or the user did not confirm. Nothing was written."""

    exit_code = EXIT_REFUSED


class BuildError(AtvdiskError):
    """Writing the disk or image failed part-way."""

    exit_code = EXIT_BUILD


class ToolError(BuildError):
    """An external tool (mke2fs, mkfs.fat, mcopy, ...) failed."""

    def __init__(self, command: list[str], returncode: int, stderr: str, *, hint: str | None = None):
        self.command = command
        self.returncode = returncode
        self.stderr = stderr
        tail = stderr.strip().splitlines()[-5:]
        detail = ("\n  " + "\n  ".join(tail)) if tail else ""
        super().__init__(f"{command[0]} failed with exit code {returncode}{detail}", hint=hint)


class VerifyError(AtvdiskError):
    """The target does not match the plan or its sources. ``mismatches`` lists every finding."""

    exit_code = EXIT_VERIFY

    def __init__(self, mismatches: list[str], *, hint: str | None = None) -> None:
        self.mismatches = list(mismatches)
        n = len(self.mismatches)
        super().__init__(
            f"verification failed: {n} mismatch{'es' if n != 1 else ''}\n  - "
            + "\n  - ".join(self.mismatches),
            hint=hint,
        )
