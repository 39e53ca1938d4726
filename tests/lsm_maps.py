"""The LSM object's maps on this host, which refuses LSM programs: loaded with every
program off under a private pin root, removed at the end even when the test failed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from enforcer.kernel.abi import Abi
from enforcer.kernel.build import ensure_built
from enforcer.kernel.loader import Loaded
from enforcer.pybpf import BpfObject


@contextmanager
def lsm_maps(name: str) -> Iterator[tuple[Loaded, Path]]:
    """(the loaded maps, their pin root /sys/fs/bpf/enforcer-test-NAME-PID)."""
    if not os.path.ismount("/sys/fs/bpf"):
        os.makedirs("/sys/fs/bpf", exist_ok=True)
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True)
    pin_root = Path(f"/sys/fs/bpf/enforcer-test-{name}-{os.getpid()}")
    pin_root.mkdir()
    path = ensure_built().path("lsm_file")
    obj = BpfObject(str(path), pin_root_path=str(pin_root))
    try:
        for prog in obj.programs:
            obj.program(prog).autoload = False
        obj.load()
        yield Loaded(Abi.from_object(path), [obj]), pin_root
    finally:
        obj.close()
        for pin in pin_root.iterdir():
            pin.unlink()
        pin_root.rmdir()
