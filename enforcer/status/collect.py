"""Daemon state -> StatusDocument. Pure functions of what the daemon hands in, so the
daemon's snapshot() stays a few lines and this is testable without a kernel."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from enforcer.compiler.rules import RuleRef, RuleTable
from enforcer.containers.model import ContainerInfo
from enforcer.policy.loader import PolicySet
from enforcer.policy.merge import POSTURE_CLASSES, PostureDecision, merge_postures, posture_rule_id
from enforcer.policy.model import RULE_KINDS, Policy
from enforcer.status.model import (
    AuditStats,
    ContainerStatus,
    MapFill,
    NotEnforced,
    OpenCacheStatus,
    PolicyFileStatus,
    RuleCounter,
    StatusDocument,
)

# Which rule kinds an enforcement (by its `name`) enforces, when it does not say (`kinds`).
KINDS_BY_ENFORCEMENT: dict[str, tuple[str, ...]] = {"file": ("file", "exec")}
# Maps whose fill level matters to an operator (a full map means new rules/containers fail).
WATCHED_MAPS = ("containers", "counters", "path_rules", "dev_rules", "net4_rules", "net6_rules", "sock_rules")
# enum abi_stat name -> AuditStats field
_STATS = {
    "STAT_EVENTS_LOST": "dropped",
    "STAT_DENIED": "denied",
    "STAT_AUDITED": "audited",
    "STAT_UNRESOLVED": "unresolved",
    "STAT_SCRATCH_BUSY": "scratch_busy",
    "STAT_COUNTER_FULL": "counter_full",
    "STAT_KILL_FAILED": "kill_failed",
}
_RULE_RE = re.compile(r"^([a-z]+)\[(\d+)\]$")


@dataclass(frozen=True)
class TrackedContainer:
    info: ContainerInfo
    policies: tuple[str, ...]
    ruleset: int | None
    # False: no ruleset is in force for it (its enforcement failed); `error` says why. With
    # enforced and an error, an update failed and its previous ruleset stays in force.
    enforced: bool = True
    error: str | None = None
    start_window: float | None = None  # seconds (enforcer.containers.startwindow)


class HasOpenCache(Protocol):
    """The part of kernel.open_cache.OpenCache used here."""

    @property
    def enabled(self) -> bool: ...

    @property
    def why_off(self) -> str | None: ...


def open_cache_status(cache: HasOpenCache | None, kernel: Mapping[str, int]) -> OpenCacheStatus | None:
    if cache is None:
        return None
    return OpenCacheStatus(enabled=cache.enabled, why_off=cache.why_off, hits=kernel.get("STAT_OPEN_CACHED", 0))


class HasMapShape(Protocol):
    """The part of pybpf.Map used here."""

    @property
    def max_entries(self) -> int: ...

    def count(self) -> int: ...


def rule_action(policies: PolicySet | None, ref: RuleRef) -> str:
    """What a counted rule did: deny, or audit (an audit rule, or any rule of an audit-mode
    policy). Counters only exist for rules that denied or audited."""
    policy = policies.get(ref.policy) if policies else None
    m = _RULE_RE.match(ref.rule)
    if policy is None or m is None or m.group(1) not in RULE_KINDS:
        return "deny"  # enforcer-internal refs (unresolved paths) deny
    rules = policy.spec.rules(m.group(1))  # type: ignore[arg-type]
    idx = int(m.group(2))
    action = rules[idx].action if idx < len(rules) else "deny"
    if policy.spec.mode == "audit" or action == "audit":
        return "audit"
    return "deny"


# enum abi_posture follows POSTURE_CLASSES; a posture decision counts under this base + class
RULE_POSTURE_BASE = 0xFFFFFF00


def _selected_postures(tracked: TrackedContainer, policies: PolicySet | None) -> dict[str, PostureDecision]:
    selected = [p for name in tracked.policies if policies and (p := policies.get(name)) is not None]
    return merge_postures(selected)


def _posture_ref(rule_id: int, tracked: TrackedContainer, policies: PolicySet | None) -> RuleRef | None:
    """A posture counter ("posture.exec") named after the selecting policy that set it."""
    offset = rule_id - RULE_POSTURE_BASE
    if not 0 <= offset < len(POSTURE_CLASSES):
        return None
    cls = POSTURE_CLASSES[offset]
    decision = _selected_postures(tracked, policies).get(cls)
    return RuleRef(decision.policy if decision and decision.policy else "enforcer", posture_rule_id(cls))


def _posture_action(ref: RuleRef, tracked: TrackedContainer, policies: PolicySet | None) -> str | None:
    if not ref.rule.startswith("posture."):
        return None
    decision = _selected_postures(tracked, policies).get(ref.rule.removeprefix("posture."))
    return "audit" if decision is not None and decision.action == "audit" else "deny"


def container_status(
    tracked: TrackedContainer,
    counts: Mapping[int, int],
    table: RuleTable,
    policies: PolicySet | None,
) -> ContainerStatus:
    counters = []
    for rule_id, n in sorted(counts.items()):
        ref = (
            table.ref_for(rule_id) or _posture_ref(rule_id, tracked, policies) or RuleRef("enforcer", f"rule#{rule_id}")
        )
        action = _posture_action(ref, tracked, policies) or rule_action(policies, ref)
        counters.append(RuleCounter(policy=ref.policy, rule=ref.rule, action=action, count=n))
    info = tracked.info
    return ContainerStatus(
        id=info.id,
        name=info.name,
        image=info.image,
        cgroup_id=info.cgroup.id,
        policies=tracked.policies,
        ruleset=tracked.ruleset,
        enforced=tracked.enforced,
        error=tracked.error,
        counters=tuple(sorted(counters, key=lambda c: (c.policy, c.rule))),
        start_window_seconds=tracked.start_window,
    )


def start_window_note(policies: Iterable[Policy], containers: Sequence[TrackedContainer]) -> str | None:
    """A plain sentence when a container started without the runtime wrapper while a policy
    with a selector was loaded: that policy was not in force for its first moments."""
    from enforcer.policy.selector import every_container_policies

    loaded = tuple(policies)
    every = {p.name for p in every_container_policies(loaded)}
    specific = sorted(p.name for p in loaded if p.name not in every)
    windows = [t for t in containers if t.start_window]
    if not specific or not windows:
        return None
    worst = max(windows, key=lambda t: t.start_window or 0.0)
    return (
        f"{len(windows)} container(s) started without the enforcer-runc runtime wrapper: "
        f"policies with a selector ({', '.join(specific)}) were not in force from their first "
        f"instruction (longest start window {worst.start_window:.3f} s, {worst.info.name}); "
        "policies selecting every container were. Close the window with `enforcer "
        "install-runtime` and a dockerd restart."
    )


def policy_files(policies: PolicySet | None) -> tuple[PolicyFileStatus, ...]:
    if policies is None:
        return ()
    return tuple(
        PolicyFileStatus(
            file=f.file,
            ok=f.ok,
            policies=tuple(p.policy.name for p in f.policies),
            errors=tuple(str(e) for e in f.errors),
            kept_previous=f.kept_previous,
        )
        for f in policies.files
    )


def enforced_kinds(enforcements: Iterable[object]) -> set[str]:
    kinds: set[str] = set()
    for enf in enforcements:
        name = str(getattr(enf, "name", ""))
        kinds.update(getattr(enf, "kinds", None) or KINDS_BY_ENFORCEMENT.get(name, (name,)))
    return kinds


def not_enforced(policies: Iterable[Policy], kinds: set[str], reasons: Mapping[str, str]) -> tuple[NotEnforced, ...]:
    """Rule kinds some loaded policy uses that no loaded enforcement handles, and why."""
    out = []
    for kind in RULE_KINDS:
        if kind in kinds:
            continue
        users = tuple(p.name for p in policies if p.spec.rules(kind))
        if users:
            why = reasons.get(kind) or (
                f"no {kind} enforcement is loaded by this daemon "
                f"(enforced here: {', '.join(sorted(kinds)) or 'nothing'})"
            )
            out.append(NotEnforced(what=f"{kind} rules", why=why, policies=users))
    return tuple(out)


def audit_stats(
    kernel: Mapping[str, int], records: int, events: int, write_errors: int, log: str, losses: int = 0
) -> AuditStats:
    fields = {_STATS[k]: v for k, v in kernel.items() if k in _STATS}
    return AuditStats(records=records, events=events, write_errors=write_errors, log=log, losses=losses, **fields)


def map_fill(maps: Mapping[str, HasMapShape]) -> tuple[MapFill, ...]:
    return tuple(
        MapFill(name=name, entries=maps[name].count(), max_entries=maps[name].max_entries)
        for name in WATCHED_MAPS
        if name in maps
    )


def pinned_links(pin_root: Path) -> tuple[str, ...]:
    links = pin_root / "links"
    try:
        return tuple(sorted(p.name for p in links.iterdir()))
    except OSError:
        return ()


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StatusInputs:
    """Everything the daemon hands over, read under its lock."""

    started_at: float  # time.time() at start
    policies_dir: Path
    pin_root: Path
    policies: PolicySet | None
    table: RuleTable
    containers: Sequence[TrackedContainer]
    counters: Callable[[int], Mapping[int, int]]  # cgroup id -> rule id -> count
    kernel_stats: Mapping[str, int]
    enforcements: Sequence[object]
    maps: Mapping[str, HasMapShape]
    audit_records: int = 0
    audit_events: int = 0
    audit_write_errors: int = 0
    audit_log: str = "-"
    audit_losses: int = 0  # sum of counts of the audit_loss records written
    docker_connected: bool = False
    reload_failures: int = 0
    enforcement_failures: int = 0
    not_enforced_reasons: Mapping[str, str] | None = None
    open_cache: HasOpenCache | None = None


def build(inputs: StatusInputs) -> StatusDocument:
    kinds = enforced_kinds(inputs.enforcements)
    features = [f"{k} rules" for k in RULE_KINDS if k in kinds]
    features += [f"pinned link {name}" for name in pinned_links(inputs.pin_root)]
    loaded = inputs.policies.policies if inputs.policies else ()
    return StatusDocument(
        pid=os.getpid(),
        started_at=iso_utc(inputs.started_at),
        uptime_seconds=round(time.time() - inputs.started_at, 3),
        docker_connected=inputs.docker_connected,
        policies_dir=str(inputs.policies_dir),
        pin_root=str(inputs.pin_root),
        kernel_features=tuple(features),
        containers=tuple(
            container_status(t, inputs.counters(t.info.cgroup.id), inputs.table, inputs.policies)
            for t in sorted(inputs.containers, key=lambda t: t.info.name)
        ),
        policy_files=policy_files(inputs.policies),
        policy_reload_failures=inputs.reload_failures,
        enforcement_failures=inputs.enforcement_failures,
        not_enforced=not_enforced(loaded, kinds, inputs.not_enforced_reasons or {}),
        start_window=start_window_note(loaded, inputs.containers),
        audit=audit_stats(
            inputs.kernel_stats,
            inputs.audit_records,
            inputs.audit_events,
            inputs.audit_write_errors,
            inputs.audit_log,
            inputs.audit_losses,
        ),
        open_cache=open_cache_status(inputs.open_cache, inputs.kernel_stats),
        maps=map_fill(inputs.maps),
    )
