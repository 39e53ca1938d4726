"""The floor figure: an empty BPF-LSM program on file_open, switched on and off like the
enforcer. It shows how much of an open's cost on this machine is the kernel's hook dispatch
for any BPF-LSM program, as opposed to what the enforcer's program does."""

from __future__ import annotations

import subprocess
from pathlib import Path

from enforcer.kernel.build import CFLAGS, ensure_built
from enforcer.pybpf import BpfObject, Link

SOURCE = Path(__file__).with_name("floor.bpf.c")


def build_floor() -> Path:
    """Compiled next to the enforcer's objects, with the same flags and vmlinux.h."""
    built = ensure_built()
    out = built.directory / "bench_floor.bpf.o"
    if not out.exists() or out.stat().st_mtime < SOURCE.stat().st_mtime:
        subprocess.run(["clang", *CFLAGS, f"-I{built.directory}", "-c", str(SOURCE), "-o", str(out)], check=True)
    return out


class Floor:
    """The empty program, loaded once; on() attaches it, off() detaches it."""

    def __init__(self) -> None:
        self._obj = BpfObject(build_floor()).load()
        self._link: Link | None = None

    def switch(self, on: bool) -> None:
        if on and self._link is None:
            self._link = self._obj.program("floor_file_open").attach_lsm()
        elif not on and self._link is not None:
            self._link.destroy()
            self._link = None

    def close(self) -> None:
        self.switch(False)
        self._obj.close()
