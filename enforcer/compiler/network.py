"""Network rules -> LPM trie entries: one per (direction, CIDR) any rule names.

The kernel does one longest-prefix lookup, so each entry carries everything that can decide
for an address under its prefix: the (port range, protocol) of every rule whose CIDR is
that prefix or a shorter one covering it, sorted most specific first (the order of
reference.decide_network: longer prefix, narrower port range, named protocol; then deny > audit >
allow; then merge order). The kernel takes the first entry that matches the port and
protocol. An entry that an earlier one with the same ports and protocol hides is dropped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from enforcer.compiler.paths import ACTION_CODES, enforcing
from enforcer.compiler.rules import RuleRef, RuleTable
from enforcer.errors import EnforcerError
from enforcer.policy.merge import EffectiveRule
from enforcer.policy.model import NetworkRule
from enforcer.policy.reference import ALL_PORTS, IP_PROTOCOLS, network_specificity

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
PROTO_ANY = 0


@dataclass(frozen=True)
class NetPrefix:
    direction: str  # "egress" | "ingress"
    network: Network


@dataclass(frozen=True)
class NetEntry:
    port_lo: int
    port_hi: int
    protocol: int  # IPPROTO_*, PROTO_ANY
    action: int  # ACT_*
    rule_id: int


@dataclass(frozen=True)
class _Atom:
    network: Network
    entry: NetEntry
    order: tuple[object, ...]  # sort key: most specific, most severe, earliest first


@dataclass
class CompiledNetwork:
    entries: dict[NetPrefix, tuple[NetEntry, ...]] = field(default_factory=dict)

    def has_enforcing(self, direction: str) -> bool:
        return any(p.direction == direction and any(enforcing(e.action) for e in es) for p, es in self.entries.items())


def _atoms(rules: Iterable[EffectiveRule], table: RuleTable) -> dict[tuple[str, int], list[_Atom]]:
    out: dict[tuple[str, int], list[_Atom]] = {}
    for index, eff in enumerate(r for r in rules if isinstance(r.rule, NetworkRule)):
        rule = eff.rule
        assert isinstance(rule, NetworkRule)
        action = ACTION_CODES[eff.action]
        rule_id = table.id_for(RuleRef(eff.policy, eff.rule_id))
        proto = IP_PROTOCOLS.get(rule.protocol, PROTO_ANY)
        for net in rule.networks:
            for lo, hi in rule.ports or (ALL_PORTS,):
                spec = network_specificity(net.prefixlen, (lo, hi), rule.protocol)
                order = (*(-x for x in spec), -action, index)
                atom = _Atom(net, NetEntry(lo, hi, proto, action, rule_id), order)
                out.setdefault((rule.direction, net.version), []).append(atom)
    return out


def compile_network(rules: Iterable[EffectiveRule], table: RuleTable, max_entries: int) -> CompiledNetwork:
    """`max_entries`: ABI_NET_SLOTS, what one trie value holds."""
    out = CompiledNetwork()
    for (direction, _version), atoms in _atoms(rules, table).items():
        for net in {a.network for a in atoms}:
            covering = sorted((a for a in atoms if net.subnet_of(a.network)), key=lambda a: a.order)  # type: ignore[arg-type]
            entries: list[NetEntry] = []
            seen: set[tuple[int, int, int]] = set()
            for a in covering:
                what = (a.entry.port_lo, a.entry.port_hi, a.entry.protocol)
                if what not in seen:
                    seen.add(what)
                    entries.append(a.entry)
            if len(entries) > max_entries:
                raise EnforcerError(
                    f"{len(entries)} network port/protocol entries apply to {direction} {net}; "
                    f"the kernel holds at most {max_entries} per prefix",
                    hint="merge port lists into ranges, or split the rules over fewer overlapping CIDRs",
                )
            out.entries[NetPrefix(direction, net)] = tuple(entries)
    return out
