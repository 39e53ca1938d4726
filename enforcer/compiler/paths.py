"""File and exec rules -> path_rules entries (one per path or directory a rule names).

The kernel looks up the opened file's exact path, then every directory above it, deepest
first, and per access class (read, write) takes the first rule it meets: that is "most
specific wins". Rules that name the same path with the same kind are a tie, settled here:
deny beats audit beats allow, then merge order.

Every directory above a path a file (exec) rule names also gets a file_dir (exec_dir) entry,
with no rule in it if no dir rule names it, and that entry says a rule lies below it
(`CompiledPaths.below`). So the entries along any path are a prefix of it: the kernel hashes
the path from the root down, one component at a time, and stops at the first directory
below which no rule lies. An open's cost is flat in the number of rules, and a file no rule
is near costs a few components, however deep it is.

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


def enforcing(action: int) -> bool:
    """Can a rule with this action code deny or audit? (An allow only decides.)"""
    return action >= ACTION_CODES["audit"]


@dataclass(frozen=True)
class Slot:
    action: int  # ACT_*
    rule_id: int

    @property
    def enforcing(self) -> bool:
        return enforcing(self.action)


def any_enforcing(slots: Iterable[Slot | None]) -> bool:
    return any(s is not None and s.enforcing for s in slots)


def stronger(current: Slot | None, new: Slot) -> Slot:
    """Of two rules naming the same thing: the more severe; the earlier one on a tie."""
    return new if current is None or new.action > current.action else current


def strongest(slots: Iterable[Slot | None]) -> Slot | None:
    best: Slot | None = None
    for s in slots:
        if s is not None:
            best = stronger(best, s)
    return best


@dataclass(frozen=True, order=True)
class PathEntry:
    kind: Kind
    path: str


@dataclass
class CompiledPaths:
    entries: dict[PathEntry, list[Slot | None]] = field(default_factory=dict)
    below: set[PathEntry] = field(default_factory=set)  # dir-kind entries with a rule path under them

    def _put(self, entry: PathEntry, slot_index: int, slot: Slot) -> None:
        slots = self.entries.setdefault(entry, [None, None])
        slots[slot_index] = stronger(slots[slot_index], slot)

    def has_enforcing(self, prefix: str) -> bool:
        """True when some rule of this class can deny or audit (else no walk is needed)."""
        return any(e.kind.startswith(prefix) and any_enforcing(slots) for e, slots in self.entries.items())


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
    _add_markers(out)
    _add_guards(out)
    return out


def _add_markers(out: CompiledPaths) -> None:
    """A dir-kind entry (a rule's, or an empty marker) on every ancestor of every rule path,
    each marked as having a rule below it."""
    for ns in ("file", "exec"):
        dir_kind: Kind = "file_dir" if ns == "file" else "exec_dir"
        marked: set[str] = set()
        for e in [e for e in out.entries if e.kind in (f"{ns}_exact", dir_kind)]:
            prefix = e.path
            if prefix == "/":  # a rule on "/" itself: its own entry is the marker
                out.entries.setdefault(PathEntry(dir_kind, "/"), [None, None])
            while prefix != "/":
                prefix = prefix.rsplit("/", 1)[0] or "/"
                if prefix in marked:
                    break  # and so is every ancestor
                marked.add(prefix)
                out.entries.setdefault(PathEntry(dir_kind, prefix), [None, None])
                out.below.add(PathEntry(dir_kind, prefix))


def _add_guards(out: CompiledPaths) -> None:
    enforcing_paths = [
        (e.path, top) for e, slots in list(out.entries.items()) if (top := strongest(slots)) and top.enforcing
    ]
    for path, slot in sorted(enforcing_paths, key=lambda e: e[0]):  # Slots do not order
        prefix = path
        while prefix != "/":  # "/" itself cannot be renamed or removed
            entry = PathEntry("guard", prefix)
            have = out.entries.get(entry)
            guarded = have[READ] if have is not None else None
            if guarded is not None and guarded.action >= slot.action:
                break  # an earlier rule guarded this prefix, and so every ancestor, as strongly
            out._put(entry, READ, slot)
            prefix = prefix.rsplit("/", 1)[0] or "/"
