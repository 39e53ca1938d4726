"""File and exec rules: the compiled path entries, looked up the way lsm_file.bpf.c does
(binary search for the deepest prefix with an entry, then exact, then dir rules deepest
first; tests.compiler.kernel_model.path_lookup), give the reference decision of
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


def test_every_directory_above_a_rule_path_holds_an_entry() -> None:
    compiled = compile_paths(
        rules_of(
            ("p", {"file": [{"action": "allow", "paths": ["/a/b/c"]}], "exec": [{"action": "deny", "dirs": ["/e/f"]}]})
        ),
        RuleTable(),
    )
    for p in ("/", "/a", "/a/b"):
        assert compiled.entries[PathEntry("file_dir", p)] == [None, None]  # a marker, no rule
    assert PathEntry("file_dir", "/a/b/c") not in compiled.entries
    assert {PathEntry("exec_dir", "/"), PathEntry("exec_dir", "/e")} <= compiled.entries.keys()
    assert compiled.dir_depth_mask("file_dir") == 0  # markers are found by the search, not scanned


def test_the_search_costs_the_same_for_one_rule_and_many() -> None:
    """The deepest prefix with an entry is found in log2(depth) lookups; a path no rule is
    near stops at the root whatever the policy's size."""
    fillers = [{"action": "deny", "dirs": ["/f" * d + f"/x{d}"]} for d in range(40)]
    small = compile_paths(rules_of(("p", {"file": [{"action": "deny", "paths": ["/etc/shadow"]}]})), RuleTable())
    big = compile_paths(
        rules_of(("p", {"file": [{"action": "deny", "paths": ["/etc/shadow"]}, *fillers]})), RuleTable()
    )
    deep = "/bench" + "/d" * 30 + "/none"
    seen_small: list[str] = []
    seen_big: list[str] = []
    assert km.path_lookup(small, "file", deep, [READ, WRITE], seen_small) == {}
    assert km.path_lookup(big, "file", deep, [READ, WRITE], seen_big) == {}
    # exact + binary search down to "/" (the only marked prefix); no dir rule at depth 0
    assert len(seen_small) == len(seen_big) <= 1 + 6
    assert seen_big[-1] == "/"
