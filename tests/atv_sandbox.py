"""Run a generated boot script on this machine as atv-bootloader would run it, without root
devices: an emulated ATV in a private mount namespace (``unshare``).

- /dev holds ``sdXN`` entries that are the partitions of atvdisk-built images (their bytes,
  copied sparsely into files), so the script reads real filesystems with dd and hexdump;
- /proc holds ``partitions`` and ``mounts`` as atv-bootloader's kernel would show them (the
  script's partition mounted at /mnt/rootfs, where find_run_script.sh mounts it); /tmp is empty;
- PATH holds only the commands of atv-bootloader's 2008 userland (busybox applets: see
  ``atv_userland``), with recorders for the ones that act on the system (mount, umount, kexec,
  fsck.hfsplus): each call is recorded, ``kexec -e`` ends the script as a real hand-over would;
- the environment is empty but for PATH, the working directory is /, as in rcS.

The qemu kernel tests do the same against real block devices, a real kernel and a chroot; this
one is fast enough for property tests. Needs util-linux ``unshare`` (as root, or with
unprivileged user namespaces).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from atv_userland import ATV_PATH, busybox_path, populate

from atvdisk.layout.plan import Plan

RECORDED = ("mount", "umount", "kexec", "fsck.hfsplus")

RECORDER = r"""#!/bin/sh
printf '%s\0' "$#" "${0##*/}" "$@" >> "$ATVDISK_CALLS"
case ${0##*/} in
    kexec) for a; do [ "$a" = -e ] && kill -KILL $PPID; done ;;
    fsck.*) exit "${ATVDISK_FSCK_RC:-0}" ;;
    umount) [ -n "${ATVDISK_UMOUNT_FAILS:-}" ] && [ "$1" = "$ATVDISK_UMOUNT_FAILS" ] && exit 1 ;;
esac
exit 0
"""


def extract_partitions(image: Path, plan: Plan, dest: Path) -> dict[int, Path]:
    """Each partition of ``image`` as a sparse file (only the data ranges are copied)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    with open(image, "rb") as f:
        fd = f.fileno()
        for p in plan.partitions:
            path = dest / f"part{p.number}"
            with open(path, "wb") as o:
                o.truncate(p.size_bytes)
                pos, end = p.offset, p.offset + p.size_bytes
                while pos < end:
                    try:
                        data = os.lseek(fd, pos, os.SEEK_DATA)
                    except OSError:
                        break
                    if data >= end:
                        break
                    hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
                    while data < hole:
                        chunk = os.pread(fd, min(hole - data, 4 << 20), data)
                        o.seek(data - p.offset)
                        o.write(chunk)
                        data += len(chunk)
                    pos = hole
            out[p.number] = path
    return out


@dataclass(frozen=True)
class Run:
    rc: int
    stdout: str
    stderr: str
    calls: list[tuple[str, ...]]

    @property
    def handed_over(self) -> bool:
        return bool(self.calls) and self.calls[-1] == ("kexec", "-e")

    def kexec_load(self) -> tuple[str, ...] | None:
        loads = [c for c in self.calls if c[:2] == ("kexec", "-l")]
        return loads[-1] if loads else None


def parse_calls(data: bytes) -> list[tuple[str, ...]]:
    fields = data.split(b"\0")[:-1] if data else []
    calls, i = [], 0
    while i < len(fields):
        n = int(fields[i])
        calls.append(tuple(x.decode("utf-8", "surrogateescape") for x in fields[i + 1 : i + 2 + n]))
        i += 2 + n
    return calls


