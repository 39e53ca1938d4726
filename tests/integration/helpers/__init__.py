"""Helpers the integration tests put into containers."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.images.testbox import BUSYBOX

PROBE_SRC = Path(__file__).parent / "probe.c"


def build_static(src: Path, out: Path) -> Path:
    """Compile one C file statically: it must run in the busybox testbox (no libc there)."""
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", str(out), str(src)], check=True)
    return out


def build_probe(out_dir: Path) -> Path:
    """Compile probe.c statically (it runs in the busybox testbox): one system call per
    run, printing "ok" or the errno name."""
    return build_static(PROBE_SRC, out_dir / "probe")


@contextmanager
def busybox_volume(prefix: str) -> Iterator[Path]:
    """A host directory holding a copy of busybox as `bb`, made before any container that
    mounts it: a binary that is old enough but on a volume, not in the image."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.copy(BUSYBOX, d / "bb")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
