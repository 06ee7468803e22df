"""Running ``atvdisk build`` as a user does: a fresh ``python -m atvdisk`` process per build."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from common import EPOCH, BenchError, Sample, run, stopwatch
from payload import AtvPayload

BENCH = Path(__file__).resolve().parent


def build_cmd(image: Path, size: str, *, layout: str | Path = "atv1-openelec", payload: AtvPayload | None = None, restore: Path | None = None, verify: bool = True, python: str = sys.executable) -> list[str]:
    cmd = [python, "-m", "atvdisk", "build", str(image), "--size", size, "--layout", str(layout), "--json"]
    if payload is not None:
        cmd += ["--openelec", str(payload.openelec), "--restore", str(restore or payload.restore), "--recovery", str(payload.recovery)]
    if not verify:
        cmd.append("--no-verify")
    return cmd


def atvdisk_env() -> dict[str, str]:
    return {"SOURCE_DATE_EPOCH": EPOCH}


def timed_build(image: Path, size: str, **kw) -> tuple[Sample, dict]:
    """Build ``image`` (which must not exist); return the sample and atvdisk's JSON summary."""
    if image.exists():
        image.unlink()
    cmd = build_cmd(image, size, **kw)
    with stopwatch() as s:
        r = run(cmd, env=atvdisk_env())
    try:
        summary = json.loads(r.stdout)
    except json.JSONDecodeError:
        raise BenchError(f"atvdisk build printed no JSON summary: {r.stdout[-300:]!r}") from None
    return s, summary


def plan_json(layout: str | Path, size: str, python: str = sys.executable) -> dict:
    r = run([python, "-m", "atvdisk", "plan", "--layout", str(layout), "--size", size, "--json"], env=atvdisk_env())
    return json.loads(r.stdout)


def step_key(step: str) -> str:
    """A step's description without its details: "partition 4 Media", "write the GPT", "verify"."""
    return step.split(":")[0].split(" (")[0]
