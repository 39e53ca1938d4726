"""Helpers the integration tests put into containers."""

from __future__ import annotations

import subprocess
from pathlib import Path

PROBE_SRC = Path(__file__).parent / "probe.c"


def build_static(src: Path, out: Path) -> Path:
    """Compile one C file statically: it must run in the busybox testbox (no libc there)."""
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", str(out), str(src)], check=True)
    return out


def build_probe(out_dir: Path) -> Path:
    """Compile probe.c statically (it runs in the busybox testbox): one system call per
    run, printing "ok" or the errno name."""
    return build_static(PROBE_SRC, out_dir / "probe")
