"""Small kernel helpers: run-time statistics of programs, CPU count, device numbers."""

from __future__ import annotations

import os
import weakref
from typing import Self

from .constants import StatsType
from .info import ProgInfo, prog_info
from .libbpf import check_int, lib
from .maps import num_possible_cpus


class StatsEnabled:
    """Holds a BPF_ENABLE_STATS fd: the kernel counts run_time_ns/run_cnt of every program
    while at least one such fd is open. Close it when done (it costs a little per run)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def enable_stats(kind: StatsType = StatsType.RUN_TIME) -> StatsEnabled:
    """Turn on per-program run-time accounting (needs CAP_SYS_ADMIN)."""
    lib().log.mark()
    return StatsEnabled(check_int(lib().bpf_enable_stats(int(kind)), "enable BPF run-time stats"))


def prog_stats(fd: int) -> ProgInfo:
    """run_time_ns / run_cnt (cumulative) and the rest of the program's info."""
    return prog_info(fd)


def kernel_dev(st_dev: int) -> int:
    """Userspace st_dev -> the kernel's s_dev (MKDEV: major << 20 | minor).

    The kernel keeps dev_t as 12-bit major / 20-bit minor; stat() reports the glibc encoding,
    so a BPF program comparing inode->i_sb->s_dev needs this conversion.
    """
    return (os.major(st_dev) << 20) | os.minor(st_dev)


__all__ = ["StatsEnabled", "enable_stats", "kernel_dev", "num_possible_cpus", "prog_stats"]
