"""DockerTracker against a private dockerd: it sees every running container, in its own
cgroup v2, and follows starts, stops, renames and dockerd restarts."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from enforcer.containers.cgroups import cgroup_of_pid, find_cgroup2_mount, parse_proc_cgroup
from enforcer.containers.model import ContainerInfo
from enforcer.containers.tracker import DockerTracker
from tests.integration.conftest import RunContainer, record_timing
from tests.integration.dockerd import Container, PrivateDockerd

# --------------------------------------------------------------------------------------------
# helpers


@dataclass
class Call:
    kind: str  # started | stopped | renamed
    container_id: str
    info: ContainerInfo | None
    at: float = field(default_factory=time.monotonic)


class RecordingListener:
    """Records listener calls; `wait_for` blocks until a matching call arrives."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._cond = threading.Condition()

    def _add(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def container_started(self, info: ContainerInfo) -> None:
        self._add(Call("started", info.id, info))

    def container_stopped(self, container_id: str) -> None:
        self._add(Call("stopped", container_id, None))

    def container_renamed(self, info: ContainerInfo) -> None:
        self._add(Call("renamed", info.id, info))

    def of(self, container_id: str, kind: str | None = None) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.container_id == container_id and (kind is None or c.kind == kind)]

    def wait_for(self, container_id: str, kind: str, timeout: float = 30.0) -> Call:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self.of(container_id, kind)
                if found:
                    return found[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no {kind} for {container_id[:12]} within {timeout}s; calls: "
                        f"{[(c.kind, c.container_id[:12]) for c in self.calls]}"
                    )
                self._cond.wait(left)


@dataclass
class RunningTracker:
    tracker: DockerTracker
    listener: RecordingListener
    stop: threading.Event
    thread: threading.Thread


@pytest.fixture
def start_tracker(dockerd: PrivateDockerd) -> Iterator[Callable[..., RunningTracker]]:
    """Start DockerTracker.run() in a thread; stopped (and checked to stop) at teardown."""
    running: list[RunningTracker] = []

    def start(**kwargs: Any) -> RunningTracker:
        listener = RecordingListener()
        tracker = DockerTracker(listener, base_url=dockerd.host, **kwargs)
        stop = threading.Event()
        thread = threading.Thread(target=tracker.run, args=(stop,), daemon=True)
        thread.start()
        assert tracker.connected.wait(30), "tracker did not connect"
        handle = RunningTracker(tracker, listener, stop, thread)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        handle.stop.set()
        handle.thread.join(10)
        assert not handle.thread.is_alive(), "tracker.run() did not return after stop_event"


