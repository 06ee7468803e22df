"""What the figures were measured on: machine, kernel, work directory's filesystem, tool versions."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGES = ("e2fsprogs", "dosfstools", "mtools", "genimage", "systemd", "util-linux", "parted", "coreutils")


def _out(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"({e})"
    return (r.stdout or r.stderr).strip()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def filesystem_of(path: Path) -> str:
    text = _out(["findmnt", "-n", "-o", "FSTYPE,SOURCE,TARGET", "-T", str(path)])
    parts = text.split()
    if len(parts) >= 3:
        fstype, source, target = parts[:3]
        rotational = ""
        dev = Path(source).name
        for cand in (dev, dev.rstrip("0123456789").rstrip("p")):
            f = Path(f"/sys/block/{cand}/queue/rotational")
            if f.exists():
                rotational = ", rotational" if f.read_text().strip() == "1" else ", non-rotational"
                break
        return f"{fstype} on {source} (mounted at {target}{rotational})"
    return text or "unknown"


def package_versions() -> dict[str, str]:
    versions = {}
    if shutil.which("dpkg-query"):
        for pkg in PACKAGES:
            v = _out(["dpkg-query", "-W", "-f", "${Version}", pkg])
            versions[pkg] = v if v and "no packages" not in v else "not installed"
    else:
        versions["e2fsprogs"] = _out(["mke2fs", "-V"]).splitlines()[0]
        versions["systemd"] = _out(["systemd-repart", "--version"]).splitlines()[0]
        versions["genimage"] = _out(["genimage", "--version"])
    return versions


def atvdisk_version(python: str) -> str:
    text = _out([python, "-m", "atvdisk", "--version"])
    commit = _out(["git", "-C", str(Path(__file__).resolve().parents[1]), "describe", "--always", "--dirty"])
    return f"{text.split()[-1] if text else '?'} (git {commit})"


def byte_compile(python: str) -> str:
    """Byte-compile the atvdisk package ``python`` imports, as ``pip install`` does when it
    installs a package: otherwise, where PYTHONDONTWRITEBYTECODE is set (this development VM sets
    it) or the checkout is read-only, every timed ``python -m atvdisk`` compiles its ~100 modules
    from source first (~0.2 s of CPU), which no installed atvdisk does. What it did, for the table."""
    where = _out([python, "-c", "import atvdisk, os; print(os.path.dirname(atvdisk.__file__))"])
    if not where or not os.path.isdir(where):
        return f"no (atvdisk not importable: {where[-200:]})"
    done = subprocess.run([python, "-m", "compileall", "-q", where], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"no (compileall exited {done.returncode})"
    return f"yes, before timing ({where}, as pip install does)"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def describe(workdir: Path, python: str) -> dict[str, str]:
    info = {
        "CPU": f"{cpu_model()}, {os.cpu_count()} logical cores",
        "RAM": f"{ram_bytes() / 2**30:.1f} GiB",
        "kernel": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "work dir": f"{workdir}: {filesystem_of(workdir)}",
        "python": f"{platform.python_version()} ({sys.executable if python == sys.executable else python})",
        "atvdisk": atvdisk_version(python),
    }
    info.update(package_versions())
    return info
