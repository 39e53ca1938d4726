"""Helpers the integration tests put into containers."""

from __future__ import annotations

import subprocess
from pathlib import Path

PROBE_SRC = Path(__file__).parent / "probe.c"


def build_probe(out_dir: Path) -> Path:
    """Compile probe.c statically (it runs in the busybox testbox): one system call per
    run, printing "ok" or the errno name."""
    out = out_dir / "probe"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(PROBE_SRC)], check=True)
    return out
