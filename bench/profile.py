"""Where the daemon's time goes: py-spy (from PyPI, the `bench` extra) attached to it for a
while, its collapsed stacks summed into the functions that are on the CPU most."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    here = Path(sys.executable).with_name("py-spy")
    return str(here) if here.exists() else shutil.which("py-spy")


def start(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes] | None:
    exe = py_spy()
    if exe is None:
        return None
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
            "--threads",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarize(raw: Path, top: int = 12) -> dict[str, Any]:
    """Collapsed stacks -> the functions with most samples on top of the stack (self) and
    the enforcer functions with most samples anywhere on it (inclusive), as percentages."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    if not raw.exists():
        return {}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        if not frames or (frames[0].startswith("thread") and len(frames) == 1):
            continue
        total += n
        self_c[frames[-1]] += n
        for f in set(frames):
            if "enforcer" in f or "audit" in f:
                incl[f] += n
    if not total:
        return {}

    def pct(c: Counter[str]) -> list[list[Any]]:
        return [[f, round(100 * n / total, 1)] for f, n in c.most_common(top)]

    return {"samples": total, "self_pct": pct(self_c), "inclusive_enforcer_pct": pct(incl)}
