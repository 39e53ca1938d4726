"""Exact rules pinned to inodes, per container: a second name of a protected file is judged
like the file. The compile step that depends on a container's files; the kernel layer
(enforcer.kernel.inode_rules) writes what it resolves.

A path rule cannot see hard links: /etc/shadow and a link to it shipped in the image at
/var/backups/s are two paths, one inode. At container start (and whenever the container
gets another ruleset) the daemon resolves every exact deny/audit rule inside the
container's root to (dev, ino) and writes `inode_rules`; the LSM programs look the opened
inode up there as well as its path. Files under a directory rule that already have more
than one name are pinned too. Names made later cannot alias a protected file: the kernel
refuses to link or rename guarded names (see compiler.paths guards), so the set stays
complete for the container's life.

The root is the container's mount-namespace root, not its init's root (see
`container_root`: an entrypoint that chroots must not move where rules are resolved).
Symlinks are resolved inside the container's root (an absolute link target is relative to
it, `..` stops at it), never through the host's root. A file rule naming a symlink names the
file it points to, like an open does. An exec rule naming a symlink does not: running the
link runs its target, and for a multi-call binary (busybox) that target is every other
applet too; such rules are reported (see `warnings`), not widened.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import structlog

from enforcer.compiler.paths import CompiledPaths, Slot, any_enforcing, stronger

log = structlog.get_logger(__name__)

MAX_SYMLINKS = 40  # as the kernel's path walk
MAX_DIR_SCAN = 20000  # entries looked at below directory rules, per container
_KINDS = {
    "file_exact": "PK_FILE_EXACT",
    "exec_exact": "PK_EXEC_EXACT",
    "file_dir": "PK_FILE_EXACT",
    "exec_dir": "PK_EXEC_EXACT",
}


def resolve_in_root(root: str, path: str, *, follow_final: bool = True) -> str | None:
    """The host path of `path` as a process chrooted to `root` would resolve it; None when a
    component is missing or the links loop."""
    todo = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while todo:
        name = todo.pop(0)
        if name == ".":
            continue
        if name == "..":
            if done:
                done.pop()
            continue
        host = os.path.join(root, *done, name)
        try:
            st = os.lstat(host)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode) and (todo or follow_final):
            links += 1
            if links > MAX_SYMLINKS:
                return None
            try:
                target = os.readlink(host)
            except OSError:
                return None
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p] + todo
            continue
        done.append(name)
    return os.path.join(root, *done)


def kernel_dev(st_dev: int) -> int:
    """stat's st_dev in the kernel's internal encoding (inode->i_sb->s_dev)."""
    return (os.major(st_dev) << 20) | os.minor(st_dev)


@dataclass(frozen=True)
class InodeEntry:
    kind: str  # PK_FILE_EXACT / PK_EXEC_EXACT constant name
    dev: int
    ino: int


@dataclass
class ContainerInodes:
    """What was resolved for one container: entries and the rules that did not resolve."""

    entries: dict[InodeEntry, list[Slot | None]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def put(self, entry: InodeEntry, slots: list[Slot | None]) -> None:
        cur = self.entries.setdefault(entry, [None, None])
        for i, s in enumerate(slots):
            if s is not None:
                cur[i] = stronger(cur[i], s)


def _enforcing(slots: list[Slot | None]) -> bool:
    return any_enforcing(slots)


def resolve_container(root: str, compiled: CompiledPaths) -> ContainerInodes:
    """Resolve the enforcing exact rules of `compiled` (and multiply-linked files below its
    directory rules) inside the container whose root is the host path `root`."""
    out = ContainerInodes()
    for entry, slots in sorted(compiled.entries.items()):
        if entry.kind not in _KINDS or not _enforcing(slots):
            continue
        exec_rule = entry.kind.startswith("exec")
        if entry.kind.endswith("_exact"):
            if exec_rule:
                link = resolve_in_root(root, entry.path, follow_final=False)
                if link and os.path.islink(link):
                    out.warnings.append(
                        f"exec rule {entry.path} names a symlink in this container: running "
                        "it runs the link's target, which the rule does not deny"
                    )
            host = resolve_in_root(root, entry.path, follow_final=not exec_rule)
            st = _stat(host)
            if st is not None and not stat.S_ISLNK(st.st_mode):
                out.put(InodeEntry(_KINDS[entry.kind], kernel_dev(st.st_dev), st.st_ino), slots)
        else:
            host = resolve_in_root(root, entry.path)
            for st in _linked_files_below(host):
                out.put(InodeEntry(_KINDS[entry.kind], kernel_dev(st.st_dev), st.st_ino), slots)
    return out


def _stat(host: str | None) -> os.stat_result | None:
    if host is None:
        return None
    try:
        return os.lstat(host)
    except OSError:
        return None


def _linked_files_below(host: str | None) -> Iterator[os.stat_result]:
    """Regular files below `host` (same file system, no symlinks) with more than one name."""
    if host is None or not os.path.isdir(host) or os.path.islink(host):
        return
    seen = 0
    stack = [host]
    while stack and seen < MAX_DIR_SCAN:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    seen += 1
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(e.path)
                    elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                        yield st
        except OSError:
            continue


MAX_DOTDOT = 4096  # steps up from a chroot to the namespace root; a tree is never deeper


@contextmanager
def container_root(pid: int) -> Iterator[str]:
    """A host path of the root of the container's mount namespace, valid inside the block.

    Not `/proc/<pid>/root` itself: that is the init's root, which `chroot` moves. From it,
    ".." is followed until it stays put. The kernel stops ".." at the top of the mount
    namespace and then goes down the mounts stacked there, so the fixed point is the root
    the container's processes see (what the LSM walk calls the namespace root), however far
    the init chrooted. The directory is held open and named through /proc/self/fd.
    """
    try:
        fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY)
    except OSError:  # the process is gone: nothing resolves, as through its dead root
        yield f"/proc/{pid}/root"
        return
    try:
        here = os.fstat(fd)
        for _ in range(MAX_DOTDOT):
            up = os.open("..", os.O_PATH | os.O_DIRECTORY, dir_fd=fd)
            there = os.fstat(up)
            if (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino):
                os.close(up)
                break
            os.close(fd)
            fd, here = up, there
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
