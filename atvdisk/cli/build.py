"""`atvdisk build` and `atvdisk verify`: the command-line side of :mod:`atvdisk.build`."""

from __future__ import annotations

import os
import re
import stat
import tempfile
import time
from contextlib import ExitStack, closing, nullcontext
from dataclasses import dataclass

import click

from atvdisk import manifest
from atvdisk.build import BuildSettings, Prepared, apply, prepare
from atvdisk.cli.common import (
    Console,
    layout_option,
    parse_size_option,
    refuse_missing_inputs,
    resolve_for,
    seed_option,
)
from atvdisk.cli.console import Writing
from atvdisk.cli.text import printable
from atvdisk.errors import (
    AtvdiskError,
    BuildError,
    DiskTooSmall,
    PlanError,
    TargetRefused,
    UsageError,
    VerifyError,
)
from atvdisk.inputs.payload import (
    Inputs,
    OpenElecRelease,
    check_input_file,
    fitting_layouts,
)
from atvdisk.inputs.sample import write_sample
from atvdisk.layout import atv
from atvdisk.layout.plan import Plan
from atvdisk.layout.resolver import resolve
from atvdisk.layout.schema import (
    IdentityValueError,
    Layout,
    NameBy,
    check_epoch,
    load_layout,
)
from atvdisk.layout.units import Quantity, format_iec, format_parted
from atvdisk.progress import Progress
from atvdisk.target import checks as targets
from atvdisk.target import guard
from atvdisk.target.access import BlockAccess, ImageAccess, drop_cached
from atvdisk.target.probe import TargetKind, check_readable, probe_size
from atvdisk.verify import (
    VerifyReport,
    compare,
    expected_entries,
    verify,
    verify_manifest,
)

SUFFIX = {"gz": ".gz", "xz": ".xz"}  # --compress: what is added to the image's name


def _epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        return int(time.time())
    try:
        return check_epoch(value)
    except IdentityValueError as e:
        raise UsageError(e.message, hint=e.hint) from None


