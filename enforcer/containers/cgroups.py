"""Find the cgroup v2 hierarchy and the cgroup v2 of a process.

Policy maps are keyed by cgroup id. The id of a cgroup v2 directory is the inode number of
that directory: since Linux 5.5 kernfs node ids are 64-bit and, on 64-bit kernels, the inode
number of a cgroup directory *is* the kernfs id, which is what bpf_get_current_cgroup_id()
(and bpf_skb_cgroup_id(), name_to_handle_at()) return. On 32-bit kernels the inode number is
truncated to 32 bits, so ids would not match; we only support 64-bit hosts.

Works on a pure cgroup v2 host (cgroup2 at /sys/fs/cgroup) and on a hybrid host (v1
controllers plus cgroup2 at /sys/fs/cgroup/unified). The mount point is always read from
/proc/mounts, never assumed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from enforcer.errors import EnforcerError

_V2_HINT = (
    "the enforcer needs cgroup v2: boot with systemd.unified_cgroup_hierarchy=1 "
    "(pure v2, recommended) or mount cgroup2, e.g. `mount -t cgroup2 none /sys/fs/cgroup/unified`"
)


class CgroupLayout(Enum):
    """How cgroups are mounted on this host."""

    UNIFIED = "unified"  # pure cgroup v2
    HYBRID = "hybrid"  # v1 controllers plus a cgroup2 hierarchy (usually .../unified)
    LEGACY = "legacy"  # cgroup v1 only: we cannot work here


@dataclass(frozen=True)
class CgroupRef:
    """A cgroup v2 directory: `path` is absolute on the host (under the cgroup2 mount)."""

    path: str
    id: int


@dataclass(frozen=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str
    options: str


def _unescape(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as octal (\040 ...).
    out, i = [], 0
    while i < len(field):
        octal = field[i + 1 : i + 4]
        if field[i] == "\\" and len(octal) == 3 and octal.isdigit():
            out.append(chr(int(octal, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mounts(text: str) -> list[Mount]:
    """Parse /proc/mounts (or /proc/self/mounts) text."""
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        mounts.append(Mount(_unescape(parts[0]), _unescape(parts[1]), parts[2], parts[3]))
    return mounts


def cgroup2_mount_from(mounts: list[Mount]) -> str | None:
    """The cgroup2 mount point, or None. If mounted several times, the shortest path wins
    (the canonical /sys/fs/cgroup or /sys/fs/cgroup/unified rather than a bind mount)."""
    points = [m.mountpoint for m in mounts if m.fstype == "cgroup2"]
    return min(points, key=len) if points else None


def layout_from(mounts: list[Mount]) -> CgroupLayout:
    has_v2 = any(m.fstype == "cgroup2" for m in mounts)
    has_v1 = any(m.fstype == "cgroup" for m in mounts)
    if has_v2:
        return CgroupLayout.HYBRID if has_v1 else CgroupLayout.UNIFIED
    return CgroupLayout.LEGACY


def _read_mounts(proc_root: str) -> list[Mount]:
    return parse_mounts(Path(proc_root, "self/mounts").read_text())


def find_cgroup2_mount(proc_root: str = "/proc") -> str:
    """Where cgroup2 is mounted; EnforcerError on a cgroup-v1-only host."""
    point = cgroup2_mount_from(_read_mounts(proc_root))
    if point is None:
        raise EnforcerError("no cgroup2 filesystem is mounted on this host", hint=_V2_HINT)
    return point


def detect_layout(proc_root: str = "/proc") -> CgroupLayout:
    return layout_from(_read_mounts(proc_root))


def parse_proc_cgroup(text: str) -> str | None:
    """The cgroup v2 path from /proc/PID/cgroup text (the `0::/path` line), or None when the
    process has no cgroup v2 membership (cgroup v1 only)."""
    for line in text.splitlines():
        hierarchy, sep, rest = line.partition(":")
        controllers, sep2, path = rest.partition(":")
        if sep and sep2 and hierarchy == "0" and controllers == "":
            # A path ending in " (deleted)" means the cgroup was removed under the process.
            return path.removesuffix(" (deleted)")
    return None


def cgroup_path_of_pid(pid: int, proc_root: str = "/proc") -> str:
    """The cgroup v2 path of `pid` relative to the cgroup2 root, as the kernel reports it.

    Raises ProcessLookupError if the process is gone (callers racing with exits rely on it).
    The path is relative to *our* cgroup namespace; the enforcer must run in the host's.
    """
    try:
        text = Path(proc_root, str(pid), "cgroup").read_text()
    except (FileNotFoundError, ProcessLookupError) as err:
        raise ProcessLookupError(pid) from err
    path = parse_proc_cgroup(text)
    if path is None:
        raise EnforcerError(f"process {pid} is in no cgroup v2 (this host uses cgroup v1 only)", hint=_V2_HINT)
    return path


def cgroup_ref_at(mount: str, rel_path: str) -> CgroupRef:
    """CgroupRef for a path relative to the cgroup2 root; FileNotFoundError if it is gone."""
    full = os.path.normpath(os.path.join(mount, rel_path.lstrip("/")))
    # st_ino of the directory == kernfs id == bpf_get_current_cgroup_id() (64-bit kernels).
    return CgroupRef(path=full, id=os.stat(full).st_ino)


def container_cgroup_path(path: str, container_id: str) -> str | None:
    """The container's own cgroup for a process of it at `path`: the nearest directory, the
    process's own or an ancestor, whose name holds the container id. Docker names it so under
    every driver (/docker/<id>, docker-<id>.scope, <cgroup-parent>/<id>); an init that made a
    child cgroup and moved into it (systemd as pid 1: .../docker-<id>.scope/init.scope) is
    found through the ancestor. None when no component holds the id: the pid was reused, or
    the runtime left the container in a shared cgroup, which must never be keyed as its own."""
    parts = path.rstrip("/").split("/")
    for end in range(len(parts), 0, -1):
        if container_id and container_id in parts[end - 1]:
            return "/".join(parts[:end]) or "/"
    return None


def cgroup_of_pid(pid: int, *, proc_root: str = "/proc", mount: str | None = None) -> CgroupRef:
    """The cgroup v2 directory and id of a process (cgroupfs or systemd driver alike:
    both end up as a `0::/...` line, e.g. /docker/<id> or /system.slice/docker-<id>.scope).

    ProcessLookupError if the process (or its cgroup) vanished meanwhile; EnforcerError if
    the host has no cgroup v2 for it.
    """
    rel = cgroup_path_of_pid(pid, proc_root)
    root = mount or find_cgroup2_mount(proc_root)
    try:
        return cgroup_ref_at(root, rel)
    except FileNotFoundError as err:
        # The cgroup was removed after we read /proc/PID/cgroup: the process exited.
        raise ProcessLookupError(pid) from err
