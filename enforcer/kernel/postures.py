"""The per-container state postures and `origin: image` need besides the ruleset.

- image_times: the container's created time (CLOCK_REALTIME ns). The LSM programs take a
  file on the container's root mount whose inode changed before then as the image's.
- judged_tasks: the tasks postures judge. The kernel flags a task when it execs in the
  container's mount namespace and passes the flag to its children; a container that ran
  before the programs were loaded has tasks nobody flagged, so the daemon flags them by
  pidfd when it takes the container over (`mark_judged`).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import structlog

from enforcer.pybpf import BpfError, Map

log = structlog.get_logger(__name__)

PIDFD_THREAD = os.O_EXCL  # pidfd_open flag (6.9+): a pidfd of one thread, not the process
# runc's own processes (nsexec names them runc:[0:PARENT], runc:[1:CHILD], runc:[2:INIT]):
# the runtime setting the container up, which postures never judge. It flags itself when it
# execs the container's program.
RUNTIME_COMMS = ("runc:[",)


def cgroup_tasks(cgroup_dir: Path) -> Iterator[int]:
    """Thread ids in the cgroup and every cgroup below it (cgroup.threads, v2)."""
    for dirpath, _dirs, files in os.walk(cgroup_dir):
        if "cgroup.threads" not in files:
            continue
        try:
            text = (Path(dirpath) / "cgroup.threads").read_text()
        except OSError:
            continue  # removed while we walked
        for line in text.split():
            yield int(line)


def _pidfd(tid: int) -> int | None:
    """A pidfd for the thread `tid` (6.9+), else for the process when tid is its leader."""
    try:
        return os.pidfd_open(tid, PIDFD_THREAD)
    except OSError as err:
        if err.errno == errno.ESRCH:
            return None
    try:
        return os.pidfd_open(tid)  # older kernels: thread-group leaders only
    except OSError:
        return None


def _comm(tid: int) -> str:
    try:
        return Path(f"/proc/{tid}/comm").read_text().strip()
    except OSError:
        return ""


class PostureState:
    def __init__(self, maps: Mapping[str, Map]) -> None:
        self._maps = maps

    @property
    def available(self) -> bool:
        """False when the LSM programs are not loaded (device/network rules only)."""
        return "image_times" in self._maps and "judged_tasks" in self._maps

    def set_image_time(self, cgroup_id: int, created_ns: int) -> None:
        if not self.available:
            return
        key = cgroup_id.to_bytes(8, "little")
        if created_ns > 0:
            self._maps["image_times"].update(key, created_ns.to_bytes(8, "little"))
        else:  # unknown: nothing counts as the image's (fail closed)
            self._maps["image_times"].delete(key)

    def forget(self, cgroup_id: int) -> None:
        if self.available:
            self._maps["image_times"].delete(cgroup_id.to_bytes(8, "little"))

    def mark_judged(self, cgroup_dir: Path, flag: int) -> tuple[int, int]:
        """Flag every task of the container but runc's own; returns (flagged, missed).
        A task that exits meanwhile is not missed; one that cannot be flagged (a thread on
        a kernel before 6.9, which has no pidfd of its own) is, and is logged."""
        if not self.available:
            return 0, 0
        value = flag.to_bytes(4, "little")
        flagged = missed = 0
        for tid in cgroup_tasks(cgroup_dir):
            if _comm(tid).startswith(RUNTIME_COMMS):
                continue
            fd = _pidfd(tid)
            if fd is None:
                if Path(f"/proc/{tid}").exists():
                    missed += 1
                continue
            try:
                self._maps["judged_tasks"].update(fd.to_bytes(4, "little"), value)
                flagged += 1
            except BpfError as err:
                if err.errno != errno.ESRCH:
                    missed += 1
            finally:
                os.close(fd)
        if missed:
            log.warning(
                "tasks of a container that ran before the enforcer are not judged by "
                "postures until they exec (their kernel gives no pidfd of a thread)",
                cgroup=str(cgroup_dir),
                missed=missed,
            )
        return flagged, missed
