"""Build the test-only BPF object (never committed): vmlinux.h from the running kernel's BTF,
then clang. Used by the session fixture in conftest.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "testprog.bpf.c"
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")


class BuildUnavailable(RuntimeError):
    """A build prerequisite (clang, bpftool, kernel BTF) is missing."""


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise BuildUnavailable(f"{tool} not found on PATH (apt-get install clang bpftool)")
    return path


def build_testprog(build_dir: Path) -> Path:
    build_dir.mkdir(parents=True, exist_ok=True)
    if not VMLINUX_BTF.exists():
        raise BuildUnavailable(f"{VMLINUX_BTF} missing: kernel built without CONFIG_DEBUG_INFO_BTF")
    vmlinux_h = build_dir / "vmlinux.h"
    with vmlinux_h.open("w") as out:
        subprocess.run(
            [_need("bpftool"), "btf", "dump", "file", str(VMLINUX_BTF), "format", "c"],
            stdout=out,
            check=True,
        )
    obj = build_dir / "testprog.bpf.o"
    subprocess.run(
        [
            _need("clang"),
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-D__TARGET_ARCH_x86",
            f"-I{build_dir}",
            f"-I{HERE}",
            "-c",
            str(SOURCE),
            "-o",
            str(obj),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return obj


def build_c_helper(source: Path, out: Path) -> Path:
    """Compile a small host C program (layout checks against the installed headers)."""
    subprocess.run([_need("clang"), "-O0", "-o", str(out), str(source)], check=True, capture_output=True, text=True)
    return out
