"""How long a container ran before all its policies were in force: its start window.

With the runtime wrapper (enforcer-runc) a container is registered before its first
instruction: no window. Without it the daemon learns of a container from Docker's events,
after its init already runs; the window is the age of the init process then. Policies that
select every container hold during it anyway (the kernel recognises a Docker container's
cgroup, see common.h), so the window concerns policies with a selector.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def process_age_seconds(pid: int, proc_root: str = "/proc") -> float | None:
    """Seconds since `pid` was forked (CLOCK_BOOTTIME, the clock /proc/PID/stat counts in),
    or None if it is gone or unreadable."""
    try:
        stat = Path(proc_root, str(pid), "stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: fields are counted after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        started_ticks = int(fields[19])  # field 22: starttime, in clock ticks since boot
    except (IndexError, ValueError):
        return None
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - started_ticks / os.sysconf("SC_CLK_TCK")
    return max(0.0, round(age, 3))
