"""Follow Docker: which containers run, in which cgroup v2, under which name/image/labels.

DockerTracker turns Docker's state and event stream into three listener calls:
container_started(info), container_stopped(id), container_renamed(info). It keeps its own
view (`known()`) and only reports *changes* to it, so duplicate or stale events are harmless.

Ordering: on every (re)connect the event stream is opened first and the running containers
are listed second; events that happen in between wait in the stream and are then applied on
top of the listing. Every handler checks current state (inspect), so applying an event twice
changes nothing. After any break of the stream (dockerd restarted, socket gone) we reconnect
with exponential backoff and reconcile from scratch: vanished containers are reported stopped,
new ones started, changed ones (restarted while we were away) stopped and started again.

Docker has no hook that runs before a container's entrypoint, so a container is reported
shortly *after* it starts (see the `start` event delay measured by the integration tests).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog

from enforcer.containers.cgroups import (
    cgroup_of_pid,
    cgroup_ref_at,
    container_cgroup_path,
    find_cgroup2_mount,
)
from enforcer.containers.model import ContainerInfo, docker_time_ns
from enforcer.errors import EnforcerError

log = structlog.get_logger(__name__)

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

# Only what changes the running set or a container's identity; the daemon filters for us, so
# exec_*, attach, health_status... never reach us. pause/unpause/update keep the same cgroup,
# name, image and labels (labels cannot be updated), so they change nothing for policy.
_EVENTS = ("start", "die", "destroy", "rename")


class ContainerListener(Protocol):
    """Receives container changes. Calls come from one thread at a time, in order."""

    def container_started(self, info: ContainerInfo) -> None: ...

    def container_stopped(self, container_id: str) -> None: ...

    def container_renamed(self, info: ContainerInfo) -> None: ...


def docker_base_url(explicit: str | None = None) -> str:
    """The Docker API to talk to: the one given, else $DOCKER_HOST, else Docker's socket."""
    return explicit or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


