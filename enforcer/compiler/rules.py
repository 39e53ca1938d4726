"""Numeric rule ids: the kernel reports a rule id, audit records name policy and rule."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class RuleRef:
    policy: str  # metadata.name
    rule: str  # "file[0]"


# What records call the kernel's reserved rule ids (enum abi_rule_ids): policy "enforcer".
RESERVED_RULES = {"RULE_UNRESOLVED": "unresolved-path", "RULE_CGROUP_ESCAPE": "leave-container-cgroup"}


def reserved_refs(consts: dict[str, int]) -> dict[int, RuleRef]:
    """Reserved id -> RuleRef, from the ABI's constants (Abi.consts)."""
    return {consts[name]: RuleRef("enforcer", rule) for name, rule in RESERVED_RULES.items() if name in consts}


@dataclass
class RuleTable:
    """Stable ids for rules: the same (policy, rule) keeps its id across recompiles, so
    per-rule counters in the kernel survive an unrelated policy change."""

    _ids: dict[RuleRef, int] = field(default_factory=dict)
    _refs: dict[int, RuleRef] = field(default_factory=dict)
    # The next free id (0 is RULE_NONE). A counter, not max(ids) + 1 per new rule: that
    # made compiling N new rules O(N^2) (100,000 rules took 140 s instead of 1 s).
    _next: int = 1
    # The kernel's own reasons (enum abi_rule_ids above every compiled id): not persisted.
    _reserved: dict[int, RuleRef] = field(default_factory=dict)

    def reserve(self, refs: dict[int, RuleRef]) -> None:
        self._reserved.update(refs)

    def id_for(self, ref: RuleRef) -> int:
        rid = self._ids.get(ref)
        if rid is None:
            rid = self._next
            self._next += 1
            self._ids[ref] = rid
            self._refs[rid] = ref
        return rid

    def ref_for(self, rule_id: int) -> RuleRef | None:
        return self._refs.get(rule_id) or self._reserved.get(rule_id)

    def __len__(self) -> int:
        return len(self._ids)

    def to_json(self) -> list[list[object]]:
        return [[rid, ref.policy, ref.rule] for rid, ref in sorted(self._refs.items())]

    @classmethod
    def from_json(cls, rows: list[list[object]]) -> RuleTable:
        table = cls()
        for rid, policy, rule in rows:
            ref = RuleRef(str(policy), str(rule))
            table._ids[ref] = int(rid)  # type: ignore[call-overload]
            table._refs[int(rid)] = ref  # type: ignore[call-overload]
        table._next = max(table._refs, default=0) + 1
        return table