def _atv_disk_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--atv-disk: only names the ATV has (sda..sdh, with or without /dev/)."""
    if value is None:
        return None
    try:
        return atv.atv_disk(value)
    except atv.AtvValueError as e:
        raise click.BadParameter(f"{e.message} ({e.hint})") from None


@dataclass(frozen=True)
class InputOptions:
    openelec: str | None
    restore: str | None
    recovery: str | None
    example: bool


def _inputs(opts: InputOptions, layout: Layout, stack: ExitStack, progress: Progress | None = None, release: OpenElecRelease | None = None) -> Inputs:
    """The inputs for ``layout``; --example gives the sample release the layout boots."""
    if release is None and opts.openelec:
        release = OpenElecRelease.open(opts.openelec, check=False)  # md5: in prepare()
    restore, recovery = opts.restore, opts.recovery
    if opts.example:
        sample_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="atvdisk-sample-"))
        with progress.step("write the sample payload (--example: a fake KERNEL, SYSTEM and tarballs)") if progress else ExitStack():
            sample = write_sample(sample_dir)
        if release is None:
            release = OpenElecRelease.open(str(sample.openelec_for(layout.boot.kernel if layout.boot else "KERNEL")), check=False)
        restore = restore or str(sample.restore)
        recovery = recovery or str(sample.recovery)
    return Inputs(
        openelec=release,
        restore=check_input_file("--restore", restore),
        recovery=check_input_file("--recovery", recovery),
        layout_dir=layout.directory,
    )


def _choose_layout(console: Console, opts: InputOptions, layout_name: str) -> tuple[Layout, OpenElecRelease | None]:
    """The layout, and the release if one was given. Without --layout, a 4.x release (MACH_KERNEL,
    no KERNEL) picks atv1-openelec4, and says so."""
    release = OpenElecRelease.open(opts.openelec, check=False) if opts.openelec else None  # md5: in prepare()
    if release is not None and _layout_is_default():
        boot = load_layout(layout_name).boot
        if boot is not None and boot.kernel not in release.files:
            fitting = fitting_layouts(release)
            if fitting:
                console.info(f"--openelec {release.path} is {release.describe()}: using layout {fitting[0]} (give --layout to choose another)")
                layout_name = fitting[0]
    return load_layout(layout_name), release


def _layout_is_default() -> bool:
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source("layout_name") is click.core.ParameterSource.DEFAULT


def input_options(f):  # noqa: ANN001, ANN201 - a click decorator
    f = click.option("--example", is_flag=True, help="Use the bundled sample payload (fake KERNEL, SYSTEM and tarballs) for inputs not given.")(f)
    f = click.option("--recovery", type=click.Path(dir_okay=False), help="atv_recovery.tar.gz: the patchstick files.")(f)
    f = click.option("--restore", type=click.Path(dir_okay=False), help="atv_restore.tar.gz: Apple's restore files (boot.efi, ...).")(f)
    f = click.option("--openelec", type=click.Path(), help="OpenELEC: the OpenELEC-ATV.i386-*.tar release, or its directory (KERNEL or MACH_KERNEL, and SYSTEM).")(f)
    f = click.option("--name-by", type=click.Choice([n.value for n in NameBy]), default=None, help="How OpenELEC's boot=/disk= name partitions [default: the layout's, device].")(f)
    f = click.option("--atv-disk", metavar="sda|sdb", default=None, callback=_atv_disk_option, help="The disk's name on the ATV, sda to sdh [default: the layout's, sda (internal)].")(f)
    f = seed_option(f)
    return layout_option(f)


@click.command("build")
@click.argument("target", metavar="TARGET")
@input_options
@click.option("--size", callback=parse_size_option, metavar="SIZE", help="Create an image file of this size (4G, 4GB, 8451072s).")
@click.option("--loop", is_flag=True, help="Build an image through a loop device, as for a real disk (root).")
@click.option("--dry-run", is_flag=True, help="Check everything and print the plan; write nothing.")
@click.option("--yes", is_flag=True, help="Do not ask before erasing a disk (for scripts).")
@click.option("--unmount", is_flag=True, help="Unmount the disk's partitions and turn off its swap first.")
@click.option("--force", is_flag=True, help="Replace an existing image file.")
@click.option("--no-verify", is_flag=True, help="Skip reading everything back at the end.")
@click.option("--bmap", "with_bmap", is_flag=True, help="Also write IMAGE.bmap, for `bmaptool copy` (image files).")
@click.option("--compress", type=click.Choice(["gz", "xz"]), default=None, help="Write the image compressed, as IMAGE.gz or IMAGE.xz (image files).")
@click.option("--keep-boot-plist", is_flag=True, help="Keep the recovery's com.apple.Boot.plist as it is (refused if atv-bootloader would then not run the boot script).")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
@click.pass_obj
def build_cmd(console: Console, target: str, layout_name: str, seed: str | None, atv_disk: str | None, name_by: str | None, openelec, restore, recovery, example: bool, size: Quantity | None, loop: bool, dry_run: bool, yes: bool, unmount: bool, force: bool, no_verify: bool, with_bmap: bool, compress: str | None, keep_boot_plist: bool, as_json: bool) -> None:  # noqa: ANN001
    """Build the ATV disk on TARGET: a disk (/dev/sdX, /dev/mmcblkN, /dev/nvmeXnY, /dev/loopN)
    or an image file (created with --size).

    \b
    Examples:
      atvdisk build demo.img --size 4G --example
      atvdisk build /dev/sdf --openelec OpenELEC-ATV.i386-3.2.4.tar \\
          --restore atv_restore.tar.gz --recovery atv_recovery.tar.gz
      atvdisk build /dev/sdf ... --dry-run
    """
    opts = InputOptions(openelec, restore, recovery, example)
    layout, release = _choose_layout(console, opts, layout_name)
    seed = seed or layout.disk.seed or BuildSettings.new_seed()
    settings_base = dict(layout=layout, epoch=_epoch(), seed=seed, name_by=NameBy(name_by) if name_by else None, atv_disk=atv_disk, keep_boot_plist=keep_boot_plist)
    # The target's kind and size first (cheap, and refuses an existing image without --force),
    # then the inputs (md5 sums and every tarball member are read).
    final = target
    if compress is not None or with_bmap:
        if target.startswith("/dev/") or (os.path.exists(target) and stat.S_ISBLK(os.stat(target).st_mode)):
            raise click.UsageError("--bmap and --compress make image files; the target is a disk")
    # A dry run makes every check the real run makes, and says "would be refused: ..." (exit 3).
    checking = guard.dry_run if dry_run else nullcontext
    with checking():
        if compress is not None:
            final = target if target.endswith(SUFFIX[compress]) else target + SUFFIX[compress]
            if os.path.exists(final) and not force:
                raise TargetRefused(f"{final} already exists", hint="give --force to replace it, or another name")
            directory, name = os.path.split(final)
            target = os.path.join(directory, f".{name}.atvdisk-raw.img")
        kind, disk_bytes, sector = _target_geometry(target, size, loop, force)
    if not example:
        refuse_missing_inputs(layout, {"openelec": bool(openelec), "restore": bool(restore), "recovery": bool(recovery)})
    if kind is not TargetKind.BLOCK:  # a disk's own checks come first (_check_disk)
        with checking():
            resolve_for(layout, disk_bytes, sector, target=f"the image {target}", image=True)
    with ExitStack() as stack:
        progress = stack.enter_context(console.progress(show=not as_json))
        passes = 0 if dry_run else 2 if not no_verify else 1  # the data: written, read back
        _announce(progress, layout, disk_bytes, sector, example=example, steps=None if dry_run else dict(known_zero=kind is TargetKind.IMAGE and not loop, verify_after=not no_verify))
        if not dry_run:
            progress.expect(0, steps=int(with_bmap) + int(compress is not None))
        check = None
        if kind is TargetKind.BLOCK:
            # The disk's checks before the inputs are read, for a dry run too (which reports a
            # refusal as "would be refused"); a real build holds the disk from here to the end:
            # a second atvdisk is refused at once.
            lock = None if dry_run else stack.enter_context(guard.hold(target))
            with checking():
                check = _check_disk(BuildSettings(inputs=Inputs(), **settings_base), target, disk_bytes, sector, unmount=unmount, lock=lock)
        inputs = _inputs(opts, layout, stack, progress, release)
        settings = BuildSettings(inputs=inputs, **settings_base)
        progress.expect(_input_bytes(inputs) * (1 + passes))
        if dry_run:
            prepared = _prepare(progress, settings, disk_bytes, sector)
            _print_dry_run(console, prepared, target, kind, as_json)
            return
        if kind is TargetKind.BLOCK:
            assert check is not None
            result = _build_block(console, settings, target, disk_bytes, sector, check, yes=yes, verify_after=not no_verify, progress=progress)
        else:
            result = _build_image(console, settings, target, disk_bytes, loop=loop, force=force, verify_after=not no_verify, progress=progress)
            if with_bmap or compress:
                _package(console, result, target, final, with_bmap=with_bmap, compress=compress, progress=progress)
    _print_result(console, result, as_json)


def _package(console: Console, result: BuildResult, raw: str, final: str, *, with_bmap: bool, compress: str | None, progress: Progress) -> None:
    """The bmap (of the raw image) and the compressed file; the raw image then goes."""
    from atvdisk.imaging.bmap import make_bmap
    from atvdisk.imaging.compress import compress_image

    start = time.monotonic()
    try:
        if with_bmap:
            bmap = (final.removesuffix(SUFFIX[compress]) if compress else final) + ".bmap"
            with progress.step(f"write {bmap} (for bmaptool copy)"):
                make_bmap(raw, bmap)
            console.info(f"Wrote {bmap}.")
        if compress:
            with progress.step(f"compress the image to {final} ({compress})", total=os.path.getsize(raw)) as step:
                directory = os.path.dirname(final) or "."
                with tempfile.NamedTemporaryFile(dir=directory, prefix=f".{os.path.basename(final)}.", suffix=".partial", delete=False) as out:
                    try:
                        compress_image(raw, out, compress, progress=step.advance)
                        out.flush()
                        os.fsync(out.fileno())
                        os.chmod(out.name, 0o644)
                        os.replace(out.name, final)
                    except BaseException:
                        os.unlink(out.name)
                        raise
            result.target = final
    finally:
        result.seconds += time.monotonic() - start  # the result line's time is the whole job's
        if compress and os.path.exists(raw):
            os.unlink(raw)


def _target_geometry(target: str, size: Quantity | None, loop: bool, force: bool) -> tuple[TargetKind, int, int]:
    dest = guard.destination(target, size_bytes=size.to_bytes(512) if size is not None else None, force=force)
    if dest.kind is TargetKind.BLOCK and loop:
        raise click.UsageError("--loop builds an image file through a loop device; the target is already a disk")
    return dest.kind, dest.size_bytes, dest.sector_size


@dataclass
class BuildResult:
    target: str
    prepared: Prepared
    progress: Progress
    report: VerifyReport | None
    seconds: float
    prepare_seconds: float = 0.0  # checking every input and laying out the volumes, before any write


def _input_bytes(inputs: Inputs) -> int:
    """What checking the inputs reads (about: a tarball's members are counted as it is read)."""
    paths = [p for p in (inputs.restore, inputs.recovery) if p]
    total = 0
    release = inputs.openelec
    if release is not None:
        if os.path.isfile(release.path):
            paths.append(release.path)
        else:
            total += sum(f.size for f in release.files.values())
    for path in paths:
        try:
            total += os.path.getsize(path)
        except OSError:
            pass  # prepare() says what is wrong with it
    return total


def _announce(progress: Progress, layout: Layout, disk_bytes: int, sector: int, *, example: bool, steps: dict | None) -> None:
    """Tell the progress how many steps the job has: the sample (--example), the input check,
    and what build.apply and the verification do (``steps``: _count_steps' options)."""
    count = 1 + int(example)
    if steps is not None:
        try:
            plan = resolve(layout, disk_bytes, sector)
        except AtvdiskError:
            pass  # prepare() will say what is wrong
        else:
            count += _count_steps(plan, **steps)
    progress.expect(0, steps=count)


def _prepare(progress: Progress, settings: BuildSettings, disk_bytes: int, sector: int, *, passes: int = 0, **kwargs: object) -> Prepared:
    """build.prepare as the job's first step: every input is read and checked. ``passes``: how
    often the partitions' data is handled afterwards (written: 1, and read back: 2)."""
    nbytes = _input_bytes(settings.inputs)
    with progress.step(f"check the inputs ({format_iec(nbytes)}) and lay out the filesystems", total=nbytes):
        prepared = prepare(settings, disk_bytes, sector, **kwargs)  # type: ignore[arg-type]
    # The real figures, now that they are known.
    progress.expect(_data_bytes(prepared) * passes, replace=True)
    return prepared


def _data_bytes(prepared: Prepared) -> int:
    return sum(pc.tree.data_bytes for pc in prepared.contents.values())


def _build_image(console: Console, settings: BuildSettings, target: str, disk_bytes: int, *, loop: bool, force: bool, verify_after: bool, progress: Progress) -> BuildResult:
    # The temporary image is disposable until renamed: the md5 check runs alongside the writing
    # (not for --loop, which builds exactly as a disk is built).
    prepare_start = time.monotonic()
    prepared = _prepare(progress, settings, disk_bytes, 512, passes=2 if verify_after else 1, defer_md5=not loop, spool=True)
    prepare_seconds = time.monotonic() - prepare_start
    with closing(prepared):  # the tarballs' spools go when the build ends, however it ends
        return _write_image(console, prepared, target, disk_bytes, prepare_seconds, loop=loop, force=force, verify_after=verify_after, progress=progress)


def _write_image(console: Console, prepared: Prepared, target: str, disk_bytes: int, prepare_seconds: float, *, loop: bool, force: bool, verify_after: bool, progress: Progress) -> BuildResult:
    _show_warnings(console, prepared)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="atvdisk-work-") as workdir:
        console.writing = Writing(target, disk=False)
        with targets.ImageTarget(target, disk_bytes, overwrite=force) as image:
            for w in image.warnings:
                console.warn(w)
            if loop:
                with targets.LoopDevice(image.path) as device, targets.BlockDeviceSession(device) as session:
                    apply(prepared, BlockAccess(session), progress, workdir=workdir)
                    report = _verify_step(prepared, device, progress, workdir) if verify_after else None
            else:
                apply(prepared, ImageAccess(image.path, known_zero=True), progress, workdir=workdir)
                report = _verify_step(prepared, image.path, progress, workdir) if verify_after else None
            # Leaving the block without an exception renames the image into place.
        console.writing = None
    return BuildResult(target, prepared, progress, report, time.monotonic() - start, prepare_seconds)


