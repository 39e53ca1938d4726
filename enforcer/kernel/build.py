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
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import structlog

from enforcer.errors import EnforcerError

log = structlog.get_logger(__name__)

CFLAGS = ("-O2", "-g", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_x86", "-Wall", "-Werror")
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
CACHE_DIR = Path("/var/cache/enforcer/bpf")  # created 0700; never /tmp (others can write there)


def source_dir() -> Path:
    """The BPF sources: the checkout's bpf/ first, then the copy shipped in the wheel."""
    pkg = Path(__file__).resolve().parent.parent
    for candidate in (pkg.parent / "bpf", pkg / "_bpf"):
        if (candidate / "include" / "enforcer_abi.h").is_file():
            return candidate
    raise EnforcerError("BPF sources not found", hint="reinstall the enforcer package or run from a checkout")


def untrusted_reason(path: Path) -> str | None:
    """Why a user other than root (or us) could change what `path` holds, or None.

    Every component from / down to `path` is checked as written (a symlink must be owned by
    root or us) and as resolved: each directory owned by root or us and not writable by
    group or others, except a sticky ancestor such as /tmp (others cannot rename or remove
    what we own in it); `path` itself may not be sticky-writable either.
    """
    me = os.geteuid()
    path = Path(os.path.abspath(path))
    chains = [path, path.resolve()]
    for chain in chains:
        parts = [chain, *chain.parents]
        for i, p in enumerate(parts):
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue  # not created yet: mkdir makes it ours
            except OSError as err:
                return f"{p}: {err.strerror}"
            if st.st_uid not in (0, me):
                return f"{p} is owned by uid {st.st_uid}"
            if stat.S_ISLNK(st.st_mode):
                continue  # its target is checked in the resolved chain
            writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            sticky_ancestor = i > 0 and st.st_mode & stat.S_ISVTX
            if writable and not sticky_ancestor:
                who = "others" if st.st_mode & stat.S_IWOTH else "its group"
                return f"{p} is writable by {who} (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def untrusted_file(path: Path) -> str | None:
    """Why a file in a trusted directory must not be used (another owner, writable by others)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    if st.st_uid not in (0, os.geteuid()):
        return f"{path} is owned by uid {st.st_uid}"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _usable(d: Path) -> str | None:
    """None if `d` is a build directory only root (or we) can change, creating it 0700."""
    why = untrusted_reason(d)
    if why:
        return why
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        return f"cannot create {d}: {err.strerror}"
    if not os.access(d, os.W_OK):
        return f"{d} is not writable"
    return untrusted_reason(d)  # again: it may have appeared between the check and mkdir


def build_dir(src: Path | None = None) -> Path:
    """ENFORCER_BPF_BUILD_DIR, else bpf/build, else a root-owned 0700 cache directory.

    Objects and vmlinux.h are loaded into the kernel as root: a directory another user can
    write (or swap, through an ancestor) is never used, even when named explicitly."""
    env = os.environ.get("ENFORCER_BPF_BUILD_DIR")
    if env:
        why = _usable(Path(env))
        if why:
            raise EnforcerError(
                f"ENFORCER_BPF_BUILD_DIR={env} cannot hold BPF objects safely: {why}",
                hint="use a directory owned by root, not writable by group or others, "
                "on a path no other user can change",
            )
        return Path(env)
    src = src or source_dir()
    refused = []
    for d in (src / "build", CACHE_DIR):
        why = _usable(d)
        if why is None:
            return d
        refused.append(why)
        log.warning("not using this directory for BPF objects", directory=str(d), reason=why)
    raise EnforcerError(
        "no safe directory for BPF objects: " + "; ".join(refused),
        hint=f"create {CACHE_DIR} owned by root with mode 0700, or set ENFORCER_BPF_BUILD_DIR to such a directory",
    )


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
    if untrusted_file(target) is None and target.is_file() and target.stat().st_size > 0:
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
    why = untrusted_reason(src) or untrusted_reason(src / "include")
    if why:  # what we compile is loaded as root: its sources must be as trusted as the objects
        raise EnforcerError(
            f"BPF sources in {src} could be changed by another user: {why}",
            hint="install the enforcer package as root, or fix the checkout's owner and modes",
        )
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
        and not any(untrusted_file(p) for p in (stamp, *objects.values()))
    )
    if fresh:
        return BuiltObjects(out, objects)
    clang = _tool("clang", "clang")
    for leftover in (out / "vmlinux.h", stamp, *objects.values()):
        why = untrusted_file(leftover)
        if why:  # never reuse a file someone else could have written
            log.warning("removing a BPF build file not ours", reason=why)
            try:
                leftover.unlink()
            except OSError as err:
                raise EnforcerError(
                    f"{why}, and it cannot be removed: {err.strerror}", hint=f"remove it, or empty {out}"
                ) from err
    _vmlinux_h(out)
    for name, obj in objects.items():
        log.info("building BPF object", object=name, directory=str(out))
        tmp = obj.with_suffix(".tmp")
        _run(
            [clang, *CFLAGS, f"-I{out}", f"-I{src / 'include'}", "-c", str(src / f"{name}.bpf.c"), "-o", str(tmp)],
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