def run_script(
    script: str,
    disks: dict[str, dict[int, Path]],
    tmp: Path,
    *,
    runs_from: str | None = "sda2",
    shell: str = "dash",
    kernel: str | None = "KERNEL",
    fsck_rc: int = 0,
    umount_fails: str = "",
    recorded: tuple[str, ...] = RECORDED,
    timeout: float = 60,
) -> Run:
    """Run ``script`` as atv-bootloader would from partition ``runs_from`` (e.g. "sdb2"; None:
    from a directory that is not a mount point), with ``disks`` {"sda": {1: file, ...}} attached.
    ``kernel``: a file of that name is on the mounted boot partition (None: none);
    ``umount_fails``: the recorded umount of this mount point fails (busy)."""
    if tmp.exists():
        shutil.rmtree(tmp)
    dev, proc, boot, root, rec, land = (tmp / n for n in ("dev", "proc", "boot", "rootfs", "rec", "userland"))
    for d in (dev, proc, boot, root, rec, land):
        d.mkdir(parents=True)
    (dev / "null").write_bytes(b"")
    binds = []  # (partition file, node): bind-mounted first, so that covering /tmp hides nothing
    lines = ["major minor  #blocks  name", ""]
    minor = 0
    for disk, parts in sorted(disks.items()):
        (dev / disk).write_bytes(b"")
        lines.append(f"   8 {minor:6} {1 << 20:10} {disk}")
        for n, path in sorted(parts.items()):
            (dev / f"{disk}{n}").write_bytes(b"")
            binds.append((path.resolve(), dev / f"{disk}{n}"))
            lines.append(f"   8 {minor + n:6} {path.stat().st_size // 1024:10} {disk}{n}")
        minor += 16
    (proc / "partitions").write_text("\n".join(lines) + "\n")
    mounts = ["rootfs / rootfs rw 0 0", "proc /proc proc rw 0 0"]
    if runs_from:
        mounts.append(f"/dev/{runs_from} /mnt/rootfs hfsplus rw,noatime 0 0")
    (proc / "mounts").write_text("\n".join(mounts) + "\n")
    if kernel:
        (boot / kernel).write_bytes(b"a kernel\n")
    script_path = root / "patchstick.sh"
    script_path.write_text(script)
    script_path.chmod(0o755)
    populate(land, busybox_target=str(busybox_path()), skip=recorded)
    for name in recorded:
        (rec / name).write_text(RECORDER)
        (rec / name).chmod(0o755)
    calls = tmp / "calls"
    calls.write_bytes(b"")
    # Inside the namespace the sandbox is /mnt (the script at /mnt/rootfs, as find_run_script.sh
    # mounts it), /tmp is a fresh tmpfs, /dev, /proc and /boot are the sandbox's.
    path = ":".join(["/mnt/rec"] + ["/mnt/userland" + d for d in ATV_PATH.split(":")])
    shells = {"dash": "/usr/bin/dash", "bash": "/usr/bin/bash"}
    setup = "".join(f"mount --bind {shlex.quote(str(src))} {shlex.quote(str(node))} && " for src, node in binds)
    setup += (
        'mount --rbind "$T" /mnt && mount --rbind /mnt/dev /dev && mount --bind /mnt/proc /proc && mount --bind /mnt/boot /boot'
        ' && mount -t tmpfs tmpfs /tmp && cd / &&'
        ' exec env -i PATH="$P" ATVDISK_CALLS=/mnt/calls ATVDISK_FSCK_RC="$R" ATVDISK_UMOUNT_FAILS="$U" "$S" /mnt/rootfs/patchstick.sh'
    )
    unshare = ["unshare", "--mount", "--propagation", "private"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    env = {"T": str(tmp), "P": path, "R": str(fsck_rc), "U": umount_fails, "S": shells[shell], "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    r = subprocess.run([*unshare, "/bin/sh", "-c", setup], env=env, capture_output=True, timeout=timeout, check=False)
    return Run(r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace"), parse_calls(calls.read_bytes()))


def build_image(path: Path, layout_name: str, size: int, sample, *, seed: str, name_by=None, atv_disk: str | None = None):  # noqa: ANN001
    """Build ``layout_name`` into an image through the library, with identifiers from ``seed``
    (also when the layout has its own: two disks of one layout must differ). Returns the plan."""
    import dataclasses
    import tempfile

    from atvdisk.build import BuildSettings, apply, prepare
    from atvdisk.inputs.payload import Inputs, OpenElecRelease
    from atvdisk.layout.schema import load_layout
    from atvdisk.progress import Progress
    from atvdisk.target.access import ImageAccess
    from atvdisk.target.checks import ImageTarget

    layout = load_layout(layout_name)
    layout = dataclasses.replace(layout, disk=dataclasses.replace(layout.disk, seed=seed))
    kernel = layout.boot.kernel if layout.boot else "KERNEL"
    inputs = Inputs(OpenElecRelease.open(str(sample.openelec_for(kernel))), str(sample.restore), str(sample.recovery), layout.directory)
    settings = BuildSettings(layout=layout, inputs=inputs, epoch=1_300_000_000, name_by=name_by, atv_disk=atv_disk)
    prepared = prepare(settings, size, 512)
    with tempfile.TemporaryDirectory() as work, ImageTarget(path, size, overwrite=True) as image:
        apply(prepared, ImageAccess(image.path, known_zero=True), Progress(quiet=True), workdir=work)
    return prepared.plan
