"""An image file that appears at its final path only when the build succeeded.

One job: :class:`ImageTarget`. The image is created sparse under a temporary name beside the
final path (same directory, so the final rename is atomic): ``.NAME.atvdisk-XXXXXXXX.partial``.
On success it is fsync'ed and renamed into place (and the directory fsync'ed); on an exception,
Ctrl-C, SIGTERM or SIGHUP the temporary file is removed. After SIGKILL (which nothing can catch)
the temporary file may remain, under its temporary name — never at the final path; the next
build lists such leftovers in ``stale_partials``. Works unprivileged.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tempfile
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Self

from atvdisk.errors import BuildError, TargetRefused
from atvdisk.layout.units import format_iec
from atvdisk.target.interrupt import signals_deferred, terminate_raises
from atvdisk.target.probe import refuse_missing_device

log = logging.getLogger("atvdisk.imagefile")

PARTIAL_SUFFIX = ".partial"
PARTIAL_INFIX = ".atvdisk-"


def partial_prefix(final: Path) -> str:
    return f".{final.name}{PARTIAL_INFIX}"


class ImageTarget:
    """``with ImageTarget("disk.img", size, overwrite=False) as image:`` — build into
    ``image.path`` (the temporary file; ``image.fd`` is an O_RDWR fd on it, open for the whole
    block), and on a clean exit it becomes ``image.final_path``.

    Refuses (TargetRefused, nothing created) when the final path exists and ``overwrite`` is
    false (the CLI's --force), or exists and is not a regular file (a directory, a block device),
    or its directory does not exist or is not writable. With ``overwrite`` an existing image is
    replaced only at the final rename: a failed build leaves it untouched.

    ``warnings``: things the user should know (too little free space for the whole image,
    leftovers of killed builds). ``stale_partials``: those leftovers' paths.
    """

    def __init__(
        self,
        final_path: str | os.PathLike[str],
        size_bytes: int,
        *,
        overwrite: bool = False,
    ) -> None:
        if size_bytes <= 0:
            raise TargetRefused(f"image size must be positive, not {size_bytes}")
        self.final_path = Path(final_path)
        self.size_bytes = size_bytes
        self.overwrite = overwrite
        self.path: Path | None = None
        self.fd: int | None = None
        self.warnings: tuple[str, ...] = ()
        self.stale_partials: tuple[Path, ...] = ()
        self._stack: ExitStack | None = None

    def __enter__(self) -> Self:
        final = self.final_path
        self._check_final(final)
        directory = final.parent if str(final.parent) else Path(".")
        if not directory.is_dir():
            raise TargetRefused(
                f"{directory}: no such directory",
                hint="create it first, or choose another path for the image",
            )
        self.stale_partials = tuple(
            sorted(directory.glob(partial_prefix(final) + "*" + PARTIAL_SUFFIX))
        )
        warnings = [
            f"{p} is left over from an interrupted build; delete it"
            for p in self.stale_partials
        ]
        stack = ExitStack()
        stack.enter_context(terminate_raises())
        try:
            with signals_deferred():  # create and register the cleanup as one step
                try:
                    fd, name = tempfile.mkstemp(
                        prefix=partial_prefix(final),
                        suffix=PARTIAL_SUFFIX,
                        dir=directory,
                    )
                except OSError as e:
                    raise _dir_error(directory, e) from None
                self.fd, self.path = fd, Path(name)
                stack.callback(self._discard)
            try:
                os.ftruncate(fd, self.size_bytes)  # sparse: no blocks allocated yet
            except OSError as e:
                if e.errno == errno.EFBIG:
                    raise TargetRefused(
                        f"the filesystem of {directory} cannot hold a {format_iec(self.size_bytes)} file",
                        hint="choose another directory (FAT32 files stop at 4 GiB)",
                    ) from None
                raise BuildError(f"creating {self.path} failed: {e.strerror}") from e
            free = _free_bytes(directory)
            if free is not None and free < self.size_bytes:
                warnings.append(
                    f"only {format_iec(free)} free in {directory}; the image is {format_iec(self.size_bytes)} (sparse:"
                    " it needs only what is written, but may run out of space)"
                )
        except BaseException:
            stack.close()
            raise
        self.warnings = tuple(warnings)
        self._stack = stack
        log.info(
            "building %s as %s (%d bytes, sparse)", final, self.path, self.size_bytes
        )
        return self

    def _check_final(self, final: Path) -> None:
        refuse_missing_device(str(final))
        try:
            st = os.lstat(final)
        except FileNotFoundError:
            return
        except OSError as e:
            raise TargetRefused(f"{final}: {e.strerror}") from e
        if stat.S_ISBLK(st.st_mode):
            raise TargetRefused(
                f"{final} is a block device, not an image file",
                hint="to write a disk, give it without --size (see `atvdisk devices`)",
            )
        if stat.S_ISDIR(st.st_mode):
            raise TargetRefused(
                f"{final} is a directory",
                hint="give a file name for the image, e.g. atv.img",
            )
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise TargetRefused(f"{final} exists and is not a regular file")
        if not self.overwrite:
            raise TargetRefused(
                f"{final} already exists",
                hint="pass --force to replace it, or choose another name",
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None
        stack, self._stack = self._stack, None
        with stack:
            if exc is None:
                self._commit()

    def fsync(self) -> None:
        assert self.fd is not None, "image not entered"
        try:
            os.fsync(self.fd)
        except OSError as e:
            raise BuildError(f"flushing {self.path} failed: {e.strerror}") from e

    def _commit(self) -> None:
        assert self.fd is not None and self.path is not None
        with signals_deferred():
            self.fsync()
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(
                self.fd, 0o666 & ~umask
            )  # mkstemp made it 0600; give it a normal file's mode
            os.close(self.fd)
            self.fd = None
            try:
                _rename(self.path, self.final_path, overwrite=self.overwrite)
            except OSError as e:
                raise BuildError(
                    f"renaming {self.path} to {self.final_path} failed: {e.strerror}"
                ) from e
            self.path = None  # nothing left to discard
            _fsync_dir(self.final_path.parent)
        log.info("wrote %s", self.final_path)

    def _discard(self) -> None:
        """Close and remove the temporary file (every failure path). Never raises."""
        with signals_deferred():
            if self.fd is not None:
                try:
                    os.close(self.fd)
                except OSError:
                    pass
                self.fd = None
            if self.path is not None:
                try:
                    os.unlink(self.path)
                    log.info("removed %s", self.path)
                except FileNotFoundError:
                    pass
                except OSError as e:
                    log.error("could not remove %s: %s", self.path, e.strerror)
                self.path = None


def _rename(src: Path, dst: Path, *, overwrite: bool) -> None:
    if overwrite:
        os.replace(src, dst)
        return
    # No-clobber: link() fails if dst appeared meanwhile; then drop the temporary name.
    try:
        os.link(src, dst)
    except FileExistsError:
        raise TargetRefused(
            f"{dst} appeared while building",
            hint="pass --force to replace it, or choose another name",
        ) from None
    except OSError as e:
        if e.errno not in (
            errno.EPERM,
            errno.EOPNOTSUPP,
            errno.ENOTSUP,
            errno.EXDEV,
            errno.EMLINK,
        ):
            raise
        if os.path.lexists(dst):  # a filesystem without hard links: best effort
            raise TargetRefused(
                f"{dst} appeared while building", hint="pass --force to replace it"
            ) from None
        os.rename(src, dst)
        return
    os.unlink(src)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(
            directory if str(directory) else ".",
            os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC,
        )
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _free_bytes(directory: Path) -> int | None:
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _dir_error(directory: Path, e: OSError) -> TargetRefused:
    if e.errno in (errno.EACCES, errno.EPERM):
        return TargetRefused(
            f"{directory}: permission denied: cannot create the image there",
            hint="choose a directory you can write to",
        )
    if e.errno == errno.EROFS:
        return TargetRefused(
            f"{directory} is on a read-only filesystem", hint="choose another directory"
        )
    return TargetRefused(f"cannot create a file in {directory}: {e.strerror}")
