"""Find, and when missing or stale rebuild, the BPF objects.

Sources live in the checkout's `bpf/` (or `enforcer/_bpf` in an installed wheel). Objects
go to a build directory stamped with a digest of every source, header and compiler flag,
so a stale object is never used: it is rebuilt, or the operator is told how to build it.
vmlinux.h is generated with bpftool from the running kernel's BTF rather than vendored:
CO-RE relocates field offsets at load time, so any BTF-enabled kernel's types serve, and a
3 MB generated header stays out of the repository.

`python -m enforcer.kernel.build` builds everything (scripts/test calls it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import structlog

from enforcer.errors import EnforcerError

log = structlog.get_logger(__name__)

CFLAGS = ("-O2", "-g", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_x86", "-Wall", "-Werror")
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")


def source_dir() -> Path:
    """The BPF sources: the checkout's bpf/ first, then the copy shipped in the wheel."""
    pkg = Path(__file__).resolve().parent.parent
    for candidate in (pkg.parent / "bpf", pkg / "_bpf"):
        if (candidate / "include" / "enforcer_abi.h").is_file():
            return candidate
    raise EnforcerError(
        "BPF sources not found", hint="reinstall the enforcer package or run from a checkout"
    )


def _writable(d: Path) -> bool:
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(d, os.W_OK)


def build_dir(src: Path | None = None) -> Path:
    """ENFORCER_BPF_BUILD_DIR, else bpf/build, else a cache directory (read-only checkouts)."""
    env = os.environ.get("ENFORCER_BPF_BUILD_DIR")
    if env:
        return Path(env)
    src = src or source_dir()
    for d in (src / "build", Path("/var/cache/enforcer/bpf"), Path("/tmp/enforcer-bpf")):
        if _writable(d):
            return d
    raise EnforcerError("no writable directory for BPF objects", hint="set ENFORCER_BPF_BUILD_DIR")


@dataclass(frozen=True)
class BuiltObjects:
    directory: Path
    objects: dict[str, Path]  # "lsm_file" -> .../lsm_file.bpf.o

    def path(self, name: str) -> Path:
        try:
            return self.objects[name]
        except KeyError:
            raise EnforcerError(f"BPF object {name!r} is not built") from None


def _digest(src: Path) -> str:
    h = hashlib.sha256(" ".join(CFLAGS).encode())
    for f in sorted([*src.glob("*.bpf.c"), *(src / "include").glob("*.h")]):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _tool(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        raise EnforcerError(
            f"{name} is needed to build the BPF objects",
            hint=f"install it: apt-get install {package} (or run scripts/provision)",
        )
    return found


def _run(cmd: list[str], what: str) -> bytes:
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-15:]
        raise EnforcerError(f"{what} failed: " + " | ".join(tail))
    return proc.stdout


def _vmlinux_h(out: Path) -> Path:
    target = out / "vmlinux.h"
    if target.is_file() and target.stat().st_size > 0:
        return target
    if not VMLINUX_BTF.is_file():
        raise EnforcerError(
            "this kernel has no BTF (/sys/kernel/btf/vmlinux)",
            hint="use a kernel built with CONFIG_DEBUG_INFO_BTF=y, or build on one and copy bpf/build",
        )
    bpftool = _tool("bpftool", "bpftool")
    data = _run([bpftool, "btf", "dump", "file", str(VMLINUX_BTF), "format", "c"], "bpftool btf dump")
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


def ensure_built(force: bool = False) -> BuiltObjects:
    """Objects for the current sources, building them if missing or stale."""
    src = source_dir()
    out = build_dir(src)
    digest = _digest(src)
    stamp = out / "STAMP"
    names = sorted(p.name.removesuffix(".bpf.c") for p in src.glob("*.bpf.c"))
    objects = {n: out / f"{n}.bpf.o" for n in names}
    fresh = (
        not force
        and stamp.is_file()
        and stamp.read_text().strip() == digest
        and all(p.is_file() for p in objects.values())
    )
    if fresh:
        return BuiltObjects(out, objects)
    out.mkdir(parents=True, exist_ok=True)
    clang = _tool("clang", "clang")
    _vmlinux_h(out)
    for name, obj in objects.items():
        log.info("building BPF object", object=name, directory=str(out))
        tmp = obj.with_suffix(".tmp")
        _run(
            [clang, *CFLAGS, f"-I{out}", f"-I{src / 'include'}", "-c",
             str(src / f"{name}.bpf.c"), "-o", str(tmp)],
            f"clang {name}.bpf.c",
        )
        tmp.replace(obj)
    stamp.write_text(digest + "\n")
    return BuiltObjects(out, objects)


def main() -> None:
    try:
        built = ensure_built(force="--force" in sys.argv)
    except EnforcerError as err:
        print(f"enforcer: {err}", file=sys.stderr)
        sys.exit(1)
    for name, path in built.objects.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