def _check_disk(settings: BuildSettings, target: str, disk_bytes: int, sector: int, *, unmount: bool, lock=None) -> guard.DiskCheck:  # noqa: ANN001
    """The disk's checks (target.guard), for the size this layout needs on it."""
    layout = settings.effective_layout()
    try:
        resolve(layout, disk_bytes, sector, seed=settings.seed)
        need = disk_bytes
    except DiskTooSmall as e:
        need = e.need_bytes
    except PlanError:
        need = disk_bytes  # the disk's own checks first; resolve_for below says what is wrong
    warn_above = layout.disk.warn_above
    warn_bytes = warn_above.to_bytes(layout.disk.sector_size) if warn_above else None
    check = guard.check_disk(target, need_bytes=need, warn_above=warn_bytes, unmount=unmount, lock=lock)
    resolve_for(layout, disk_bytes, sector, target=target, image=False)  # a 4Kn disk, say
    return check


def _build_block(console: Console, settings: BuildSettings, target: str, disk_bytes: int, sector: int, check: guard.DiskCheck, *, yes: bool, verify_after: bool, progress: Progress) -> BuildResult:
    # The disk was checked (a partition, the system disk, mounted, too small, another atvdisk)
    # before the inputs were read; now the inputs, then the confirmation: nothing is written
    # (or unmounted) before all of them pass.
    prepare_start = time.monotonic()
    prepared = _prepare(progress, settings, disk_bytes, sector, passes=2 if verify_after else 1, spool=True)
    prepare_seconds = time.monotonic() - prepare_start
    with closing(prepared):  # the tarballs' spools go when the build ends, however it ends
        return _write_block(console, prepared, target, prepare_seconds, check, yes=yes, verify_after=verify_after, progress=progress)


