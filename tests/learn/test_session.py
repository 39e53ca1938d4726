"""The daemon side of learning (the learning selection, routing of events, the stream) and
the `enforcer learn` client, against a real status socket and a fake daemon."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from enforcer.commands.learn import command as learn_command
from enforcer.compiler.rules import RuleRef
from enforcer.errors import EnforcerError
from enforcer.learn.client import learn, parse_duration
from enforcer.learn.operations import ExecOp, Operation, decide, parse_operation, to_target
from enforcer.learn.recording import ContainerFacts, read_events
from enforcer.learn.replay import replay
from enforcer.learn.session import (
    KERNEL_CLASSES,
    SESSION_POLICY,
    LearnSessions,
    LearnTarget,
    learning_policies,
    serve_learn,
)
from enforcer.policy.loader import load_file, parse_text
from enforcer.policy.merge import merge, merge_postures
from enforcer.policy.model import Policy
from enforcer.status.server import StatusServer
from tests.learn.test_generalise import SERVICE
from tests.policy.conftest import SAMPLES

HEADER = "apiVersion: enforcer/v1\nkind: ContainerPolicy\n"


def policies(*texts: str) -> list[Policy]:
    out = []
    for text in texts:
        loaded, errors = parse_text(HEADER + text, "p.yaml")
        assert not errors, errors
        out += [lp.policy for lp in loaded]
    return out


REAL = policies(
    """\
metadata: {name: strict}
spec:
  posture: {exec: deny}
  exec:
    - {action: allow, origin: image}
    - {action: deny, paths: [/bin/busybox]}
  file:
    - {action: deny, paths: [/etc/passwd], access: [read]}
    - {action: allow, dirs: [/etc]}
    - {action: audit, dirs: [/var/cache]}
  network:
    - {action: allow, direction: egress, ports: [53, "8000-8100"], protocol: udp}
""",
    """\
metadata: {name: watch}
spec:
  mode: audit
  posture: {egress: deny}
  file:
    - {action: deny, dirs: [/srv]}
