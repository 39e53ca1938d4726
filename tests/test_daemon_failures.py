"""A failed write or attach never leaves a container unpoliced in silence (issue 13, items 4,
5 and 8): against the real policy maps of this host, with failures injected into the map
updates and the enforcements. Nothing half-written stays in the maps, `status` and the
metrics say which container is not enforced and why, the daemon retries with backoff, a
fail-closed runtime start is refused, and a reload cannot slip between choosing a starting
container's policies and writing them."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from enforcer.compiler.ruleset import CompiledRuleset
from enforcer.containers.failures import RETRY_BACKOFF
from enforcer.containers.model import ContainerInfo
from enforcer.daemon import Daemon
from enforcer.kernel.enforcement import RulesetPart
from enforcer.kernel.loader import Loaded
from enforcer.policy.selector import policies_for
from enforcer.pybpf import BpfError
from enforcer.runtime.protocol import ShimConfig
from enforcer.runtime.registrar import RegistrationServer
from enforcer.runtime.shim import ask_enforcer
from enforcer.status.metrics import StatusCollector
from tests.test_daemon_churn import STARTING_KEY, _entries, _info, _starting_ruleset, daemon  # noqa: F401 - the fixture

pytestmark = pytest.mark.host_bpf


def _container_rules(loaded: Loaded) -> int:
    """path_rules entries of container rulesets: the every-container ruleset that judges
    containers not registered yet is the daemon's from its start, not the container's."""
    layout, starting = loaded.abi.layout("path_key"), _starting_ruleset(loaded)
    return sum(1 for k in loaded.maps["path_rules"].keys() if layout.decode(k)["ruleset"] != starting)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clocked(daemon: tuple[Daemon, Loaded]) -> tuple[Daemon, Loaded, Clock]:  # noqa: F811
    d, loaded = daemon
    clock = Clock()
    d._clock = clock  # retries are driven by the test, not by waiting
    return d, loaded, clock


def refuse(loaded: Loaded, map_name: str, method: str, err: int) -> Callable[[], None]:
    """Make one map operation fail with `err` until the returned function is called."""
    m = loaded.maps[map_name]

    def failing(*_a: Any, **_k: Any) -> None:
        raise BpfError(err, method.replace("_", " "), map_name)

    setattr(m, method, failing)
    return lambda: delattr(m, method)


class FailingKind:
    """A second enforcement kind that fails on demand (ENOMEM writing, EPERM attaching)."""

    name = "fake"

    def __init__(self) -> None:
        self.fail_write: int | None = None
        self.fail_attach: int | None = None
        self.written: set[int] = set()
        self.attached: set[int] = set()

    def write_ruleset(self, ruleset: int, compiled: CompiledRuleset) -> RulesetPart:
        if self.fail_write:
            raise BpfError(self.fail_write, "update map batch", "fake_rules")
        self.written.add(ruleset)
        return RulesetPart(None)

    def delete_ruleset(self, ruleset: int, part: RulesetPart) -> None:
        self.written.discard(ruleset)

    def attach(self, info: ContainerInfo) -> None:
        if self.fail_attach:
            raise BpfError(self.fail_attach, "attach cgroup program", info.cgroup.path)
        self.attached.add(info.cgroup.id)

    def detach(self, info: ContainerInfo) -> None:
        self.attached.discard(info.cgroup.id)

    def rulesets_in_kernel(self) -> set[int]:
        return set(self.written)

    def prune(self, keep: set[int]) -> None:
        self.written &= keep


def metrics_text(d: Daemon) -> str:
    registry = CollectorRegistry()
    registry.register(StatusCollector(d.snapshot))
    return generate_latest(registry).decode()


def status_of(d: Daemon, name: str) -> Any:
    [c] = [c for c in d.snapshot().containers if c.name == name]
    return c


# ----- item 4: nothing half-written, shown, retried --------------------------------------


@pytest.mark.parametrize("err", [errno.E2BIG, errno.ENOMEM, errno.EPERM])
def test_a_ruleset_the_map_refuses_leaves_nothing_written_and_the_container_shown_not_enforced(
    clocked: tuple[Daemon, Loaded, Clock], err: int
) -> None:
    d, loaded, _clock = clocked
    restore = refuse(loaded, "path_rules", "update_batch", err)
    d.container_started(_info(1, "web-1"))  # the tracker's call: it must not raise

    assert _entries(loaded, "containers") == 0
    assert _container_rules(loaded) == 0  # nothing half-written
    c = status_of(d, "web-1")
    assert not c.enforced and c.error and c.ruleset is None
    text = metrics_text(d)
    assert "enforcer_containers_not_enforced 1.0" in text
    assert 'enforcer_container_enforcement_failing{container="web-1",enforced="0"} 1.0' in text
    assert "enforcer_enforcement_failures_total 1.0" in text
    restore()


def test_a_failure_in_a_later_kind_removes_what_the_earlier_kinds_wrote(
    clocked: tuple[Daemon, Loaded, Clock],
) -> None:
    d, loaded, _clock = clocked
    fake = FailingKind()
    d._enforcements.append(fake)
    fake.fail_write = errno.ENOMEM
    d.container_started(_info(1, "web-1"))
    assert _container_rules(loaded) == 0  # the file part was written first, then removed
    assert _entries(loaded, "containers") == 0
    assert "ENOMEM" in status_of(d, "web-1").error


def test_a_refused_attach_detaches_and_drops_the_fresh_ruleset(clocked: tuple[Daemon, Loaded, Clock]) -> None:
    d, loaded, _clock = clocked
    fake = FailingKind()
    d._enforcements.append(fake)
    fake.fail_attach = errno.EPERM
    d.container_started(_info(1, "web-1"))
    assert _entries(loaded, "containers") == 0
    assert _container_rules(loaded) == 0
    assert fake.attached == set() and fake.written == set()
    assert "EPERM" in status_of(d, "web-1").error


def test_a_full_containers_map_leaves_no_ruleset_behind(clocked: tuple[Daemon, Loaded, Clock]) -> None:
    d, loaded, _clock = clocked
    restore = refuse(loaded, "containers", "update", errno.E2BIG)
    d.container_started(_info(1, "web-1"))
    restore()
    assert _container_rules(loaded) == 0 and _entries(loaded, "containers") == 0
    assert not status_of(d, "web-1").enforced


def test_a_failed_container_is_retried_with_backoff_until_it_is_enforced(
    clocked: tuple[Daemon, Loaded, Clock],
) -> None:
    d, loaded, clock = clocked
    restore = refuse(loaded, "path_rules", "update_batch", errno.ENOMEM)
    d.container_started(_info(1, "web-1"))
    first, cap = RETRY_BACKOFF
    delays = []
    for _ in range(8):
        due = d._failed[f"{1:064x}"].retry_at - clock.now
        delays.append(due)
        clock.now += due - 0.01
        d.retry_failed()  # not yet due: no attempt
        assert d._failed[f"{1:064x}"].attempts == len(delays)
        clock.now += 0.01
        d.retry_failed()  # due: one more attempt, failing again
    assert delays == [min(first * 2**i, cap) for i in range(8)]
    assert d.snapshot().enforcement_failures == 9

    restore()  # the map has room again
    clock.now = d._failed[f"{1:064x}"].retry_at
    d.retry_failed()
    c = status_of(d, "web-1")
    assert c.enforced and c.error is None and c.ruleset is not None
    assert _entries(loaded, "containers") == 1
    assert "enforcer_containers_not_enforced 0.0" in metrics_text(d)


def test_a_container_that_stops_while_failing_is_forgotten(clocked: tuple[Daemon, Loaded, Clock]) -> None:
    d, loaded, _clock = clocked
    restore = refuse(loaded, "path_rules", "update_batch", errno.ENOMEM)
    d.container_started(_info(1, "web-1"))
    d.container_stopped(f"{1:064x}")
    restore()
    assert d.snapshot().containers == ()
    assert d.not_enforced() == {}


def test_a_failed_update_keeps_the_previous_ruleset_in_force_and_says_so(
    clocked: tuple[Daemon, Loaded, Clock], tmp_path: Path
) -> None:
    d, loaded, _clock = clocked
    d.container_started(_info(1, "web-1"))
    before = dict(loaded.maps["containers"].items())
    rules_before = _container_rules(loaded)
    (tmp_path / "p.yaml").write_text(
        "apiVersion: enforcer/v1\nkind: ContainerPolicy\nmetadata: {name: more}\n"
        "spec:\n  file:\n    - {action: deny, paths: [/etc/passwd]}\n"
    )
    restore = refuse(loaded, "path_rules", "update_batch", errno.E2BIG)
    d.reload()
    restore()
    assert dict(loaded.maps["containers"].items()) == before  # still the old ruleset
    assert _container_rules(loaded) == rules_before  # and the new one is not half there
    c = status_of(d, "web-1")
    assert c.enforced and "no room" in (c.error or "")


def test_fail_closed_the_runtime_start_is_refused_with_the_reason(
    clocked: tuple[Daemon, Loaded, Clock], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d, loaded, _clock = clocked
    info = _info(1, "web-1")
    monkeypatch.setattr("enforcer.containers.created.cgroup_of_pid", lambda pid: info.cgroup)
    monkeypatch.setattr(d._created, "listed", lambda cid: {"Names": [f"/{info.name}"], "Image": info.image})
    restore = refuse(loaded, "path_rules", "update_batch", errno.ENOMEM)
    server = RegistrationServer(tmp_path / "run" / "runtime.sock", d.register_from_runtime)
    server.start()
    try:
        why = ask_enforcer(
            ShimConfig(socket=str(tmp_path / "run" / "runtime.sock"), timeout=5),
            {"id": info.id, "pid": 4242, "bundle": "/b"},
        )
    finally:
        server.close()
        restore()
    assert why is not None and "no room" in why  # the shim then deletes the container
    assert _entries(loaded, "containers") == 0
    assert not status_of(d, "web-1").enforced


def test_the_runtime_registration_refuses_a_cgroup_that_is_not_the_containers_own(
    clocked: tuple[Daemon, Loaded, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    d, loaded, _clock = clocked
    other = _info(2, "web-2").cgroup  # e.g. the pid was reused, or a shared cgroup
    monkeypatch.setattr("enforcer.containers.created.cgroup_of_pid", lambda pid: other)
    with pytest.raises(Exception, match="not the container's own"):
        d.register_from_runtime(f"{1:064x}", 4242, "/b")
    assert _entries(loaded, "containers") == 0


def test_docker_errors_and_timeouts_during_registration_fail_the_start_with_a_reason(
    clocked: tuple[Daemon, Loaded, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests

    d, _loaded, _clock = clocked
    info = _info(1, "web-1")
    monkeypatch.setattr("enforcer.containers.created.cgroup_of_pid", lambda pid: info.cgroup)

    class TimingOut:
        def containers(self, **_k: Any) -> list[Any]:
            raise requests.exceptions.ReadTimeout("read timed out")

    d._created.client = TimingOut()
    with pytest.raises(Exception, match="Docker did not answer"):
        d.register_from_runtime(info.id, 4242, "/b")


# ----- item 5: a reload cannot slip between selection and write --------------------------


class WatchedLock:
    """The daemon's RLock, telling the test when another thread starts waiting for it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.contended = threading.Event()
        self._owner: int | None = None

    def __enter__(self) -> WatchedLock:
        if not self._lock.acquire(blocking=False):
            self.contended.set()
            self._lock.acquire()
        self._owner = threading.get_ident()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def test_a_container_starting_during_a_reload_gets_the_new_policies(
    clocked: tuple[Daemon, Loaded, Clock], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reload is started at the worst moment: right after the start chose its policies.
    Either the reload waits for the lock (then it re-selects for this container), or the
    start sees the new policies; never the old ones once the reload is done."""
    import enforcer.daemon as daemon_module

    d, _loaded, _clock = clocked
    lock = WatchedLock()
    d._lock = lock  # type: ignore[assignment]
    (tmp_path / "p.yaml").write_text(
        "apiVersion: enforcer/v1\nkind: ContainerPolicy\nmetadata: {name: late}\n"
        "spec:\n  exec:\n    - {action: deny, paths: [/bin/sh]}\n"
    )
    real = policies_for  # what the daemon calls (its module imports it by this name)
    reloaded = threading.Event()
    state: dict[str, threading.Thread] = {}

    def reload_now() -> None:
        d.reload()
        reloaded.set()

    def select_then_reload(*args: Any) -> Any:
        chosen = real(*args)
        if "reload" not in state:  # once: start a reload now, and let it run as far as it can
            t = state["reload"] = threading.Thread(target=reload_now)
            t.start()
            while not (lock.contended.wait(0.01) or reloaded.is_set()):
                pass  # it either finished or is waiting for our lock: both are decided states
        return chosen

    monkeypatch.setattr(daemon_module, "policies_for", select_then_reload)
    d.container_started(_info(1, "web-1"))
    state["reload"].join(timeout=30)
    assert reloaded.is_set()
    assert "late" in status_of(d, "web-1").policies


# ----- item 8: a reload interrupted by SIGTERM or SIGKILL ---------------------------------


class Killed(BaseException):
    """Stands for the process dying at this instruction (nothing after it runs)."""


@pytest.mark.parametrize("after_updates", [0, 1, 2])
def test_a_reload_killed_midway_leaves_every_container_enforced_and_a_restart_converges(
    clocked: tuple[Daemon, Loaded, Clock], tmp_path: Path, after_updates: int
) -> None:
    d, loaded, _clock = clocked
    for n in (1, 2, 3):
        d.container_started(_info(n, f"web-{n}"))
    layout = loaded.abi.layout("container")

    def complete(entries: dict[bytes, bytes]) -> bool:
        # every entry (the starting one too) points at a fully written ruleset
        by_rs = {int(layout.decode(v)["ruleset"]) for v in entries.values()}
        have = set(d._maps.path_rule_rulesets()) if d._maps else set()
        return sum(1 for k in entries if k != STARTING_KEY) == 3 and by_rs <= have

    assert complete(dict(loaded.maps["containers"].items()))
    (tmp_path / "p.yaml").write_text(
        "apiVersion: enforcer/v1\nkind: ContainerPolicy\nmetadata: {name: more}\n"
        "spec:\n  file:\n    - {action: deny, paths: [/etc/passwd]}\n"
    )
    m = loaded.maps["containers"]
    real_update = m.update
    count = {"n": 0}

    def dying_update(*a: Any, **k: Any) -> None:
        if count["n"] == after_updates:
            raise Killed
        count["n"] += 1
        real_update(*a, **k)

    m.update = dying_update  # type: ignore[method-assign]
    with pytest.raises(Killed):
        d.reload()
    del m.update
    # At the moment of death: every container points at a ruleset that is fully written.
    assert complete(dict(m.items()))

    import io

    from enforcer.audit.records import AuditWriter
    from enforcer.daemon import DaemonConfig

    second = Daemon(
        DaemonConfig(tmp_path, pin_root=d._config.pin_root, state_dir=tmp_path / "state"), AuditWriter(io.StringIO())
    )
    second.use_kernel(loaded, d._policies)
    for n in (1, 2, 3):
        second.container_started(_info(n, f"web-{n}"))
    second.containers_reconciled({f"{n:064x}" for n in (1, 2, 3)})
    assert all("more" in c.policies and c.enforced for c in second.snapshot().containers)
    in_use = {int(layout.decode(v)["ruleset"]) for _k, v in m.items()}
    assert second._maps is not None
    assert set(second._maps.path_rule_rulesets()) == in_use  # nothing stale left behind


# ----- item 8: a full disk under the audit log --------------------------------------------


def test_a_full_disk_under_the_audit_log_is_counted_in_status_and_enforcement_goes_on(
    clocked: tuple[Daemon, Loaded, Clock], tmp_path: Path
) -> None:
    import subprocess

    from enforcer.audit.events import FileEvent
    from enforcer.audit.records import AuditFolder, AuditWriter
    from enforcer.audit.sink import RotatingFile

    d, loaded, _clock = clocked
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        sink = RotatingFile(disk / "audit.jsonl")
        try:
            (disk / "filler").write_bytes(b"x" * (64 * 1024))
        except OSError as err:
            assert err.errno == errno.ENOSPC  # the disk is now full
        writer = AuditWriter(sink)
        d.audit.writer, d.audit.folder = writer, AuditFolder(writer, 0.0)

        def denial(ktime_ns: int, path: str) -> FileEvent:  # web-1 (cgroup 10_001) denied a read
            return FileEvent(
                hook="file_open",
                action="deny",
                cgroup_id=10_001,
                pid=4242,
                uid=0,
                comm="cat",
                rule_id=1,
                ktime_ns=ktime_ns,
                path=path,
                access=frozenset({"read"}),
                truncated=False,
            )

        d.container_started(_info(1, "web-1"))
        for n in range(20):
            d.audit.event(denial(n, f"/etc/shadow{n}"))
        d.audit.folder.flush_all()
        d.container_started(_info(2, "web-2"))  # the daemon carries on
        doc = d.snapshot()
        assert doc.audit.write_errors == 20 and doc.audit.records == 0
        assert all(c.enforced and c.error is None for c in doc.containers)
        assert _entries(loaded, "containers") == 2
        assert "enforcer_audit_write_errors_total 20.0" in metrics_text(d)

        (disk / "filler").unlink()  # space again: the next record is written, whole
        d.audit.event(denial(99, "/etc/gshadow"))
        d.audit.folder.flush_all()
        sink.close()  # and closing after a full disk is no error
        import json

        lines = (disk / "audit.jsonl").read_text().splitlines()
        assert [json.loads(line)["target"]["path"] for line in lines] == ["/etc/gshadow"]
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# ----- item 8: Docker errors and timeouts -------------------------------------------------


def test_docker_errors_and_timeouts_never_lift_enforcement_and_status_says_docker_is_down(
    clocked: tuple[Daemon, Loaded, Clock],
) -> None:
    import docker.errors
    import requests

    from enforcer.containers.tracker import DockerTracker

    d, loaded, _clock = clocked
    d.container_started(_info(1, "web-1"))
    before = dict(loaded.maps["containers"].items())
    failures = [
        docker.errors.APIError("500 Server Error: dockerd is restarting"),
        requests.exceptions.ReadTimeout("read timed out (30 s)"),
        requests.exceptions.ConnectionError("connection refused"),
        docker.errors.DockerException("Error while fetching server API version"),
    ]
    stop = threading.Event()
    tried: list[str] = []

    def connect() -> Any:
        tried.append(type(failures[len(tried) % len(failures)]).__name__)
        if len(tried) == 2 * len(failures):
            stop.set()  # every kind of failure, twice
        raise failures[(len(tried) - 1) % len(failures)]

    tracker = DockerTracker(d, client_factory=connect, backoff=(0.001, 0.002), cgroup2_mount="/sys/fs/cgroup")
    d._tracker = tracker
    tracker.run(stop)

    assert len(tried) == 8
    assert dict(loaded.maps["containers"].items()) == before  # nothing was dropped
    doc = d.snapshot()
    assert doc.docker_connected is False
    assert [c.name for c in doc.containers if c.enforced] == ["web-1"]
    assert "enforcer_docker_connected 0.0" in metrics_text(d)