def _write_block(console: Console, prepared: Prepared, target: str, prepare_seconds: float, check: guard.DiskCheck, *, yes: bool, verify_after: bool, progress: Progress) -> BuildResult:
    _show_warnings(console, prepared)
    guard.confirm(check, yes=yes, console=console, will_hold=will_hold(prepared))
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="atvdisk-work-") as workdir, targets.BlockDeviceSession(target) as session:
        console.writing = Writing(target, disk=True)  # from here on, an error leaves the disk incomplete
        try:
            apply(prepared, BlockAccess(session), progress, workdir=workdir)
        except UsageError as e:
            # An input that fails now (a tarball truncated or replaced since it was checked) is
            # no longer "found before anything was written": the disk is half-built (the error
            # report says so, and how to build it again).
            raise BuildError(f"{e} (found while writing {target})", hint=f"{e.hint + '; ' if e.hint else ''}an input changed after atvdisk checked it") from e
        console.writing = None
        report = _verify_step(prepared, target, progress, workdir) if verify_after else None
    return BuildResult(target, prepared, progress, report, time.monotonic() - start, prepare_seconds)


_VERSION = re.compile(r"(?i)openelec[^/]*?-(\d+(?:\.\d+)+)")


def openelec_version(release: OpenElecRelease | None) -> str | None:
    """The release's version as its name gives it (OpenELEC-ATV.i386-3.2.4.tar, the directory
    OpenELEC-ATV.i386-3.2.4/target, a member OpenELEC-ATV.i386-4.0.7/target/SYSTEM)."""
    if release is None:
        return None
    names = [os.path.abspath(release.path)] + [getattr(f.source, "member", "") for f in release.files.values()]
    for name in names:
        found = _VERSION.findall(name)
        if found:
            return found[-1]
    return None


