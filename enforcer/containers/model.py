"""What the rest of the enforcer knows about a running container."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from enforcer.containers.cgroups import CgroupRef


@dataclass(frozen=True)
class ContainerInfo:
    """A running container, as policies select it and BPF maps key it.

    `image` is Config.Image: the reference exactly as given to `docker run` (policies glob on
    it), not the resolved image id. `pid` is the container's init process as seen from the
    host. `cgroup` is its cgroup v2 directory; `cgroup.id` keys the BPF maps.
    """

    id: str
    name: str  # without Docker's leading "/"
    image: str
    labels: Mapping[str, str] = field(hash=False)
    pid: int
    cgroup: CgroupRef
    # Docker's Created (CLOCK_REALTIME ns), 0 if unknown: a file unchanged since then is
    # the image's (`origin: image`); unknown, no file is.
    created_ns: int = 0

    def __post_init__(self) -> None:
        # Read-only copy: the info is shared between threads and listeners.
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    @property
    def short_id(self) -> str:
        return self.id[:12]


def docker_time_ns(value: object) -> int:
    """Docker's RFC 3339 time ("2026-12-02T07:58:51.123456789Z", nanoseconds, any offset)
    or Unix seconds (the container list's Created) -> ns since the epoch; 0 if unreadable."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(int(value), 0) * 1_000_000_000
    if not isinstance(value, str):
        return 0
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", value)
    if not m:
        return 0
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        seconds = int(datetime.fromisoformat(m.group(1) + zone).timestamp())
    except ValueError:
        return 0
    frac = (m.group(2) or "").ljust(9, "0")[:9]
    return max(seconds, 0) * 1_000_000_000 + int(frac)