def host_pid_of(marker: str, timeout: float = 10.0) -> int:
    """The host pid of the process whose command line contains `marker`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                if marker.encode() in cmdline:
                    return int(entry.name)
        time.sleep(0.05)
    raise AssertionError(f"no process with {marker!r}")


# --------------------------------------------------------------------------------------------
# reconcile: what a running container looks like


@pytest.mark.docker
def test_reconcile_reports_a_running_container_with_name_image_labels_and_own_cgroup(
    docker_run: RunContainer, dockerd: PrivateDockerd
) -> None:
    # The image as given to docker run, untagged: policies glob on exactly this string.
    c = docker_run("sleep", "3600", name="web-1", labels={"app": "web", "tier": "front"}, image="enforcer-testbox")
    listener = RecordingListener()

    infos = {i.id: i for i in DockerTracker(listener, base_url=dockerd.host).reconcile()}

    info = infos[c.id]
    assert info.name == "web-1"
    assert info.image == "enforcer-testbox"
    assert dict(info.labels) == {"app": "web", "tier": "front"}
    assert info.pid == c.pid
    # Its own cgroup v2 directory on the cgroup2 mount; its inode is the id BPF sees.
    assert info.cgroup.path.startswith(find_cgroup2_mount() + "/")
    assert c.id in os.path.basename(info.cgroup.path)
    assert info.cgroup.id == os.stat(info.cgroup.path).st_ino
    # The init process's /proc/PID/cgroup points there, and the kernel lists it there.
    v2_path = parse_proc_cgroup(Path(f"/proc/{info.pid}/cgroup").read_text())
    assert v2_path is not None
    assert os.path.join(find_cgroup2_mount(), v2_path.lstrip("/")) == info.cgroup.path
    assert str(info.pid) in Path(info.cgroup.path, "cgroup.procs").read_text().split()
    assert [call.kind for call in listener.of(c.id)] == ["started"]
    print(f"\ncontainer {c.name}: /proc/{info.pid}/cgroup 0::{v2_path} -> cgroup id {info.cgroup.id}")


@pytest.mark.docker
def test_reconcile_twice_reports_nothing_new(testbox: Container, dockerd: PrivateDockerd) -> None:
    listener = RecordingListener()
    tracker = DockerTracker(listener, base_url=dockerd.host)
    tracker.reconcile()
    before = len(listener.calls)

    tracker.reconcile()

    assert len(listener.calls) == before
    assert testbox.id in tracker.known()


# --------------------------------------------------------------------------------------------
# following events


@pytest.mark.docker
def test_container_started_while_tracking_is_reported_promptly(
    start_tracker: Callable[..., RunningTracker], docker_run: RunContainer
) -> None:
    t = start_tracker()

    t0 = time.monotonic()
    c = docker_run("sleep", "3600", labels={"k": "v"})
    returned = time.monotonic()
    call = t.listener.wait_for(c.id, "started")

    assert call.info is not None and call.info.name == c.name and call.info.pid == c.pid
    assert t.tracker.known()[c.id] == call.info
    delay = call.at - returned
    record_timing("start event delay after docker run returned", delay)
    print(
        f"\ndocker run -d took {returned - t0:.3f}s; listener called {delay:+.3f}s after it "
        f"returned ({call.at - t0:.3f}s after docker run was invoked)"
    )


@pytest.mark.docker
def test_stop_and_remove_are_reported_once(
    start_tracker: Callable[..., RunningTracker], docker_run: RunContainer, dockerd: PrivateDockerd
) -> None:
    stopped = docker_run("sleep", "3600")
    removed = docker_run("sleep", "3600")
    t = start_tracker()
    assert {stopped.id, removed.id} <= set(t.tracker.known())

    dockerd.cli("stop", "-t", "0", stopped.id)
    dockerd.cli("rm", stopped.id)
    dockerd.cli("rm", "-f", removed.id)

    t.listener.wait_for(stopped.id, "stopped")
    t.listener.wait_for(removed.id, "stopped")
    time.sleep(0.5)  # let a duplicate (die + destroy) show up if there were one
    assert len(t.listener.of(stopped.id, "stopped")) == 1
    assert len(t.listener.of(removed.id, "stopped")) == 1
    assert not {stopped.id, removed.id} & set(t.tracker.known())


@pytest.mark.docker
def test_container_that_exits_by_itself_is_reported_stopped(
    start_tracker: Callable[..., RunningTracker], docker_run: RunContainer
) -> None:
    t = start_tracker()
    c = docker_run("sh", "-c", "sleep 1")
    t.listener.wait_for(c.id, "stopped")
    assert c.id not in t.tracker.known()


@pytest.mark.docker
def test_rename_is_reported_with_the_new_name(
    start_tracker: Callable[..., RunningTracker], docker_run: RunContainer, dockerd: PrivateDockerd
) -> None:
    c = docker_run("sleep", "3600")
    t = start_tracker()
    before = t.tracker.known()[c.id]
    new_name = f"renamed-{random.randrange(1 << 30)}"

    dockerd.cli("rename", c.id, new_name)

    call = t.listener.wait_for(c.id, "renamed")
    assert call.info is not None and call.info.name == new_name
    assert call.info.cgroup == before.cgroup and call.info.pid == before.pid
    assert t.tracker.known()[c.id].name == new_name
    assert t.listener.of(c.id, "stopped") == []


@pytest.mark.docker
def test_docker_exec_processes_are_in_the_container_cgroup(testbox: Container, dockerd: PrivateDockerd) -> None:
    info = DockerTracker(RecordingListener(), base_url=dockerd.host).reconcile()
    (box,) = [i for i in info if i.id == testbox.id]
    marker = str(random.randrange(10**8, 10**9))

    testbox.exec("sh", "-c", f"sleep {marker} </dev/null >/dev/null 2>&1 &")
    pid = host_pid_of(f"sleep {marker}")
    try:
        assert pid != box.pid
        assert cgroup_of_pid(pid) == box.cgroup
    finally:
        os.kill(pid, 9)  # our own exec'd sleep, by pid


# --------------------------------------------------------------------------------------------
# dockerd restarts


@pytest.mark.docker
@pytest.mark.parametrize("live_restore", [True, False], ids=["live-restore", "no-live-restore"])
def test_after_a_dockerd_restart_the_tracker_reconnects_and_reconciles(
    live_restore: bool,
    start_tracker: Callable[..., RunningTracker],
    docker_run: RunContainer,
    dockerd: PrivateDockerd,
) -> None:
    was_live_restore = dockerd.live_restore
    if dockerd.live_restore != live_restore:
        dockerd.restart(live_restore=live_restore)
    try:
        kept = docker_run("sleep", "3600", extra_args=["--restart", "always"])
        removed = docker_run("sleep", "3600")
        # The gate holds the tracker's reconnect back until dockerd is up and we changed things
        # behind its back, so the re-reconcile (not an event) must find the changes.
        gate = threading.Event()
        gate.set()

        def gated_client() -> Any:
            if not gate.wait(120):
                raise OSError("gate closed")
            client = dockerd.client()
            client.api.ping()
            return client

        t = start_tracker(client_factory=gated_client, backoff=(0.1, 0.5))
        old_kept = t.tracker.known()[kept.id]
        gate.clear()

        took = dockerd.restart()
        record_timing("dockerd restart", took)
        dockerd.cli("rm", "-f", removed.id)
        if not live_restore:
            deadline = time.monotonic() + 30
            while not kept.running and time.monotonic() < deadline:  # restart policy
                time.sleep(0.1)
        new = docker_run("sleep", "3600")
        assert not t.tracker.connected.is_set()
        gate.set()

        t.listener.wait_for(new.id, "started", timeout=60)
        assert t.tracker.connected.wait(30)
        t.listener.wait_for(removed.id, "stopped")
        known = t.tracker.known()
        assert removed.id not in known and new.id in known
        if live_restore:
            # The container never stopped: same process, same cgroup, nothing reported.
            assert known[kept.id] == old_kept
            assert t.listener.of(kept.id, "stopped") == []
        else:
            # dockerd stopped it and the restart policy started it again: new process in a
            # new cgroup (same path, new directory, new id), reported as stopped then started.
            assert known[kept.id].pid == kept.pid != old_kept.pid
            assert known[kept.id].cgroup.id == os.stat(known[kept.id].cgroup.path).st_ino
            assert known[kept.id].cgroup.id != old_kept.cgroup.id
            assert [c.kind for c in t.listener.of(kept.id)][-2:] == ["stopped", "started"]
        print(f"\ndockerd restart ({'live-restore' if live_restore else 'no live-restore'}) took {took:.2f}s")
    finally:
        if dockerd.live_restore != was_live_restore:
            dockerd.restart(live_restore=was_live_restore)


# --------------------------------------------------------------------------------------------
# races, with a fake Docker (no daemon needed)


class FakeAPI:
    def __init__(self, containers: dict[str, dict[str, Any]]) -> None:
        self.data = containers

    def containers(self, filters: Any = None) -> list[dict[str, Any]]:
        return [{"Id": cid} for cid, d in self.data.items() if d["State"]["Running"]]

    def inspect_container(self, cid: str) -> dict[str, Any]:
        import docker.errors

        if cid not in self.data:
            raise docker.errors.NotFound("gone")
        return self.data[cid]


class FakeClient:
    def __init__(self, api: FakeAPI) -> None:
        self.api = api

    def close(self) -> None:
        pass


def _inspect(cid: str, pid: int, name: str = "c") -> dict[str, Any]:
    return {
        "Id": cid,
        "Name": "/" + name,
        "State": {"Running": True, "Pid": pid},
        "Config": {"Image": "img:1", "Labels": {}},
    }


def test_a_container_whose_init_exited_before_we_looked_is_logged_once_not_fatal(
    tmp_path: Path,
) -> None:
    cid = "a" * 64
    api = FakeAPI({cid: _inspect(cid, pid=999_999_999)})  # no such process
    listener = RecordingListener()
    tracker = DockerTracker(listener, client_factory=lambda: FakeClient(api), cgroup2_mount=str(tmp_path))

    with structlog.testing.capture_logs() as logs:
        assert tracker.reconcile() == []
        assert tracker.reconcile() == []

    assert listener.calls == [] and tracker.known() == {}
    warnings = [e for e in logs if e["event"] == "container not tracked"]
    assert len(warnings) == 1 and "exited" in warnings[0]["reason"]


def test_a_process_outside_the_containers_own_cgroup_is_never_tracked() -> None:
    # E.g. the pid was reused by a host process, or the runtime left the container in the
    # cgroup2 root (hybrid host): a policy there would hit non-container processes.
    cid = "b" * 64
    api = FakeAPI({cid: _inspect(cid, pid=os.getpid())})  # we are not in /docker/<cid>
    listener = RecordingListener()
    tracker = DockerTracker(listener, client_factory=lambda: FakeClient(api))

    with structlog.testing.capture_logs() as logs:
        assert tracker.reconcile() == []

    assert listener.calls == []
    assert any("not the container's own" in e.get("reason", "") for e in logs)


def test_a_listener_that_raises_does_not_stop_tracking(tmp_path: Path) -> None:
    cid = "c" * 64
    cgdir = tmp_path / "docker" / cid
    cgdir.mkdir(parents=True)
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "cgroup").write_text(f"0::/docker/{cid}\n")
    api = FakeAPI({cid: _inspect(cid, pid=4242)})

    class Broken(RecordingListener):
        def container_started(self, info: ContainerInfo) -> None:
            raise RuntimeError("boom")

    tracker = DockerTracker(
        Broken(), client_factory=lambda: FakeClient(api), proc_root=str(proc), cgroup2_mount=str(tmp_path)
    )
    with structlog.testing.capture_logs():
        (info,) = tracker.reconcile()
    assert info.cgroup.id == os.stat(cgdir).st_ino
    assert cid in tracker.known()