""",
) + [p.policy for p in load_file(SAMPLES / "spec_example.yaml").policies]


def test_the_learning_selection_denies_what_the_real_one_denies_and_sees_the_rest() -> None:
    """One decision model: for every operation, the learning selection denies exactly what
    the real policies deny, and leaves nothing of a kernel-judged class unseen."""
    learning, copies = learning_policies(REAL)
    real_rules, real_postures = merge(REAL), merge_postures(REAL)
    learn_rules, learn_postures = merge(learning), merge_postures(learning)
    ops: list[Operation] = [op for op, _ in SERVICE] + [
        ExecOp("exec", "/bin/busybox", True),
        ExecOp("exec", "/tmp/x", False),
    ]
    for op in ops:
        real = decide(op, real_rules, real_postures)
        seen = decide(op, learn_rules, learn_postures)
        assert (real is not None and real.action == "deny") == (seen is not None and seen.action == "deny"), op
        if any(c in KERNEL_CLASSES for c in op.classes):
            assert seen is not None and seen.action in ("audit", "deny"), op
    assert sorted(p.name for p in copies.values()) == sorted(p.name for p in REAL)


def test_learning_copies_keep_every_rule_and_turn_allows_into_audits() -> None:
    learning, copies = learning_policies(REAL)
    for copy in learning[:-1]:
        real = copies[copy.name]
        assert copy.spec.mode == real.spec.mode and copy.spec.selector == real.spec.selector
        for kind in ("file", "exec", "device", "network", "socket"):
            want = [("audit" if r.action == "allow" else r.action) for r in real.spec.rules(kind)]
            assert [r.action for r in copy.spec.rules(kind)] == want
        strict = copies[copy.name].name == "strict"
        assert copy.spec.posture.exec == ("deny" if strict else "audit")
        assert (copy.spec.posture.device, copy.spec.posture.socket) == ("allow", "allow")
    assert learning[-1].name == SESSION_POLICY


def _session(sessions: LearnSessions, cgroup: int = 7) -> Any:
    facts = ContainerFacts("web", "web:1", "c" * 64, {"app": "web"})
    return sessions.begin(facts, "c" * 64, cgroup, REAL)


def test_routing_keeps_real_records_in_the_audit_log_and_the_rest_in_the_session() -> None:
    sessions = LearnSessions()
    session = _session(sessions)
    by_real = {p.name: n for n, p in session.copies.items()}
    shadow = {"path": "/etc/shadow", "access": "read"}
    # the session policy's posture, and a copy's audit that was an allow: the session's alone
    assert (
        sessions.route(
            7, RuleRef(SESSION_POLICY, "posture.exec"), "audit", "exec", {"path": "/bin/ls", "access": "exec"}, "sh"
        )
        is None
    )
    assert (
        sessions.route(
            7,
            RuleRef(by_real["strict"], "file[1]"),
            "audit",
            "file_open",
            {"path": "/etc/hosts", "access": "read"},
            "cat",
        )
        is None
    )
    # a real audit rule and a real denial: the audit log's, under the real name
    assert sessions.route(
        7,
        RuleRef(by_real["strict"], "file[2]"),
        "audit",
        "file_open",
        {"path": "/var/cache/x", "access": "write"},
        "sh",
    ) == RuleRef("strict", "file[2]")
    assert sessions.route(
        7, RuleRef(by_real["strict"], "exec[1]"), "deny", "exec", {"path": "/bin/busybox", "access": "exec"}, "sh"
    ) == RuleRef("strict", "exec[1]")
    # another container: untouched
    assert sessions.route(8, RuleRef("strict", "exec[1]"), "deny", "exec", shadow, "sh") == (
        RuleRef("strict", "exec[1]")
    )
    assert sessions.route_loss(7, RuleRef(SESSION_POLICY, "posture.fileRead"), 5) is None
    batch = session.drain()
    assert sorted(op[1]["path"] for op in batch["ops"]) == ["/bin/ls", "/etc/hosts", "/var/cache/x"]
    assert batch["denied"] == [["exec", {"path": "/bin/busybox", "origin": "other"}, 1, "strict", "exec[1]"]]
    assert batch["lost"] == 5
    assert session.drain() == {"ops": [], "denied": [], "lost": 0}


def test_one_session_per_container_and_selection_only_while_learning() -> None:
    sessions = LearnSessions()
    session = _session(sessions)
    with pytest.raises(EnforcerError, match="already learning"):
        _session(sessions)
    assert [p.name for p in sessions.selection("c" * 64, REAL)][-1] == SESSION_POLICY
    assert sessions.selection("d" * 64, REAL) == tuple(REAL)
    sessions.end(session)
    assert sessions.selection("c" * 64, REAL) == tuple(REAL)


def test_events_still_in_flight_when_a_session_ends_never_reach_the_log_under_learning_names() -> None:
    sessions = LearnSessions()
    session = _session(sessions)
    by_real = {p.name: n for n, p in session.copies.items()}
    sessions.end(session)
    exec_target = {"path": "/bin/ls", "access": "exec"}
    # what only learning made: nobody's
    assert sessions.route(7, RuleRef(SESSION_POLICY, "posture.exec"), "audit", "exec", exec_target, "sh") is None
    assert (
        sessions.route(
            7,
            RuleRef(by_real["strict"], "file[1]"),
            "audit",
            "file_open",
            {"path": "/etc/hosts", "access": "read"},
            "cat",
        )
        is None
    )
    assert sessions.route_loss(7, RuleRef(SESSION_POLICY, "posture.fileRead"), 3) is None
    # a real denial made under a copy: the audit log's, under the real policy's name
    assert sessions.route(
        7, RuleRef(by_real["strict"], "exec[1]"), "deny", "exec", {"path": "/bin/busybox", "access": "exec"}, "sh"
    ) == RuleRef("strict", "exec[1]")
    # the session saw none of it, and real policies' events pass as always
    assert session.drain() == {"ops": [], "denied": [], "lost": 0}
    assert sessions.route(7, RuleRef("strict", "exec[1]"), "deny", "exec", exec_target, "sh") == (
        RuleRef("strict", "exec[1]")
    )


# --- over the status socket ---------------------------------------------------------------


class FakeDaemon:
    """The daemon's part: a container, its enforcement (recorded), and a workload that
    makes events while the container learns."""

    def __init__(self, workload: list[tuple[str, dict[str, Any], str]]) -> None:
        self.sessions = LearnSessions()
        self.enforced: list[tuple[str, ...]] = []
        self.events_seen: list[tuple[RuleRef, str, str, dict[str, Any], str]] = []
        self.workload = workload
        self.target = LearnTarget(ContainerFacts("web", "web:1", "c" * 64, {"app": "web"}), "c" * 64, 7, REAL[:1])

    def find(self, name: str) -> LearnTarget | None:
        return self.target if name == "web" else None

    def reenforce(self, container_id: str) -> None:
        selected = self.sessions.selection(container_id, self.target.selected)
        self.enforced.append(tuple(p.name for p in selected))
        if self.sessions.learning(container_id):
            self.events_seen = self.events()
            threading.Thread(target=self._run_workload).start()

    def events(self) -> list[tuple[RuleRef, str, str, dict[str, Any], str]]:
        """What the kernel reports of the workload under the learning selection: every
        operation of a class it judges by posture (device and socket ones stay unseen)."""
        learning = self.sessions.selection("c" * 64, self.target.selected)
        rules, postures = merge(learning), merge_postures(learning)
        out: list[tuple[RuleRef, str, str, dict[str, Any], str]] = []
        for hook, target, comm in self.workload:
            op = parse_operation(hook, target)
            assert op is not None
            d = decide(op, rules, postures)
            if d is not None:
                out.append((RuleRef(d.policy, d.rule_id), d.action, hook, target, comm))
        return out

    def _run_workload(self) -> None:
        for ref, action, hook, target, comm in self.events():
            self.sessions.route(7, ref, action, hook, target, comm)

    def handle(self, request: dict[str, Any], channel: Any) -> None:
        serve_learn(self.sessions, request, channel, self.find, self.reenforce)


WORKLOAD = [(op.hook, to_target(op), "sh") for op, n in SERVICE for _ in range(min(n, 3))]


@pytest.fixture
def fake() -> FakeDaemon:
    return FakeDaemon(WORKLOAD)


@pytest.fixture
def sock(tmp_path: Path, fake: FakeDaemon) -> Iterator[Path]:
    path = tmp_path / "run" / "enforcer.sock"
    with StatusServer(path, lambda: None, {"learn": fake.handle}):  # type: ignore[arg-type, return-value]
        yield path


def test_a_session_streams_every_operation_and_restores_the_real_policies(
    sock: Path, fake: FakeDaemon, tmp_path: Path
) -> None:
    record = tmp_path / "rec.jsonl"
    progress: list[float | None] = []
    with record.open("x") as fh:
        got = learn(sock, "web", 1.2, lambda _g: fh, lambda _g, left: progress.append(left))
    assert got.reason == "duration reached"
    learned_events = fake.events_seen
    assert sum(got.operations.values()) == sum(1 for e in learned_events if e[1] != "deny")
    # strict denies /etc/passwd reads, busybox (3 of each) and the entrypoint, not from
    # the image (exec posture deny): they never ran
    assert got.denied == sum(1 for e in learned_events if e[1] == "deny") == 7
    assert got.classes == KERNEL_CLASSES and got.not_learned == ("device", "socket")
    assert progress and progress[-1] is not None and progress[-1] < 1.2
    learning_names, real_names = fake.enforced
    assert learning_names[-1] == SESSION_POLICY and real_names == ("strict",)
    events = read_events(str(record))
    assert events.operations == sum(got.operations.values()) and events.denied == 7
    assert events.recording is not None and events.recording.name == "web"


def test_the_client_stops_the_session_early(sock: Path, fake: FakeDaemon) -> None:
    started = time.monotonic()
    got = learn(sock, "web", None, stop_requested=lambda: True)
    assert got.reason == "stopped by the client"
    assert time.monotonic() - started < 5
    assert fake.enforced[-1] == ("strict",) and not fake.sessions.learning("c" * 64)


def test_an_unknown_container_is_refused_and_nothing_is_written(sock: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        learn_command,
        [
            "--container",
            "nope",
            "--socket",
            str(sock),
            "--record",
            str(tmp_path / "r.jsonl"),
            "--output",
            str(tmp_path / "p.yaml"),
        ],
    )
    assert result.exit_code == 1
    assert "no running container named 'nope'" in str(result.exception)
    assert not (tmp_path / "r.jsonl").exists() and not (tmp_path / "p.yaml").exists()


def test_no_daemon_is_one_line_exit_1(tmp_path: Path) -> None:
    from enforcer import cli

    result = CliRunner().invoke(
        cli.cli, ["learn", "--container", "web", "--socket", str(tmp_path / "none.sock")], standalone_mode=False
    )
    assert isinstance(result.exception, EnforcerError)
    assert "no enforcer daemon is listening" in str(result.exception)


def test_learn_writes_a_policy_that_replays_clean_against_its_recording(sock: Path, tmp_path: Path) -> None:
    rec, out = tmp_path / "rec.jsonl", tmp_path / "learned.yaml"
    result = CliRunner().invoke(
        learn_command,
        [
            "--container",
            "web",
            "--duration",
            "1s",
            "--socket",
            str(sock),
            "--record",
            str(rec),
            "--output",
            str(out),
            "--label",
            "app",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "learned web:" in result.stderr and "policy written to" in result.stderr
    loaded = load_file(out)
    assert loaded.ok, loaded.errors
    (policy,) = [lp.policy for lp in loaded.policies]
    assert policy.spec.selector.labels == {"app": "web"} and policy.spec.mode == "audit"
    replayed = replay([policy], read_events(str(rec)))
    assert (replayed.denied, replayed.audited) == (0, 0)
    assert replayed.operations > 0 and replayed.denied_then == 7


def test_a_missing_label_is_refused_before_anything_is_written(sock: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        learn_command,
        [
            "--container",
            "web",
            "--duration",
            "1s",
            "--socket",
            str(sock),
            "--label",
            "tier",
            "--record",
            str(tmp_path / "r.jsonl"),
        ],
    )
    assert result.exit_code == 1 and "has no label 'tier'" in str(result.exception)
    assert not (tmp_path / "r.jsonl").exists()


def test_existing_output_files_are_never_overwritten(sock: Path, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("mine")
    result = CliRunner().invoke(
        learn_command, ["--container", "web", "--socket", str(sock), "--output", str(tmp_path / "p.yaml")]
    )
    assert result.exit_code == 1 and "exists" in str(result.exception)
    assert (tmp_path / "p.yaml").read_text() == "mine"


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("10m", 600), ("1h30m", 5400), ("45", 45)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "soon", "0", "-5s", "10x"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(EnforcerError, match="bad --duration"):
        parse_duration(bad)