def will_hold(prepared: Prepared) -> list[str]:
    """What the disk will hold, for the confirmation: each partition with its size and contents,
    the layout and the OpenELEC release found."""
    plan = prepared.plan
    settings = prepared.settings
    release = settings.inputs.openelec if settings is not None else None
    version = openelec_version(release)
    what = f"OpenELEC {version}" if version else "OpenELEC (version not in its name)" if release is not None else None
    head = f"It will hold (layout {plan.layout_name}" + (f", {what}" if what else "") + "):"
    lines = [head]
    for p in plan.partitions:
        pc = prepared.contents.get(p.number)
        fs = {"fat32": "FAT32", "hfsplus": "HFS+", "hfsx": "HFSX", "ext4": "ext4", "swap": "swap", "none": "-"}.get(p.fs.kind.value, p.fs.kind.value)
        held = ""
        if pc is not None:
            files = [path for path, _ in pc.tree.files()]
            if files:
                top = [f for f in files if "/" not in f]
                shown = ", ".join(top[:4]) + (", ..." if len(top) > 4 else "") if top and len(top) == len(files) else ""
                held = f"{len(files)} file{'s' if len(files) != 1 else ''}, {format_iec(pc.tree.data_bytes)}" + (f": {shown}" if shown else "")
        lines.append(f"  {p.number} {p.name:<10} {fs:<6} {format_parted(p.size_bytes):>7}  {held}".rstrip())
    return lines


