"""Rulesets in the kernel, shared by selection.

The policies selecting a container are merged, compiled and written by every enforcement
under one ruleset id; every container (and the entry of containers not registered yet)
whose selection is the same policies, by name and content digest, shares that ruleset. A
ruleset is written when the first user needs it and deleted from the kernel when its last
user lets it go. Callers hold the daemon's lock: this module keeps no lock of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from enforcer.compiler.postures import AbiConsts, CompiledPostures
from enforcer.compiler.rules import RuleTable
from enforcer.compiler.ruleset import compile_ruleset
from enforcer.errors import undo_quietly
from enforcer.kernel.enforcement import Enforcement, RulesetPart, merge_container_fields
from enforcer.policy.loader import policy_digest
from enforcer.policy.merge import merge, merge_postures
from enforcer.policy.model import Policy

RulesetKey = tuple[str, ...]  # "name@digest" of each selected policy, in selection order
# Deleted rulesets whose postures still name events in flight (a reload, a learn session's
# end): an event reaches the daemon within a second, by which time few rulesets went.
RELEASED_POSTURES = 64


def ruleset_key(selected: Sequence[Policy]) -> RulesetKey:
    return tuple(f"{p.name}@{policy_digest(p)}" for p in selected)


def policy_names(key: RulesetKey) -> tuple[str, ...]:
    return tuple(k.split("@", 1)[0] for k in key)


@dataclass
class Ruleset:
    id: int
    parts: dict[str, RulesetPart]
    users: set[str] = field(default_factory=set)  # container ids
    postures: CompiledPostures = field(default_factory=CompiledPostures)

    def container_fields(self, abi: Any = None) -> dict[str, int]:
        """The container entry's fields: every enforcement's, and (given the ABI) the
        postures word with the flags of the hooks the postures need."""
        parts = list(self.parts.values())
        if abi is not None:
            parts.append(RulesetPart(None, self.postures.container_fields(abi)))
        return merge_container_fields(parts)


class Rulesets:
    """The rulesets this run wrote, by selection key."""

    def __init__(self, on_written: Callable[[], None]) -> None:
        self._by_key: dict[RulesetKey, Ruleset] = {}
        # postures by ruleset id, of the live rulesets and of the last RELEASED_POSTURES
        # deleted ones: a posture event in flight when its ruleset went still names its policy
        self._postures: dict[int, CompiledPostures] = {}
        self._next = 1
        self._enforcements: Sequence[Enforcement] = ()
        self._table = RuleTable()
        self._consts: AbiConsts | None = None
        self._on_written = on_written  # new rule ids must survive a kill -9: save them

    def use(
        self, enforcements: Sequence[Enforcement], in_kernel: set[int], table: RuleTable, consts: AbiConsts
    ) -> None:
        """Compile with `table` (rule ids) for the kernel of `consts` and write through these
        enforcements, with ids above every id already in the kernel (an earlier run's
        rulesets stay in force until their containers are flipped)."""
        self._enforcements = enforcements
        self._table = table
        self._consts = consts
        self._next = max(in_kernel, default=0) + 1

    def get(self, key: RulesetKey | None) -> Ruleset | None:
        return self._by_key.get(key) if key is not None else None

    def keys(self) -> Iterator[RulesetKey]:
        return iter(self._by_key)

    def ids(self) -> set[int]:
        return {rs.id for rs in self._by_key.values()}

    def postures_of(self, ruleset_id: int) -> CompiledPostures | None:
        """The postures of a ruleset this run wrote (None: not one of this run's)."""
        return self._postures.get(ruleset_id)

    def get_or_write(self, key: RulesetKey, selected: Sequence[Policy]) -> Ruleset:
        """The ruleset of this selection, written (by every enforcement, all or nothing)
        if no user has it yet. Its users are the caller's to add once it is in force."""
        rs = self._by_key.get(key)
        if rs is None:
            rs = self._write(selected)
            self._by_key[key] = rs
            self._postures[rs.id] = rs.postures
            self._on_written()
        return rs

    def release(self, key: RulesetKey, user: str) -> None:
        """`user` no longer uses it; the last user gone, it is deleted from the kernel."""
        rs = self._by_key.get(key)
        if rs is None:
            return
        rs.users.discard(user)
        if not rs.users:
            for enf in self._enforcements:
                enf.delete_ruleset(rs.id, rs.parts[enf.name])
            del self._by_key[key]
            live = self.ids()
            gone = [rid for rid in self._postures if rid not in live]  # oldest first (ids grow)
            for rid in gone[: max(0, len(gone) - RELEASED_POSTURES)]:
                del self._postures[rid]

    def _write(self, selected: Sequence[Policy]) -> Ruleset:
        assert self._consts is not None, "use() first"
        # Refused before anything is written: what the kernel cannot hold.
        compiled = compile_ruleset(merge(selected), self._table, self._consts, merge_postures(selected))
        rid = self._next
        self._next += 1
        parts: dict[str, RulesetPart] = {}
        try:
            for enf in self._enforcements:
                parts[enf.name] = enf.write_ruleset(rid, compiled)  # each kind: all or nothing
        except Exception:
            for enf in self._enforcements:  # and the kinds written before the failing one
                if enf.name in parts:
                    undo_quietly(
                        enf.delete_ruleset,
                        rid,
                        parts[enf.name],
                        what="could not remove a half-written ruleset",
                        ruleset=rid,
                        enforcement=enf.name,
                    )
            raise
        return Ruleset(rid, parts, postures=compiled.postures)
