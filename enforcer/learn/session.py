"""The daemon's side of `enforcer learn`: which rules a learning container runs under, where
its events go, and the stream of observations to the client.

While a container learns it is enforced with a learning selection (learning_policies):
every policy that selects it is copied with its allow rules and allow postures turned into
audit, deny and audit kept as they are, plus a session policy whose postures audit every
class the kernel judges. So nothing that was allowed stops being allowed, nothing denied
starts to run, and every operation the container makes reaches user space as an event. The
kernel side needs nothing of its own: the learning selection is compiled and written like
any other.

An event of a learning container is routed (LearnSessions.route): what only the learning
made visible (the session policy, a copy's audit that was an allow) goes to the session
alone; what the real policies would record anyway (their denials and audits) goes to the
audit log under the real policy's name, and to the session (a denial as "denied": it never
ran). Ring-buffer losses of learning events are the session's, reported to the client.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from enforcer.compiler.rules import RuleRef
from enforcer.errors import EnforcerError
from enforcer.learn.operations import Operation, parse_operation, to_target
from enforcer.learn.recording import ContainerFacts
from enforcer.policy.merge import POSTURE_CLASSES, effective_action
from enforcer.policy.model import POSTURE_FIELDS, Policy

log = structlog.get_logger(__name__)

LEARN_PREFIX = "enforcer-learn."
SESSION_POLICY = LEARN_PREFIX + "session"  # sorts after the copies (digits < letters)
# Classes the kernel judges by posture today; device and socket postures are refused by the
# compiler (enforcer.compiler.postures.NOT_IN_KERNEL), so learning cannot see those classes
# beyond what deny/audit rules already report.
KERNEL_CLASSES: tuple[str, ...] = ("exec", "fileRead", "fileWrite", "egress", "ingress")
BATCH_SECONDS = 0.5
MAX_ENDED = 256  # ended sessions whose copies are remembered (one per cgroup)
MAX_BATCH = 5000  # observations per message: a burst is sent as several


def _copy_name(i: int) -> str:
    return f"{LEARN_PREFIX}{i:03d}"


def _learning_copy(policy: Policy, name: str, classes: Iterable[str]) -> Policy:
    doc = policy.model_dump(mode="json", by_alias=True, exclude_defaults=False)
    doc["metadata"] = {"name": name, "description": f"learning copy of {policy.name}"}
    spec = doc["spec"]
    for kind in ("file", "exec", "device", "network", "socket"):
        for rule in spec.get(kind) or []:
            if rule["action"] == "allow":
                rule["action"] = "audit"  # still allowed, now seen
    posture = spec.get("posture") or {}
    for c in classes:
        if posture.get(c, "allow") == "allow":
            posture[c] = "audit"
    spec["posture"] = posture
    return Policy.model_validate(_plain(doc))


def _plain(doc: Any) -> Any:
    """model_dump output back to validator input: port ranges (lo, hi) as "lo-hi"."""
    if isinstance(doc, dict):
        out = {k: _plain(v) for k, v in doc.items() if v is not None}
        if "ports" in out:
            out["ports"] = [f"{lo}-{hi}" for lo, hi in doc["ports"]]
        return out
    if isinstance(doc, list | tuple):
        return [_plain(v) for v in doc]
    return doc


def session_policy(classes: Iterable[str]) -> Policy:
    return Policy.model_validate(
        {
            "apiVersion": "enforcer/v1",
            "kind": "ContainerPolicy",
            "metadata": {"name": SESSION_POLICY, "description": "enforcer learn: see every operation"},
            "spec": {"posture": dict.fromkeys(classes, "audit")},
        }
    )


def learning_policies(
    selected: Sequence[Policy], classes: Iterable[str] = KERNEL_CLASSES
) -> tuple[tuple[Policy, ...], dict[str, Policy]]:
    """(the learning selection, copy name -> the real policy it copies)."""
    classes = tuple(classes)
    copies = {_copy_name(i): p for i, p in enumerate(sorted(selected, key=lambda p: p.name))}
    chosen = [_learning_copy(p, name, classes) for name, p in copies.items()]
    return (*chosen, session_policy(classes)), copies


def real_action(policy: Policy, rule: str) -> str | None:
    """The effective action `rule` ("file[2]", "posture.exec") has in the real policy."""
    if rule.startswith("posture."):
        cls = rule.removeprefix("posture.")
        if cls not in POSTURE_FIELDS:
            return None
        return effective_action(policy.spec.posture.of(cls), policy.spec.mode)
    kind, _, index = rule.partition("[")
    try:
        rules = policy.spec.rules(kind)  # type: ignore[arg-type]
        return effective_action(rules[int(index.rstrip("]"))].action, policy.spec.mode)
    except (AttributeError, ValueError, IndexError):
        return None


# --- one session ----------------------------------------------------------------------------


@dataclass
class LearnSession:
    container: ContainerFacts
    container_id: str
    cgroup_id: int
    copies: dict[str, Policy]
    classes: tuple[str, ...]
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ops: Counter[tuple[Operation, str | None]] = field(default_factory=Counter)
    _denied: Counter[tuple[Operation, str, str]] = field(default_factory=Counter)
    _lost: int = 0
    unreadable: int = 0  # events whose target is not an operation (an unresolved path)
    stopped: str | None = None  # why the session ended early (container stopped, ...)

    def observe(self, op: Operation, comm: str | None, count: int = 1) -> None:
        with self._lock:
            self._ops[(op, comm)] += count

    def denied(self, op: Operation, ref: RuleRef, count: int = 1) -> None:
        with self._lock:
            self._denied[(op, ref.policy, ref.rule)] += count

    def lost(self, count: int) -> None:
        with self._lock:
            self._lost += count

    def drain(self) -> dict[str, Any]:
        """What arrived since the last drain, as the message sent to the client."""
        with self._lock:
            ops, denied, lost = self._ops, self._denied, self._lost
            self._ops, self._denied, self._lost = Counter(), Counter(), 0
        return {
            "ops": [[op.hook, to_target(op), n, comm] for (op, comm), n in ops.items()],
            "denied": [[op.hook, to_target(op), n, p, r] for (op, p, r), n in denied.items()],
            "lost": lost,
        }


# --- the daemon's registry ------------------------------------------------------------------


class LearnSessions:
    """Thread-safe: the ring-buffer thread routes events while status threads start/stop."""

    def __init__(self, classes: Iterable[str] = KERNEL_CLASSES) -> None:
        self.classes = tuple(c for c in POSTURE_CLASSES if c in set(classes))
        self._lock = threading.Lock()
        self._by_id: dict[str, LearnSession] = {}
        self._by_cgroup: dict[int, LearnSession] = {}
        # Copies of sessions that ended, by cgroup: events still in the ring buffer when a
        # session ends name its copies, and must not reach the audit log under those names.
        self._ended: dict[int, Mapping[str, Policy]] = {}

    def begin(
        self, facts: ContainerFacts, container_id: str, cgroup_id: int, selected: Sequence[Policy]
    ) -> LearnSession:
        _, copies = learning_policies(selected, self.classes)
        session = LearnSession(facts, container_id, cgroup_id, copies, self.classes)
        with self._lock:
            if container_id in self._by_id:
                raise EnforcerError(
                    f"container {facts.name} is already learning", hint="one enforcer learn per container at a time"
                )
            self._by_id[container_id] = session
            self._by_cgroup[cgroup_id] = session
            self._ended.pop(cgroup_id, None)
        return session

    def end(self, session: LearnSession) -> None:
        with self._lock:
            if self._by_id.get(session.container_id) is session:
                del self._by_id[session.container_id]
                self._by_cgroup.pop(session.cgroup_id, None)
                self._ended[session.cgroup_id] = dict(session.copies)
                while len(self._ended) > MAX_ENDED:
                    del self._ended[next(iter(self._ended))]  # the oldest

    def learning(self, container_id: str) -> bool:
        with self._lock:
            return container_id in self._by_id

    def selection(self, container_id: str, selected: Sequence[Policy]) -> tuple[Policy, ...]:
        """The policies to enforce the container with: the learning selection while it learns."""
        with self._lock:
            session = self._by_id.get(container_id)
        if session is None:
            return tuple(selected)
        policies, copies = learning_policies(selected, self.classes)
        session.copies = copies  # a reload while learning: events name the new copies
        return policies

    def container_gone(self, container_id: str) -> None:
        with self._lock:
            session = self._by_id.get(container_id)
        if session is not None:
            session.stopped = "the container stopped"

    def route(
        self,
        cgroup_id: int,
        ref: RuleRef,
        action: str,
        hook: str,
        target: Mapping[str, Any],
        comm: str | None,
        count: int = 1,
    ) -> RuleRef | None:
        """Give an event of a learning container to its session; returns the ref to write
        to the audit log (the real policy's), or None when the event is the session's
        alone. Events of containers that do not learn are returned unchanged."""
        if not self._by_cgroup and not ref.policy.startswith(LEARN_PREFIX):
            return ref  # nobody learns: the common case costs two cheap tests
        with self._lock:
            session = self._by_cgroup.get(cgroup_id)
            ended = self._ended.get(cgroup_id)
        if session is None:
            return self._straggler(ended, ref)
        audit_ref = self._real_ref(session.copies, ref)
        try:
            op = parse_operation(hook, target)
        except ValueError:
            op = None
        if op is None:
            session.unreadable += count
        elif action == "deny":
            session.denied(op, audit_ref or ref, count)
        else:
            session.observe(op, comm, count)
        return audit_ref

    def route_loss(self, cgroup_id: int, ref: RuleRef, count: int) -> RuleRef | None:
        """A ring-buffer loss: the session's if only learning made those events, else the
        audit log's too (returned ref), and the session counts it either way."""
        with self._lock:
            session = self._by_cgroup.get(cgroup_id)
            ended = self._ended.get(cgroup_id)
        if session is None:
            return self._straggler(ended, ref)
        session.lost(count)
        return self._real_ref(session.copies, ref)

    @classmethod
    def _straggler(cls, ended: Mapping[str, Policy] | None, ref: RuleRef) -> RuleRef | None:
        """An event of a container that no longer learns: a learning policy's event was
        made by the session that ended (the real policy's name, or nobody's)."""
        if not ref.policy.startswith(LEARN_PREFIX):
            return ref
        return cls._real_ref(ended or {}, ref)

    @staticmethod
    def _real_ref(copies: Mapping[str, Policy], ref: RuleRef) -> RuleRef | None:
        if ref.policy == SESSION_POLICY:
            return None
        real = copies.get(ref.policy)
        if real is None:
            return ref  # not a learning policy (e.g. an unresolved path): as it was
        if real_action(real, ref.rule) in (None, "allow"):
            return None  # allowed by the real policy: seen only because we learn
        return RuleRef(real.name, ref.rule)


# --- the stream to the client ---------------------------------------------------------------


class Channel(Protocol):
    def send(self, message: Mapping[str, Any]) -> None: ...  # OSError when the client is gone

    def client_done(self) -> bool: ...  # the client closed or half-closed its side


@dataclass(frozen=True)
class LearnTarget:
    """A running container the daemon can start a session for."""

    facts: ContainerFacts
    container_id: str
    cgroup_id: int
    selected: Sequence[Policy]


def serve_learn(
    sessions: LearnSessions,
    request: Mapping[str, Any],
    channel: Channel,
    find: Callable[[str], LearnTarget | None],
    reenforce: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """One learn request, start to end: find the container, enforce it with the learning
    selection, stream observations every BATCH_SECONDS until the duration passes, the
    client closes, or the container stops; then enforce it with its real policies again.

    `reenforce(container_id)` re-runs the daemon's enforcement of the container (which asks
    `sessions.selection`). Errors before the session started are one message {"error"}."""
    name = request.get("container")
    duration = request.get("duration")
    if not isinstance(name, str) or not name:
        channel.send({"error": "learn needs a container name"})
        return
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0):
        channel.send({"error": f"bad duration {duration!r}: a number of seconds > 0"})
        return
    target = find(name)
    if target is None:
        channel.send({"error": f"no running container named {name!r} is enforced by this daemon (see enforcer status)"})
        return
    try:
        session = sessions.begin(target.facts, target.container_id, target.cgroup_id, target.selected)
    except EnforcerError as exc:
        channel.send({"error": str(exc)})
        return
    try:
        try:
            reenforce(target.container_id)
        except Exception as exc:  # noqa: BLE001 - enforcement is all or nothing: the
            sessions.end(session)  # container keeps the ruleset it had
            channel.send({"error": f"cannot learn {name}: {exc}"})
            return
        log.info("learning started", container=name, classes=list(session.classes), duration=duration)
        started = clock()
        channel.send(
            {
                "learning": {
                    "container": target.facts.to_json(),
                    "classes": list(session.classes),
                    "not_learned": [c for c in POSTURE_CLASSES if c not in session.classes],
                    "duration": duration,
                }
            }
        )
        reason = "stopped by the client"
        while True:
            sleep(BATCH_SECONDS)
            _send_batch(channel, session)
            if session.stopped:
                reason = session.stopped
                break
            if duration is not None and clock() - started >= duration:
                reason = "duration reached"
                break
            if channel.client_done():
                break
    except OSError:
        reason = "the client went away"
    finally:
        sessions.end(session)
        if session.stopped is None:
            try:
                reenforce(target.container_id)  # back to its real policies
            except Exception:
                log.exception("restoring the container's policies after learning failed", container=name)
    log.info("learning ended", container=name, reason=reason)
    try:
        _send_batch(channel, session)  # what arrived before the real policies were back
        channel.send({"end": {"reason": reason, "unreadable": session.unreadable}})
    except OSError:
        pass


def _send_batch(channel: Channel, session: LearnSession) -> None:
    batch = session.drain()
    ops, denied = batch["ops"], batch["denied"]
    while len(ops) > MAX_BATCH or len(denied) > MAX_BATCH:
        channel.send({"ops": ops[:MAX_BATCH], "denied": denied[:MAX_BATCH], "lost": 0})
        ops, denied = ops[MAX_BATCH:], denied[MAX_BATCH:]
    channel.send({"ops": ops, "denied": denied, "lost": batch["lost"]})