def _count_steps(plan: Plan, *, known_zero: bool, verify_after: bool) -> int:
    """The steps of build.apply (and the verification after)."""
    fs_steps = sum(1 for p in plan.partitions if p.fs.kind.value != "none")
    manifest_step = 1 if manifest.holder(plan) is not None else 0
    return fs_steps + manifest_step + 1 + (0 if known_zero else 1) + (1 if verify_after else 0)


def _verify_step(prepared: Prepared, device: str, progress: Progress, workdir: str) -> VerifyReport:
    with progress.step("verify: read everything back and compare with the plan and the sources", total=_data_bytes(prepared)):
        if stat.S_ISBLK(os.stat(device).st_mode):
            drop_cached(device)  # read back from the medium, not from the page cache
        # What the manifest lists (the trees' entries with every file's sha256, taken while
        # writing) is what the disk must hold: not made again from the trees.
        report = verify(device, prepared.plan, prepared.contents, expected=prepared.expected, workdir=workdir, known_hashes=prepared.hashes, plist=prepared.plist_expectation)
    if report.mismatches:
        raise VerifyError(report.mismatches, hint="the target does not hold what was planned; see the list above")
    return report


def _show_warnings(console: Console, prepared: Prepared) -> None:
    for w in prepared.warnings:
        console.warn(w)
    for n in prepared.notices:
        console.info(f"note: {n}")
    if prepared.bootplist is not None:
        console.info(f"com.apple.Boot.plist: Kernel {prepared.bootplist.kernel}, Kernel Flags {prepared.bootplist.kernel_flags!r}")


def _print_dry_run(console: Console, prepared: Prepared, target: str, kind: TargetKind, as_json: bool) -> None:
    if as_json:
        console.out_json(_summary(prepared, target, None, None, dry_run=True), indent=2)
        return
    console.out(prepared.plan.render())
    if prepared.bootplist is not None:
        console.out(f"\ncom.apple.Boot.plist: Kernel {prepared.bootplist.kernel}, Kernel Flags {prepared.bootplist.kernel_flags!r}")
        for n in prepared.notices:
            console.out(f"  note: {n}")
    if prepared.bootscript is not None:
        console.out(f"\nBoot script (OpenELEC's command line when this disk is alone: {prepared.bootscript.command_line!r}):")
        console.out("  " + prepared.bootscript.text.rstrip().replace("\n", "\n  "))
    for number, pc in sorted(prepared.contents.items()):
        files = sum(1 for _ in pc.tree.files())
        console.out(f"Partition {number} {pc.partition.name}: {files} files, {format_iec(pc.tree.data_bytes)} of data")
    for w in prepared.warnings:
        console.warn(w)
    console.out(f"\nDry run: nothing was written to {target} ({kind}).")


def _summary(prepared: Prepared, target: str, result: BuildResult | None, report: VerifyReport | None, *, dry_run: bool) -> dict:
    return {
        "format": "atvdisk-build/1",
        "target": target,
        "dry_run": dry_run,
        "plan": prepared.plan.to_dict(),
        "boot_script": prepared.bootscript.text if prepared.bootscript else None,
        "kernel_command_line": prepared.bootscript.command_line if prepared.bootscript else (prepared.bootplist.kernel_flags if prepared.bootplist else None),
        "kernel_flags": prepared.bootplist.kernel_flags if prepared.bootplist else None,
        "boot_plist": None
        if prepared.bootplist is None
        else {
            "kernel": prepared.bootplist.kernel,
            "kernel_flags": prepared.bootplist.kernel_flags,
            "original_kernel_flags": prepared.bootplist.original_flags,
            "changed": prepared.bootplist.changed,
            "note": prepared.bootplist.note,
        },
        "warnings": prepared.warnings,
        "notices": prepared.notices,
        "steps": [{"step": r.description, "seconds": round(r.seconds, 3), "ok": r.ok} for r in result.progress.records] if result else [],
        "seconds": round(result.seconds, 3) if result else None,
        "prepare_seconds": round(result.prepare_seconds, 3) if result else None,
        "verified": None if report is None else {"checked": report.checked, "mismatches": report.mismatches},
    }


def _print_result(console: Console, result: BuildResult, as_json: bool) -> None:
    if as_json:
        console.out_json(_summary(result.prepared, result.target, result, result.report, dry_run=False), indent=2)
        return
    plan = result.prepared.plan
    verified = f", verified ({len(result.report.checked)} checks)" if result.report else ", not verified (--no-verify)"
    console.result(f"Built {result.target}: {len(plan.partitions)} partitions on {format_parted(plan.disk_bytes)} in {result.prepare_seconds + result.seconds:.1f} s{verified}.")


