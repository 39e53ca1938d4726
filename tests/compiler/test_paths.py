"""File/exec rules -> path_rules entries: one entry per named path, per access slot, with
ties settled at compile time (deny > audit > allow, then merge order)."""

from __future__ import annotations

from enforcer.compiler.paths import ACTION_CODES, READ, WRITE, CompiledPaths, PathEntry, compile_paths
from enforcer.compiler.rules import RuleRef, RuleTable
from enforcer.policy.loader import parse_text
from enforcer.policy.merge import merge

DOCS = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: a}
spec:
  file:
    - {action: allow, paths: [/etc/shadow]}
    - {action: deny, dirs: [/root/.ssh], access: [write]}
  exec:
    - {action: deny, paths: [/bin/nc], dirs: [/usr/local/sbin]}
---
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: b}
spec:
  mode: audit
  file:
    - {action: deny, paths: [/etc/shadow]}
---
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: c}
spec:
  file:
    - {action: deny, paths: [/etc/shadow], access: [read]}
"""


def _compiled() -> tuple[CompiledPaths, RuleTable]:
    parsed, errors = parse_text(DOCS, "t.yaml")
    assert not errors
    table = RuleTable()
    return compile_paths(merge(p.policy for p in parsed), table), table


def test_a_tie_on_one_path_is_won_by_the_most_severe_action_per_access_slot() -> None:
    compiled, table = _compiled()
    slots = compiled.entries[PathEntry("file_exact", "/etc/shadow")]
    read, write = slots[READ], slots[WRITE]
    assert read is not None and write is not None
    assert read.action == ACTION_CODES["deny"] and table.ref_for(read.rule_id) == RuleRef("c", "file[0]")
    # c denies reads only; for writes, b's deny is audit (mode: audit) and beats a's allow.
    assert write.action == ACTION_CODES["audit"] and table.ref_for(write.rule_id) == RuleRef("b", "file[0]")


def test_an_access_restricted_rule_fills_only_its_slot() -> None:
    compiled, _ = _compiled()
    slots = compiled.entries[PathEntry("file_dir", "/root/.ssh")]
    assert slots[READ] is None and slots[WRITE] is not None


def test_exec_rules_get_their_own_kinds_and_markers() -> None:
    compiled, _ = _compiled()
    assert PathEntry("exec_exact", "/bin/nc") in compiled.entries
    assert PathEntry("exec_dir", "/usr/local/sbin") in compiled.entries
    assert {PathEntry("exec_dir", "/usr/local"), PathEntry("exec_dir", "/bin")} <= compiled.below
    assert PathEntry("file_dir", "/usr/local") not in compiled.entries  # a namespace of its own
    assert compiled.has_enforcing("file") and compiled.has_enforcing("exec")


def test_rule_ids_are_stable_across_recompiles() -> None:
    parsed, _ = parse_text(DOCS, "t.yaml")
    table = RuleTable()
    first = compile_paths(merge(p.policy for p in parsed), table)
    second = compile_paths(merge(p.policy for p in parsed), table)
    assert first.entries == second.entries
