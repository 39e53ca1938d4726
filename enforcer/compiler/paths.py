"""File and exec rules -> path_rules entries (one per path or directory a rule names).

The kernel looks up the opened file's exact path, then every directory above it, deepest
first, and per access class (read, write) takes the first rule it meets: that is "most
specific wins". Rules that name the same path with the same kind are a tie, settled here:
deny beats audit beats allow, then merge order.

"guard" entries mark every path a deny/audit rule names and every directory above it: the
kernel refuses to rename, remove or hard-link those names, so a protected file cannot be
given a name no rule matches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from enforcer.compiler.rules import RuleRef, RuleTable
from enforcer.policy.merge import EffectiveRule
from enforcer.policy.model import ExecRule, FileRule
from enforcer.policy.paths import normalize_path

ACTION_CODES = {"allow": 1, "audit": 2, "deny": 3}  # enum abi_action
READ, WRITE = 0, 1  # enum abi_access slots
Kind = Literal["file_exact", "file_dir", "exec_exact", "exec_dir", "guard"]


@dataclass(frozen=True)
class Slot:
    action: int   # ACT_*
    rule_id: int


@dataclass(frozen=True, order=True)
class PathEntry:
    kind: Kind
    path: str


@dataclass
class CompiledPaths:
    entries: dict[PathEntry, list[Slot | None]] = field(default_factory=dict)

    def _put(self, entry: PathEntry, slot_index: int, slot: Slot) -> None:
        slots = self.entries.setdefault(entry, [None, None])
        cur = slots[slot_index]
        if cur is None or slot.action > cur.action:
            slots[slot_index] = slot

    def has_enforcing(self, prefix: str) -> bool:
        """True when some rule of this class can deny or audit (else no walk is needed)."""
        return any(
            e.kind.startswith(prefix) and any(s and s.action >= ACTION_CODES["audit"] for s in slots)
            for e, slots in self.entries.items()
        )

    def dir_depth_mask(self, kind: Kind) -> int:
        mask = 0
        for e in self.entries:
            if e.kind == kind:
                depth = len([c for c in e.path.split("/") if c])
                mask |= 1 << min(depth, 63)
        return mask


def _slots_for(rule: FileRule) -> tuple[int, ...]:
    access = rule.access_set
    return tuple(s for s, name in ((READ, "read"), (WRITE, "write")) if name in access)


def compile_paths(rules: Iterable[EffectiveRule], table: RuleTable) -> CompiledPaths:
    out = CompiledPaths()
    for eff in rules:
        if not isinstance(eff.rule, FileRule | ExecRule):
            continue
        slot = Slot(ACTION_CODES[eff.action], table.id_for(RuleRef(eff.policy, eff.rule_id)))
        prefix = "file" if isinstance(eff.rule, FileRule) else "exec"
        slots = _slots_for(eff.rule) if isinstance(eff.rule, FileRule) else (READ,)
        for paths, suffix in ((eff.rule.paths, "exact"), (eff.rule.dirs, "dir")):
            for p in paths:
                entry = PathEntry(f"{prefix}_{suffix}", normalize_path(p))  # type: ignore[arg-type]
                for s in slots:
                    out._put(entry, s, slot)
    _add_guards(out)
    return out


def _add_guards(out: CompiledPaths) -> None:
    enforcing = [
        (e.path, max((s for s in slots if s), key=lambda s: s.action))
        for e, slots in list(out.entries.items())
        if any(s and s.action >= ACTION_CODES["audit"] for s in slots)
    ]
    for path, slot in sorted(enforcing):
        prefix = path
        while prefix != "/":  # "/" itself cannot be renamed or removed
            entry = PathEntry("guard", prefix)
            have = out.entries.get(entry)
            if have is not None and have[READ] is not None and have[READ].action >= slot.action:
                break  # an earlier rule guarded this prefix, and so every ancestor, as strongly
            out._put(entry, READ, slot)
            prefix = prefix.rsplit("/", 1)[0] or "/"
