"""Docker containers: who runs, in which cgroup v2, with which name, image and labels."""

from enforcer.containers.cgroups import CgroupLayout, CgroupRef, cgroup_of_pid, find_cgroup2_mount
from enforcer.containers.model import ContainerInfo

__all__ = ["CgroupLayout", "CgroupRef", "ContainerInfo", "cgroup_of_pid", "find_cgroup2_mount"]
