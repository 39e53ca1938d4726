"""Device rules -> dev_rules entries, one per (type, major, minor) a rule names.

The kernel looks a device up at up to eight wildcard levels, most specific first (exact
major, then exact minor, then exact type: see reference.decide_device), and per access class
(read, write, mknod) takes the first rule it meets. Rules naming the same (type, major,
minor) are a tie, settled here: deny beats audit beats allow, then merge order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from enforcer.compiler.paths import ACTION_CODES, Slot, any_enforcing, stronger
from enforcer.compiler.rules import RuleRef, RuleTable
from enforcer.policy.merge import EffectiveRule
from enforcer.policy.model import DeviceRule
from enforcer.policy.reference import DEVICE_ACCESS_ORDER

READ, WRITE, MKNOD = 0, 1, 2  # enum abi_dev_access slots, in DEVICE_ACCESS_ORDER
# enum abi_dev_match level bits
LEVEL_TYPE_ANY, LEVEL_MINOR_ANY, LEVEL_MAJOR_ANY = 1, 2, 4


@dataclass(frozen=True, order=True)
class DeviceKey:
    type: str  # "char" | "block" | "any"
    major: int | None  # None: any
    minor: int | None

    @property
    def level(self) -> int:
        """The wildcard level the kernel looks this key up at (0 = most specific)."""
        return (
            (LEVEL_TYPE_ANY if self.type == "any" else 0)
            | (LEVEL_MINOR_ANY if self.minor is None else 0)
            | (LEVEL_MAJOR_ANY if self.major is None else 0)
        )


@dataclass
class CompiledDevices:
    entries: dict[DeviceKey, list[Slot | None]] = field(default_factory=dict)

    @property
    def levels(self) -> int:
        """container.dev_levels: bit l set when some entry sits at wildcard level l."""
        mask = 0
        for key in self.entries:
            mask |= 1 << key.level
        return mask

    def has_enforcing(self) -> bool:
        """True when some rule can deny or audit (else the program need not look)."""
        return any(any_enforcing(slots) for slots in self.entries.values())


def _number(value: int | str) -> int | None:
    return None if value == "*" else int(value)


def compile_devices(rules: Iterable[EffectiveRule], table: RuleTable) -> CompiledDevices:
    out = CompiledDevices()
    for eff in rules:
        if not isinstance(eff.rule, DeviceRule):
            continue
        rule = eff.rule
        slot = Slot(ACTION_CODES[eff.action], table.id_for(RuleRef(eff.policy, eff.rule_id)))
        key = DeviceKey(rule.type, _number(rule.major), _number(rule.minor))
        slots = out.entries.setdefault(key, [None, None, None])
        for i, access in enumerate(DEVICE_ACCESS_ORDER):
            if access in rule.access:
                slots[i] = stronger(slots[i], slot)
    return out
