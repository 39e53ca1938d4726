"""A learn session in the daemon, against the real policy maps (host kernel; LSM programs
not loaded): the container moves to its learning ruleset and back, learning-only events
stay out of the audit log, real denials stay in it under the real policy's name."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from enforcer.audit.events import FileEvent
from enforcer.audit.records import AuditWriter
from enforcer.compiler.rules import RuleRef
from enforcer.containers.cgroups import CgroupRef
from enforcer.containers.model import ContainerInfo
from enforcer.daemon import Daemon, DaemonConfig
from enforcer.kernel.loader import Loaded
from enforcer.learn.session import LEARN_PREFIX, SESSION_POLICY
from enforcer.policy.loader import PolicySet, parse_text
from tests.lsm_maps import lsm_maps

pytestmark = pytest.mark.host_bpf

POLICIES = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: web}
spec:
  selector: {containerNames: ["web"]}
  file:
    - {action: deny, paths: [/etc/shadow]}
    - {action: allow, dirs: [/srv]}
"""
CGROUP = 20_016
INFO = ContainerInfo(
    id="ab" * 32,
    name="web",
    image="busybox:latest",
    labels={},
    pid=1,
    cgroup=CgroupRef(f"/sys/fs/cgroup/docker/{'ab' * 32}", CGROUP),
)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, Loaded, io.StringIO]]:
    with lsm_maps("learn") as (loaded, pin_root):
        parsed, errors = parse_text(POLICIES, "test.yaml")
        assert not errors
        log = io.StringIO()
        d = Daemon(
            DaemonConfig(tmp_path, pin_root=pin_root, state_dir=tmp_path / "state", fold_window=0.0), AuditWriter(log)
        )
        d.use_kernel(loaded, PolicySet(tuple(parsed)))
        yield d, loaded, log


def _ruleset(loaded: Loaded) -> int:
    value = loaded.maps["containers"].lookup(CGROUP.to_bytes(8, "little"))
    assert value is not None
    return int(loaded.abi.layout("container").decode(value)["ruleset"])


class Channel:
    def __init__(self) -> None:
        self.sent: list[Mapping[str, Any]] = []
        self.started = threading.Event()
        self.done = threading.Event()

    def send(self, message: Mapping[str, Any]) -> None:
        self.sent.append(message)
        if "learning" in message:
            self.started.set()

    def client_done(self) -> bool:
        return self.done.is_set()


@contextmanager
def _learning(d: Daemon) -> Iterator[Channel]:
    """A learn session of the web container, started; stopped by its client on exit."""
    channel = Channel()
    session = threading.Thread(target=d.learn, args=({"request": "learn", "container": "web"}, channel))
    session.start()
    try:
        assert channel.started.wait(10), channel.sent
        yield channel
    finally:
        channel.done.set()
        session.join(10)
        assert not session.is_alive()


def _event(d: Daemon, ref: RuleRef, action: str, path: str) -> FileEvent:
    return FileEvent(
        "file_open", action, CGROUP, 42, 0, "cat", d._table.id_for(ref), 0, path, frozenset({"read"}), False
    )


def test_a_learning_container_moves_to_its_learning_ruleset_and_back(
    daemon: tuple[Daemon, Loaded, io.StringIO],
) -> None:
    d, loaded, log = daemon
    d.container_started(INFO)
    real = _ruleset(loaded)
    with _learning(d) as channel:
        learning = _ruleset(loaded)
        assert learning != real
        copy = next(n for n, p in d.learning._by_id[INFO.id].copies.items() if p.name == "web")
        # seen only because it learns: to the session, not the audit log
        d.audit.event(_event(d, RuleRef(copy, "file[1]"), "audit", "/srv/index.html"))
        d.audit.event(_event(d, RuleRef(SESSION_POLICY, "file[0]"), "audit", "/etc/hosts"))
        # a real denial: the audit log, under the real policy's name
        d.audit.event(_event(d, RuleRef(copy, "file[0]"), "deny", "/etc/shadow"))
    records = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [(r["policy"], r["rule"], r["target"]["path"]) for r in records] == [("web", "file[0]", "/etc/shadow")]
    ops = [op for m in channel.sent for op in m.get("ops", [])]
    denied = [x for m in channel.sent for x in m.get("denied", [])]
    assert sorted(op[1]["path"] for op in ops) == ["/etc/hosts", "/srv/index.html"]
    assert [(x[1]["path"], x[3], x[4]) for x in denied] == [("/etc/shadow", "web", "file[0]")]
    assert channel.sent[-1]["end"]["reason"] == "stopped by the client"
    # back on a ruleset of the real policies, and the learning ruleset is gone
    assert _ruleset(loaded) != learning
    assert [k.split("@")[0] for k in d._containers[INFO.id][1]] == ["web"]
    assert not any("enforcer-learn" in k for key in d._rulesets.keys() for k in key)


def test_learning_an_unknown_container_changes_nothing(daemon: tuple[Daemon, Loaded, io.StringIO]) -> None:
    d, loaded, _ = daemon
    d.container_started(INFO)
    before = _ruleset(loaded)
    channel = Channel()
    d.learn({"request": "learn", "container": "db"}, channel)
    assert channel.sent == [
        {"error": "no running container named 'db' is enforced by this daemon (see enforcer status)"}
    ]
    assert _ruleset(loaded) == before


def test_a_posture_event_is_named_by_the_ruleset_that_decided_it_after_the_container_moved(
    daemon: tuple[Daemon, Loaded, io.StringIO],
) -> None:
    """A posture's rule id says only its class; the event says which ruleset decided
    (event_hdr.ruleset). An audit still in flight when the session ended is the learning
    ruleset's, though that ruleset is gone and the container's own has no posture."""
    d, loaded, _log = daemon
    d.container_started(INFO)
    with _learning(d):
        learning = _ruleset(loaded)
    now = _ruleset(loaded)
    assert now != learning and learning not in d._rulesets.ids()  # moved back; deleted
    read = loaded.abi.const("RULE_POSTURE_BASE") + loaded.abi.const("PST_FILE_READ")
    by_learning = d._rule_ref(CGROUP, read, learning)
    assert by_learning.policy.startswith(LEARN_PREFIX) and by_learning.rule == "posture.fileRead"
    assert d._rule_ref(CGROUP, read, now) == RuleRef("enforcer", "posture.fileRead")  # allow: nobody's
    assert d._rule_ref(CGROUP, read, None) == RuleRef("enforcer", "posture.fileRead")  # a loss: the container's
