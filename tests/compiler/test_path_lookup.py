"""File and exec rules: the compiled path entries, looked up the way lsm_file.bpf.c does
(from the root down, stopping where no rule lies below; then the exact rule;
tests.compiler.kernel_model.path_lookup), give the reference decision of
reference.decide_file / decide_exec for every path, over generated policies."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from enforcer.compiler.paths import READ, WRITE, PathEntry, compile_paths
from enforcer.compiler.rules import RuleTable
from enforcer.policy.merge import EffectiveRule, merge
from enforcer.policy.model import Policy
from enforcer.policy.reference import decide_exec, decide_file
from tests.compiler import kernel_model as km

# A small tree, so generated rules and queried paths overlap often.
TREE = ["/", "/a", "/a/b", "/a/b/c", "/a/b/c/d", "/a/b/x", "/a/y", "/e", "/e/f", "/e/f/g"]
SLOT_OF = {"read": READ, "write": WRITE}


Rule = dict[str, Any]  # one rule of a policy document, as the strategies draw it


def rules_of(*specs: tuple[str, dict[str, Any]]) -> tuple[EffectiveRule, ...]:
    return merge(
        Policy.model_validate(
            {"apiVersion": "enforcer/v1", "kind": "ContainerPolicy", "metadata": {"name": name}, "spec": spec}
        )
        for name, spec in specs
    )


def check(rules: tuple[EffectiveRule, ...]) -> None:
    table = RuleTable()
    compiled = compile_paths(rules, table)
    for path in TREE:
        got = km.path_lookup(compiled, "file", path, [READ, WRITE])
        for bit, slot in SLOT_OF.items():
            want = km.reference(decide_file(rules, path, bit))
            have = km.outcome(*got[slot], table) if slot in got else None
            assert have == want, (path, bit, have, want)
        got = km.path_lookup(compiled, "exec", path, [READ])
        want = km.reference(decide_exec(rules, path))
        have = km.outcome(*got[READ], table) if READ in got else None
        assert have == want, ("exec", path, have, want)


file_rule = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["deny", "audit", "allow"]),
        "paths": st.lists(st.sampled_from(TREE), max_size=2, unique=True),
        "dirs": st.lists(st.sampled_from(TREE), max_size=2, unique=True),
        "access": st.lists(st.sampled_from(["read", "write"]), min_size=1, max_size=2, unique=True),
    }
).filter(lambda r: r["paths"] or r["dirs"])
exec_rule = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["deny", "audit", "allow"]),
        "paths": st.lists(st.sampled_from(TREE), max_size=2, unique=True),
        "dirs": st.lists(st.sampled_from(TREE), max_size=1, unique=True),
    }
).filter(lambda r: r["paths"] or r["dirs"])


@settings(max_examples=300, deadline=None)
@given(st.lists(file_rule, max_size=6), st.lists(exec_rule, max_size=3), st.lists(file_rule, max_size=3), st.booleans())
def test_generated_file_and_exec_policies_match_the_reference(
    a: list[Rule], ax: list[Rule], b: list[Rule], b_audit: bool
) -> None:
    check(rules_of(("a", {"file": a, "exec": ax}), ("b", {"file": b, "mode": "audit" if b_audit else "enforce"})))


def test_every_directory_above_a_rule_path_holds_an_entry_that_says_a_rule_lies_below() -> None:
    compiled = compile_paths(
        rules_of(
            ("p", {"file": [{"action": "allow", "paths": ["/a/b/c"]}], "exec": [{"action": "deny", "dirs": ["/e/f"]}]})
        ),
        RuleTable(),
    )
    for p in ("/", "/a", "/a/b"):
        assert compiled.entries[PathEntry("file_dir", p)] == [None, None]  # a marker, no rule
        assert PathEntry("file_dir", p) in compiled.below
    assert PathEntry("file_dir", "/a/b/c") not in compiled.entries
    assert {PathEntry("exec_dir", "/"), PathEntry("exec_dir", "/e")} <= compiled.below
    # the dir rule itself has nothing of its namespace below it: a walk stops there
    assert PathEntry("exec_dir", "/e/f") in compiled.entries
    assert PathEntry("exec_dir", "/e/f") not in compiled.below


def test_a_file_no_rule_is_near_costs_the_same_for_one_rule_and_many_however_deep() -> None:
    """The walk down stops at the first directory below which no rule lies: a path no rule
    is near costs two lookups ("/" and its first component), whatever the policy's size or
    the path's depth."""
    fillers = [{"action": "deny", "dirs": ["/f" * d + f"/x{d}"]} for d in range(40)]
    small = compile_paths(rules_of(("p", {"file": [{"action": "deny", "paths": ["/etc/shadow"]}]})), RuleTable())
    big = compile_paths(
        rules_of(("p", {"file": [{"action": "deny", "paths": ["/etc/shadow"]}, *fillers]})), RuleTable()
    )
    for depth in (2, 8, 32):
        deep = "/bench" + "/d" * (depth - 2) + "/none"
        seen_small: list[str] = []
        seen_big: list[str] = []
        assert km.path_lookup(small, "file", deep, [READ, WRITE], seen_small) == {}
        assert km.path_lookup(big, "file", deep, [READ, WRITE], seen_big) == {}
        assert seen_small == seen_big == ["/", "/bench"]


def test_a_file_under_a_dir_rule_stops_at_the_rule_when_nothing_lies_below_it() -> None:
    rules = rules_of(
        ("p", {"file": [{"action": "allow", "dirs": ["/app"]}, {"action": "deny", "paths": ["/etc/shadow"]}]})
    )
    table = RuleTable()
    compiled = compile_paths(rules, table)
    seen: list[str] = []
    got = km.path_lookup(compiled, "file", "/app" + "/d" * 30 + "/lib.so", [READ], seen)
    assert km.outcome(*got[READ], table) == ("allow", "p", "file[0]")
    assert seen == ["/", "/app"]


def test_the_exact_rule_is_looked_up_only_when_the_walk_reaches_the_file() -> None:
    rules = rules_of(("p", {"file": [{"action": "deny", "paths": ["/etc/shadow"]}]}))
    table = RuleTable()
    compiled = compile_paths(rules, table)
    seen: list[str] = []
    got = km.path_lookup(compiled, "file", "/etc/shadow", [READ], seen)
    assert km.outcome(*got[READ], table) == ("deny", "p", "file[0]")
    assert seen == ["/", "/etc", "/etc/shadow", "/etc/shadow"]  # dir entry, then the exact one
