"""What the rest of the enforcer knows about a running container."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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

    def __post_init__(self) -> None:
        # Read-only copy: the info is shared between threads and listeners.
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    @property
    def short_id(self) -> str:
        return self.id[:12]