@click.command("verify")
@click.argument("target", metavar="TARGET")
@input_options
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_context
def verify_cmd(ctx: click.Context, target: str, layout_name: str, seed: str | None, atv_disk: str | None, name_by: str | None, openelec, restore, recovery, example: bool, as_json: bool) -> None:  # noqa: ANN001
    """Read TARGET (a disk or image) back and check it against what it should hold.

    A disk atvdisk built carries a manifest (layout, options, seed, sha256 of every file): with
    no options, everything is checked against it. Inputs given as well (--openelec, --restore,
    --recovery, --example) are checked against the manifest too. A disk without a manifest is
    checked against the layout and inputs given (those not given are reported as unchecked).

    \b
    Examples:
      atvdisk verify /dev/sdf
      atvdisk verify demo.img --example
    """
    console: Console = ctx.obj
    info = probe_size(target)
    check_readable(target)
    if info.kind is TargetKind.BLOCK:
        drop_cached(target)  # read the medium, not what the page cache kept of it
    found = manifest.find(target, info.sector_size)
    given = {name: ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT for name in ("layout_name", "seed", "atv_disk", "name_by")}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="atvdisk-verify-") as workdir:
        any_input = bool(openelec or restore or recovery or example)
        if found is not None:
            m = found.manifest
            plan, report = verify_manifest(target, found, info.size_bytes, info.sector_size, workdir=workdir)
            for what, value, recorded in (("layout", layout_name, m.layout_name), ("seed", seed, m.seed), ("--atv-disk", atv_disk, m.atv_disk), ("--name-by", name_by, m.name_by.value if m.name_by else None)):
                key = {"layout": "layout_name", "seed": "seed", "--atv-disk": "atv_disk", "--name-by": "name_by"}[what]
                if given[key] and value != recorded:
                    report.bad(f"the manifest says {what} {recorded!r}, not {value!r}")
            if any_input:
                layout = m.layout()
                inputs = _inputs(InputOptions(openelec, restore, recovery, example), layout, stack)
                settings = BuildSettings(layout=layout, inputs=inputs, epoch=m.epoch, seed=m.seed, name_by=m.name_by)
                unchecked: list[str] = []
                prepared = prepare(settings, info.size_bytes, info.sector_size, skipped=unchecked)
                recorded_entries = m.expected()
                for number, pc in sorted(prepared.contents.items()):
                    name = f"partition {number} ({pc.partition.name}): the manifest against the inputs given"
                    recorded = [e for e in recorded_entries.get(number, []) if e.path != manifest.MANIFEST_NAME]
                    compare(name, pc.partition.fs.kind, expected_entries(pc.tree, pc.partition.fs.kind), recorded, pc.complete, report)
                report.unchecked.extend(unchecked)
        else:
            if not any(given.values()) and not any_input:
                console.info(f"{target} carries no atvdisk manifest: checking it against the default layout (give the build's --layout and inputs)")
            layout, release = _choose_layout(console, InputOptions(openelec, restore, recovery, example), layout_name)
            inputs = _inputs(InputOptions(openelec, restore, recovery, example), layout, stack, release=release)
            settings = BuildSettings(layout=layout, inputs=inputs, epoch=_epoch(), seed=seed, name_by=NameBy(name_by) if name_by else None, atv_disk=atv_disk)
            unchecked = []
            prepared = prepare(settings, info.size_bytes, info.sector_size, skipped=unchecked)
            complete = {n: pc.complete for n, pc in prepared.contents.items()}
            report = verify(target, prepared.plan, prepared.contents, complete=complete, workdir=workdir, plist=prepared.plist_expectation)
            report.unchecked.extend(unchecked)
    if as_json:
        console.out_json({"format": "atvdisk-verify/1", "target": target, "manifest": found is not None, "checked": report.checked, "mismatches": report.mismatches, "unchecked": report.unchecked}, indent=2)
    else:
        for line in report.checked:
            console.info(f"ok: {printable(line, one_line=True)}")
        for line in report.unchecked:
            console.info(f"not checked: {printable(line, one_line=True)}")
    if report.mismatches:
        raise VerifyError(report.mismatches)
    if not as_json:
        console.result(f"{target}: verified, {len(report.checked)} checks passed.")
