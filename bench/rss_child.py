"""Run a command and report its peak memory, as /usr/bin/time -v does, as one JSON line.

    python bench/rss_child.py -- COMMAND [ARGS...]

``maxrss_bytes``: ``ru_maxrss`` of the command from ``wait4`` — the largest resident set of the
command's process and of every descendant it waited for (mke2fs, e2fsck, ...). On Linux a
process's ru_maxrss also includes the resident set of the process that spawned it at the time of
the exec, so this wrapper stays tiny (stdlib only) to keep that out of the figure.
``own_hwm_bytes``: the command's own ``VmHWM`` (peak RSS of its address space alone), read from
/proc while it runs (it only grows, so the last reading before exit is the peak).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time


def _hwm(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "--" or len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryFile() as err:
        return _run(argv[1:], err)


def _run(cmd: list[str], err) -> int:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    hwm = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        value = _hwm(proc.pid)
        if value:
            hwm = max(hwm, value)
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    stderr = err.read().decode(errors="replace")
    print(json.dumps({"returncode": proc.returncode, "maxrss_bytes": usage.ru_maxrss * 1024, "own_hwm_bytes": hwm, "wall": time.perf_counter() - t0, "stderr": stderr[-2000:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
