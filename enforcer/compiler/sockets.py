"""Socket rules -> sock_rules entries, one per (family, type) a rule names (type 0: any).

The kernel looks up (family, type), then (family, any): a rule naming the type is the more
specific (reference.decide_socket). Rules naming the same key are a tie: deny > audit > allow,
then merge order.

cgroup/sock_create runs for the inet families only; rules for other families (packet,
netlink, ...) are enforced by the LSM socket_create program where BPF-LSM is available.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from enforcer.compiler.paths import ACTION_CODES, Slot, stronger
from enforcer.compiler.rules import RuleRef, RuleTable
from enforcer.policy.merge import EffectiveRule
from enforcer.policy.model import ADDRESS_FAMILIES, SocketRule

ANY_TYPE = 0
# the families the cgroup/sock_create hook sees (inet_create, inet6_create)
CGROUP_FAMILIES = frozenset({ADDRESS_FAMILIES["inet"], ADDRESS_FAMILIES["inet6"]})
FAMILY_NAMES = {number: name for name, number in reversed(ADDRESS_FAMILIES.items())}


@dataclass(frozen=True, order=True)
class SocketKey:
    family: int
    type: int  # SOCK_*; ANY_TYPE = every type


@dataclass
class CompiledSockets:
    entries: dict[SocketKey, Slot] = field(default_factory=dict)

    def has_enforcing(self) -> bool:
        return any(s.enforcing for s in self.entries.values())

    def families_beyond_cgroup(self) -> tuple[str, ...]:
        """Families with deny/audit rules that only the LSM program sees (e.g. packet)."""
        fams = {k.family for k, s in self.entries.items() if k.family not in CGROUP_FAMILIES and s.enforcing}
        return tuple(sorted(FAMILY_NAMES.get(f, str(f)) for f in fams))


def compile_sockets(rules: Iterable[EffectiveRule], table: RuleTable) -> CompiledSockets:
    out = CompiledSockets()
    for eff in rules:
        if not isinstance(eff.rule, SocketRule):
            continue
        slot = Slot(ACTION_CODES[eff.action], table.id_for(RuleRef(eff.policy, eff.rule_id)))
        types = eff.rule.type_numbers
        for family in sorted(eff.rule.family_numbers):
            for typ in sorted(types) if types is not None else (ANY_TYPE,):
                key = SocketKey(family, typ)
                out.entries[key] = stronger(out.entries.get(key), slot)
    return out