class DockerTracker:
    """Tracks running Docker containers and reports changes to a listener.

    `client_factory` returns a `docker.DockerClient`; it is called on every (re)connect (tests
    use it to hold a reconnect back). `backoff` is (first, max) seconds between reconnects.
    """

    def __init__(
        self,
        listener: ContainerListener,
        *,
        base_url: str | None = None,
        client_factory: Callable[[], Any] | None = None,
        backoff: tuple[float, float] = (0.2, 5.0),
        proc_root: str = "/proc",
        cgroup2_mount: str | None = None,
    ) -> None:
        self._listener = listener
        self.base_url = docker_base_url(base_url)
        self._client_factory = client_factory or self._default_client
        self._backoff = backoff
        self._proc_root = proc_root
        self._mount = cgroup2_mount or find_cgroup2_mount(proc_root)
        self._known: dict[str, ContainerInfo] = {}
        self._state_lock = threading.Lock()  # guards _known; held briefly
        self._apply_lock = threading.RLock()  # serialises check+update+listener call
        self._stream_lock = threading.Lock()
        self._stream: Any = None
        self._unplaceable: set[str] = set()  # ids already reported as untrackable
        # Set while run() follows a live event stream (after its reconcile); cleared on breaks.
        self.connected = threading.Event()

    # -- public API ------------------------------------------------------------------------

    def known(self) -> dict[str, ContainerInfo]:
        """A snapshot of the running containers as last reported: id -> ContainerInfo."""
        with self._state_lock:
            return dict(self._known)

    def reconcile(self) -> list[ContainerInfo]:
        """List all running containers, report the differences, return the running ones."""
        client = self._client_factory()
        try:
            return self._reconcile_with(client)
        finally:
            _close_quietly(client)

    def run(self, stop_event: threading.Event) -> None:
        """Follow Docker until `stop_event` is set; reconnects and re-reconciles on breaks."""
        import docker.errors
        import requests

        done = threading.Event()
        closer = threading.Thread(
            target=self._close_on_stop,
            args=(stop_event, done),
            name="docker-events-closer",
            daemon=True,
        )
        closer.start()
        first, max_delay = self._backoff
        delay = first
        connected_before = False
        try:
            while not stop_event.is_set():
                client = None
                try:
                    client = self._client_factory()
                    stream = client.api.events(decode=True, filters={"type": ["container"], "event": list(_EVENTS)})
                    with self._stream_lock:
                        self._stream = stream
                    if stop_event.is_set():
                        break
                    running = self._reconcile_with(client)
                    log.info(
                        "docker reconnected" if connected_before else "docker connected",
                        base_url=self.base_url,
                        running=len(running),
                    )
                    connected_before = True
                    self.connected.set()
                    delay = first
                    for event in stream:
                        if stop_event.is_set():
                            break
                        self._handle_event(client, event)
                    if not stop_event.is_set():
                        log.warning("docker event stream ended", base_url=self.base_url)
                except (docker.errors.DockerException, requests.RequestException, OSError) as err:
                    if stop_event.is_set():
                        break
                    log.warning(
                        "docker unreachable",
                        base_url=self.base_url,
                        error=str(err),
                        retry_in=round(delay, 2),
                    )
                finally:
                    self.connected.clear()
                    with self._stream_lock:
                        stream, self._stream = self._stream, None
                    _close_quietly(stream)
                    _close_quietly(client)
                if stop_event.wait(delay):
                    break
                delay = min(delay * 2, max_delay)
        finally:
            done.set()
            closer.join(timeout=2)

    # -- internals -------------------------------------------------------------------------

    def _default_client(self) -> Any:
        import docker

        client = docker.DockerClient(base_url=self.base_url, timeout=30)
        client.api.ping()
        return client

    def _close_on_stop(self, stop_event: threading.Event, done: threading.Event) -> None:
        # The event stream blocks in recv(); closing its socket is the only way to wake it.
        while not done.is_set():
            if stop_event.wait(0.2):
                with self._stream_lock:
                    stream = self._stream
                _close_quietly(stream)
                return

    def _reconcile_with(self, client: Any) -> list[ContainerInfo]:
        current: dict[str, ContainerInfo] = {}
        for summary in client.api.containers(filters={"status": "running"}):
            info = self._inspect_info(client, summary["Id"])
            if info is not None:
                current[info.id] = info
        with self._apply_lock:
            for gone in set(self.known()) - set(current):
                self._report_stopped(gone, reason="not running at reconcile")
            for info in current.values():
                self._report_running(info)
            # Optional listener hook: the running set is now complete (a restarted daemon
            # drops what it inherited for containers that are gone).
            hook = getattr(self._listener, "containers_reconciled", None)
            if hook is not None:
                try:
                    hook(set(current))
                except Exception:
                    log.exception("container listener failed", method="containers_reconciled")
        return list(current.values())

    def _handle_event(self, client: Any, event: Mapping[str, Any]) -> None:
        action = event.get("Action") or event.get("status") or ""
        actor = event.get("Actor") or {}
        cid = actor.get("ID") or event.get("id") or ""
        if not cid:
            return
        log.debug("docker event", action=action, container=cid[:12])
        if action == "start":
            info = self._inspect_info(client, cid)
            if info is not None:
                with self._apply_lock:
                    self._report_running(info)
        elif action in ("die", "destroy"):
            with self._apply_lock:
                if cid in self.known() and not self._still_same_process(client, cid):
                    self._report_stopped(cid, reason=action)
                if action == "destroy":
                    with self._state_lock:
                        self._unplaceable.discard(cid)
        elif action == "rename":
            new_name = str((actor.get("Attributes") or {}).get("name", "")).lstrip("/")
            with self._apply_lock:
                old = self.known().get(cid)
                if old is not None and new_name and new_name != old.name:
                    self._report_renamed(dataclasses.replace(old, name=new_name))

    def _still_same_process(self, client: Any, cid: str) -> bool:
        """A `die` may be stale (it was queued before our listing saw a restarted container):
        only ignore it if the known init process demonstrably still runs."""
        import docker.errors

        known = self.known().get(cid)
        if known is None:
            return False
        try:
            state = client.api.inspect_container(cid)["State"]
        except docker.errors.NotFound:
            return False
        return bool(
            state.get("Running")
            and state.get("Pid") == known.pid
            and os.path.exists(os.path.join(self._proc_root, str(known.pid)))
        )

    def _inspect_info(self, client: Any, cid: str) -> ContainerInfo | None:
        """ContainerInfo for a running container, or None if it is not (or no longer) running
        or cannot be placed in a cgroup v2 of its own."""
        import docker.errors

        try:
            data = client.api.inspect_container(cid)
        except docker.errors.NotFound:
            return None
        state = data.get("State") or {}
        pid = int(state.get("Pid") or 0)
        if not state.get("Running") or pid <= 0:
            return None
        full_id = str(data["Id"])
        config = data.get("Config") or {}
        try:
            cgroup = cgroup_of_pid(pid, proc_root=self._proc_root, mount=self._mount)
        except ProcessLookupError:
            self._report_unplaceable(full_id, "its init process exited before we looked", pid)
            return None
        except EnforcerError as err:
            self._report_unplaceable(full_id, str(err), pid)
            return None
        # The id is in every path Docker creates (/docker/<id>, docker-<id>.scope,
        # <cgroup-parent>/<id>). The init may have moved into a child cgroup of it (systemd
        # as pid 1): the container's cgroup is then the ancestor that holds the id. If none
        # does, the pid was reused by another process, or the runtime left the container in
        # a shared cgroup (e.g. the v2 root on a hybrid host): keying policy on that cgroup
        # would hit processes outside the container.
        own = container_cgroup_path(cgroup.path, full_id)
        if own is None or not own.startswith(self._mount.rstrip("/") + "/"):
            self._report_unplaceable(full_id, f"its cgroup v2 {cgroup.path} is not the container's own", pid)
            return None
        if own != cgroup.path:
            try:
                cgroup = cgroup_ref_at("/", own)
            except FileNotFoundError:
                self._report_unplaceable(full_id, "its cgroup vanished before we looked", pid)
                return None
        return ContainerInfo(
            id=full_id,
            name=str(data.get("Name", "")).lstrip("/"),
            image=str(config.get("Image", "")),
            labels=dict(config.get("Labels") or {}),
            pid=pid,
            cgroup=cgroup,
            created_ns=docker_time_ns(data.get("Created")),
        )

    def _report_unplaceable(self, cid: str, why: str, pid: int) -> None:
        # Once per container: a crash-looping container must not flood the log.
        with self._state_lock:
            if cid in self._unplaceable:
                return
            self._unplaceable.add(cid)
        log.warning("container not tracked", container=cid[:12], pid=pid, reason=why)

    def _report_running(self, info: ContainerInfo) -> None:
        old = self.known().get(info.id)
        if old is None:
            self._set(info.id, info)
            self._notify("container_started", info)
        elif (old.pid, old.cgroup) != (info.pid, info.cgroup):
            # Restarted while we were not looking: new process, new cgroup id.
            self._set(info.id, None)
            self._notify("container_stopped", info.id)
            self._set(info.id, info)
            self._notify("container_started", info)
        elif old.name != info.name:
            self._report_renamed(info)

    def _report_stopped(self, cid: str, *, reason: str) -> None:
        self._set(cid, None)
        log.info("container stopped", container=cid[:12], reason=reason)
        self._notify("container_stopped", cid)

    def _report_renamed(self, info: ContainerInfo) -> None:
        self._set(info.id, info)
        self._notify("container_renamed", info)

    def _set(self, cid: str, info: ContainerInfo | None) -> None:
        with self._state_lock:
            if info is None:
                self._known.pop(cid, None)
            else:
                self._known[cid] = info

    def _notify(self, method: str, arg: ContainerInfo | str) -> None:
        if isinstance(arg, ContainerInfo):
            log.info(
                method.replace("_", " "),
                container=arg.short_id,
                name=arg.name,
                image=arg.image,
                pid=arg.pid,
                cgroup_id=arg.cgroup.id,
            )
        try:
            getattr(self._listener, method)(arg)
        except Exception:
            # A faulty listener must not stop tracking; the error is logged with its traceback.
            log.exception("container listener failed", method=method)


def _close_quietly(obj: Any) -> None:
    if obj is None:
        return
    with contextlib.suppress(Exception):  # closing a dead connection may fail in many ways
        obj.close()
