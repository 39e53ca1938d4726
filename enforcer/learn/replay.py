"""Replay: what given policies would do to recorded operations (SPEC "Learning and replay").

Each operation is judged by the policies that select its container (by name, image and
labels, as the daemon selects them), merged as the daemon merges them, with the reference
decisions (operations.decide). Denials and audits are folded by (rule, policy, operation)
with their counts; allowed operations are only counted.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from enforcer.learn.operations import Operation, decide, to_target
from enforcer.learn.recording import ContainerFacts, Events
from enforcer.policy.merge import EffectiveRule, Postures, merge, merge_postures
from enforcer.policy.model import Policy
from enforcer.policy.selector import policies_for


@dataclass(frozen=True)
class Finding:
    """One folded line: an operation the rule `rule` of `policy` would deny or audit."""

    action: str
    policy: str
    rule: str
    container: str
    op: Operation


@dataclass
class ReplayResult:
    findings: Counter[Finding] = field(default_factory=Counter)
    operations: int = 0  # judged
    denied: int = 0
    audited: int = 0
    no_container: int = 0  # records naming no container: no policy can be chosen
    truncated: int = 0  # path not resolved by the kernel: not decidable
    lost: int = 0  # not itemised by the file (ring-buffer losses, audit_loss)
    denied_then: int = 0  # a recording's operations denied while it was made: they never ran
    containers: set[str] = field(default_factory=set)

    @property
    def allowed(self) -> int:
        return self.operations - self.denied - self.audited

    @property
    def exit_code(self) -> int:
        return 1 if self.denied else 0


def _wanted(facts: ContainerFacts, container: str | None) -> bool:
    if container is None:
        return True
    if facts.name is not None and fnmatch.fnmatchcase(facts.name, container):
        return True
    return facts.id is not None and len(container) >= 4 and facts.id.startswith(container)


def replay(policies: Sequence[Policy], events: Events, container: str | None = None) -> ReplayResult:
    result = ReplayResult(truncated=events.truncated, lost=events.lost, denied_then=events.denied)
    merged: dict[tuple[Any, ...], tuple[tuple[EffectiveRule, ...], Postures]] = {}
    for obs in events.observed:
        facts = obs.container
        if facts is None:
            result.no_container += obs.count
            continue
        if not _wanted(facts, container):
            continue
        if facts.key not in merged:
            chosen = policies_for(policies, facts.name or "", facts.image or "", facts.labels or {})
            merged[facts.key] = (merge(chosen), merge_postures(chosen))
        rules, postures = merged[facts.key]
        name = facts.name or facts.image or "?"
        result.containers.add(name)
        result.operations += obs.count
        d = decide(obs.op, rules, postures)
        if d is None or d.action == "allow":
            continue
        if d.action == "deny":
            result.denied += obs.count
        else:
            result.audited += obs.count
        result.findings[Finding(d.action, d.policy, d.rule_id, name, obs.op)] += obs.count
    return result


# --- output ---------------------------------------------------------------------------------


def summary_line(r: ReplayResult) -> str:
    n = len(r.containers)
    ops = f"{r.operations} operation{'s' if r.operations != 1 else ''}"
    line = (
        f"replay: {ops} of {n} container{'s' if n != 1 else ''}: "
        f"{r.denied} would be denied, {r.audited} audited, {r.allowed} allowed"
    )
    notes = []
    if r.truncated:
        notes.append(f"{r.truncated} not decidable (path too long for the kernel to resolve)")
    if r.no_container:
        notes.append(f"{r.no_container} skipped (record names no container)")
    if r.lost:
        notes.append(f"{r.lost} lost by the recording, not judged")
    if r.denied_then:
        notes.append(f"{r.denied_then} denied while recorded (never ran), not judged")
    return line + ("; " + "; ".join(notes) if notes else "")


def render_text(r: ReplayResult) -> list[str]:
    """Groups by (action, policy, rule), denials first, the biggest first; then the summary."""
    groups: dict[tuple[str, str, str], list[tuple[Finding, int]]] = {}
    for f, count in r.findings.items():
        groups.setdefault((f.action, f.policy, f.rule), []).append((f, count))
    many = len(r.containers) > 1
    out: list[str] = []
    order = sorted(groups.items(), key=lambda kv: (kv[0][0] != "deny", -sum(c for _, c in kv[1]), kv[0]))
    for (action, policy, rule), items in order:
        total = sum(c for _, c in items)
        verb = "denied" if action == "deny" else "audited"
        out.append(f"{verb} by {rule} of policy {policy}: {total} operation{'s' if total != 1 else ''}")
        for f, count in sorted(items, key=lambda fc: (-fc[1], fc[0].container, fc[0].op.describe())):
            who = f"{f.container}: " if many else ""
            out.append(f"  {count:>7}  {who}{f.op.describe()}")
    out.append(summary_line(r))
    return out


def to_json(r: ReplayResult) -> dict[str, Any]:
    return {
        "ok": r.denied == 0,
        "operations": r.operations,
        "denied": r.denied,
        "audited": r.audited,
        "allowed": r.allowed,
        "not_decidable": r.truncated,
        "no_container": r.no_container,
        "lost": r.lost,
        "denied_while_recorded": r.denied_then,
        "containers": sorted(r.containers),
        "findings": [
            {
                "action": f.action,
                "policy": f.policy,
                "rule": f.rule,
                "container": f.container,
                "hook": f.op.hook,
                "target": to_target(f.op),
                "count": count,
            }
            for f, count in sorted(
                r.findings.items(),
                key=lambda fc: (fc[0].action != "deny", -fc[1], fc[0].container, fc[0].rule, fc[0].op.describe()),
            )
        ],
    }
