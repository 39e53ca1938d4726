"""Numeric rule ids: the kernel reports a rule id, audit records name policy and rule."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class RuleRef:
    policy: str  # metadata.name
    rule: str    # "file[0]"


@dataclass
class RuleTable:
    """Stable ids for rules: the same (policy, rule) keeps its id across recompiles, so
    per-rule counters in the kernel survive an unrelated policy change."""

    _ids: dict[RuleRef, int] = field(default_factory=dict)
    _refs: dict[int, RuleRef] = field(default_factory=dict)

    def id_for(self, ref: RuleRef) -> int:
        rid = self._ids.get(ref)
        if rid is None:
            rid = len(self._ids) + 1  # 0 is RULE_NONE
            self._ids[ref] = rid
            self._refs[rid] = ref
        return rid

    def ref_for(self, rule_id: int) -> RuleRef | None:
        return self._refs.get(rule_id)
