"""A Docker container between `runc create` and `runc start`, as the runtime wrapper
(enforcer-runc) reports it: its init pid is known, its first instruction has not run.

dockerd holds the container's lock while it starts it, so it cannot be inspected (that
would wait for the start it is part of): name, image, labels and Created come from the
container list, which dockerd answers lock-free.
"""

from __future__ import annotations

from typing import Any

from enforcer.containers.cgroups import cgroup_of_pid, container_cgroup_path
from enforcer.containers.model import ContainerInfo, docker_time_ns
from enforcer.containers.tracker import docker_base_url
from enforcer.errors import EnforcerError

LIST_TIMEOUT = 10  # seconds: the runtime waits for our answer before it starts the container


class CreatedContainers:
    def __init__(self, docker_host: str | None = None) -> None:
        self._base_url = docker_base_url(docker_host)
        self.client: Any = None  # docker.APIClient, made on first use

    def info(self, container_id: str, pid: int) -> ContainerInfo:
        """The container whose init is `pid`, checked to be in the container's own cgroup."""
        if pid <= 0:
            raise EnforcerError(f"container {container_id[:12]}: no init pid given")
        cgroup = cgroup_of_pid(pid)
        # As the tracker checks: the pid's cgroup must be the container's own (its id in the
        # name), else policy keyed on it would judge processes outside the container, and
        # the container itself would run unjudged. Between `runc create` and `runc start` the
        # init cannot have moved into a child cgroup yet, so its own cgroup must be that one.
        if container_cgroup_path(str(cgroup.path), container_id) != str(cgroup.path):
            raise EnforcerError(
                f"container {container_id[:12]}: pid {pid} is in cgroup {cgroup.path}, which is "
                "not the container's own",
                hint="run containers with a cgroup v2 of their own (cgroupns private, systemd or "
                "cgroupfs driver); see docs/troubleshooting.md",
            )
        listed = self.listed(container_id)
        names = listed.get("Names") or ["/"]
        return ContainerInfo(
            id=container_id,
            name=str(names[0]).lstrip("/"),
            image=str(listed.get("Image", "")),
            labels=dict(listed.get("Labels") or {}),
            pid=pid,
            cgroup=cgroup,
            # to the second (the list has no more): when origin: image starts counting
            created_ns=docker_time_ns(listed.get("Created")),
        )

    def listed(self, container_id: str) -> dict[str, Any]:
        """The container's entry in Docker's container list."""
        import docker
        import docker.errors
        import requests

        if self.client is None:
            self.client = docker.APIClient(base_url=self._base_url, timeout=LIST_TIMEOUT)
        try:
            found = self.client.containers(all=True, filters={"id": container_id})
        except (docker.errors.DockerException, requests.RequestException) as err:
            raise EnforcerError(
                f"Docker did not answer about container {container_id[:12]}: {err}",
                hint="is dockerd running? `enforcer doctor`",
            ) from err
        match = [c for c in found if c.get("Id") == container_id]
        if not match:
            raise EnforcerError(f"container {container_id[:12]} is not known to Docker")
        return dict(match[0])
